"""Every sentence tl_core says to a user: a closed family of message kinds with parameters.

tl_core raises and reports *kinds* (`WeightsError("weights.not_found", path=...)`), never free
text; the UI renders each kind from the table of the user's language, the CLI prints the English.
Parameters are plain values (names, numbers, paths, a library's own error text) or nested
Messages, rendered in the same language. This module imports nothing heavy: ui/ uses it without
loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

LANGS = ("en", "es")

# ---------------------------------------------------------------- the tables
# One entry per kind: English first, then Spanish. str.format templates over the kind's params.

EN: dict[str, str] = {}
ES: dict[str, str] = {}


def _kinds(table: dict[str, tuple[str, str]]) -> None:
    for kind, (en, es) in table.items():
        if kind in EN:
            raise ValueError(f"message kind {kind} defined twice")
        EN[kind], ES[kind] = en, es


_kinds({
    # a sentence from outside tl_core's family (a library's own text), shown as it is
    "text": ("{text}", "{text}"),
})


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    """One sentence for a user: a kind from the tables above and its parameters."""

    kind: str
    params: dict = field(default_factory=dict)

    def render(self, lang: str = "en") -> str:
        """The sentence in `lang` ("en" or "es"); English where a kind has no translation."""
        table = ES if lang == "es" else EN
        template = table.get(self.kind) or EN[self.kind]
        return template.format(**{k: _render_param(v, lang) for k, v in self.params.items()})

    def __str__(self) -> str:
        return self.render("en")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "params": {k: _param_to_json(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        return cls(d["kind"], {k: _param_from_json(v) for k, v in d.get("params", {}).items()})


def message(kind_or_text: str, **params) -> Message:
    """A Message of a known kind; any other string becomes kind "text" (shown as it is)."""
    if kind_or_text in EN:
        return Message(kind_or_text, params)
    return Message("text", {"text": kind_or_text})


def render(msg, lang: str = "en") -> str:
    """A Message, a dict from Message.to_dict, or plain text (shown as it is), in `lang`."""
    if isinstance(msg, Message):
        return msg.render(lang)
    if isinstance(msg, dict) and "kind" in msg:
        return Message.from_dict(msg).render(lang)
    return str(msg)


def _render_param(v, lang: str):
    if isinstance(v, Message):
        return v.render(lang)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, Message) for x in v):
        return "; ".join(x.render(lang) for x in v)
    return v


def _param_to_json(v):
    if isinstance(v, Message):
        return {"kind": v.kind, "params": v.to_dict()["params"]}
    if isinstance(v, (list, tuple)):
        return [_param_to_json(x) for x in v]
    return v


def _param_from_json(v):
    if isinstance(v, dict) and "kind" in v and "params" in v:
        return Message.from_dict(v)
    if isinstance(v, list):
        return [_param_from_json(x) for x in v]
    return v


# ---------------------------------------------------------------- the error family


class UserError(Exception):
    """An error a user can cause and fix; `.message` says what happened and what to do.

    Raise with a kind and its parameters: `DataError("data.no_classes", folder=...)`.
    """

    def __init__(self, kind_or_text: str | Message, **params):
        self.message = kind_or_text if isinstance(kind_or_text, Message) else message(kind_or_text, **params)
        super().__init__(str(self.message))

    def render(self, lang: str = "en") -> str:
        return self.message.render(lang)


class ConfigError(UserError, ValueError):
    """A configuration a user asked for that cannot run; the message says why."""


class SettingsError(ConfigError):
    """An environment variable with a value TL Studio cannot use; the message names it."""


class RunsFolderError(ConfigError):
    """The runs folder cannot take a new run (unwritable, or the disk is nearly full)."""


class DataError(UserError, ValueError):
    """A dataset that cannot be used; the message says what to do.

    `report` (when set) holds the files skipped so far, so the UI can list them next to the error.
    """

    def __init__(self, kind_or_text: str | Message, report=None, **params):
        super().__init__(kind_or_text, **params)
        self.report = report


class WeightsError(UserError, RuntimeError):
    """Starting weights that cannot be loaded; the message says what to do."""


class ExportError(UserError, RuntimeError):
    """An export that could not be produced or did not verify; the message says why."""


def short_error(e: BaseException) -> str:
    """The first line of a library's error text (at most 160 characters), for a message parameter."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


# ---------------------------------------------------------------- out of memory

# CUDA says "out of memory"; the CPU allocator says "DefaultCPUAllocator: can't allocate memory"
OOM_MARKERS = ("out of memory", "outofmemoryerror", "can't allocate memory", "not enough memory")


def mentions_out_of_memory(text: str) -> bool:
    """True when an error's text is one of the ways PyTorch and the OS say memory ran out."""
    text = text.lower()
    return any(m in text for m in OOM_MARKERS)

"""Weights files: read them safely and check them key by key against an architecture.

Local files are read safely (safetensors, or torch.load(weights_only=True): no pickled code
runs) and checked key by key against the architecture before anything is loaded. Where the
weights come from (hub, file, run, none) and building the model is model.create_backbone.
"""
from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from timm.models import load_state_dict
from torch import nn

from tl_core.base.messages import Message, WeightsError, short_error
from tl_core.models.heads import head_prefixes
from tl_core.models.sources.positional import remap_by_position

FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass(frozen=True)
class KeyReport:
    """How a weights file fits an architecture. The classifier head never counts as a mismatch."""

    missing: list = field(default_factory=list)  # in the model, not in the file
    unexpected: list = field(default_factory=list)  # in the file, not in the model
    mismatched: list = field(default_factory=list)  # (key, shape in file, shape in model)
    head: list = field(default_factory=list)  # classifier keys in the file: replaced, not loaded
    loaded: int = 0  # tensors that will load
    ok: bool = False
    message: Message | None = None  # what the UI shows (rendered in the user's language)
    by_position: bool = False  # names are another library's: tensors matched by position and shape


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a .safetensors / .pth / .pt / .bin file, read without running any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("weights.file_missing", path=str(path))
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise WeightsError("weights.bad_suffix", name=path.name)
    try:
        # timm's reader: safetensors, or torch.load(weights_only=True); unwraps state_dict/model keys
        state = load_state_dict(str(path), weights_only=True)
    except Exception as e:  # truncated, corrupt, not a checkpoint, or an unsafe pickle
        if _is_unsafe_pickle(e):
            raise WeightsError("weights.unsafe_pickle", name=path.name, asks=_unsafe_globals(path)) from e
        raise WeightsError("weights.unreadable", name=path.name, detail=short_error(e)) from e
    return _only_tensors(state, path.name)


def _is_unsafe_pickle(e: BaseException) -> bool:
    # torch.load(weights_only=True) raises UnpicklingError; timm re-raises it as RuntimeError
    return isinstance(e, pickle.UnpicklingError) or isinstance(e.__cause__, pickle.UnpicklingError)


def _unsafe_globals(path: Path) -> Message | str:
    """' (it asks for posix.system)': what the pickle wanted to call, read without running it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) format or unreadable: the refusal stands without names
        return ""
    return Message("weights.pickle_asks", {"names": ", ".join(names[:3])}) if names else ""


def _only_tensors(state, name: str) -> dict:
    if not isinstance(state, dict) or not state:
        raise WeightsError("weights.no_tensors", name=name)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError("weights.no_tensors", name=name)
    return tensors


def _with_filter(model: nn.Module, state: dict) -> dict:
    """The checkpoint after timm's own conversion for this architecture (original -> timm keys)."""
    fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if fn is None:
        return state
    try:
        return fn(dict(state), model)
    except Exception:  # a filter that cannot run here: the unconverted report stands
        return state


def compare_keys(model: nn.Module, state: dict, name: str = "the file") -> KeyReport:
    """Key-by-key fit of `state` to `model`, its classifier head excluded; failing that, a fit by
    position and shape (a file saved by another library, under its own tensor names)."""
    report = _compare(model, state, name)
    if not report.ok:
        converted = _with_filter(model, state)
        if converted is not state:
            alt = _compare(model, converted, name)
            report = alt if alt.ok else report
    if not report.ok and report.loaded == 0:
        match = remap_by_position(model.state_dict(), state, head_prefixes(model))
        if match is not None:
            arch = model.pretrained_cfg.get("architecture") or type(model).__name__
            return KeyReport(head=list(state)[len(state) - match.head:] if match.head else [],
                             loaded=match.matched, ok=True, by_position=True,
                             message=positional_message(name, arch, match.matched))
    return report


def positional_message(name, arch: str, matched: int) -> Message:
    return Message("weights.by_position", {"name": name, "arch": arch, "matched": matched})


def _compare(model: nn.Module, state: dict, name: str) -> KeyReport:
    heads = head_prefixes(model)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(heads)}
    given = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(heads)}
    # BatchNorm's step counter is absent from many checkpoints and is never used for inference
    missing = sorted(k for k in expected if k not in given and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in given if k not in expected)
    mismatched = [(k, given[k], expected[k]) for k in sorted(given) if k in expected and given[k] != expected[k]]
    head = sorted(k for k in state if k.startswith(heads))
    loaded = sum(1 for k in given if k in expected and given[k] == expected[k])
    ok = not (missing or unexpected or mismatched) and loaded > 0
    r = KeyReport(missing, unexpected, mismatched, head, loaded, ok)
    return KeyReport(missing, unexpected, mismatched, head, loaded, ok, _report_message(r, name, model))


def shape_text(s: tuple) -> str:
    return "x".join(map(str, s)) or "scalar"


def _report_message(r: KeyReport, name, model: nn.Module) -> Message:
    arch = model.pretrained_cfg.get("architecture") or type(model).__name__
    head = head_prefixes(model)[0].rstrip(".")
    if r.ok:
        return Message("weights.fits", {"name": name, "arch": arch, "loaded": r.loaded, "head": head})
    if r.loaded == 0 and not r.mismatched:
        return Message("weights.no_match", {"name": name, "arch": arch})
    parts = []
    if r.mismatched:
        k, got, want = r.mismatched[0]
        parts.append(Message("weights.wrong_shapes", {"n": len(r.mismatched), "key": k, "got": shape_text(got),
                                                      "want": shape_text(want)}))
    if r.missing:
        parts.append(Message("weights.missing_keys", {"n": len(r.missing), "key": r.missing[0]}))
    if r.unexpected:
        parts.append(Message("weights.unexpected_keys", {"n": len(r.unexpected), "arch": arch, "key": r.unexpected[0]}))
    return Message("weights.does_not_fit", {"name": name, "arch": arch, "problems": parts})


def preview_model(backbone: str) -> nn.Module:
    """Shapes and names only: on the meta device, so no memory, no download."""
    try:
        with torch.device("meta"):
            return timm.create_model(backbone, pretrained=False)
    except Exception as e:  # unknown name, bad kwargs
        raise WeightsError("weights.cannot_build", backbone=backbone, detail=short_error(e)) from e


def inspect_weights_file(backbone: str, path: str | Path) -> KeyReport:
    """Read `path` safely and report how its tensors fit `backbone` (for the UI, before training).

    Raises WeightsError (one sentence) when the file cannot be read at all, or is refused
    because it would run code when unpickled.
    """
    state = read_state_dict(path)
    return compare_keys(preview_model(backbone), state, Path(path).name)

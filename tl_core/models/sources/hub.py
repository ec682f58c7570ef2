"""Hub access: are a backbone's default pretrained weights cached, how big, download them.

Hub weights are timm's own (`pretrained_cfg.hf_hub_id`, file model.safetensors or
pytorch_model.bin) in the Hugging Face cache. We look in the cache first and only touch the
network when the weights are missing and we are not offline; the download itself goes through
huggingface_hub with a progress callback, and the cached file is then loaded through timm's own
path (`pretrained_cfg_overlay=dict(file=...)`, see model.create_backbone), so a cached model
never waits on the network.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import huggingface_hub
import timm
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError
from timm.models import get_pretrained_cfg
from tqdm.auto import tqdm as base

from tl_core.base.messages import Message, WeightsError, short_error

HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # timm's order: safetensors first
PROBE_TIMEOUT_S = 3.0  # one metadata request to learn size and reachability; no retries
WAYS_FORWARD = Message("hub.ways_forward")



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
    message: Message  # what the UI shows (rendered in the user's language)


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str | None
    filenames: tuple[str, ...]


def _hub():
    """huggingface_hub with bounded time-outs."""
    _bound_timeouts()
    return huggingface_hub


def _bound_timeouts() -> None:
    # huggingface_hub's defaults (10 s per request, 5 retries with back-off) made one
    # missing-weights call take 46.6 s here with the network blocked. file_download reads these
    # constants at call time, so setting them here works whenever huggingface_hub was imported
    # (timm imports it first), without changing os.environ.
    constants.HF_HUB_ETAG_TIMEOUT = min(constants.HF_HUB_ETAG_TIMEOUT, _env_int("HF_HUB_ETAG_TIMEOUT", 5))
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(constants.HF_HUB_DOWNLOAD_TIMEOUT, _env_int("HF_HUB_DOWNLOAD_TIMEOUT", 10))


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set (at import of huggingface_hub, or since)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(constants.HF_HUB_OFFLINE) or env


def cache_dir() -> str:
    """Where downloaded weights live (HF_HUB_CACHE, by default $HF_HOME/hub)."""
    return constants.HF_HUB_CACHE


def hub_source(backbone: str) -> HubSource:
    """The Hub repository and file names timm would load `backbone`'s pretrained weights from."""
    check_known(backbone)
    if backbone.startswith("hf-hub:"):
        repo_id, revision = hf_split(backbone[len("hf-hub:"):])
        return HubSource(repo_id, revision, HUB_FILENAMES)
    cfg = get_pretrained_cfg(backbone)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        raise WeightsError("hub.no_weights_in_timm", backbone=backbone)
    repo_id, revision = hf_split(hub_id)
    names = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else HUB_FILENAMES
    return HubSource(repo_id, revision, names)


def hf_split(hub_id: str) -> tuple[str, str | None]:
    """Splits "owner/name@revision" into (repo id, revision or None). timm 1.0's hf_split lives in the
    private timm.models._hub and timm.models does not export it, so this one-line split is ours."""
    repo_id, _, revision = hub_id.partition("@")
    return repo_id, revision or None


def check_known(backbone: str) -> None:
    if not backbone.startswith("hf-hub:") and not timm.is_model(backbone):
        raise WeightsError("hub.unknown_model", backbone=backbone)


def _cached_file(src: HubSource) -> tuple[str, str] | None:
    """(filename, path) of the first of src.filenames in the local cache; never touches the network."""
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


def mb(n: int | None) -> str:
    return Message("hub.size_unknown") if n is None else f"{n / 1e6:.1f} MB"


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
                             Message("hub.cached", {"backbone": backbone, "size": mb(size), "path": hit[1]}))
    if is_offline():
        return WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None,
                             Message("hub.missing_offline", {"backbone": backbone}))
    try:
        name, size = _remote_size(src)
    except OSError as e:
        return WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None,
                             Message("hub.missing_unreachable", {"backbone": backbone, "detail": short_error(e)}))
    return WeightsStatus(backbone, False, size, cache_dir(), src.repo_id, name, None,
                         Message("hub.will_download", {"backbone": backbone, "size": mb(size), "repo": src.repo_id,
                                                       "cache": cache_dir()}))


def unavailable_message(status: WeightsStatus) -> Message:
    """The one sentence shown when hub weights are needed but cannot be had."""
    why = Message("hub.why_offline" if is_offline() else "hub.why_unreachable")
    return Message("hub.unavailable", {"backbone": status.backbone, "repo": status.repo_id, "why": why,
                                       "ways": WAYS_FORWARD})


# ---------------------------------------------------------------- downloading


def _progress_class(progress):
    """A tqdm class that reports progress(done_bytes, total_bytes) to a callback and draws nothing.

    huggingface_hub creates it once per file (plain HTTP) or once for a Xet download; the
    `update_transfer` method makes Xet use a single bar instead of two, so bytes count once.
    """
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
    status = WeightsStatus(backbone, False, None, cache_dir(), src.repo_id, None, None, Message("text", {"text": ""}))
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
        raise WeightsError("hub.download_failed", backbone=backbone, detail=short_error(e),
                           ways=WAYS_FORWARD) from e

"""The run folder: run.json, events.jsonl, model.safetensors + config.json, preprocess.json.

Writes are atomic (temp file + rename) and events are append-only lines, so another process can
read a run while it trains, and a killed process leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tl_core.base import background
from tl_core.base import events as ev
from tl_core.base.atomic import read_json, write_bytes_atomic, write_json_atomic  # noqa: F401  (public here too)
from tl_core.base.config import RunConfig
from tl_core.base.messages import RunsFolderError
from tl_core.base.status import RunStatus, status_after
from tl_core.jobs.energy import EnergyMeter
from tl_core.jobs.settings import load_settings
from tl_core.trust import ood

# the status names as module constants, for callers that spelled them runs.FINISHED
QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = (
    RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED,
    RunStatus.INTERRUPTED)


def check_runs_folder(root: str | Path, min_free_mb: float | None = None) -> Path:
    """Make sure `root` exists, is writable and has `min_free_mb` free; RunsFolderError if not.

    Checked before a run starts, so a full or read-only disk is a sentence at the start, not a
    crash when the first checkpoint is written.
    """
    root = Path(root)
    if min_free_mb is None:
        min_free_mb = load_settings().min_free_mb
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{secrets.token_hex(4)}"
        write_bytes_atomic(probe, b"ok")
        probe.unlink()
    except OSError as e:
        raise RunsFolderError("runs.unwritable", root=str(root), detail=str(e.strerror or e)) from None
    free_mb = shutil.disk_usage(root).free / 1e6
    if free_mb < min_free_mb:
        raise RunsFolderError("runs.low_disk", root=str(root), free=free_mb, need=min_free_mb)
    return root


def _process_identity() -> dict:
    """pid + its start time + boot id: a pid reused after a restart (pid 1 in a container) is a
    different process, so its old runs still show as Interrupted."""
    ident = {"pid": os.getpid(), "host": socket.gethostname()}
    ident.update({k: v for k, v in (("proc_start", _proc_start(os.getpid())), ("boot_id", _boot_id())) if v})
    return ident


def _proc_start(pid: int) -> str | None:
    try:  # field 22 of /proc/<pid>/stat, after the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _versions() -> dict:
    # read from the installed packages' metadata: recording a version must not import torch
    return {"python": platform.python_version(), "torch": metadata.version("torch"),
            "timm": metadata.version("timm")}


def create_run(root: str | Path, cfg: RunConfig, classes: list, dataset_dict: dict | None = None) -> Path:
    """Make a new run folder with run.json (status Queued) and return it.

    Raises RunsFolderError (one sentence) when root is unwritable or its disk nearly full.
    """
    root = check_runs_folder(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # the random suffix makes names unguessable for the hosted mode
    run_dir = root / f"{stamp}-{cfg.backbone.replace('/', '_')}-{cfg.strategy}-{secrets.token_hex(4)}"
    info = {
        "status": QUEUED, "config": cfg.to_dict(), "classes": classes, "metrics": {},
        "created": time.time(), **_process_identity(),
        "parent": cfg.pretrained[4:] if cfg.pretrained.startswith("run:") else None,
        "versions": _versions(),
    }
    try:
        run_dir.mkdir()
        write_json_atomic(run_dir / "run.json", info)
        if dataset_dict is not None:
            write_json_atomic(run_dir / "dataset.json", dataset_dict)
    except OSError as e:  # the disk filled between the check and now
        shutil.rmtree(run_dir, ignore_errors=True)
        raise RunsFolderError("runs.cannot_create", root=str(root), detail=str(e.strerror or e)) from None
    return run_dir


def append_event(run_dir: Path, event) -> None:
    line = (json.dumps(ev.to_dict(event), ensure_ascii=False) + "\n").encode()
    # one O_APPEND write() per line (not a buffered file, which splits lines over 8 KB, e.g. a
    # traceback): readers see whole lines, or a partial last line after a kill
    fd = os.open(Path(run_dir) / "events.jsonl", os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if _ends_mid_line(fd):
            line = b"\n" + line  # a killed writer's partial line must not swallow this event
        if os.write(fd, line) != len(line):  # a short write is the disk filling up
            raise OSError(28, "No space left on device (short write to events.jsonl)")
    finally:
        os.close(fd)


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_events(run_dir: str | Path) -> list:
    """All complete events so far; a partial last line (writer mid-append, or killed) is ignored."""
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(ev.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def finish_run(run_dir: Path, event, extra: dict | None = None) -> None:
    info = read_json(run_dir / "run.json")
    info["status"] = status_after(event)
    info["ended"] = time.time()
    if isinstance(event, ev.Finished):
        info["metrics"] = event.metrics
        info["best_epoch"] = event.best_epoch
        info["train_seconds"] = event.train_seconds
    if isinstance(event, ev.Failed):
        info["error"] = event.message
    info.update(extra or {})
    write_json_atomic(run_dir / "run.json", info)


def record(run_dir: Path, events):
    """Pass events through, appending each to events.jsonl and closing run.json at the end
    (with the run's wall time and energy, tl_core.jobs.energy)."""
    meter = EnergyMeter()
    for event in events:
        if isinstance(event, ev.Finished):  # the "none of these" bank, from the saved best model,
            # before Finished: a run's last line is its end. Its cost (bench/ood_bank.py, 2 cores at load
            # 17-49): feature extraction reads the features its training pass left in the feature cache,
            # 0.7 s on the 200-photo sample and 1.8 s on hymenoptera (398), about 1% of the run; a
            # fine-tuned run changed its backbone, so nothing cached serves: one more embedding pass under
            # the best checkpoint, 51 s and 92 s there (measured as after_training on an empty cache)
            note = ood.after_training(run_dir)
            append_event(run_dir, note)
            yield note
        append_event(run_dir, event)
        if isinstance(event, ev.Started):
            meter.on_device(event.device)
        if isinstance(event, ev.EpochEnd) and event.is_best:
            _update(run_dir, metrics=event.metrics, best_epoch=event.epoch)
        if isinstance(event, ev.TERMINAL):
            finish_run(run_dir, event, {"energy": meter.read()})
        yield event


def update_run(run_dir: Path, **fields) -> None:
    """Set fields of run.json (atomically), e.g. the config actually used after a retry."""
    _update(Path(run_dir), **fields)


def mark_images_removed(run_dir: str | Path) -> None:
    """Record that the upload this run read its images from was deleted (hosted caps): its
    scores stay, its pictures and the export's check on them cannot come back."""
    if not read_json(Path(run_dir) / "run.json").get("images_removed"):
        _update(Path(run_dir), images_removed=time.time())


def mark_running(run_dir: Path) -> None:
    # the process that trains is the one whose death makes the run Interrupted
    _update(run_dir, status=RUNNING, started=time.time(), **_process_identity())


def _update(run_dir: Path, **fields) -> None:
    info = read_json(run_dir / "run.json")
    info.update(fields)
    write_json_atomic(run_dir / "run.json", info)


# ---------------------------------------------------------------- runs trained elsewhere
# A run trained by another process (process runner) or machine (worker pool) is driven through its
# folder, which every machine sees: a stop file asks it to stop, a heartbeat file says it is alive.

STOP_FILE, HEARTBEAT_FILE = "stop", "heartbeat"
HEARTBEAT_EVERY_S = 2.0
# a beat older than this means its trainer is gone (killed worker, lost machine); 15 beats allow
# for a slow shared filesystem. Clocks of the machines must agree (NTP) to within a few seconds.
HEARTBEAT_STALE_S = 30.0


def request_stop(run_dir: str | Path) -> None:
    """Ask the run to stop wherever it trains (it ends Stopped, keeping its best checkpoint)."""
    write_bytes_atomic(Path(run_dir) / STOP_FILE, b"stop")


def stop_requested(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


def beat(run_dir: str | Path) -> None:
    """The trainer is alive: touch the heartbeat file (its modification time is the beat)."""
    (Path(run_dir) / HEARTBEAT_FILE).touch()


def heartbeat_stale(run_dir: str | Path, now: float | None = None) -> bool:
    try:
        last = (Path(run_dir) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return False  # no heartbeat: a thread-runner run, judged by its pid
    return (now or time.time()) - last > HEARTBEAT_STALE_S


class EventTail:
    """Events of a run folder read by cursor: each read() parses only what was appended since."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "events.jsonl"
        self.offset = 0
        self.events: list = []

    def read(self) -> list:
        """Parse new complete lines (a partial last line waits for its newline); returns the new events."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        new = []
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            try:
                new.append(ev.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
        self.events.extend(new)
        return new

    def since(self, cursor: int = 0) -> list:
        self.read()
        return self.events[cursor:]


# ---------------------------------------------------------------- reading runs


@dataclass(frozen=True)
class RunInfo:
    dir: str
    name: str
    status: RunStatus
    config: RunConfig
    classes: list
    metrics: dict
    created: float
    parent: str | None
    error: str | None = None
    images_removed: float | None = None  # when a hosted session's upload cap deleted its images


def run_status(info: dict, run_dir: str | Path | None = None) -> RunStatus:
    """Running/Queued only while the process that owns the run is alive; else Interrupted.

    With `run_dir`: a run whose trainer beats a heartbeat (process and pool runners) and has not
    beaten for HEARTBEAT_STALE_S is Interrupted too, on whatever machine it ran.
    """
    try:
        status = RunStatus(info.get("status", INTERRUPTED))
    except ValueError:  # a status this version does not know: nothing can be said about it
        return INTERRUPTED
    if not status.active:
        return status
    if status == RUNNING and run_dir is not None and heartbeat_stale(run_dir):
        return INTERRUPTED
    if info.get("host") != socket.gethostname():
        return status  # another machine's process: only its heartbeat (above) can tell
    pid = int(info.get("pid", -1))
    if not background.pid_alive(pid):
        return INTERRUPTED
    if info.get("boot_id") and info["boot_id"] != _boot_id():
        return INTERRUPTED
    if info.get("proc_start") and _proc_start(pid) not in (None, info["proc_start"]):
        return INTERRUPTED  # the pid now belongs to another process
    return status


def read_run(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    return RunInfo(str(run_dir), run_dir.name, run_status(info, run_dir), RunConfig.from_dict(info["config"]),
                   info.get("classes", []), info.get("metrics", {}), info.get("created", 0.0),
                   info.get("parent"), info.get("error"), info.get("images_removed"))


def list_runs(root: str | Path) -> list[RunInfo]:
    """Every readable run under root, newest first (unreadable folders are left out)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if (d / "run.json").is_file():
            try:
                out.append(read_run(d))
            except (ValueError, KeyError, TypeError, OSError):
                continue  # a damaged run.json hides that run, never the list
    return sorted(out, key=lambda r: r.created, reverse=True)

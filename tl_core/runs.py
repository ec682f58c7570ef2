"""The run folder: run.json, events.jsonl, model.safetensors + config.json, preprocess.json.

Writes are atomic (temp file + rename) and events are append-only lines, so another process can
read a run while it trains, and a killed process leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from . import events as ev
from .config import RunConfig

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = (
    "Queued", "Running", "Finished", "Stopped", "Failed", "Interrupted")
_TERMINAL_STATUS = {"Finished": FINISHED, "Stopped": STOPPED, "Failed": FAILED}


def write_json_atomic(path: Path, data) -> None:
    write_bytes_atomic(Path(path), json.dumps(data, indent=2, ensure_ascii=False).encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _versions() -> dict:
    import timm
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__}


def create_run(root: str | Path, cfg: RunConfig, classes: list, dataset_dict: dict | None = None) -> Path:
    """Make a new run folder with run.json (status Queued) and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # the random suffix makes names unguessable for the hosted mode
    run_dir = root / f"{stamp}-{cfg.backbone.replace('/', '_')}-{cfg.strategy}-{secrets.token_hex(4)}"
    run_dir.mkdir()
    info = {
        "status": QUEUED, "config": cfg.to_dict(), "classes": classes, "metrics": {},
        "created": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
        "parent": cfg.pretrained[4:] if cfg.pretrained.startswith("run:") else None,
        "versions": _versions(),
    }
    write_json_atomic(run_dir / "run.json", info)
    if dataset_dict is not None:
        write_json_atomic(run_dir / "dataset.json", dataset_dict)
    return run_dir


def append_event(run_dir: Path, event) -> None:
    line = json.dumps(ev.to_dict(event), ensure_ascii=False) + "\n"
    with open(Path(run_dir) / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(line)  # one write per line: readers see whole lines or a partial last line


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
    info["status"] = _TERMINAL_STATUS[type(event).__name__]
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
    """Pass events through, appending each to events.jsonl and closing run.json at the end."""
    for event in events:
        append_event(run_dir, event)
        if isinstance(event, ev.EpochEnd) and event.is_best:
            _update(run_dir, metrics=event.metrics, best_epoch=event.epoch)
        if isinstance(event, ev.TERMINAL):
            finish_run(run_dir, event)
        yield event


def mark_running(run_dir: Path) -> None:
    _update(run_dir, status=RUNNING, started=time.time())


def _update(run_dir: Path, **fields) -> None:
    info = read_json(run_dir / "run.json")
    info.update(fields)
    write_json_atomic(run_dir / "run.json", info)


# ---------------------------------------------------------------- reading runs


@dataclass(frozen=True)
class RunInfo:
    dir: str
    name: str
    status: str
    config: RunConfig
    classes: list
    metrics: dict
    created: float
    parent: str | None
    error: str | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(info: dict) -> str:
    """Running/Queued only while the process that owns the run is alive; else Interrupted."""
    status = info.get("status", INTERRUPTED)
    if status not in (RUNNING, QUEUED):
        return status
    same_host = info.get("host") == socket.gethostname()
    if same_host and not _pid_alive(int(info.get("pid", -1))):
        return INTERRUPTED
    return status


def read_run(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    return RunInfo(str(run_dir), run_dir.name, run_status(info), RunConfig.from_dict(info["config"]),
                   info.get("classes", []), info.get("metrics", {}), info.get("created", 0.0),
                   info.get("parent"), info.get("error"))


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
            except (ValueError, KeyError, OSError):
                continue
    return sorted(out, key=lambda r: r.created, reverse=True)


def load_run(run_dir: str | Path):
    """A Predictor for the run's best checkpoint."""
    from .predict import Predictor

    return Predictor(Path(run_dir))


def evaluation(run_dir: str | Path):
    from .metrics import evaluation_from_predictions

    return evaluation_from_predictions(read_json(Path(run_dir) / "val_predictions.json"))

"""Is every run folder under a root whole? The checker an operator runs after a crash, a kill or a
full disk (`python -m tl_core runs ROOT --check`), and bench/faults.py after its campaign.

A run folder is whole when run.json parses and its status agrees with events.jsonl (by the rules
of runs.run_status: Running or Queued whose process is gone is Interrupted, and an Interrupted run
never ended in its events), no temporary file of an atomic write is left, the checkpoint its
events promise is there and complete, and the images folder it names still exists unless run.json
records that the caps removed it. This module loads no torch: a safetensors file is checked by its
header and size alone.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from tl_core.base import events as ev
from tl_core.base.atomic import read_json
from tl_core.base.config import RunConfig
from tl_core.base.messages import Message
from tl_core.base.status import RunStatus, status_after
from tl_core.jobs import runs

# open_atomic's `.NAME.<8 hex>.tmp` and check_runs_folder's `.write-test-<8 hex>` probe
_LITTER = re.compile(r"^(\..+\.[0-9a-f]{8}\.tmp|\.write-test-[0-9a-f]{8})$")
# files the first best epoch writes at once (train.Run._write_best: SAVE_EVERY_S starts at -inf)
_BEST_FILES = ("model.safetensors", "config.json", "val_predictions.json")
# what a Finished run is read back from (Evaluate, Predict, Export)
_FINISHED_FILES = ("model.safetensors", "config.json", "preprocess.json")


def check_runs(root: str | Path) -> list[Message]:
    """Every problem found in the run folders under `root` (hosted: one level of session folders
    deeper), one sentence each; [] when all are whole. Reads only; repairs nothing."""
    root = Path(root)
    if not root.is_dir():
        return []
    problems = [Message("check.temp_file", {"path": str(p)}) for p in sorted(_litter(root))]
    for run_json in sorted(root.rglob("run.json")):
        problems += check_run(run_json.parent)
    return problems


def count_runs(root: str | Path) -> int:
    """How many run folders check_runs looks at under `root`."""
    root = Path(root)
    return sum(1 for _ in root.rglob("run.json")) if root.is_dir() else 0


def _litter(root: Path):
    return (p for p in root.rglob(".*") if p.is_file() and _LITTER.match(p.name))


def check_run(run_dir: str | Path) -> list[Message]:
    """The problems of one run folder (see check_runs)."""
    run_dir = Path(run_dir)
    run = str(run_dir)
    try:
        info = read_json(run_dir / "run.json")
        RunConfig.from_dict(info["config"])
        stored = RunStatus(info.get("status"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return [Message("check.unreadable_run_json", {"run": run, "detail": f"{type(e).__name__}: {e}"})]
    events, bad_lines = _read_lines(run_dir / "events.jsonl")
    status = runs.run_status(info, run_dir)
    problems = [Message("check.damaged_event", {"run": run, "line": n}) for n in bad_lines]
    problems += _status_problems(run, status, stored, events)
    problems += _file_problems(run_dir, status, events)
    problems += _images_problems(run_dir, info)
    problems += _parent_problems(run, info, status)
    return problems


def _read_lines(path: Path) -> tuple[list, list[int]]:
    """(events, numbers of complete lines that are not events). A partial last line (a writer
    killed mid-append) is not counted: readers skip it and the next append starts a new line."""
    if not path.exists():
        return [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete = lines[:-1]  # the text after the last newline is partial (or empty)
    events, bad = [], []
    for n, line in enumerate(complete, 1):
        try:
            events.append(ev.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            bad.append(n)
    return events, bad


def _status_problems(run: str, status: RunStatus, stored: RunStatus, events: list) -> list[Message]:
    last = next((e for e in reversed(events) if isinstance(e, ev.TERMINAL)), None)
    ended = status_after(last) if last is not None else None
    if status.done and ended is None:
        return [Message("check.no_end_event", {"run": run, "status": stored.value})]
    if status.done and ended != status:
        return [Message("check.status_differs", {"run": run, "status": stored.value, "event": type(last).__name__})]
    if not status.done and ended is not None:  # ended in its events, but run.json was never closed
        return [Message("check.not_closed", {"run": run, "status": status.value, "event": type(last).__name__})]
    return []


def _file_problems(run_dir: Path, status: RunStatus, events: list) -> list[Message]:
    run = str(run_dir)
    best = next((e.epoch for e in events if isinstance(e, ev.EpochEnd) and e.is_best), None)
    need = {}
    if best is not None:
        need.update({f: Message("check.why_best", {"epoch": best}) for f in _BEST_FILES})
    if status == RunStatus.FINISHED:
        need.update({f: Message("check.why_finished") for f in _FINISHED_FILES if f not in need})
    problems = [Message("check.missing_file", {"run": run, "file": f, "why": why})
                for f, why in need.items() if not (run_dir / f).is_file()]
    for name in ("config.json", "preprocess.json", "dataset.json", "val_predictions.json"):
        if (run_dir / name).is_file():
            problems += _damaged_json(run_dir, name)
    if (run_dir / "model.safetensors").is_file():
        detail = safetensors_problem(run_dir / "model.safetensors")
        if detail:
            problems.append(Message("check.damaged_file", {"run": run, "file": "model.safetensors", "detail": detail}))
    return problems


def _damaged_json(run_dir: Path, name: str) -> list[Message]:
    try:
        read_json(run_dir / name)
        return []
    except (OSError, ValueError) as e:
        return [Message("check.damaged_file", {"run": str(run_dir), "file": name, "detail": f"{type(e).__name__}: {e}"})]


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file's framing (None if whole): an 8-byte header length,
    a JSON header, and exactly the bytes its tensors' offsets end at (a cut file is shorter)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{len(head)} bytes, shorter than a header"
            n = struct.unpack("<Q", head)[0]
            header = json.loads(f.read(n)) if n < 100_000_000 else None
        if not isinstance(header, dict):
            return "no JSON header"
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        size = path.stat().st_size
        return None if size == 8 + n + end else f"{size} bytes where its header says {8 + n + end}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        return f"{type(e).__name__}: {e}"


def _images_problems(run_dir: Path, info: dict) -> list[Message]:
    if info.get("images_removed") or not (run_dir / "dataset.json").is_file():
        return []  # removed by the caps and said so, or a run older than dataset.json
    try:
        images = read_json(run_dir / "dataset.json")["root"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # reported as a damaged file above
    if Path(images).is_dir():
        return []
    return [Message("check.images_gone", {"run": str(run_dir), "root": str(images)})]


def _parent_problems(run: str, info: dict, status: RunStatus) -> list[Message]:
    """A run still to train from run:DIR needs DIR's checkpoint; one that trained already has its own."""
    parent = info.get("parent")
    if not parent or not status.active or (Path(parent) / "model.safetensors").is_file():
        return []
    return [Message("check.parent_gone", {"run": run, "status": status.value, "parent": parent})]

"""Session housekeeping: per-session run caps, old uploads, idle hosted sessions.

Deleting never touches a run that is Queued or Running in a live process, nor the upload
folder such a run reads its images from.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from tl_core.base.atomic import read_json
from tl_core.jobs.runs import list_runs, mark_images_removed
from tl_core.jobs.settings import Settings, session_runs_root, session_workspace, valid_token


def _active(run) -> bool:
    return run.status.active


def cleanup_session_runs(root: str | Path, keep: int) -> list[Path]:
    """Delete the oldest finished/stopped/failed/interrupted runs under root beyond the newest `keep`.

    Active runs (Running/Queued in a live process) are never deleted and count towards `keep`.
    Returns the deleted folders. keep <= 0 means no limit.
    """
    if keep <= 0:
        return []
    runs = list_runs(root)  # newest first
    removed = []
    for run in runs[keep:]:
        path = Path(run.dir)
        if _active(run) or path.is_symlink() or path.parent.resolve() != Path(root).resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def make_room_for_run(settings: Settings, root: str | Path) -> list[Path]:
    """Before submitting: keep at most max_runs_per_session - 1 old runs, so the new one fits."""
    if settings.max_runs_per_session <= 0:
        return []
    return cleanup_session_runs(root, settings.max_runs_per_session - 1)


def prune_uploads(settings: Settings, token: str, keep: int = 2) -> list[Path]:
    """Delete this session's older upload folders (workspace/<token>/uploads/*), keeping the
    newest `keep`. Returns those deleted.

    Local mode deletes no folder that any run reads its images from (its Evaluate, Predict and
    Export need them). Hosted, the caps decide: only a folder an active run reads is spared, and
    each finished run whose images go records it in its run.json (`images_removed`), so its pages
    say so in one sentence. Without pruning one session re-uploading a 200 MB folder fills the
    disk for everyone.
    """
    uploads = session_workspace(settings, token) / "uploads"
    if not uploads.is_dir():
        return []
    readers = _runs_by_image_root(settings, token)
    folders = sorted((d for d in uploads.iterdir() if d.is_dir() and not d.is_symlink()),
                     key=lambda d: d.stat().st_mtime, reverse=True)
    removed = []
    for d in folders[keep:]:
        using = [run for root, users in readers.items() if _inside(root, d.resolve()) for run in users]
        if any(_active(run) for run in using) or (using and not settings.hosted):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
        for run in using:
            mark_images_removed(run.dir)
    return removed


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _runs_by_image_root(settings: Settings, token: str) -> dict[Path, list]:
    """{the folder a run reads its images from: [those runs]} over the runs this session sees."""
    readers: dict[Path, list] = {}
    for run in list_runs(session_runs_root(settings, token)):
        saved = Path(run.dir) / "dataset.json"
        try:
            root = Path(read_json(saved)["root"]).resolve()
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no dataset.json (an old run) or a damaged one: it names no folder
        readers.setdefault(root, []).append(run)
    return readers


def cleanup_idle_sessions(settings: Settings, now: float | None = None) -> list[str]:
    """Hosted only: delete sessions (runs + workspace) untouched for session_ttl_hours.

    A session with an active run keeps both folders (the run reads its images from the
    workspace). Call it now and then, e.g. when a new session starts. Returns deleted tokens.
    """
    if not settings.hosted or settings.session_ttl_hours <= 0:
        return []
    cutoff = (now or time.time()) - settings.session_ttl_hours * 3600
    bases = (Path(settings.runs_dir), Path(settings.workspace_dir))
    tokens = {d.name for b in bases if b.is_dir() for d in b.iterdir() if valid_token(d.name) and not d.is_symlink()}
    removed = []
    for token in sorted(tokens):
        folders = [b / token for b in bases if (b / token).is_dir()]
        if max(_last_touched(f) for f in folders) > cutoff:
            continue
        if any(_active(r) for r in list_runs(bases[0] / token)):
            continue
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)
        removed.append(token)
    return removed


def _last_touched(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for p in folder.rglob("*"):
        try:
            newest = max(newest, p.lstat().st_mtime)
        except OSError:
            continue
    return newest

"""The class board (hosted mode): students who type the same class code are grouped, and a teacher
who holds the server's teacher token (TL_TEACHER_TOKEN) sees their runs and comparison verdicts.

A session's class code lives in its own runs folder (runs/<session token>/class.json). The board
reads every session folder under TL_RUNS; it shows a student's chosen name or an anonymous label
derived from the session token (never the token itself: it is the key to that student's runs).
Students never see the board: pages only read their own session's folder.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from tl_core.base.config import ConfigError
from tl_core.jobs import compare, runs
from tl_core.jobs.settings import Settings, valid_token

CLASS_FILE = "class.json"
_CODE = re.compile(r"^[A-Za-z0-9_-]{3,32}$")
TOKEN_ENV = "TL_TEACHER_TOKEN"


def teacher_token_set(environ: dict | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(TOKEN_ENV, "").strip())


def teacher_allowed(given: str | None, environ: dict | None = None) -> bool:
    """True only when the server has a teacher token and `given` is exactly it (constant time)."""
    env = os.environ if environ is None else environ
    expected = env.get(TOKEN_ENV, "").strip()
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(given.strip().encode(), expected.encode())


def set_class(session_root: str | Path, code: str, name: str = "") -> dict:
    """Join a class: write the code (and an optional display name) into this session's folder."""
    code = code.strip()
    if not _CODE.fullmatch(code):
        raise ConfigError("classboard.bad_code")
    info = {"code": code, "name": re.sub(r"[^\w .'-]", "", name.strip())[:40]}
    runs.write_json_atomic(Path(session_root) / CLASS_FILE, info)
    return info


def get_class(session_root: str | Path) -> dict | None:
    try:
        return runs.read_json(Path(session_root) / CLASS_FILE)
    except (OSError, ValueError):
        return None


def anonymous_label(token: str) -> str:
    return "student-" + hashlib.sha256(token.encode()).hexdigest()[:6]


def _sessions(settings: Settings):
    base = Path(settings.runs_dir)
    for d in sorted(base.iterdir()) if base.is_dir() else []:
        if d.is_dir() and not d.is_symlink() and valid_token(d.name):
            info = get_class(d)
            if info:
                yield d, info


def class_codes(settings: Settings) -> list[str]:
    return sorted({info["code"] for _, info in _sessions(settings)})


def _run_row(r) -> dict:
    energy = runs.read_json(Path(r.dir) / "run.json").get("energy") or {}
    return {"backbone": r.config.backbone, "strategy": r.config.strategy, "status": r.status,
            "acc": r.metrics.get("val/acc"), "wall_s": energy.get("wall_s"), "energy_wh": energy.get("wh"),
            "energy_estimate": energy.get("estimate", True)}


def board(settings: Settings, code: str) -> list[dict]:
    """Every session in class `code`: its label, its runs and its comparisons' verdicts."""
    out = []
    for folder, info in _sessions(settings):
        if info.get("code") != code:
            continue
        rows = []
        for r in runs.list_runs(folder):
            try:
                rows.append(_run_row(r))
            except (OSError, ValueError):
                continue
        comparisons = [compare.summary(g) for g in compare.list_groups(folder)]
        out.append({"student": info.get("name") or anonymous_label(folder.name), "runs": rows,
                    "comparisons": comparisons})
    return out

"""Screenshots of the comparison and the class board (issue 10), from comparisons already run.

    .venv/bin/python -m tests.screens_compare RUNS_A [RUNS_B ...]

Each RUNS folder holds run folders and compare/*.json (e.g. from `python -m tl_core compare`).
compare.png: the Compare page in local mode on RUNS_A (its newest comparison).
classboard.png: a hosted server where each RUNS folder is one student's session in class
"bio-7b", seen by the teacher. Uses Debian chromium like tests/test_browser.py.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.app_server import ARGS, CHROMIUM, ROOT, start_app, stop_app
from tl_core.jobs.settings import new_session_token

TOKEN = "teacher-demo-token"
NAMES = ["Ana", "Ben", "Chloé", "Dev"]
DOCS_SHOTS = ROOT / "docs" / "screenshots"


def session_copy(src: Path, dest: Path) -> None:
    """Copy a runs folder as one session's, pointing its comparisons at the copied run folders."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".upload-*"))
    for g in (dest / "compare").glob("*.json"):
        info = json.loads(g.read_text())
        for m in info["members"]:
            if m["run_dir"]:
                m["run_dir"] = str(dest / Path(m["run_dir"]).name)
        g.write_text(json.dumps(info))


def shoot(url: str, path: str, out: Path, token: str | None = None) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1700})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/{path}")
        page.wait_for_selector("h1")
        if token:
            box = page.get_by_label("Teacher token")
            box.fill(token)
            box.press("Enter")
            page.wait_for_selector("text=Comparison verdicts")
        else:
            page.wait_for_selector("text=Pretraining", timeout=180_000)  # the verdict is the last thing drawn
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
        time.sleep(3)  # charts draw after the data arrives
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main(folders: list[str]) -> None:
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    proc, url = start_app(Path(tempfile.mkdtemp()), log=Path(os.devnull), TL_RUNS=folders[0])
    try:
        shoot(url, "compare", DOCS_SHOTS / "compare.png")
    finally:
        stop_app(proc)
    tmp = Path(tempfile.mkdtemp())
    for i, folder in enumerate(folders):
        token = new_session_token()
        session_copy(Path(folder), tmp / "runs" / token)
        (tmp / "runs" / token / "class.json").write_text(json.dumps({"code": "bio-7b", "name": NAMES[i % 4]}))
    proc, url = start_app(tmp, log=Path(os.devnull), TL_MODE="hosted", TL_TEACHER_TOKEN=TOKEN, TL_SESSION_TTL_HOURS="0")
    try:
        shoot(url, "teacher", DOCS_SHOTS / "classboard.png", token=TOKEN)
    finally:
        stop_app(proc)
    print(f"wrote {DOCS_SHOTS / 'compare.png'} and {DOCS_SHOTS / 'classboard.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The README's command-line examples run as written, offline, on the bundled shapes sample:
each default (--pretrained auto above all) works without a network. Only the lines that need
other machines are left out: `weights fetch` (a download), `--devices 2` (GPUs), `worker` and
`--queue` (a Redis server; tests/test_pool.py runs those)."""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from tl_core.__main__ import main as tl_main

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ROOT / "assets" / "samples" / "shapes"
NEEDS_OTHER_MACHINES = ("weights fetch", "--devices", "worker", "--queue")


def readme_commands() -> list[str]:
    """`python -m tl_core ...` lines of the README's Command line section, continuations joined,
    comments and [optional] parts dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", section)
    commands = []
    for line in joined.splitlines():
        m = re.match(r"\.venv/bin/python -m tl_core (.*)", line.strip())
        if m:
            command = re.sub(r"\s+#.*$", "", m.group(1))
            # optional parts are dropped, except audit's --backbone: the default weights are its point
            command = re.sub(r"\[([^\]]*)\]", r"\1" if command.startswith("audit") else "", command)
            commands.append(" ".join(command.split()))
    return commands


def _run(argv: list[str]) -> tuple[int, str, str]:
    """`python -m tl_core ARGV` in this process (what `-m` runs: tl_core/__main__.py's main), to
    spare each example a fresh interpreter and torch import."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = tl_main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_the_readme_cli_examples_run_offline(tmp_path, monkeypatch):
    commands = [c for c in readme_commands() if not any(skip in c for skip in NEEDS_OTHER_MACHINES)]
    assert [c.split()[0] for c in commands] == ["train", "predict", "curve", "export", "export", "audit", "runs", "runs",
                                              "weights"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    image = next((SHAPES / "circle").glob("*.png"))
    run_dir = ""
    for command in commands:
        command = command.replace("DATA_DIR", str(SHAPES)).replace("RUN_DIR", run_dir or "RUN_DIR")
        command = command.replace("IMAGE...", str(image)).replace("DIR", str(tmp_path / "out"))
        rc, out, err = _run(command.split())
        assert rc == 0, f"{command}\n{out[-2000:]}\n{err[-3000:]}"
        if command.startswith("train"):
            final = json.loads(out.strip().splitlines()[-1])
            assert final["status"] == "Finished", final
            run_dir = str(tmp_path / final["run_dir"])
        if command.startswith("audit"):  # --backbone with the default weights: the package's, offline
            assert "features" in err and json.loads(out.strip().splitlines()[-1])

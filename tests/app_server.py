"""`streamlit run app.py` on a free local port: the one way the browser tests (the `server` fixture in
conftest.py), tests/screens_compare.py and the browser benchmarks in bench/ start and stop the app.

Imports nothing from its neighbours, so it loads both as `app_server` (tests/ on sys.path, as pytest
and the bench scripts have it) and as `tests.app_server` (from the project root).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's package; never `playwright install`
ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


def start_app(tmp: Path, log: Path | None = None, args: tuple = (), **env) -> tuple[subprocess.Popen, str]:
    """Start the app offline with its runs and workspace under `tmp` -> (process, url) once it answers.

    env: variables on top of this process's and of TL_RUNS=tmp/runs, TL_WORKSPACE=tmp/workspace
    (a value None removes one); args: more `streamlit run` options; its output goes to `log`
    (default tmp/streamlit.log)."""
    port = free_port()
    env = {**os.environ, "TL_RUNS": str(tmp / "runs"), "TL_WORKSPACE": str(tmp / "workspace"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *args]
    with open(log or tmp / "streamlit.log", "w") as out:  # the child writes to its own copy of the handle
        proc = subprocess.Popen(cmd, cwd=ROOT, env={k: v for k, v in env.items() if v is not None},
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        stop_app(proc)
        raise
    return proc, url


def stop_app(proc: subprocess.Popen, seconds: float = 30) -> None:
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:  # a loaded machine can take longer to shut down: not a failure
        proc.kill()
        proc.wait(10)


@contextmanager
def running_app(tmp: Path, **kw):
    """start_app(tmp, **kw) -> its url, stopped on leaving."""
    proc, url = start_app(tmp, **kw)
    try:
        yield url
    finally:
        stop_app(proc)

"""Local mode is for the person at this computer: `make run` listens on 127.0.0.1 and says so;
whenever the app is reachable from outside (another address, or hosted) it offers no server paths."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import streamlit.config
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _start_make_run(tmp_path, port: int, *extra: str):
    env = {**os.environ, "TL_RUNS": str(tmp_path / "runs"), "TL_WORKSPACE": str(tmp_path / "workspace"),
           "STREAMLIT_SERVER_HEADLESS": "true", "HF_HUB_OFFLINE": "1"}
    # -o: take the venv as it is (never pip install from a test)
    cmd = ["make", "--no-print-directory", "-o", ".venv/.runtime", "run", f"PORT={port}", *extra]
    log = open(tmp_path / "make-run.log", "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log


def _wait_healthy(port: int, proc, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, f"make run exited with {proc.returncode}"
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("make run did not become healthy")


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "streamlit").exists(), reason="make run needs .venv")
def test_make_run_listens_on_loopback_only_and_says_so(tmp_path):
    port = _free_port()
    proc, log = _start_make_run(tmp_path, port)
    try:
        _wait_healthy(port, proc)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the streamlit it started: this test's own group
        proc.wait(30)
        log.close()
    said = (tmp_path / "make-run.log").read_text()
    assert "listens on 127.0.0.1" in said and "only this computer can open it" in said, said


@pytest.fixture
def server_address():
    """Set streamlit's server.address as `make run ADDRESS=...` does, restored afterwards."""
    import streamlit as st

    before = streamlit.config.get_option("server.address")
    yield lambda value: streamlit.config.set_option("server.address", value)
    streamlit.config.set_option("server.address", before)
    st.cache_resource.clear()


def _data_page(tmp_path, monkeypatch, mode: str) -> AppTest:
    import streamlit as st

    monkeypatch.setenv("TL_MODE", mode)
    monkeypatch.setenv("TL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TL_WORKSPACE", str(tmp_path / "workspace"))
    st.cache_resource.clear()  # server_settings() is read once per process
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    return at


def _has_folder_tab(at: AppTest) -> bool:
    return any(w.key == "local_path" for w in at.text_input)


@pytest.mark.parametrize("address,mode", [("0.0.0.0", "local"), ("", "local"), ("192.168.1.20", "local"),
                                          ("::", "local"), ("127.0.0.1", "hosted")])
def test_no_folder_tab_whenever_the_app_is_reachable_from_outside(tmp_path, monkeypatch, server_address,
                                                                    address, mode):
    server_address(address)
    assert not _has_folder_tab(_data_page(tmp_path, monkeypatch, mode))


def test_the_folder_tab_is_offered_on_loopback_in_local_mode(tmp_path, monkeypatch, server_address):
    server_address("127.0.0.1")
    assert _has_folder_tab(_data_page(tmp_path, monkeypatch, "local"))

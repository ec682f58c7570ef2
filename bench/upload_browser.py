"""Where a folder upload's time goes, in a real browser (Debian chromium + Playwright, `streamlit run`).

    python -m bench.upload_browser [FOLDER]     # default: ../shared/data/trashnet (887 photos)

Prints: seconds until the first per-file upload request leaves the browser (the frontend reading the
folder), until the last of those requests finished (Streamlit's per-file requests), and until the
page says "Ready" (the app's one script run with all files: ingest + page). Not part of `make bench`.
"""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from playwright.sync_api import sync_playwright

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "trashnet")
import tempfile

tmp = Path(tempfile.mkdtemp(prefix="tl_upload_")); log_path = tmp / "st.log"
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
env = {**os.environ, "TL_RUNS": str(tmp / "runs"), "TL_WORKSPACE": str(tmp / "ws"), "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": str(ROOT)}
log = open(log_path, "w")
proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats",
                         "false", "--server.maxUploadSize", "2000", "--logger.level", "debug"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
url = f"http://127.0.0.1:{port}"
for _ in range(120):
    try:
        if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok": break
    except OSError: time.sleep(0.5)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
try:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        pg = b.new_context(viewport={"width": 1400, "height": 1200}).new_page(); pg.set_default_timeout(600_000)
        puts, done = [], []
        pg.on("request", lambda r: puts.append(time.perf_counter()) if "upload_file" in r.url else None)
        pg.on("requestfinished", lambda r: done.append(time.perf_counter()) if "upload_file" in r.url else None)
        pg.goto(url + "/"); pg.get_by_text("Your images").first.wait_for(); pg.wait_for_timeout(1500)
        t0 = time.perf_counter(); w0 = time.time(); mark = log_path.stat().st_size
        pg.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(SRC))
        t_set = time.perf_counter() - t0
        n = sum(1 for _ in SRC.rglob("*") if _.is_file())
        pg.get_by_text(re.compile(r"Ready: \d+ images")).first.wait_for()
        total = time.perf_counter() - t0
        pg.wait_for_timeout(1000)
        text = log_path.read_text()[mark:]
        runs = [l for l in text.splitlines() if "TL_TRACE" in l]
        print(f"folder upload of {n} files: {total:.1f} s to 'Ready'; set_input_files returned after {t_set:.1f} s")
        if puts:
            print(f"upload requests: {len(puts)}, first sent at {puts[0]-t0:.1f} s, last sent at {puts[-1]-t0:.1f} s; "
                  f"{len(done)} finished, last at {done[-1]-t0 if done else -1:.1f} s")
            print(f"after the last upload finished: {total - (done[-1] - t0):.1f} s until 'Ready' (script run with all "
                  f"files and the page)")
        print(f"script runs while files arrived: {text.count('Running script')} (debug log)")
        b.close()
finally:
    proc.terminate(); proc.wait(60); log.close()

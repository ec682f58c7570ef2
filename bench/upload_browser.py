"""Where a folder upload's time goes, in a real browser (Debian chromium + Playwright, `streamlit run`).

    python -m bench.upload_browser [FOLDER]     # default: ../shared/data/trashnet (887 photos)

Prints: seconds until the first per-file upload request leaves the browser (the frontend reading the
folder), until the last of those requests finished (Streamlit's per-file requests), and until the
page says "Ready" (the app's one script run with all files: ingest + page). Not part of `make bench`.
"""
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from app_server import ARGS, CHROMIUM, start_app, stop_app
from playwright.sync_api import sync_playwright

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "trashnet")
import tempfile

tmp = Path(tempfile.mkdtemp(prefix="tl_upload_")); log_path = tmp / "st.log"
proc, url = start_app(tmp, log=log_path, args=("--server.maxUploadSize", "2000", "--logger.level", "debug"))
try:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
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
    stop_app(proc, 60)

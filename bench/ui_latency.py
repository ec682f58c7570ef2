"""P4: is the app responsive while a job trains? Measured in a real browser (Debian Chromium).

Starts `streamlit run app.py`, loads the sample dataset, starts a long from-scratch run, then on
the Train page (a) counts bursts of server->browser websocket messages (one per fragment
rerun: chart/progress refreshes per second) and (b) times page switches (sidebar click -> new page
rendered and Streamlit idle) while training continues. Prints medians; asserts nothing.

    .venv/bin/python -m bench.ui_latency [--seconds 20] [--clicks 12] [--jobs 1]

--jobs 2 starts a second long run from a second browser session first (TL_MAX_JOBS=2 lets both
train at once under the thread runner); TL_RUNNER in the environment picks where they train
(bench/pool.py compares the thread runner with rq worker processes this way).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_browser as tb  # noqa: E402  (reuses the walk-through's browser helpers)
from app_server import start_app, stop_app  # noqa: E402


def _start_long_run(page, url: str) -> None:
    page.goto(url + "/")
    tb.settle(page)
    page.get_by_role("tab", name="Sample dataset").click()
    page.get_by_role("button", name="Use the sample dataset").click()
    page.get_by_text("Ready:").first.wait_for()  # the sample: 200 images (issue 9), 120 before
    tb.goto(page, "Model")
    tb.choose(page, "Backbone", "test_resnet")
    page.get_by_test_id("stRadio").filter(has_text="Start from").get_by_text("Nothing (random)").click()
    tb.settle(page)
    page.get_by_test_id("stRadio").filter(has_text="Strategy").get_by_text("From scratch").click()
    tb.settle(page)
    page.get_by_text("Advanced settings").click()
    page.get_by_role("spinbutton", name="Epochs", exact=True).fill("200")
    page.keyboard.press("Enter")
    tb.settle(page)
    tb.goto(page, "Train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Epoch").first.wait_for(timeout=120_000)


def _refresh_rate(page, frames: list, seconds: float) -> float:
    """Page updates per second: bursts of websocket messages from the server (one per fragment
    rerun; messages less than 250 ms apart belong to the same burst)."""
    frames.clear()
    page.wait_for_timeout(seconds * 1000)
    times = sorted(frames)
    bursts = sum(1 for a, b in zip([-1.0] + times, times) if b - a > 0.25)
    return bursts / seconds


def _switch_times(page, clicks: int) -> list[float]:
    out = []
    for i in range(clicks):
        name, heading = ("Data", "Your images") if i % 2 == 0 else ("Train", "Train")
        t = time.perf_counter()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
        page.get_by_role("heading", name=heading).first.wait_for()
        out.append((time.perf_counter() - t) * 1000)
        page.wait_for_timeout(400)
    return out


def measure(seconds: float, clicks: int, jobs: int = 1, runs: Path | None = None) -> tuple[float, list[float]]:
    """(refreshes per second, page-switch times in ms) on the page of the last of `jobs` long runs."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp())
    # TL_TEST_MODELS: the Model page lists test_resnet (hidden from users)
    proc, url = start_app(tmp, TL_RUNS=str(runs or tmp / "runs"), TL_TEST_MODELS="1")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.ARGS)
            for _ in range(jobs - 1):  # other sessions' runs, training meanwhile
                other = browser.new_context(viewport={"width": 1440, "height": 1300}).new_page()
                other.set_default_timeout(120_000)
                _start_long_run(other, url)
            page = browser.new_context(viewport={"width": 1440, "height": 1300}).new_page()
            page.set_default_timeout(120_000)
            frames: list[float] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.perf_counter())))
            _start_long_run(page, url)
            rate = _refresh_rate(page, frames, seconds)
            times = _switch_times(page, clicks)
            browser.close()
    finally:
        stop_app(proc)
    return rate, times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clicks", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=1, help="long runs training at once (other sessions first)")
    a = ap.parse_args(argv)
    rate, times = measure(a.seconds, a.clicks, a.jobs)
    print("| what | measured | target |\n|---|---|---|")
    print(f"| progress/chart refreshes per second while training | {rate:.2f} | >= 1 |")
    print(f"| page switch while training, median of {len(times)} (ms) | {statistics.median(times):.0f} "
          f"(min {min(times):.0f}, max {max(times):.0f}) | < 300 |")


if __name__ == "__main__":
    main()

"""Issue 18's targets, measured in a real browser (Debian Chromium, a fake camera fed the sample's photos).

    .venv/bin/python -m bench.camera [--holds 3] [--hold-s 3] [--frames 30] [--live-s 15] [--images 2000]

H: frames stored per second held (hold-to-record, default 8 frames/s asked);
B: 3 classes x N camera frames -> "Use these classes" -> Train (defaults: EfficientNet-Lite0,
   feature extraction) -> Finished, timed from each click;
L: live predictions per second shown on the Predict page's Live camera tab (default backbone);
R: a session with 2,000 bucket images in 4 classes: page render time (open -> Streamlit idle)
   and the server's RSS.
Prints medians and the load average; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_browser as tb  # noqa: E402
import test_browser_camera as tc  # noqa: E402
from app_server import start_app, stop_app  # noqa: E402
from camera_video import write_y4m  # noqa: E402


def _hold_rate(page, tmp: Path, holds: int, seconds: float) -> list[float]:
    """Frames stored per second held, per hold (the count on disk before and after)."""
    rates = []
    for _ in range(holds):
        before = tc.on_disk(page, tmp)["c1"]
        tc.hold(page, 1, int(seconds * 1000), touch=False)
        page.wait_for_timeout(2000)  # the last batch is acknowledged
        rates.append((tc.on_disk(page, tmp)["c1"] - before) / seconds)
        tc.bucket(page, 1).get_by_role("button", name="Close the camera").click()
        tb.settle(page)
    return rates


def _fill_to(page, tmp: Path, n: int, frames: int) -> None:
    """Hold bucket n's button until it holds at least `frames` images."""
    while tc.on_disk(page, tmp).get(f"c{n}", 0) < frames:
        tc.hold(page, n, 1000 * max(1, (frames - tc.on_disk(page, tmp).get(f"c{n}", 0)) // 6 + 1), touch=False)
        tc.bucket(page, n).get_by_role("button", name="Close the camera").click()
        tb.settle(page)


def _buckets_to_model(page, tmp: Path, frames: int) -> tuple[float, float]:
    for _ in range(2):
        page.get_by_role("button", name="Add a class").click()
        tb.settle(page)
    for n in (1, 2, 3):
        _fill_to(page, tmp, n, frames)
    t_use = time.monotonic()
    page.get_by_role("button", name="Use these classes").click()
    page.get_by_text(re.compile(r"Using these classes: \d+ images in 3 classes")).wait_for()
    tb.settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    tb.settle(page)
    t_train = time.monotonic()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished:").wait_for(timeout=600_000)
    done = time.monotonic()
    return done - t_use, done - t_train


def _live_rate(page, seconds: float) -> tuple[float, str]:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predict").click()
    tb.settle(page)
    page.get_by_role("tab", name="Live camera").click()
    page.get_by_text("Start the live camera").click()
    shown = page.get_by_text(re.compile(r"Frames predicted: \d+"))
    shown.wait_for(timeout=120_000)
    page.wait_for_timeout(3000)  # warm: engine built, first frames through
    first, t0 = int(re.search(r"\d+", shown.inner_text()).group()), time.monotonic()
    page.wait_for_timeout(int(seconds * 1000))
    text = shown.inner_text()
    return (int(re.search(r"\d+", text).group()) - first) / (time.monotonic() - t0), text


def _render_2000(browser, url: str, tmp: Path, images: int) -> tuple[list[float], float]:
    import psutil

    from camera_video import SAMPLES
    from tl_core.data.buckets import Buckets
    from tl_core.data.decode import load_rgb

    page = browser.new_context().new_page()
    page.set_default_timeout(120_000)
    page.goto(url + "/")
    page.get_by_role("button", name="Add a class").wait_for()
    tb.settle(page)
    token = tc.session(page)
    b = Buckets(tmp / "workspace" / token / "buckets")
    import io

    photos = sorted(SAMPLES.rglob("*.jpg"))
    frames = []
    for p in photos:
        buf = io.BytesIO()
        load_rgb(str(p), short_side=256).save(buf, "JPEG", quality=85)
        frames.append(buf.getvalue())
    for k in range(4):
        cid = b.add_class()
        b.add_images(cid, [(f"{i}.jpg", frames[(k * 50 + i) % len(frames)]) for i in range(images // 4)])
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        page.goto(f"{url}/?s={token}")
        page.get_by_text(f"{images // 4} images").first.wait_for()
        tb.settle(page, 0)
        times.append(time.monotonic() - t0 - 0.3)  # settle's fixed 300 ms pause is not render time
    server = [p for p in psutil.process_iter(["cmdline"]) if "streamlit" in " ".join(p.info["cmdline"] or [])
              and str(url.rsplit(":", 1)[1]) in " ".join(p.info["cmdline"] or [])]
    rss = max(p.memory_info().rss for p in server) / 2**20 if server else float("nan")
    page.context.close()
    return times, rss


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.camera", description=__doc__.split("\n")[0])
    ap.add_argument("--holds", type=int, default=3)
    ap.add_argument("--hold-s", type=float, default=3.0)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--live-s", type=float, default=15.0)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--only", default="H,B,L,R")
    args = ap.parse_args(argv)
    only = set(args.only.upper().split(","))
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="tl_bench_camera_"))
    proc, url = start_app(tmp)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    try:
        with sync_playwright() as p:
            video = write_y4m(tmp / "camera.y4m")
            browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.ARGS + tc.FAKE_CAMERA +
                                        [f"--use-file-for-fake-video-capture={video}"])
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            page.get_by_role("button", name="Add a class").wait_for()
            tb.settle(page)
            page.get_by_role("button", name="Add a class").click()
            tb.settle(page)
            if "H" in only:
                rates = _hold_rate(page, tmp, args.holds, args.hold_s)
                print(f"H  frames stored per second held: median {statistics.median(rates):.1f} "
                      f"({', '.join(f'{r:.1f}' for r in rates)}; 8 asked), load {os.getloadavg()[0]:.1f}")
            if "B" in only or "L" in only:
                from_use, from_train = _buckets_to_model(page, tmp, args.frames)
                print(f"B  3 classes x >={args.frames} frames: Finished {from_train:.1f} s after 'Start training', "
                      f"{from_use:.1f} s after 'Use these classes', load {os.getloadavg()[0]:.1f}")
                rate, text = _live_rate(page, args.live_s)
                print(f"L  live predictions per second: {rate:.1f} over {args.live_s:.0f} s (page: {text}), "
                      f"load {os.getloadavg()[0]:.1f}")
            if "R" in only:
                times, rss = _render_2000(browser, url, tmp, args.images)
                print(f"R  {args.images} bucket images in 4 classes: render median {statistics.median(times):.2f} s "
                      f"({', '.join(f'{x:.2f}' for x in times)}), server RSS {rss:,.0f} MB, "
                      f"load {os.getloadavg()[0]:.1f}")
            browser.close()
    finally:
        stop_app(proc)


if __name__ == "__main__":
    main()

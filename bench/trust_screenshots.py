"""Screenshots of issue 11's screens on real photos (run after bench.trust, which leaves a trained run):

    TL_CACHE=... .venv/bin/python -m bench.trust_screenshots --runs /tmp/tl_trust/runs --data ../shared/data/trashnet

Starts the app headless with TL_RUNS=--runs, uploads --data as a zip on the Data page (audit
pairs), then shows Evaluate (calibration, label issues, feature map), Predict and Export.
Writes docs/screenshots/trust_*.png. Debian chromium, as tests/test_browser.py.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import zipfile
from pathlib import Path

from tests.app_server import ARGS, CHROMIUM, ROOT, start_app, stop_app

SHOTS = ROOT / "docs" / "screenshots"


def zip_of(folder: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*.jpg")):
            zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    path = Path(tempfile.mkdtemp()) / f"{folder.name}.zip"
    path.write_bytes(buf.getvalue())
    return path


def settle(page, ms: int = 1500) -> None:
    page.wait_for_timeout(ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid*=\"Running\"]')",
                           timeout=600_000)
    page.wait_for_timeout(ms)


def goto(page, url: str, name: str) -> None:
    page.get_by_role("link", name=name).first.click()
    settle(page)


def shoot(page, name: str, heading: str | None = None) -> None:
    """A viewport screenshot with `heading` at the top (Streamlit scrolls inside its own container)."""
    if heading:
        page.get_by_text(heading, exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"trust_{name}.png"))


def walk(page, url: str, data_zip: Path, ood_images: list[Path]) -> None:
    page.goto(url)
    settle(page)
    page.get_by_role("tab", name="Upload a zip").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(1).set_input_files(str(data_zip))
    page.get_by_text("Duplicates and leakage").wait_for(timeout=600_000)
    settle(page)
    page.get_by_text("Also compare what").click()
    page.get_by_text("Leak").first.wait_for(timeout=900_000)
    page.get_by_text("phash+features").first.wait_for(timeout=900_000)
    settle(page, 3000)
    shoot(page, "data_audit", "Duplicates and leakage")
    goto(page, url, "Evaluate")
    button = page.get_by_role("button", name="Look for images in the wrong folder")
    if button.count():
        button.click()
    page.get_by_text("may be in the wrong folder (").wait_for(timeout=600_000)
    settle(page, 3000)
    shoot(page, "evaluate_calibration", "How far to trust its confidence")
    shoot(page, "evaluate_label_issues", "These images may be in the wrong folder")
    page.get_by_text("Show the map").click()
    frame = page.frame_locator("iframe").first
    frame.locator(".scatterlayer .point").nth(40).wait_for(timeout=600_000)
    settle(page, 3000)
    shoot(page, "evaluate_map", "Map of what the backbone sees")
    frame.locator(".scatterlayer .point").nth(40).hover(force=True)
    page.wait_for_timeout(1500)
    shoot(page, "evaluate_map")
    goto(page, url, "Predict")
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([str(p) for p in ood_images])
    for p in ood_images:
        page.get_by_text(f"{p.name}:").wait_for(timeout=300_000)
    settle(page, 3000)
    shoot(page, "predict_ants_bees")
    goto(page, url, "Export")
    page.get_by_role("button", name="Make the ONNX zip").click()
    page.get_by_text("largest probability difference").wait_for(timeout=600_000)
    settle(page)
    shoot(page, "export")


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--data", default="/work/shared/data/trashnet")
    # a bee the TrashNet model is not sure about, and one it calls "metal" (both measured)
    ap.add_argument("--ood", nargs="+", default=["/work/shared/data/hymenoptera_data/val/bees/10870992_eebeeb3a12.jpg",
                                                 "/work/shared/data/hymenoptera_data/val/bees/1032546534_06907fe3b3.jpg"])
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    proc, url = start_app(tmp, log=tmp / "log", TL_RUNS=a.runs)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1440, "height": 1300}).new_page()
            page.set_default_timeout(60_000)
            walk(page, url, zip_of(Path(a.data)), [Path(p) for p in a.ood])
            browser.close()
    finally:
        stop_app(proc, 60)
        print("log:", tmp / "log")


if __name__ == "__main__":
    main()

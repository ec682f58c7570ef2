"""Issue 22's walk: every page as a newcomer sees it, desktop and phone, English and Spanish.

    .venv/bin/python -m bench.first_impression [--out build/screenshots/walk]

Starts `streamlit run app.py` in local mode (as `make run`, with no developer setting), then in
Debian Chromium: Data -> "Use the sample" (the empty page's first choice) -> Train with the
session's default settings (no visit to Model) -> Finished. Then, for desktop (1440x1000) and phone
(390x844, touch) in English and in Spanish, it opens that same session (its URL) and visits every
page: the Model page with its advanced settings open, Predict with one photo. On each page it reads
the visible text and looks for:
  - English in the Spanish pages (tests/language_check.py: the UI's English words and fragments);
  - raw tokens of tl_core (auto, cpu, rapl, ...) in either language;
  - timm's test architectures ("test_...");
  - controls with no effect: a learning rate or an enabled augmentation choice under feature
    extraction, whose head is solved on cached features.
Streamlit's own widget texts (the file uploader's "Drag and drop ...") are listed apart: they come
from Streamlit's frontend, not from our tables. Prints one line per page, writes a screenshot of
each into --out, and exits 1 when anything of ours was found. Takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_browser as tb  # noqa: E402  (the walk-through's browser helpers)
from app_server import start_app, stop_app  # noqa: E402
from language_check import english_in, raw_tokens_in  # noqa: E402

PAGES = [("data", "Data", "Datos"), ("model", "Model", "Modelo"), ("train", "Train", "Entrenar"),
         ("compare", "Compare", "Comparar"), ("evaluate", "Evaluate", "Evaluar"),
         ("predict", "Predict", "Predecir"), ("export", "Export", "Exportar")]
SIZES = {"desktop": dict(viewport={"width": 1440, "height": 1000}),
         "phone": dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)}
SAMPLE_CLASSES = ("cardboard", "glass", "metal", "plastic")
# Streamlit's frontend writes these itself (FileUploader.js, the toolbar): not in our tables
# ("add icon": the uploader's "+" button's label for screen readers, after a file is chosen)
STREAMLIT_OWN = ("Drag and drop", "Browse files", "Upload directories", "Limit ", "per file", "add icon", "Upload")
NO_EFFECT = {"en": ("Learning rate",), "es": ("Tasa de aprendizaje",)}


def train_default(page, url: str) -> tuple[str, float]:
    """The newcomer's path: the first choice's sample, then Train with the defaults. -> (session URL, s)."""
    page.goto(url + "/")
    tb.settle(page)
    page.get_by_role("button", name="Use the sample").click()
    page.get_by_text("Ready: 200 images in 4 classes").wait_for(timeout=120_000)
    tb.settle(page)
    tb.goto(page, "Train")
    started = time.monotonic()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished:").first.wait_for(timeout=600_000)
    seconds = time.monotonic() - started
    tb.settle(page)
    return page.url, seconds


def open_sidebar(page) -> None:
    # on a phone the sidebar starts collapsed; wait for the page to draw one or the other first
    page.wait_for_function("() => [...document.querySelectorAll("
                           "'[data-testid=stSidebarNav], [data-testid=stExpandSidebarButton]')]"
                           ".some(e => e.checkVisibility())")
    if not page.get_by_test_id("stSidebarNav").is_visible():
        page.get_by_test_id("stExpandSidebarButton").click()
        page.get_by_test_id("stSidebarNav").wait_for()


def close_sidebar(page, phone: bool) -> None:
    if phone and page.get_by_test_id("stSidebarNav").is_visible():
        page.get_by_test_id("stSidebarCollapseButton").click(force=True)
        page.wait_for_timeout(400)


def set_language(page, lang: str, phone: bool) -> None:
    open_sidebar(page)
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
    page.get_by_role("option", name="Español" if lang == "es" else "English").click()
    tb.settle(page)
    close_sidebar(page, phone)


def visit(page, title: str, phone: bool) -> None:
    open_sidebar(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    tb.settle(page)
    close_sidebar(page, phone)


def exercise(page, key: str, lang: str) -> str:
    """What a newcomer does on the page before reading it; -> what could not be done ("" when all was)."""
    try:
        if key == "model":
            page.get_by_text("Advanced settings" if lang == "en" else "Ajustes avanzados").first.click()
            tb.settle(page)
        if key == "predict":
            image = next((ROOT / "assets" / "samples" / "recycling" / "glass").glob("*.jpg"))
            page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(image))
            page.get_by_text(f"{image.name}:").first.wait_for(timeout=300_000)
            tb.settle(page)
    except Exception as e:  # noqa: BLE001  (reported with the page's findings, the walk goes on)
        return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return ""


def shoot(page, path: Path) -> None:
    # Streamlit scrolls inside its own container: grow the viewport to the content for the picture
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 800)")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 80, 6000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


# Icon ligatures ("download", "leaderboard": the text of a Material icon) and code blocks (the
# exported predict.py) are not words a person reads: hidden while the text is read
_READ = """() => {
  // any element drawn in the Material Symbols font is an icon (the uploader's "+" is the ligature "add")
  const icons = [...document.querySelectorAll('[data-testid=stMain] *, [data-testid=stSidebar] *')]
    .filter(e => e.children.length === 0 && /Material/.test(getComputedStyle(e).fontFamily));
  const hide = [...document.querySelectorAll('[data-testid=stIconMaterial], [data-testid=stCode]'), ...icons];
  const was = hide.map(e => e.style.display);
  hide.forEach(e => { e.style.display = 'none'; });
  const text = [...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')]
    .map(e => e.innerText).join('\\n');
  hide.forEach((e, i) => { e.style.display = was[i]; });
  return text;
}"""


def visible_text(page) -> str:
    return page.evaluate(_READ)


def findings(text: str, lang: str) -> dict:
    own = [s for s in STREAMLIT_OWN if s in text]
    ours = text
    for s in STREAMLIT_OWN:  # judged apart: Streamlit's frontend, not our tables
        ours = ours.replace(s, " ")
    found = {"raw": raw_tokens_in(ours), "test_arch": sorted(set(re.findall(r"\btest_[a-z0-9]+", ours))),
             "no_effect": [c for c in NO_EFFECT[lang] if c in ours], "streamlit_own": own}
    if lang == "es":
        found["english"] = [w for w in english_in(ours, data=SAMPLE_CLASSES) if w not in found["raw"]]
    return found


def report(row: tuple, quiet: bool = False) -> dict:
    """One line per page view (as it happens); -> the findings of ours (Streamlit's own apart)."""
    size, lang, key, found = row
    ours = {k: v for k, v in found.items() if v and k != "streamlit_own"}
    if not quiet:
        print(f"{size:7} {lang} {key:9} {'OK' if not ours else ours}"
              + (f"  (Streamlit's own: {found['streamlit_own']})" if found["streamlit_own"] else ""), flush=True)
    return ours


def walk(browser, session_url: str, out: Path) -> list[tuple]:
    rows = []
    for size, options in SIZES.items():
        for lang in ("en", "es"):
            context = browser.new_context(**options)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(session_url)
            tb.settle(page)
            set_language(page, lang, size == "phone")
            for key, en_title, es_title in PAGES:
                try:
                    visit(page, es_title if lang == "es" else en_title, size == "phone")
                    failed = exercise(page, key, lang)
                    shoot(page, out / f"{size}-{lang}-{key}.png")
                    found = findings(visible_text(page), lang)
                except Exception as e:  # noqa: BLE001  (a page that did not settle is a finding, not the end)
                    failed, found = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}", {"streamlit_own": []}
                rows.append((size, lang, key, {**found, "not_done": [failed] if failed else []}))
                report(rows[-1])
            context.close()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.first_impression", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "build" / "screenshots" / "walk"))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        # what a user runs: without TL_TEST_MODELS, and a feature cache of its own
        proc, url = start_app(Path(tmp), TL_TEST_MODELS=None, TL_CACHE=str(Path(tmp) / "cache"))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=tb.CHROMIUM, args=tb.ARGS)
                first = browser.new_context(**SIZES["desktop"]).new_page()
                first.set_default_timeout(60_000)
                session_url, seconds = train_default(first, url)
                notes = first.get_by_test_id("stMain").inner_text()
                print(f"sample + session defaults: trained in {seconds:.0f} s in the browser; augmentation note: "
                      f"{'YES' if 'ugmentation' in notes else 'none'}", flush=True)
                rows = walk(browser, session_url, out)
                browser.close()
        finally:
            stop_app(proc)
    bad = sum(bool(report(row, quiet=True)) for row in rows)
    print(f"{len(rows)} page views, {bad} with findings, {time.monotonic() - t0:.0f} s in all; screenshots in {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

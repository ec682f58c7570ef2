"""Real-browser camera walk (issue 18): Debian Chromium with a fake camera fed the sample's real photos.

Three classes (two held 2 s in front of the camera, one uploaded as loose files), one image
deleted, one class renamed, "Use these classes", training with the defaults, then the Predict
page's Live camera tab predicting frames. Then the same walk on a 390x844 touch screen, holding
by touch, and the downloaded zip loaded back through the Zip tab.
Skipped only when /usr/bin/chromium is absent.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from app_server import ARGS, CHROMIUM
from camera_video import SAMPLES, write_y4m
from test_browser import settle

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium at /usr/bin/chromium")

FAKE_CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    video = write_y4m(server[1] / "camera.y4m")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=ARGS + FAKE_CAMERA + [f"--use-file-for-fake-video-capture={video}"])
        yield b
        b.close()


@pytest.fixture
def pages(browser):
    """new(**context) -> a page in a fresh browser context; on failure the last screen is saved."""
    made = []

    def new(**context):
        page = browser.new_context(accept_downloads=True, **context).new_page()
        page.set_default_timeout(60_000)
        made.append(page)
        return page

    yield new
    for i, page in enumerate(made):
        # the last screen says more than the traceback
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"tl_camera_last_{i}.png"), full_page=True)
        page.context.close()


def bucket(page, n: int):
    return page.locator(f".st-key-bk_bucket_c{n}")


def count(page, n: int) -> int:
    text = bucket(page, n).get_by_text(re.compile(r"^\d+ images$")).inner_text()
    return int(text.split()[0])


SESSIONS: dict = {}  # page -> its session token, read from ?s= when the page first shows it


def session(page) -> str:
    if page not in SESSIONS:
        SESSIONS[page] = re.search(r"[?&]s=([A-Za-z0-9_-]+)", page.url).group(1)
    return SESSIONS[page]


def on_disk(page, tmp: Path) -> dict[str, int]:
    index = tmp / "workspace" / session(page) / "buckets" / "index.json"
    classes = json.loads(index.read_text())["classes"]
    return {c["id"]: len([p for p in (index.parent / c["id"]).iterdir() if p.is_file()]) for c in classes}


def hold(page, n: int, ms: int, touch: bool) -> None:
    """Open bucket n's camera and hold its record button for `ms` (mouse, or a finger)."""
    bucket(page, n).get_by_role("button", name="Camera").click()
    settle(page)
    button = bucket(page, n).get_by_role("button", name="Hold to record")
    button.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]"
                           ".some(e => e.shadowRoot && e.shadowRoot.querySelector('video').readyState >= 2)")
    if touch:
        button.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box = button.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        cdp = page.context.new_cdp_session(page)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        page.wait_for_timeout(ms)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    else:
        button.hover()
        page.mouse.down()
        page.wait_for_timeout(ms)
        page.mouse.up()
    # the last batch leaves on release; wait until the page shows what the disk holds
    page.wait_for_timeout(1500)
    settle(page)


def make_three_classes(page, tmp: Path, touch: bool) -> dict:
    page.get_by_role("button", name="Add a class").wait_for()
    settle(page)
    session(page)  # the token, before a page switch can drop it from the URL
    for _ in range(3):
        page.get_by_role("button", name="Add a class").click()
        settle(page)
    hold(page, 1, 2000, touch)
    hold(page, 2, 2000, touch)
    loose = sorted((SAMPLES / "metal").glob("*.jpg"))[:8]
    bucket(page, 3).get_by_test_id("stFileUploaderDropzoneInput").set_input_files([str(p) for p in loose])
    page.get_by_text("Added 8 image(s) to Class 3.").wait_for()
    settle(page)
    shown = {f"c{n}": count(page, n) for n in (1, 2, 3)}
    assert shown == on_disk(page, tmp) and shown["c3"] == 8
    assert shown["c1"] >= 3 and shown["c2"] >= 3, shown  # frames arrived while held (rate: BENCHMARKS.md)
    return shown


def delete_rename_use(page, tmp: Path, shown: dict) -> None:
    first = bucket(page, 1).locator("[class*='st-key-bk_del_c1_']").first
    gone = re.search(r"st-key-(bk_del_c1_\S+)", first.get_attribute("class")).group(1)
    first.get_by_role("button").click()
    settle(page)
    assert count(page, 1) == shown["c1"] - 1 and on_disk(page, tmp)["c1"] == shown["c1"] - 1
    assert page.locator(f".st-key-{gone.replace('.', chr(92) + '.')}").count() == 0  # the deleted image is gone
    name = bucket(page, 2).get_by_label("Class name")
    name.fill("Thumbs up")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Use these classes").click()
    total = shown["c1"] - 1 + shown["c2"] + shown["c3"]
    page.get_by_text(f"Using these classes: {total} images in 3 classes").wait_for()
    settle(page)


def train_and_go_live(page, tmp: Path) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished:").wait_for(timeout=300_000)
    settle(page)
    runs = sorted((tmp / "runs").rglob("run.json"), key=lambda p: p.stat().st_mtime)
    classes = json.loads(runs[-1].read_text())["classes"]
    assert classes == ["Class 1", "Class 3", "Thumbs up"]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predict").click()
    settle(page)
    page.get_by_role("tab", name="Live camera").click()
    page.get_by_text("Start the live camera").click()
    page.wait_for_function("() => { const m = document.body.innerText.match(/Frames predicted: (\\d+)/);"
                           " return m && Number(m[1]) >= 3; }", timeout=120_000)
    shown = page.get_by_text(re.compile(r"Frames predicted: \d+")).inner_text()
    print(f"\nlive camera: {shown}")
    assert page.get_by_test_id("stProgress").count() >= 3  # the top 3 as bars


def test_camera_walk_desktop(server, pages):
    url, tmp = server
    page = pages(viewport={"width": 1280, "height": 1000})
    page.goto(url + "/")
    shown = make_three_classes(page, tmp, touch=False)
    delete_rename_use(page, tmp, shown)
    train_and_go_live(page, tmp)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    settle(page)
    zip_round_trip(page, tmp)
    every_page_fits(pages, url, page, tmp)


PAGE_PATHS = ("", "model", "train", "compare", "evaluate", "predict", "export")


def every_page_fits(pages, url: str, page, tmp: Path) -> None:
    """Each page of this session (its dataset and run, from the URL) on a phone and a tablet with
    touch: nothing wider than the screen. Screenshots go to the test's folder, not docs/."""
    query = page.url.split("?", 1)[1] if "?" in page.url else ""
    if "s=" not in query:
        query = f"s={session(page)}&{query}"
    for width, height in ((390, 844), (820, 1180)):
        small = pages(viewport={"width": width, "height": height}, has_touch=True, is_mobile=True)
        for path in PAGE_PATHS:
            small.goto(f"{url}/{path}?{query}")
            small.get_by_test_id("stMain").wait_for()
            settle(small, 1500)
            wide = small.evaluate("() => Math.max(document.documentElement.scrollWidth, "
                                  "...[...document.querySelectorAll('[data-testid=stMain]')].map(e => e.scrollWidth))")
            small.screenshot(path=str(tmp / f"fit-{width}-{path or 'data'}.png"))
            assert wide <= width + 1, f"/{path} is {wide} px wide on a {width} px screen"


def newly_saved_dataset(page, folder: Path, before: set, deadline_s: float = 120) -> dict:
    """The dataset the page saved after `before` was listed (the session's datasets folder)."""
    end = time.time() + deadline_s
    while time.time() < end:
        new = set(folder.glob("*.json")) - before
        if new:
            return json.loads(max(new, key=lambda p: p.stat().st_mtime).read_text())
        time.sleep(0.5)
    raise AssertionError(f"no new dataset saved in {folder} within {deadline_s:.0f} s; the page shows: "
                         + uploader_and_alerts(page))


def uploader_and_alerts(page) -> str:
    """What a person would look at when an upload seems to do nothing: the zip uploader's file chips
    (aria-invalid when the upload failed), the page's message boxes, and whether a run is going."""
    return page.evaluate("""() => {
      const chips = [...document.querySelectorAll('.st-key-upload_zip [data-testid=stFileChip]')]
        .map(c => c.getAttribute('aria-label') + (c.getAttribute('aria-invalid') ? ' (failed)' : ''));
      const alerts = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stAlertContainer]')]
        .map(a => a.innerText.trim().slice(0, 160));
      const running = !!document.querySelector('[data-testid=stStatusWidget]');
      return `chips ${JSON.stringify(chips)}; alerts ${JSON.stringify(alerts)}; script running ${running}`;
    }""")


def zip_round_trip(page, tmp: Path) -> None:
    """"Download these classes as a zip", then load it through the Zip tab: identical counts."""
    want = {"Class 1": count(page, 1), "Thumbs up": count(page, 2), "Class 3": count(page, 3)}
    with page.expect_download() as info:
        page.get_by_role("button", name="Download these classes as a zip").click()
    target = tmp / "classes.zip"
    info.value.save_as(target)
    settle(page)  # the download button's click reruns the page; a person's next click comes after it
    saved_before = set((tmp / "workspace" / session(page) / "datasets").glob("*.json"))
    page.get_by_role("tab", name="Upload a zip").click()
    settle(page)  # ... and so does the tab's (a file dialog takes longer than that)
    uploader = page.locator(".st-key-upload_zip")
    uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(target))
    uploader.get_by_test_id("stFileChip").wait_for()  # the choice registered: the file is shown
    page.get_by_text(f"Ready: {sum(want.values())} images in 3 classes").wait_for()
    # "Ready: N images" already showed the buckets' dataset (same counts): wait for the zip's own
    saved = newly_saved_dataset(page, tmp / "workspace" / session(page) / "datasets", saved_before)
    assert "buckets-" not in saved["root"]  # the zip's folder, not the buckets' own
    loaded = {c: sum(1 for split in ("train", "val") for it in saved[split] if it["label"] == i)
              for i, c in enumerate(saved["classes"])}
    assert loaded == want


def test_camera_walk_phone_by_touch(server, pages):
    url, tmp = server
    page = pages(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page.goto(url + "/")
    shown = make_three_classes(page, tmp, touch=True)
    delete_rename_use(page, tmp, shown)
    page.screenshot(path=str(tmp / "phone.png"), full_page=True)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"


def test_a_camera_lost_mid_recording_keeps_its_frames(server, pages):
    url, tmp = server
    page = pages(viewport={"width": 1280, "height": 1000})
    page.goto(url + "/")
    page.get_by_role("button", name="Add a class").wait_for()
    settle(page)
    page.get_by_role("button", name="Add a class").click()
    settle(page)
    session(page)
    bucket(page, 1).get_by_role("button", name="Camera").click()
    settle(page)
    button = bucket(page, 1).get_by_role("button", name="Hold to record")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]"
                           ".some(e => e.shadowRoot && e.shadowRoot.querySelector('video').readyState >= 2)")
    button.hover()
    page.mouse.down()
    page.wait_for_timeout(1000)
    # the camera goes away (unplugged, taken by another app): its track ends
    page.evaluate("() => { for (const e of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
                  " const v = e.shadowRoot && e.shadowRoot.querySelector('video');"
                  " if (v && v.srcObject) for (const t of v.srcObject.getTracks()) {"
                  " t.stop(); t.dispatchEvent(new Event('ended')); } } }")
    page.wait_for_timeout(500)
    page.mouse.up()
    page.get_by_text("The camera stopped; the frames taken so far are kept.").wait_for()
    page.wait_for_timeout(1500)
    settle(page)
    kept = on_disk(page, tmp)["c1"]
    assert kept >= 1 and count(page, 1) == kept


def test_no_camera_is_one_sentence_not_a_blank_box(server, browser):
    """Chromium without a fake camera: no device (or no permission) gives one sentence."""
    url, _ = server
    bare = browser.browser_type.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = bare.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        page.get_by_role("button", name="Add a class").wait_for()
        settle(page)
        page.get_by_role("button", name="Add a class").click()
        settle(page)
        bucket(page, 1).get_by_role("button", name="Camera").click()
        settle(page)
        sentence = re.compile(r"No camera was found on this device|The camera is blocked")
        page.get_by_text(sentence).wait_for()
        assert page.get_by_role("status").filter(has_text=sentence).count() == 1
    finally:
        bare.close()


# camera.js on its own in this browser: a fake Streamlit that acknowledges each live frame 20 ms
# after it is sent, as the server's fragment run does, and a link to another page.
LIVE_HARNESS = """async ([js, html]) => {
  document.body.innerHTML = html + '<a id="away" href="/elsewhere" onclick="event.preventDefault()">away</a>';
  const mod = await import(URL.createObjectURL(new Blob([js], {type: "text/javascript"})));
  const root = document.querySelector(".tlcam").parentElement;
  window.sent = [];
  const component = {parentElement: root, data: {mode: "live", side: 64, labels: {}, ack: {}}};
  component.setTriggerValue = (event, value) => {
    window.sent.push(performance.now());
    setTimeout(() => { component.data = {...component.data, ack: {stream: value.stream, seq: value.seq}};
                       mod.default(component); }, 20);
  };
  mod.default(component);
  document.getElementById("away").addEventListener("click", () => { window.clickedAt = performance.now(); });
}"""


def test_live_frames_stop_when_the_user_follows_a_link_away(server, pages):
    """A live frame sent after a click on another page's link reaches the server behind the page
    switch, and the new page is drawn blank (Streamlit 1.67 runs the old page's fragment after it):
    the camera sends none once the link is clicked, and starts again if the page did not change."""
    url, _ = server
    page = pages(viewport={"width": 800, "height": 600})
    page.goto(url + "/_stcore/health")  # this server's origin: a secure context with the fake camera
    folder = Path(__file__).resolve().parent.parent / "ui" / "components"
    page.evaluate(LIVE_HARNESS, [(folder / "camera.js").read_text(), (folder / "camera.html").read_text()])
    page.wait_for_function("() => window.sent.length >= 5")  # frames flow, each after the last one's answer
    page.click("#away")
    page.wait_for_timeout(2000)
    after = page.evaluate("() => window.sent.filter(t => t > window.clickedAt).length")
    assert after == 0, f"{after} live frames were sent after the link was clicked"
    page.wait_for_function("() => window.sent.some(t => t > window.clickedAt + 5000)", timeout=15_000)

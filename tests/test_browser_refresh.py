"""A browser refresh on any page keeps the session: Debian Chromium (Playwright) against
`streamlit run app.py`. Load data, train, change a setting, then on each of the seven pages
reload and check that the same dataset, settings and run are back.

Skipped only when /usr/bin/chromium is absent (never `playwright install`).
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from test_browser import CHROMIUM, debug_shot, goto, page, settle  # noqa: F401  (page: a fixture, with conftest's server)

pytestmark = pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                reason="needs Debian chromium at /usr/bin/chromium")

PAGES = ("Data", "Model", "Train", "Compare", "Evaluate", "Predict", "Export")


@pytest.fixture(scope="module", autouse=True)
def _no_file_watcher():
    # before the server starts: a source file saved mid-test must not make the app rerun
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
        yield


def _sidebar(page) -> str:
    return page.get_by_test_id("stSidebar").inner_text()


def _url_state(page) -> dict:
    query = parse_qs(urlparse(page.url).query)
    return {k: query.get(k, [""])[0] for k in ("s", "data", "cfg", "job")}


def test_a_refresh_on_every_page_keeps_dataset_settings_and_run(server, page, debug_shot):
    url, _ = server
    page.goto(url + "/")
    page.get_by_text("Your images").first.wait_for()
    settle(page)
    page.get_by_role("tab", name="Sample dataset").click()
    page.get_by_role("button", name="Use the generated shapes").click()
    page.get_by_text("Ready:").first.wait_for()
    settle(page)
    goto(page, "Train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished:").wait_for(timeout=300_000)
    settle(page)
    goto(page, "Model")
    page.get_by_test_id("stRadio").filter(has_text="Strategy").get_by_text("Partial fine-tuning").click()
    settle(page)
    before = _sidebar(page)
    assert "Data: " in before and "Partial fine-tuning" in before and "Run: finished" in before, before
    wanted = _url_state(page)
    assert all(wanted.values()), page.url

    for name in PAGES:
        goto(page, name)
        assert _url_state(page) == wanted, f"{name}: {page.url}"
        page.reload()
        settle(page, 1500)
        after = _sidebar(page)
        assert after.splitlines()[-3:] == before.splitlines()[-3:], f"after a refresh on {name}: {after!r}"
        assert _url_state(page) == wanted, f"{name} after a refresh: {page.url}"

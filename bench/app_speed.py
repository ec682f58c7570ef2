"""Issue 21 part 0: does a run started in the app train as fast as the same run from the CLI?

Side by side in one run, on fresh caches (TL_CACHE): for each scenario, the CLI's wall time
(`python -m tl_core train|compare ...`, imports included) and, in a real browser (Debian Chromium)
driving `streamlit run app.py`, the time from the Start click to "Finished" (Train page) or to the
comparison's "took" line (Compare page), with the page open and polling all along. Each side has
its own fresh cache. The app is timed cold twice: clicked as soon as the page is set up (its launch
warm-up still running) and, on a second app, after that warm-up has ended; then warm.

    .venv/bin/python -m bench.app_speed [--scenarios full,feature_extraction,compare] [--epochs 2]
        [--runner process|thread]

Prints one table row per scenario and cache state: CLI s, app s, ratio (target <= 1.15), and the
load average before and after. Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_browser as tb  # noqa: E402  (reuses the walk-through's browser helpers)
from app_server import start_app, stop_app  # noqa: E402

from .common import helpers_gone  # noqa: E402

SAMPLE = ROOT / "assets" / "samples" / "recycling"
LABEL = {"full": "Full fine-tuning", "feature_extraction": "Feature extraction", "partial": "Partial fine-tuning"}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _env(cache: Path, tmp: Path, runner: str | None) -> dict:
    env = {**os.environ, "TL_CACHE": str(cache), "TL_RUNS": str(tmp / "runs"), "TL_WORKSPACE": str(tmp / "ws"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    if runner:
        env["TL_RUNNER"] = runner
    return env


def cli_seconds(scenario: str, epochs: int, cache: Path, out: Path) -> float:
    """Wall time of the CLI command for `scenario`, imports included."""
    if scenario == "compare":
        cmd = ["compare", str(SAMPLE), "--epochs", str(epochs), "--out", str(out)]
    else:
        cmd = ["train", str(SAMPLE), "--strategy", scenario, "--epochs", str(epochs), "--out", str(out)]
    env = _env(cache, out, None)
    env["TL_RUNS"] = str(out)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tl_core", *cmd], cwd=out, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


class App:
    """One streamlit server and one browser session, set up for `scenario`."""

    def __init__(self, tmp: Path, cache: Path, runner: str | None):
        tmp.mkdir(parents=True)
        self.proc, self.url = start_app(tmp, **_env(cache, tmp, runner))

    def close(self) -> None:
        stop_app(self.proc)


def setup(page, url: str, scenario: str, epochs: int) -> None:
    page.goto(url + "/")
    tb.settle(page)
    page.get_by_role("tab", name="Sample dataset").click()
    page.get_by_role("button", name="Use the sample dataset").click()
    page.get_by_text("Ready:").first.wait_for()
    tb.goto(page, "Model")
    if scenario != "compare":
        page.get_by_test_id("stRadio").filter(has_text="Strategy").get_by_text(LABEL[scenario]).click()
        tb.settle(page)
        if scenario != "feature_extraction":  # a solved head asks for no epochs (the CLI's are ignored)
            page.get_by_text("Advanced settings").click()
            page.get_by_role("spinbutton", name="Epochs", exact=True).fill(str(epochs))
            page.keyboard.press("Enter")
            tb.settle(page)
        tb.goto(page, "Train")
    else:
        tb.goto(page, "Compare")
        page.get_by_role("spinbutton", name="Epochs per run", exact=True).fill(str(epochs))
        page.keyboard.press("Enter")
        tb.settle(page)


def app_seconds(page, scenario: str) -> float:
    """Click Start and time until this run's end shows (the previous run's end line goes first);
    a comparison has ended when its Start button is enabled again (its "took" line needs an estimate)."""
    if scenario == "compare":
        button = page.get_by_role("button", name="Compare 4 strategies")
        t0 = time.perf_counter()
        button.click()
        page.get_by_role("button", name="Compare 4 strategies", disabled=True).wait_for(timeout=120_000)
        page.get_by_role("button", name="Compare 4 strategies", disabled=False).wait_for(timeout=1_800_000)
        return time.perf_counter() - t0
    button, done = page.get_by_role("button", name="Start training"), page.get_by_text("Finished:")
    t0 = time.perf_counter()
    button.click()
    done.first.wait_for(state="hidden", timeout=1_800_000)
    done.first.wait_for(timeout=1_800_000)
    return time.perf_counter() - t0


def warm_up_done(deadline_s: float = 300) -> None:
    """Wait (with a deadline) until no app warm-up process (tl_core.training.features) is left."""
    helpers_gone(deadline_s, "tl_core.training.features")


def app_quiet(server_pid: int, deadline_s: float = 180) -> None:
    """Wait until the app's own processes leave the machine to the CLI: the child that trained the
    last run waits REUSE_GRACE_S for another, then a fresh spare imports torch (seconds of CPU).
    Timed beside those imports, the CLI's run was up to 2x slower (the 2026-12-01 16:17 rows)."""
    import psutil

    from tl_core.jobs.process import REUSE_GRACE_S

    time.sleep(REUSE_GRACE_S + 1)
    end, tree = time.monotonic() + deadline_s, psutil.Process(server_pid)

    def cpu() -> float:
        total = 0.0
        for p in [tree, *tree.children(recursive=True)]:
            try:
                total += sum(p.cpu_times()[:4])
            except psutil.Error:
                pass
        return total

    while time.monotonic() < end:
        before = cpu()
        time.sleep(2.0)
        if cpu() - before < 0.1:  # under 5% of one core over 2 s: imports done, nothing running
            return


def measure(scenario: str, epochs: int, runner: str | None, browser) -> list[dict]:
    """Each side on its own fresh cache. Cold twice: clicked as soon as the page is set up (the
    app's launch warm-up still running) and, on a second fresh app, after the warm-up has ended (a
    newcomer who spent that long on the Data page); then warm (the second app's cache again)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"tl-appspeed-{scenario}-"))
    (tmp / "cli").mkdir()
    rows, cli = [], {}

    def row(state: str, app_s: float, before: str) -> None:
        rows.append(dict(scenario=scenario, cache=state, cli_s=cli[state.split(",")[0]], app_s=app_s,
                         ratio=app_s / cli[state.split(",")[0]], load_before=before, load_after=load()))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    for n, state in enumerate(("cold, clicked at once", "cold, after the warm-up")):
        app = App(tmp / f"app{n}", tmp / f"cache-app{n}", runner)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1300}).new_page()
            page.set_default_timeout(120_000)
            setup(page, app.url, scenario, epochs)
            if n == 0:
                before = load()
                web = app_seconds(page, scenario)
                warm_up_done()  # the CLI's cold run has the machine to itself
                app_quiet(app.proc.pid)
                before_cli = load()
                cli["cold"] = cli_seconds(scenario, epochs, tmp / "cache-cli", tmp / "cli")
                row(state, web, before)
                rows[-1]["load_before_cli"] = before_cli
                continue
            warm_up_done()
            before = load()
            row(state, app_seconds(page, scenario), before)
            tb.settle(page)
            app_quiet(app.proc.pid)
            before = load()
            cli["warm"] = cli_seconds(scenario, epochs, tmp / "cache-cli", tmp / "cli")
            if scenario == "compare":  # a second comparison: the page shows the new one
                tb.goto(page, "Compare")
            row("warm", app_seconds(page, scenario), before)
        finally:
            page.context.close()
            app.close()
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="full,feature_extraction,compare")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--runner", default=None, help="TL_RUNNER for the app (default: the settings' default)")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.ARGS)
        for scenario in a.scenarios.split(","):
            rows += measure(scenario, a.epochs, a.runner, browser)
        browser.close()
    print(f"| run ({a.epochs} epochs, sample) | cache | CLI s | app s | app/CLI (target <= 1.15) | load before -> after |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['cache']} | {r['cli_s']:.1f} | {r['app_s']:.1f} | {r['ratio']:.2f} "
              f"| {r['load_before']} -> {r['load_after']} |")
    return rows


if __name__ == "__main__":
    main()

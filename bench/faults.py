"""Issue 20's fault campaign: a real server, browser, Redis and disk, each broken on purpose.

    .venv/bin/python -m bench.faults [--only upload_transfer,train_process,...] [--sessions 20]
                                     [--out build/faults] [--write]

Each case starts `streamlit run app.py` on a free port with its own TL_RUNS / TL_WORKSPACE / TL_CACHE
(temp folders) and drives it with Debian Chromium (Playwright), as a user would:
  upload_transfer  kill -9 of the server while the browser sends a zip (the upload request is out)
  upload_ingest    kill -9 while the server checks that zip ("Checking N files...")
  train_process    kill -9 mid-training, local mode, process runner (the run trains in a child)
  train_thread     kill -9 mid-training, hosted mode, thread runner (the run trains in the server)
  export           kill -9 while "Make the ONNX zip" runs its check
  redis            TL_RUNNER=rq: Redis (Debian redis-server on a free port) killed with one run
                   training on the worker and another queued behind it
  disk_full        the feature cache (TL_CACHE) on a 320 KB tmpfs (`mount -t tmpfs`; root only)
                   while feature extraction stores the sample's features
  sessions         N hosted sessions at once, in N browser contexts: upload, audit with features,
                   compare (estimate + start), export; the caps are counted every second
After each kill the server is restarted on the same port; the page's text once it has reconnected
(and a screenshot, in --out) is what the user sees; the run and upload folders are what is kept.
A poller asks /_stcore/health every 0.2 s through the whole campaign (p50/p95/max per case, the
deliberate downtime apart) and samples the server's RSS with its children (psutil). At the end
tl_core.jobs.run_check checks every run folder the campaign made. Takes 15-30 min on 2 cores.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported; a campaign never downloads

from tl_core.base.atomic import write_json_atomic  # noqa: E402
from tl_core.base.config import DEFAULT_LR, RunConfig  # noqa: E402
from tl_core.data.synthetic import make_shapes_dataset  # noqa: E402
from tl_core.jobs import run_check, runs  # noqa: E402
from tl_core.jobs.settings import new_session_token  # noqa: E402
from tl_core.jobs.task_child import WORKING  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
CASES = ("upload_transfer", "upload_ingest", "train_process", "train_thread", "export", "redis", "disk_full",
         "sessions")
HEALTH_EVERY_S = 0.2
HEALTH_TIMEOUT_S = 5.0  # a check slower than this counts as not answered
RECONNECT_S = 90  # how long a page gets to reconnect by itself after the restart before we reload it
# a run that trains for a while at 96 px: long enough to be killed after its second epoch
LONG_RUN = dict(strategy="full", epochs=30, image_size=96, batch_size=8, lr=DEFAULT_LR["full"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def health_ms(url: str) -> float | None:
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=HEALTH_TIMEOUT_S) as r:
            ok = r.read() == b"ok"
    except OSError:
        return None
    return (time.perf_counter() - t) * 1000 if ok else None


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its children (a process runner's trainings, a pool's nothing)."""
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e6


# ---------------------------------------------------------------- the server and its watchers


class Server:
    """`streamlit run app.py` with its own folders; kill -9 and restart on the same port."""

    def __init__(self, work: Path, name: str, **env):
        self.name, self.work, self.port = name, work / name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for d in ("runs", "ws", "cache"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "TL_RUNS": str(self.work / "runs"), "TL_WORKSPACE": str(self.work / "ws"),
                    "TL_CACHE": str(self.work / "cache"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
                    "TL_TEST_MODELS": "0", **env}
        self.proc = None
        self.down_s: list[float] = []  # kill -> healthy again, per restart

    def start(self, deadline_s: float = 180) -> None:
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        with open(self.work / "streamlit.log", "a") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: streamlit exited with {self.proc.returncode}")
            if health_ms(self.url) is not None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: not healthy within {deadline_s} s")

    def kill9(self) -> list[int]:
        """SIGKILL to the server process alone (as the OOM killer or a crash would); -> its children's
        pids. A second call (the kill already landed) only waits for it."""
        if self.proc.poll() is None:
            try:
                self.children = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
            except psutil.Error:
                self.children = []
            os.kill(self.proc.pid, signal.SIGKILL)
            self.killed_at = time.monotonic()
        self.proc.wait(30)
        return self.children

    def restart(self) -> None:
        self.start()
        self.down_s.append(time.monotonic() - self.killed_at)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        kids = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for k in kids:
            if k.is_running():
                k.kill()


def alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie, killed but not reaped, counts as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            continue
    return out


def what_runs(pid: int) -> str:
    """A process in a few words: its `-m module` (or program) name."""
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return f"pid {pid} (gone)"
    return " ".join(cmd[cmd.index("-m"):cmd.index("-m") + 2]) if "-m" in cmd else Path(cmd[0]).name


class Monitor(threading.Thread):
    """The health check every 0.2 s and the server's RSS every second, tagged with the case and
    with whether the server is down on purpose (between a kill and its restart)."""

    def __init__(self):
        super().__init__(daemon=True, name="faults-monitor")
        self.server: Server | None = None
        self.case, self.down = "", False
        self.health: list[tuple] = []  # (time, case, down on purpose, ms or None)
        self.rss: list[tuple] = []  # (time, case, MB)
        self.halt = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.halt.wait(HEALTH_EVERY_S):
            server, case, down = self.server, self.case, self.down
            if server is None:
                continue
            ms = health_ms(server.url)
            self.health.append((time.time(), case, down or self.down, ms))
            if tick % 5 == 0 and server.proc is not None and server.proc.poll() is None:
                self.rss.append((time.time(), case, tree_rss_mb(server.proc.pid)))
            tick += 1

    def stats(self, case: str) -> dict:
        up = [ms for _, c, down, ms in self.health if c == case and not down]
        answered = sorted(ms for ms in up if ms is not None)
        rss = [mb for _, c, mb in self.rss if c == case]

        def pct(q):
            return answered[min(len(answered) - 1, int(q * len(answered)))] if answered else None

        return {"checks": len(up), "unanswered": sum(ms is None for ms in up), "p50_ms": pct(0.5),
                "p95_ms": pct(0.95), "max_ms": answered[-1] if answered else None,
                "rss_max_mb": max(rss) if rss else None}


# ---------------------------------------------------------------- data and sessions


def make_zip(work: Path, name: str, per_class: int, size: int) -> Path:
    """A zip of class folders (3 classes of generated shapes, JPEG), as a user would upload."""
    folder = make_shapes_dataset(work / "images" / name / "shapes", per_class=per_class, size=size,
                                 colour_coded=True, fmt="jpg")
    out = work / f"{name}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*.jpg")):
            zf.write(p, p.relative_to(folder.parent))
    return out


def session_url(server: Server, cfg: RunConfig | None = None) -> tuple[str, str]:
    """A new session's URL (?s=), with `cfg` saved in its workspace and named in the URL (?cfg=),
    as the Model page keeps a user's settings (ui/state.py _keep): a bookmark of that session."""
    token = new_session_token()
    url = f"{server.url}/?s={token}"
    if cfg is not None:
        payload = cfg.to_dict()
        name = hashlib.sha1(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
        path = Path(server.env["TL_WORKSPACE"]) / token / "configs" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, payload)
        url += f"&cfg={name}"
    return url, token


def run_dirs(server: Server) -> list[Path]:
    return sorted(p.parent for p in Path(server.env["TL_RUNS"]).rglob("run.json"))


def epochs_in(run_dir: Path) -> int:
    try:
        return (run_dir / "events.jsonl").read_text().count('"type": "EpochEnd"')
    except OSError:
        return 0


def wait_until(check, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"no {what} within {seconds:.0f} s")


def litter(folder: Path) -> list[str]:
    """Temporary files of atomic writes left anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_file() and p.name.endswith(".tmp"))


def describe_run(run_dir: Path) -> str:
    info = runs.read_run(run_dir)
    on_disk = runs.read_json(run_dir / "run.json")["status"]
    model = (run_dir / "model.safetensors").is_file()
    return (f"{info.status} (run.json says {on_disk}), {epochs_in(run_dir)} epochs in events.jsonl, "
            f"checkpoint {'kept' if model else 'none'}")


# ---------------------------------------------------------------- the browser


async def settle(page, ms: int = 600, timeout_ms: int = 240_000) -> None:
    """Streamlit's 'Running...' indicator gone (the script run has finished)."""
    await page.wait_for_timeout(ms)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                 timeout=timeout_ms)
    await page.wait_for_timeout(300)


async def goto(page, name: str) -> None:
    # sidebar links switch pages inside the session; page.goto would start the script afresh
    await page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    await settle(page)


async def main_text(page) -> str:
    try:
        return await page.get_by_test_id("stMain").inner_text(timeout=5000)
    except Exception:  # noqa: BLE001  (no main block: the connection error screen)
        return await page.inner_text("body")


def says(text: str, limit: int = 260) -> str:
    """The page's text in one line, the parts a user reads first."""
    return re.sub(r"\s+", " ", text).strip()[:limit]


# what a user reads first: the page's title, its message boxes (success, info, warning, error),
# a file the uploader marks as failed, and the sidebar's Data / Model / Run lines
_SUMMARY = """() => {
  const text = e => e.innerText.replace(/\\s+/g, ' ').trim();
  const out = [];
  const h1 = document.querySelector('[data-testid=stMain] h1');
  if (h1) out.push('page "' + text(h1) + '"');
  document.querySelectorAll('[data-testid=stMain] [data-testid=stAlertContainer]').forEach(e => out.push('"' + text(e) + '"'));
  // Streamlit 1.67 shows a chosen file as a chip, aria-invalid when its upload failed
  document.querySelectorAll('[data-testid=stFileChip][aria-invalid=true]').forEach(e =>
      out.push('uploader: failed "' + (e.getAttribute('aria-label') || text(e)) + '"'));
  const side = document.querySelector('[data-testid=stSidebar]');
  if (side) side.innerText.split('\\n').filter(l => /^(Data|Model|Run):/.test(l)).forEach(l => out.push('sidebar "' + l + '"'));
  return out.join('; ');
}"""


async def summary(page) -> str:
    try:
        return await page.evaluate(_SUMMARY)
    except Exception as e:  # noqa: BLE001  (a page in the middle of reconnecting)
        return f"(page not readable: {type(e).__name__})"


async def shot(page, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)


async def after_restart(page, out: Path, name: str) -> str:
    """What the open page shows once the restarted server is back: its own reconnection first,
    a reload only if it has not come back within RECONNECT_S. -> the text, with how it came back."""
    t0 = time.monotonic()
    how = "reconnected by itself"
    try:
        await page.wait_for_function(
            "() => document.querySelector('[data-testid=stMain]') && !document.querySelector("
            "'[data-testid=stStatusWidget]') && !/Connecting|Connection error/.test(document.body.innerText)",
            timeout=RECONNECT_S * 1000)
    except Exception:  # noqa: BLE001  (not back by itself: what a user does next is reload)
        how = f"still disconnected after {RECONNECT_S} s; reloaded"
        await page.reload()
    await settle(page, 1500)
    await shot(page, out, name)
    return f"[{how}, {time.monotonic() - t0:.0f} s] " + await summary(page)


# What the page said each time a chosen zip vanished from the uploader before it was read (no file
# chip in the uploader 30 s after the choice, no dataset): the sessions case chooses it again and
# reports how often. Until 2026-12-01 evening this looked for Streamlit's old file row
# (stFileUploaderFile), which 1.67 no longer draws: every slow upload counted as vanished and was
# chosen a second time (the 11-19 "vanished" zips of the campaigns in docs/RELIABILITY.md).
LOST_UPLOADS: list[str] = []


async def upload_zip(page, zip_path: Path, wait_ready: bool = True, again_if_lost: bool = False) -> None:
    await page.get_by_role("tab", name="Upload a zip").click()
    # the tab's click reruns the page (st.tabs on_change="rerun"): a person choosing a file takes longer
    # than that rerun; the bench waits for it too
    await settle(page, 300)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Choose a .zip")
    await uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(zip_path))
    if not wait_ready:
        return
    n = len([i for i in zipfile.ZipFile(zip_path).infolist() if not i.is_dir()])
    ready = page.get_by_text(re.compile(rf"Ready: {n} images")).first  # this zip's own count, not an earlier one's
    end, chosen_at = time.monotonic() + 300, time.monotonic()
    while not await ready.count():
        if time.monotonic() > end:
            raise TimeoutError(f"no 'Ready: {n} images' within 300 s")
        lost = not await uploader.get_by_test_id("stFileChip").count()  # the chosen file's chip (1.67)
        if again_if_lost and lost and time.monotonic() - chosen_at > 30 and not await _script_running(page):
            LOST_UPLOADS.append(await summary(page))
            await uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(zip_path))
            chosen_at = time.monotonic()
        await asyncio.sleep(2)
    await settle(page)


async def _script_running(page) -> bool:
    return bool(await page.get_by_test_id("stStatusWidget").count())


async def new_page(browser, url: str | None = None):
    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(300_000)  # 20 sessions opening at once on 2 cores: minutes, not seconds
    if url:
        await page.goto(url)
        await settle(page)
    return page


# ---------------------------------------------------------------- the campaign


class Campaign:
    """One browser, one monitor, the servers each case started, the rows of the table."""

    def __init__(self, args, work: Path, browser, monitor: Monitor):
        self.args, self.work, self.browser, self.monitor = args, work, browser, monitor
        self.out = Path(args.out)
        self.servers: list[Server] = []
        self.rows: list[dict] = []
        self.small_zip = make_zip(work, "small", per_class=16, size=96)  # 48 images
        self.big_zip = make_zip(work, "big", per_class=400, size=256)  # 1,200 images

    def start(self, name: str, **env) -> Server:
        server = Server(self.work, name, **env)
        server.start()
        self.servers.append(server)
        self.monitor.server, self.monitor.case, self.monitor.down = server, name, False
        return server

    async def kill_and_restart(self, server: Server, page, name: str) -> tuple[list[int], list[int], str]:
        """kill -9, restart on the same port, read the open page. -> (children, orphans, what it shows)."""
        self.monitor.down = True
        children = server.kill9()
        await asyncio.sleep(3)  # PR_SET_PDEATHSIG is immediate; 3 s also covers a slow reaper
        orphans = [what_runs(pid) for pid in alive(children)]
        await asyncio.to_thread(server.restart)
        self.monitor.down = False
        return children, orphans, await after_restart(page, self.out, name)

    def row(self, case: str, sees: str, kept: str, numbers: str, load_at: str, **extra) -> None:
        stats = self.monitor.stats(case)
        server = next((s for s in self.servers if s.name == case), None)
        down = f"; down {server.down_s[-1]:.1f} s (kill to healthy)" if server and server.down_s else ""
        health = (f"health p50 {fmt_ms(stats['p50_ms'])}, p95 {fmt_ms(stats['p95_ms'])}, max "
                  f"{fmt_ms(stats['max_ms'])} over {stats['checks']} checks ({stats['unanswered']} unanswered "
                  f"while up){down}; RSS max {fmt_mb(stats['rss_max_mb'])}")
        self.rows.append({"case": case, "sees": sees, "kept": kept, "numbers": f"{numbers}; {health}",
                          "load": f"{load_at} ({time.strftime('%H:%M UTC', time.gmtime())})", "stats": stats,
                          **extra})
        print(f"\n== {case}\n  sees: {sees}\n  kept: {kept}\n  numbers: {numbers}; {health}\n  load: {load_at}",
              flush=True)


def fmt_ms(ms) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


def fmt_mb(mb) -> str:
    return "-" if mb is None else f"{mb / 1000:.2f} GB"


def token_of(page) -> str:
    return re.search(r"[?&]s=([^&]+)", page.url).group(1)


def uploads_kept(server: Server, token: str) -> str:
    folder = Path(server.env["TL_WORKSPACE"]) / token / "uploads"
    parts = [f"{d.name}: {sum(1 for p in d.rglob('*') if p.is_file())} files"
             for d in sorted(folder.iterdir())] if folder.is_dir() else []
    return "; ".join(parts) or "no upload folder"


async def case_upload(c: Campaign, trigger: str) -> None:
    """A first zip loads; the second, big one is cut by kill -9 (mid-transfer or mid-check)."""
    name = f"upload_{trigger}"
    server = c.start(name)
    load_at = load()
    page = await new_page(c.browser, server.url + "/")
    await upload_zip(page, c.small_zip)
    token = token_of(page)
    events, fired = [], []

    def on_request(req):
        if "upload_file" in req.url and trigger == "transfer" and not fired:
            fired.append(time.monotonic())
            c.monitor.down = True
            server.kill9()  # while the request is on its way

    page.on("request", on_request)
    page.on("requestfinished", lambda r: events.append("finished") if "upload_file" in r.url else None)
    page.on("requestfailed", lambda r: events.append("failed") if "upload_file" in r.url else None)
    await upload_zip(page, c.big_zip, wait_ready=False)
    if trigger == "ingest":
        await page.get_by_text(re.compile(r"Checking \d+ files")).first.wait_for(timeout=120_000)
    else:
        await asyncio.to_thread(wait_until, lambda: fired, 60, "upload request")
    _, orphans, sees = await c.kill_and_restart(server, page, name)
    kept = f"uploads: {uploads_kept(server, token)}; temp files: {litter(server.work / 'ws') or 'none'}"
    t = time.monotonic()
    await upload_zip(page, c.big_zip)
    again = re.search(r"Ready: [^.]*\.", await main_text(page))
    c.row(name, sees, kept, f"upload request {'/'.join(dict.fromkeys(events)) or 'cut'} when killed; the same "
          f"zip again: '{again.group(0) if again else '?'}' after {time.monotonic() - t:.0f} s", load_at)
    await page.context.close()


async def start_training(page) -> None:
    await goto(page, "Train")
    await page.get_by_role("button", name="Start training").click()
    await settle(page)


async def case_train(c: Campaign, runner: str) -> None:
    """kill -9 once the second epoch has ended: the run, its checkpoint and the page after a restart."""
    name = f"train_{runner}"
    env = {"TL_RUNNER": runner, **({"TL_MODE": "hosted"} if runner == "thread" else {})}
    server = c.start(name, **env)
    load_at = load()
    url, _ = session_url(server, RunConfig(**LONG_RUN))
    page = await new_page(c.browser, url)
    await upload_zip(page, c.small_zip)
    await start_training(page)
    run_dir = await asyncio.to_thread(
        wait_until, lambda: next((d for d in run_dirs(server) if epochs_in(d) >= 2), None), 900, "second epoch")
    before = epochs_in(run_dir)
    children, orphans, sees = await c.kill_and_restart(server, page, name)
    await asyncio.sleep(2)
    problems = run_check.check_run(run_dir)
    kept = f"{describe_run(run_dir)}; checker: {'whole' if not problems else [str(p) for p in problems]}"
    numbers = (f"killed after epoch {before}; its children: {len(children)}, still running 3 s after the kill: "
               f"{orphans or 'none'}; epochs after the restart {epochs_in(run_dir)}")
    c.row(name, sees, kept, numbers, load_at)
    await page.context.close()


def hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


async def train_to_the_end(page) -> None:
    await start_training(page)
    await page.get_by_text("Finished:").first.wait_for(timeout=900_000)
    await settle(page)


async def case_export(c: Campaign) -> None:
    """kill -9 while the ONNX export checks itself; the run folder, the export folder, a retry."""
    name = "export"
    server = c.start(name)
    load_at = load()
    url, token = session_url(server)  # the session defaults: feature extraction on Lite0
    page = await new_page(c.browser, url)
    await upload_zip(page, c.small_zip)
    await train_to_the_end(page)
    run_dir = run_dirs(server)[0]
    await goto(page, "Export")
    before = hashes(run_dir)
    await page.get_by_role("button", name="Make the ONNX zip").click()
    await page.get_by_text(re.compile("Exporting")).first.wait_for(timeout=60_000)
    await asyncio.sleep(1.5)  # into the export itself (ONNX conversion, then the check)
    _, orphans, sees = await c.kill_and_restart(server, page, name)
    after = hashes(run_dir)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    exports = Path(server.env["TL_WORKSPACE"]) / token / "exports"
    files = sorted(str(p.relative_to(exports)) for p in exports.rglob("*") if p.is_file()) if exports.is_dir() else []
    kept = (f"run folder: {'unchanged' if not changed else 'changed: ' + ', '.join(changed)}; export folder: "
            f"{len(files)} files, zip {'present' if any(f.endswith('.zip') for f in files) else 'absent'}; "
            f"temp files: {litter(server.work / 'ws') or 'none'}")
    t = time.monotonic()
    await goto(page, "Export")
    await page.get_by_role("button", name="Make the ONNX zip").click()
    await page.get_by_text(re.compile("Checked on|random-noise")).first.wait_for(timeout=600_000)
    retry = await main_text(page)
    checked = re.search(r"Checked on [^\n]+", retry)
    c.row(name, sees, kept, f"export again after the restart: '{checked.group(0) if checked else retry[:120]}' in "
          f"{time.monotonic() - t:.0f} s", load_at)
    await page.context.close()


class Redis:
    """Debian's redis-server on a free loopback port (as tests/test_pool.py starts it), killable."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = work / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None

    def start(self) -> None:
        from redis import Redis as Client  # deferred: only this case needs the client

        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        client = Client(port=self.port, socket_timeout=1)
        wait_until(lambda: _pings(client), 30, "redis-server to answer")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:  # noqa: BLE001  (ConnectionError while it starts)
        return False


def start_worker(server: Server, redis: Redis) -> subprocess.Popen:
    env = {**server.env, "TL_NUM_THREADS": "1"}
    with open(server.work / "worker.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "tl_core", "worker", "--queue", redis.url, "--runs",
                                 server.env["TL_RUNS"], "--gpu", "cpu"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


async def queued_pair(c: Campaign, server: Server) -> tuple:
    """Two hosted sessions each start a long run: the worker trains one, the other waits in Redis."""
    pages = []
    for _ in range(2):
        url, _ = session_url(server, RunConfig(**LONG_RUN))
        page = await new_page(c.browser, url)
        await upload_zip(page, c.small_zip)
        await start_training(page)
        pages.append(page)
    training = await asyncio.to_thread(
        wait_until, lambda: next((d for d in run_dirs(server) if epochs_in(d) >= 1), None), 900, "a first epoch")
    waiting = next(d for d in run_dirs(server) if d != training)
    return pages, training, waiting


async def case_redis(c: Campaign) -> None:
    """TL_RUNNER=rq: Redis killed with one run training on the worker and one queued behind it."""
    name = "redis"
    redis = Redis(c.work)
    redis.start()
    server = c.start(name, TL_MODE="hosted", TL_RUNNER="rq", TL_REDIS_URL=redis.url)
    worker = start_worker(server, redis)
    load_at = load()
    try:
        pages, training, waiting = await queued_pair(c, server)
        horse = int(runs.read_json(training / "run.json")["pid"])
        epochs_at_kill = epochs_in(training)
        redis.kill9()
        await asyncio.sleep(20)  # what the two pages say 20 s later, Redis still down
        texts = [await summary(p) for p in pages]
        for i, p in enumerate(pages):
            await shot(p, c.out, f"{name}-{'training' if i == 0 else 'queued'}")
        gone = f"worker {'running' if worker.poll() is None else f'exited {worker.returncode}'}, " \
               f"its training process {'running' if alive([horse]) else 'gone'}"
        kept = f"trained run: {describe_run(training)}; queued run: {describe_run(waiting)}"
        numbers = (f"killed after epoch {epochs_at_kill}; 20 s later: {gone}, the trained run at epoch "
                   f"{epochs_in(training)}")
        c.row(name, f"the training session: '{texts[0]}' / the queued session: '{texts[1]}'", kept, numbers, load_at)
        for p in pages:
            await p.context.close()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if redis.proc.poll() is None:
            redis.kill9()


def mount_tmpfs(folder: Path, size: str) -> str | None:
    """A small tmpfs at `folder` (root only): None when mounted, else why not."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                       text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


def cache_state(folder: Path) -> str:
    import sqlite3  # deferred: only this case opens the cache itself

    db = folder / "features" / "features.sqlite"
    if not db.is_file():
        return "no cache file"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        n = con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    finally:
        con.close()
    free = shutil.disk_usage(folder).free
    return f"{n} feature rows, integrity_check {ok}, {free // 1024} KB free on the tmpfs"


async def case_disk_full(c: Campaign) -> None:
    """The feature cache on a 320 KB tmpfs while feature extraction stores the sample's 200 images."""
    name = "disk_full"
    mnt = c.work / "tiny_cache"
    refused = mount_tmpfs(mnt, "320k")
    if refused:
        c.row(name, "not run", "-", f"mount -t tmpfs refused ({refused}); run as root", load())
        return
    try:
        server = c.start(name, TL_CACHE=str(mnt))
        load_at = load()
        page = await new_page(c.browser, server.url + "/")
        await page.get_by_role("button", name="Use the sample").click()
        await page.get_by_text(re.compile(r"Ready: \d+ images")).first.wait_for(timeout=300_000)
        await settle(page)
        await train_to_the_end(page)
        await shot(page, c.out, name)
        first = says(await main_text(page), 2000)
        full = cache_state(mnt)
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        await train_to_the_end(page)  # the same images again, with room: the stored rows serve
        second = says(await main_text(page), 2000)
        note = re.search(r"The feature cache could not be written.*?kept\.", first) or re.search(r"[^.]*cache[^.]*\.", first)
        c.row(name, f"the run finishes; the page notes: '{note.group(0).strip() if note else first[:200]}'",
              f"cache after the full disk: {full}; after making room and training again: {cache_state(mnt)}",
              f"second run's feature note: '{_feature_note(second)}'", load_at)
        await page.context.close()
        server.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _feature_note(text: str) -> str:
    # the run's features line ("Features of N images computed with ... (M read from the cache).");
    # a looser match picked up the head chart's axis labels before it
    m = re.search(r"Features of [^.]*\.", text) or re.search(r"[^.]*(from the cache|cached|images/s)[^.]*\.", text)
    return m.group(0).strip() if m else text[:160]


# ---------------------------------------------------------------- many hosted sessions


class CapCounter(threading.Thread):
    """Every second: how many runs are Running under TL_RUNS (every session), from their folders,
    and how many tasks compute in child processes (tl_core.jobs.task_child):
    one cap (TL_MAX_JOBS) counts both."""

    def __init__(self, root: Path, server_pid: int):
        super().__init__(daemon=True, name="faults-caps")
        self.root, self.server_pid, self.halt = root, server_pid, threading.Event()
        self.samples: list[tuple[int, int]] = []  # (runs running, tasks computing)

    def run(self) -> None:
        while not self.halt.wait(1.0):
            running = 0
            for d in [p.parent for p in self.root.rglob("run.json")]:
                try:
                    running += runs.read_run(d).status == runs.RUNNING
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            self.samples.append((running, task_children(self.server_pid)))


def task_children(server_pid: int) -> int:
    """Task children of the server that hold work now: named task_child.WORKING once they read it.
    Not "uses CPU": the spare imports torch while the task that took the last one works, and the
    2026-12-01 campaign counted that as a third task under a cap of 2."""
    try:
        kids = psutil.Process(server_pid).children(recursive=True)
        return sum(1 for k in kids if k.name() == WORKING and k.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return 0


async def one_session(c: Campaign, server: Server, i: int) -> dict:
    """Upload, audit with features, Compare (estimate, start), Export ONNX; -> seconds per step or the error."""
    await asyncio.sleep(i * 1.0)  # a classroom arriving: N sessions within N seconds
    url, _ = session_url(server, RunConfig(epochs=1, image_size=96))
    steps, t, page = {}, time.monotonic(), None

    def done(step: str) -> float:  # seconds since the last step; a line on stderr to follow a long case
        print(f"{time.strftime('%H:%M:%S')} session {i:02d}: {step} done in {time.monotonic() - t:.0f} s",
              file=sys.stderr, flush=True)
        return time.monotonic() - t

    try:
        page = await new_page(c.browser, url)
        steps["open"], t = done("open"), time.monotonic()
        await upload_zip(page, c.small_zip, again_if_lost=True)
        steps["upload"], t = done("upload"), time.monotonic()
        if i == 0:
            await shot(page, c.out, "sessions-00-uploaded")
        await audit_with_features(page)
        steps["audit"], t = done("audit"), time.monotonic()
        await compare_all(page)
        steps["compare"], t = done("compare"), time.monotonic()
        await export_onnx(page)
        steps["export"] = done("export")
    except Exception as e:  # noqa: BLE001  (one session's failure is a finding, the others go on)
        steps["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        steps["failed_at"] = next(k for k in ("open", "upload", "audit", "compare", "export") if k not in steps)
        if page is not None:
            await shot(page, c.out, f"sessions-{i:02d}-error")
    if page is not None:
        await page.context.close()
    return steps


async def audit_with_features(page) -> None:
    """Switch on the audit's features; done when its counts show again (the hash-only ones give
    way while the features are computed, or queue for a slot)."""
    await page.get_by_text("Also compare what").first.click()
    await settle(page, 1000, timeout_ms=1_800_000)
    await page.get_by_text("Train/validation copies").first.wait_for(timeout=1_800_000)


async def compare_all(page) -> None:
    await goto(page, "Compare")
    await page.get_by_role("button", name="Estimate the time").click()
    await page.get_by_role("button", name="Measure the time again").wait_for(timeout=1_800_000)
    await page.get_by_role("button", name=re.compile(r"^Compare \d")).click()
    await settle(page)
    # started: its Stop button is enabled (a click the page lost would leave the export step waiting
    # an hour for a finished run)
    stop, end = page.get_by_role("button", name="Stop the comparison"), time.monotonic() + 180
    while not await stop.is_enabled():
        if time.monotonic() > end:
            raise RuntimeError(f"the comparison did not start within 180 s of the click: {await summary(page)}")
        await asyncio.sleep(2)


async def export_onnx(page) -> None:
    end = time.monotonic() + 3600
    await goto(page, "Export")
    while not await page.get_by_role("button", name="Make the ONNX zip").count():  # no finished run yet
        if time.monotonic() > end:
            raise TimeoutError("no finished run to export within an hour")
        await asyncio.sleep(10)
        await goto(page, "Compare")
        await goto(page, "Export")
    await page.get_by_role("button", name="Make the ONNX zip").click()
    checked = page.get_by_text(re.compile("Checked on|random-noise")).first
    failed = page.get_by_role("button", name="Try again")  # the task ended Failed or Stopped: its sentence shows
    await checked.or_(failed).first.wait_for(timeout=3_600_000)
    if not await checked.count():
        raise RuntimeError(f"the export ended without a zip: {await summary(page)}")


async def case_sessions(c: Campaign) -> None:
    """N hosted sessions at once (N browser contexts): every heavy click a classroom makes."""
    name, n = "sessions", c.args.sessions
    server = c.start(name, TL_MODE="hosted")
    load_at = load()
    caps = CapCounter(Path(server.env["TL_RUNS"]), server.proc.pid)
    caps.start()
    t0 = time.monotonic()
    results = await asyncio.gather(*(one_session(c, server, i) for i in range(n)))
    took = time.monotonic() - t0
    caps.halt.set()
    ok = [r for r in results if "error" not in r]
    errors = sorted({f'{r["failed_at"]}: {r["error"]}' for r in results if "error" in r})

    def med(step):
        xs = [r[step] for r in ok if step in r]
        return f"{statistics.median(xs):.0f} s" if xs else "-"

    max_jobs = 2  # the hosted default TL_MAX_JOBS
    most = max((r + k for r, k in caps.samples), default=0)
    cap_line = (f"runs + tasks computing at once: max {most} (cap {max_jobs}; runs alone max "
                f"{max((r for r, _ in caps.samples), default=0)}, tasks alone max "
                f"{max((k for _, k in caps.samples), default=0)}) over {len(caps.samples)} s")
    lost = f"; a chosen zip vanished before it was read {len(LOST_UPLOADS)} times (chosen again)" if LOST_UPLOADS else ""
    c.row(name, f"{len(ok)}/{n} sessions did all four steps" + (f"; errors: {errors}" if errors else "") + lost,
          f"{len(run_dirs(server))} run folders", f"{cap_line}; medians per session: open {med('open')}, upload {med('upload')}, "
          f"audit {med('audit')}, compare {med('compare')}, export {med('export')}; all in {took / 60:.1f} min; "
          f"load at the end {load()}", load_at, caps_max=most, cap=max_jobs,
          sessions_ok=len(ok), sessions=n)


# ---------------------------------------------------------------- after the campaign


def check_everything(c: Campaign) -> dict:
    """tl_core.jobs.run_check over every run folder the campaign's servers made, and temp files
    of atomic writes left in their workspaces."""
    problems, n = [], 0
    for s in c.servers:
        root = Path(s.env["TL_RUNS"])
        n += run_check.count_runs(root)
        problems += [f"{s.name}: {p}" for p in run_check.check_runs(root)]
        problems += [f"{s.name}: temp file {p} in the workspace" for p in litter(Path(s.env["TL_WORKSPACE"]))]
    return {"runs": n, "problems": problems}


def markdown(c: Campaign, check: dict, started: str, took: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["## Fault campaign (issue 20)", "",
             f"`python -m bench.faults` ({' '.join(sys.argv[1:]) or 'every case'}), run {started} to {when} "
             f"({took / 60:.0f} min) on {os.cpu_count()} cores shared with other work (load average per case "
             "below: 1-, 5- and 15-minute). Each case: `streamlit run app.py` with its own temp folders, "
             "Debian Chromium driving it, `kill -9` (SIGKILL) of the server process alone, a restart on the "
             "same port; \"sees\" is the open page's text once it is back. Health: GET /_stcore/health every "
             f"{HEALTH_EVERY_S} s through each case (the deliberate downtime apart); RSS: the server and its "
             "children (psutil).", "",
             "| case | what the user sees | what is kept | numbers | load |", "|---|---|---|---|---|"]
    for r in c.rows:
        lines.append("| " + " | ".join(_cell(r[k]) for k in ("case", "sees", "kept", "numbers", "load")) + " |")
    verdict = ("every one whole" if not check["problems"] else
               f"{len(check['problems'])} problems: " + "; ".join(check["problems"][:10]))
    lines += ["", f"After the campaign, `tl_core.jobs.run_check` (`python -m tl_core runs ROOT --check`) on the "
                  f"{check['runs']} run folders it made: {verdict}.", ""]
    return "\n".join(lines)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write(text: str) -> None:
    """docs/reliability/faults.md (appended by tests/reliability.py when it regenerates the report),
    and the same section spliced into docs/RELIABILITY.md now."""
    (ROOT / "docs" / "reliability" / "faults.md").write_text(text, encoding="utf-8")
    report = ROOT / "docs" / "RELIABILITY.md"
    doc = report.read_text(encoding="utf-8")
    head = "## Fault campaign (issue 20)"
    if head in doc:
        before, rest = doc.split(head, 1)
        after = rest[rest.find("\n## "):] if "\n## " in rest else ""
        doc = before + text.rstrip("\n") + "\n" + after
    else:
        doc = doc.replace("## Settings (environment variables)", text + "\n## Settings (environment variables)", 1)
    report.write_text(doc, encoding="utf-8")
    print(f"wrote docs/reliability/faults.md and its section of {report}")


# ---------------------------------------------------------------- main


async def campaign(args, work: Path, monitor: Monitor) -> Campaign:
    from playwright.async_api import async_playwright

    plan = {"upload_transfer": lambda c: case_upload(c, "transfer"), "upload_ingest": lambda c: case_upload(c, "ingest"),
            "train_process": lambda c: case_train(c, "process"), "train_thread": lambda c: case_train(c, "thread"),
            "export": case_export, "redis": case_redis, "disk_full": case_disk_full, "sessions": case_sessions}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        c = Campaign(args, work, browser, monitor)
        try:
            for name in args.only:
                t = time.monotonic()
                try:
                    await plan[name](c)
                except Exception as e:  # noqa: BLE001  (a case that broke is a row, the campaign goes on)
                    c.row(name, "case did not complete", "-", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                          load())
                print(f"[{name}: {time.monotonic() - t:.0f} s]", flush=True)
                for s in c.servers:
                    if s.name == name:
                        s.stop()
        finally:
            await browser.close()
    return c


def run(argv=None) -> dict:
    """The campaign; -> {"rows": [...], "check": {...}, "text": the markdown section} (bench.targets too)."""
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases of {','.join(CASES)}")
    p.add_argument("--sessions", type=int, default=20, help="hosted sessions at once in the sessions case")
    p.add_argument("--out", default=str(ROOT / "build" / "faults"), help="screenshots and faults.json")
    p.add_argument("--write", action="store_true", help="write the table into docs/RELIABILITY.md")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(args.only) - set(CASES):
        p.error(f"unknown case(s) {sorted(set(args.only) - set(CASES))}; choose from {', '.join(CASES)}")
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.monotonic()
    monitor = Monitor()
    monitor.start()
    work = Path(tempfile.mkdtemp(prefix="tl_faults_"))
    try:
        c = asyncio.run(campaign(args, work, monitor))
        check = check_everything(c)
    finally:
        monitor.halt.set()
    text = markdown(c, check, started, time.monotonic() - t0)
    print("\n" + text)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "faults.json").write_text(json.dumps({"rows": c.rows, "check": check}, indent=1, default=str))
    if args.write:
        write(text)
    shutil.rmtree(work, ignore_errors=True)
    return {"rows": c.rows, "check": check, "text": text}


def main(argv=None) -> int:
    return 1 if run(argv)["check"]["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

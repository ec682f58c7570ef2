"""Job runners, measured: jobs per hour with 1 and 2 rq workers; the app's page latency while 2 jobs
train under the thread runner and under rq worker processes; a worker's death -> its run Interrupted.

    .venv/bin/python -m bench.pool --data ../shared/data/hymenoptera_data [--jobs 4] [--what all]

Starts Debian's redis-server on a free port and real `python -m tl_core worker` processes. Prints
medians and ratios measured side by side in one run; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.jobs import runs  # noqa: E402

# a realistic small job: the default backbone (EfficientNet-Lite0, ImageNet weights from the
# installed package), last stage + head fine-tuned, 2 epochs at 128 px
JOB = RunConfig(backbone="tf_efficientnet_lite0", pretrained="auto", strategy="partial", unfreeze=1, epochs=2,
                image_size=128, batch_size=32, lr=1e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: Path):
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_workers(url: str, root: Path, n: int, cache: Path) -> list:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return [subprocess.Popen([sys.executable, "-m", "tl_core", "worker", "--queue", url, "--runs", str(root),
                              "--gpu", "cpu"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(n)]


def stop_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def jobs_per_hour(url: str, ds, tmp: Path, workers: int, jobs: int) -> float:
    """Submit `jobs` identical jobs at once; jobs/hour = jobs / (first submit -> last finish)."""
    from redis import Redis

    from tl_core.jobs.pool import PoolRunner

    Redis.from_url(url).flushdb()
    root = tmp / f"runs-{workers}w-{time.monotonic_ns()}"
    root.mkdir()
    procs = start_workers(url, root, workers, tmp / "cache")
    try:
        time.sleep(3)  # the workers are up (importing rq), as they would be on a server
        runner = PoolRunner(url, root)
        t0 = time.perf_counter()
        handles = [runner.submit(JOB.replace(seed=i), ds, root) for i in range(jobs)]
        for h in handles:
            h.join()
        wall = time.perf_counter() - t0
        assert all(h.status == "finished" for h in handles), [h.status for h in handles]
    finally:
        stop_all(procs)
    return jobs / wall * 3600


def death_to_interrupted(url: str, ds, tmp: Path, other_host: bool) -> float:
    """Seconds from SIGKILL of a worker mid-run to PoolJob.status == "interrupted". other_host: the
    run is marked as trained on another machine, so only its stopped heartbeat can tell."""
    from redis import Redis

    from tl_core.base.events import EpochEnd
    from tl_core.jobs.pool import PoolRunner

    Redis.from_url(url).flushdb()
    root = tmp / f"runs-death-{time.monotonic_ns()}"
    root.mkdir()
    procs = start_workers(url, root, 1, tmp / "cache")
    try:
        job = PoolRunner(url, root).submit(JOB.replace(epochs=50, image_size=96), ds, root)
        while not any(isinstance(e, EpochEnd) for e in job.events()):
            time.sleep(0.2)
        if other_host:
            info = runs.read_json(job.run_dir / "run.json")
            runs.write_json_atomic(job.run_dir / "run.json", {**info, "host": "another-machine"})
        procs[0].send_signal(signal.SIGKILL)
        t0 = time.perf_counter()
        while job.status != "interrupted":
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        stop_all(procs)


def ui_latency(url: str, tmp: Path, runner: str, seconds: float, clicks: int) -> tuple[float, list]:
    from bench import ui_latency as ui

    os.environ.update({"TL_RUNNER": runner, "TL_REDIS_URL": url, "TL_MAX_JOBS": "2"})
    procs = []
    root = tmp / f"runs-ui-{runner}"
    root.mkdir()
    if runner == "rq":
        procs = start_workers(url, root, 2, tmp / "cache")
    try:
        return ui.measure(seconds, clicks, jobs=2, runs=root)
    finally:
        stop_all(procs)
        for k in ("TL_RUNNER", "TL_REDIS_URL", "TL_MAX_JOBS"):
            os.environ.pop(k, None)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hymenoptera_data"))
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--what", choices=["all", "throughput", "death", "ui"], default="all")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clicks", type=int, default=10)
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tl_core.data.dataset import load_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    redis, url = start_redis(tmp)
    ds = load_dataset(a.data)
    try:
        if a.what in ("all", "throughput"):
            rates = {n: jobs_per_hour(url, ds, tmp, n, a.jobs) for n in (1, 2)}
            print(f"| jobs per hour, {a.jobs} jobs | 1 worker {rates[1]:.1f} | 2 workers {rates[2]:.1f} | "
                  f"ratio {rates[2] / rates[1]:.2f} |", flush=True)
        if a.what in ("all", "death"):
            same = [death_to_interrupted(url, ds, tmp, False) for _ in range(3)]
            other = death_to_interrupted(url, ds, tmp, True)
            print(f"| worker SIGKILL -> run Interrupted | same machine (pid): median of 3 {statistics.median(same):.2f} s"
                  f" | another machine (heartbeat): {other:.1f} s |", flush=True)
        if a.what in ("all", "ui"):
            for runner in ("thread", "rq"):
                rate, times = ui_latency(url, tmp, runner, a.seconds, a.clicks)
                print(f"| page while 2 jobs train, {runner} runner | {rate:.2f} refreshes/s | page switch median "
                      f"{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f}) |", flush=True)
    finally:
        stop_all([redis])


if __name__ == "__main__":
    main()

"""How long each wait on something external takes to end with its sentence (issue 20): a queued job
with no worker, a lost worker (killed, or silent), a dead or silent DDP peer. Time from the fault
to the sentence, on real redis-server, `python -m tl_core worker` and torchrun processes.

    .venv/bin/python -m bench.deadlines [--what queue,worker,silent,ddp,ddp_rank0,ddp_silent] [--tries 3]

Prints medians with the load average; asserts nothing. The tests for each case are in
tests/test_pool.py and tests/test_distributed.py.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pool import start_redis, start_workers, stop_all  # noqa: E402
from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.base.events import EpochEnd  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.jobs import runs  # noqa: E402

SHAPES = ROOT / "assets" / "samples" / "shapes"
LONG = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1000, image_size=32,
                 batch_size=16, augment="none", device="cpu")


def _until(check, seconds: float = 300.0) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > seconds:
            raise TimeoutError(f"no end after {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def _trained_an_epoch(run_dir: Path) -> bool:
    return any(isinstance(e, EpochEnd) for e in runs.read_events(run_dir))


def no_worker(url: str, tmp: Path, tries: int, deadline_s: int = 5) -> str:
    from tl_core.jobs.pool import PoolRunner

    ds, notes, ends = load_dataset(SHAPES), [], []
    for i in range(tries):
        runner = PoolRunner(url, tmp / "runs", no_worker_s=deadline_s)
        job = runner.submit(LONG.replace(seed=i), ds, tmp / "runs")
        t0 = time.monotonic()
        notes.append(_until(lambda: job.waiting_note() is not None))
        ends.append(time.monotonic() - t0 + _until(lambda: job.done))
    return (f"queued, no worker: the note after median {statistics.median(notes) * 1000:.0f} ms; the run Failed "
            f"{statistics.median(ends):.2f} s after submit with TL_QUEUE_NO_WORKER_S={deadline_s} (max {max(ends):.2f})")


def lost_worker(url: str, tmp: Path, tries: int, fault: signal.Signals) -> str:
    from tl_core.jobs.pool import PoolRunner

    ds, took = load_dataset(SHAPES), []
    for i in range(tries):
        workers = start_workers(url, tmp / "runs", 1, tmp / "cache")
        try:
            job = PoolRunner(url, tmp / "runs").submit(LONG.replace(seed=i), ds, tmp / "runs")
            _until(lambda: _trained_an_epoch(job.run_dir))
            horse = int(runs.read_json(job.run_dir / "run.json")["pid"])
            for pid in (workers[0].pid, horse) if fault == signal.SIGSTOP else (workers[0].pid,):
                os.kill(pid, fault)  # SIGSTOP both: a frozen machine, its pid alive, its heartbeat gone
            took.append(_until(lambda: job.lost_note() is not None and not job.status.active))
            if fault == signal.SIGSTOP:
                os.kill(horse, signal.SIGKILL)
        finally:
            stop_all(workers)
    how = "killed (SIGKILL)" if fault == signal.SIGKILL else "silent (SIGSTOP: its heartbeat stops)"
    return (f"worker {how}: run Interrupted with its sentence after median {statistics.median(took):.2f} s "
            f"(max {max(took):.2f}, {tries} tries)")


def _ddp_cmd(out: Path) -> list:
    c = LONG
    return [sys.executable, "-m", "tl_core", "train", str(SHAPES), "--devices", "2", "--device", "cpu", "--out",
            str(out), "--backbone", c.backbone, "--pretrained", c.pretrained, "--strategy", c.strategy, "--epochs",
            "500", "--image-size", str(c.image_size), "--batch-size", str(c.batch_size), "--augment", "none"]


def _other_rank(rank0: int) -> int:
    parent = Path(f"/proc/{rank0}/stat").read_text().rsplit(")", 1)[1].split()[1]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == parent and int(stat.parent.name) != rank0:
            return int(stat.parent.name)
    raise RuntimeError("rank 1 not found")


def ddp_peer(tmp: Path, tries: int, fault: signal.Signals, timeout_s: int = 10, victim: int = 1) -> str:
    took = []
    for i in range(tries):
        out = tmp / f"ddp-{fault.name}-{victim}-{i}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TL_CACHE": str(tmp / "cache"),
               "TL_DDP_TIMEOUT_S": str(timeout_s)}
        proc = subprocess.Popen(_ddp_cmd(out), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _until(lambda: any((d / "run.json").is_file() for d in out.glob("*")))
            run_dir = next(d for d in out.glob("*") if (d / "run.json").is_file())
            _until(lambda: _trained_an_epoch(run_dir))
            rank0 = int(runs.read_json(run_dir / "run.json")["pid"])
            pid = (rank0, _other_rank(rank0))[victim]
            os.kill(pid, fault)
            took.append(_until(lambda: runs.read_json(run_dir / "run.json")["status"] == "Failed"))
            if fault == signal.SIGSTOP:
                os.kill(pid, signal.SIGKILL)
            proc.wait(120)
        finally:
            stop_all([proc])
    how = "killed (SIGKILL)" if fault == signal.SIGKILL else f"silent (SIGSTOP), TL_DDP_TIMEOUT_S={timeout_s}"
    return (f"DDP rank {victim} of 2 {how}: run Failed with its sentence after median {statistics.median(took):.2f} s "
            f"(max {max(took):.2f}, {tries} tries)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--what", default="queue,worker,silent,ddp,ddp_rank0,ddp_silent")
    p.add_argument("--tries", type=int, default=3)
    a = p.parse_args()
    what = set(a.what.split(","))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tl-deadlines-"))
    redis, url = start_redis(tmp)
    try:
        if "queue" in what:
            print(no_worker(url, tmp, a.tries), flush=True)
        if "worker" in what:
            print(lost_worker(url, tmp, a.tries, signal.SIGKILL), flush=True)
        if "silent" in what:
            print(lost_worker(url, tmp, 1, signal.SIGSTOP), flush=True)
        if "ddp" in what:
            print(ddp_peer(tmp, a.tries, signal.SIGKILL), flush=True)
        if "ddp_rank0" in what:  # rank 0 cannot say it: torchrun ends rank 1, the launcher closes the run
            print(ddp_peer(tmp, a.tries, signal.SIGKILL, victim=0), flush=True)
        if "ddp_silent" in what:
            print(ddp_peer(tmp, 1, signal.SIGSTOP), flush=True)
    finally:
        stop_all([redis])
    print(f"load average at end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()

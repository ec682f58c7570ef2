"""Where and on how many threads a run computes: the device, and the CPU cores it may use."""
from __future__ import annotations

import os
import time

import psutil
import torch

from tl_core.base.config import RunConfig
from tl_core.base.messages import ConfigError
from tl_core.training import distributed


def pick_device(cfg: RunConfig) -> torch.device:
    if distributed.under_torchrun():
        return distributed.init(cfg.device)  # one rank of a --devices N run: its own GPU, or the CPU
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.no_gpu")
    if cfg.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_sample():
    """(wall s, busy cpu s, total cpu s, cpus counted, this process's cpu s) on the cores this
    process may use, or None where psutil cannot read per-CPU times."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        per_cpu = psutil.cpu_times(percpu=True)
    except (OSError, NotImplementedError):
        return None
    mine = [c for i, c in enumerate(per_cpu) if cpus is None or i in cpus]
    total = sum(sum(c[:8]) for c in mine)  # user..steal, as /proc/stat's first 8 columns; not guest (in user)
    idle = sum(c.idle + getattr(c, "iowait", 0.0) for c in mine)
    if os.getpriority(os.PRIO_PROCESS, 0) <= 0:
        # niced processes (the background helpers: nice 19 and Linux's idle class) give their core
        # back as soon as this one wants it; counted as busy, the launch warm-up left the sample's
        # first run one thread: 16 images/s instead of 37 (issue 21)
        idle += sum(getattr(c, "nice", 0.0) for c in mine)
        # the kernel counts a niced process's user time in that column, its system time as anyone's:
        # an engine probe's system time (0.5 core) still left a run one thread (bench.partial_cache)
        idle += _niced_system_s()
    t = os.times()
    return time.perf_counter(), total - idle, total, len(mine), t.user + t.system


def _niced_system_s() -> float:
    """System CPU seconds so far of the processes running niced (those this user may read)."""
    total = 0.0
    for p in psutil.process_iter(["nice", "cpu_times"]):
        nice, times = p.info["nice"], p.info["cpu_times"]
        if nice is not None and nice > 0 and times is not None:
            total += times.system
    return total


def others_busy_cores(since) -> float:
    """Cores that other processes kept busy since `since` (a cpu_sample()), on the cores this
    process may use (this process's own CPU time is subtracted)."""
    now = cpu_sample()
    if since is None or now is None:
        return 0.0
    if now[0] - since[0] < 0.2:  # the kernel's CPU times tick at 100 Hz: sample at least 0.2 s
        time.sleep(0.2 - (now[0] - since[0]))
        now = cpu_sample()
    d_total, wall = now[2] - since[2], now[0] - since[0]
    if d_total <= 0 or wall <= 0 or now[3] == 0:
        return 0.0
    busy = (now[1] - since[1]) / d_total * now[3]
    own = (now[4] - since[4]) / wall
    return max(0.0, busy - own)


def configure_threads(since=None) -> int:
    """Intra-op threads: one per usable core (affinity-aware), minus cores other processes keep busy.

    TL_NUM_THREADS overrides. With `since` (a cpu_sample() taken before building the model),
    cores that other processes kept busy meanwhile are not used: PyTorch's OpenMP threads wait
    for each other at every op, so one descheduled thread stalls them all. Measured on the
    2-core bench machine while other training ran (load average ~8.5): a resnet18 training step
    (batch 32, 160 px) took 7.7 s with 2 threads and 1.75 s with 1 (4.4x); inference 2.5x
    (bench/, "Threads"). On an idle machine all cores are used as before.
    """
    n = usable_cores()
    env = os.environ.get("TL_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        n = int(env)
    elif since is not None:
        n = max(1, min(n, round(n - others_busy_cores(since))))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n

"""Low-priority helper processes that prepare something for a later run (never one that waits).

The engine probe (tl_core.models.engines) and the default model's warm-up at app start
(tl_core.training.features) run this way: a separate `python -m MODULE ...` at nice 19, one at a
time per lock, outliving the run or page that started it. TL_BACKGROUND_PROBE=0 switches them off
(the tests do: a probe would compete with the test's own timing-free work for the 2 cores).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path


def enabled() -> bool:
    return os.environ.get("TL_BACKGROUND_PROBE", "1") != "0"


def start(module: str, *args: str) -> subprocess.Popen | None:
    """`python -m module args...` detached from this process; None when switched off or no process
    could be started (the next run simply goes without what it would have prepared)."""
    if not enabled():
        return None
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # outlives a CLI run that ends first
    except OSError:
        return None


@contextlib.contextmanager
def low_priority_alone(lock: Path):
    """In the helper process: lowest CPU priority, and True only for the one holder of `lock`
    (a second helper for the same thing finds it taken and does nothing)."""
    import fcntl  # POSIX only, like the processes start() makes

    os.nice(19)  # the user's runs come first: a helper only uses idle CPU
    try:  # Linux's idle class: runs only on a core nobody else wants (nice 19 still takes slices)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # another OS, or not allowed: nice 19 alone
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "ab") as f:  # a lock file, never written: not a data file
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False  # another process is preparing the same thing now
            return
        yield True

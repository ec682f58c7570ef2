"""Low-priority helper processes that prepare something for a later run (never one that waits).

The engine probe (tl_core.models.engines) and the default model's warm-up at app start
(tl_core.training.features) run this way: a separate `python -m MODULE ...` at nice 19, one at a
time per lock, outliving the run or page that started it. TL_BACKGROUND_PROBE=0 switches them off
(the tests do: a probe would compete with the test's own timing-free work for the 2 cores).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

RUNS_FOLDER = "runs_active"  # in the cache folder: one empty file per training run, named PID-ID
HELPERS_FOLDER = "helpers"  # in the cache folder: one empty file per helper process, named PID
YIELD_DEADLINE_S = 900  # a helper waits at most this long for the runs to end, then goes on anyway


def cache_dir() -> Path:
    """TL_CACHE: the engine probes, ONNX files, feature cache and these helpers' bookkeeping."""
    return Path(os.environ.get("TL_CACHE", Path.home() / ".cache" / "tl_studio"))


def enabled() -> bool:
    return os.environ.get("TL_BACKGROUND_PROBE", "1") != "0"


def start(module: str, *args: str) -> subprocess.Popen | None:
    """`python -m module args...` detached from this process; None when switched off or no process
    could be started (the next run simply goes without what it would have prepared)."""
    if not enabled():
        return None
    try:  # through this module's main: the helper is at the lowest priority before its imports
        return subprocess.Popen([sys.executable, "-m", __name__, module, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # outlives a CLI run that ends first
    except OSError:
        return None


def lowest_priority() -> None:
    """This process at nice 19 and in Linux's idle class: the user's runs come first."""
    os.nice(19 - os.nice(0))
    try:  # Linux's idle class: runs only on a core nobody else wants (nice 19 still takes slices)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # another OS, or not allowed: nice 19 alone


@contextlib.contextmanager
def low_priority_alone(lock: Path):
    """In the helper process: lowest CPU priority, and True only for the one holder of `lock`
    (a second helper for the same thing finds it taken and does nothing). `lock` lies in the cache
    folder, where the helper is listed while it works, for training runs to pause it (run_active)."""
    import fcntl  # POSIX only, like the processes start() makes

    lowest_priority()
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "ab") as f:  # a lock file, never written: not a data file
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False  # another process is preparing the same thing now
            return
        listed = list_this_helper(lock.parent)
        try:
            if runs_active(lock.parent):
                yield_to_runs(lock.parent)  # started by a run's end while another run trains
            yield True
        finally:
            listed.unlink(missing_ok=True)


@contextlib.contextmanager
def run_active(cache: Path):
    """Around a training run: the helpers working on this cache folder are paused (SIGSTOP) until
    the last run ends, and wait between their steps while any run is on (yield_to_runs).

    Why not just their idle scheduling class: on the 2-core Xeon the launch warm-up, in that class,
    still took the sample's first run from 37 to 25 images/s (PyTorch fp32) and timed its own engines
    wrong, 9 images/s for PyTorch (issue 21). A run killed without cleaning up leaves a marker whose
    process is gone (ignored) and its helpers paused until the next run ends, or the server that
    followed it resumes them (resume_helpers)."""
    mark = cache / RUNS_FOLDER / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()  # an empty marker: not a data file
    except OSError:
        mark = None  # a read-only cache: helpers simply go on
    _signal_helpers(cache, signal.SIGSTOP)
    try:
        yield
    finally:
        if mark is not None:
            mark.unlink(missing_ok=True)
        resume_helpers(cache)


def resume_helpers(cache: Path) -> None:
    """Let the paused helpers go on, unless a training run is still on."""
    if not runs_active(cache):
        _signal_helpers(cache, signal.SIGCONT)


def list_this_helper(cache: Path) -> Path:
    """List this process in `cache` as a helper that runs pause (run_active); -> the listing to remove."""
    listed = cache / HELPERS_FOLDER / str(os.getpid())
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.touch()  # an empty marker: not a data file
    return listed


def _signal_helpers(cache: Path, sig: int) -> None:
    for listed in (cache / HELPERS_FOLDER).glob("*"):
        pid = int(listed.name) if listed.name.isdigit() else 0
        if pid and _is_helper(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        else:
            listed.unlink(missing_ok=True)  # killed while listed: never signal whoever has its pid now


def _is_helper(pid: int) -> bool:
    try:
        return b"tl_core" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # gone (or not Linux: helpers are then never paused, only yield between steps)


def runs_active(cache: Path) -> bool:
    """Whether a live process has a training run marked in `cache` (run_active)."""
    for mark in (cache / RUNS_FOLDER).glob("*-*"):
        if pid_alive(int(mark.name.split("-")[0])):
            return True
        mark.unlink(missing_ok=True)  # its process was killed mid-run
    return False


def yield_to_runs(cache: Path, deadline_s: float = YIELD_DEADLINE_S, every_s: float = 0.5) -> None:
    """In a helper, between two steps: wait while a training run shares `cache` (with a deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and runs_active(cache):
        time.sleep(every_s)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent (a zombie, state Z) is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


if __name__ == "__main__":  # python -m tl_core.base.background MODULE ARGS...: how start() runs a helper
    # lowest priority first, then the helper's own imports (torch, timm: seconds of CPU): at normal
    # priority a run starting meanwhile counted that core as busy and trained on one thread
    # (bench.partial_cache, hymenoptera: the frozen pass 9.9 s instead of 4.3)
    import atexit
    import runpy

    lowest_priority()
    # Before those imports too: wait while a run trains on this cache, and be listed so that a run
    # starting meanwhile pauses this process. Unlisted, an engine probe's imports ran beside the
    # run that followed the one that started it, even in the idle class: its frozen pass took
    # 12.2 s instead of 8.1 (bench.partial_cache, hymenoptera, warm)
    yield_to_runs(cache_dir())
    with contextlib.suppress(OSError):
        atexit.register(list_this_helper(cache_dir()).unlink, missing_ok=True)
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)

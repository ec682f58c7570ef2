"""The process runner: a job trained by a child process of its own, and the child's side of it.

`ProcessJob` (on the web server) starts `python -m tl_core run-job RUN_DIR` and follows its run
folder; `run_here` (in the child, or a pool worker) trains that folder in this process, beats its
heartbeat, and dies with its parent.

A child's imports (torch, timm, torchvision) take about 5 s of one core on the 2-core Xeon, half of
the sample's whole feature-extraction run. So the server keeps one spare child that has done them
already (`run-job --spare`) and hands it the next run folder on its stdin: the app starts it when
it launches and again after each run (`keep_spare`); TL_SPARE_CHILD=0 switches it off.

A spare that has finished a run waits on as the spare for REUSE_GRACE_S: runs back to back (a
comparison's four members, a queue) then skip the imports. Measured on the 2-core EPYC, a 4-strategy
Compare on the sample waited 5.9 s before each of its last three members (a fresh spare still
importing), 17.6 s of the app's 58 s against the CLI's 44 s (issue 21). An idle server lets the
trained child go after the grace and starts a fresh one, so it does not hold a trained process's
memory; a child serves at most MAX_RUNS_PER_CHILD runs, and only runs that finished.
"""
from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tl_core.base import background
from tl_core.base.config import RunConfig
from tl_core.base.events import Failed, Progress, Stopped
from tl_core.base.messages import Message
from tl_core.base.status import RunStatus
from tl_core.data.dataset import Dataset
from tl_core.jobs import runs
from tl_core.jobs.job import Job


class ProcessJob(Job):
    """A job trained by a child process of its own (`python -m tl_core run-job RUN_DIR`).

    The queue, cap and owner rules are the manager's, as for a thread; the child records events in
    the run folder and this job's thread follows them there. A crash in native code (a CUDA driver
    error, the kernel's out-of-memory killer) ends the child only, and its memory goes back to the
    system when it exits.
    """

    POLL_S = 0.2
    child_pid: int | None = None  # the training process, once started

    def _work(self) -> None:
        if not self._manager.acquire(self):
            self._record([Stopped.of(Message("job.stopped_in_queue"), epoch=0)])
            return
        self.status = RunStatus.RUNNING
        try:
            self._follow_child()
        finally:
            self._manager.release()

    def _follow_child(self) -> None:
        tail = runs.EventTail(self.run_dir)
        child, spare = self._start_child()
        self.child_pid = child.pid
        asked = False
        # a spare stays alive after its run (it may serve the next): the run is over when its folder is closed
        while child.poll() is None and not (spare is not None and self._closed()):
            if self._stop.is_set() and not asked:
                runs.request_stop(self.run_dir)
                asked = True
            self._emit_all(tail.read())
            self._stop.wait(self.POLL_S)
        self._emit_all(tail.read())
        if not self.done:  # no terminal event: the child died (killed, or a crash in native code)
            self._record([Failed.of(_died(child.returncode), detail=f"exit status {child.returncode}")])
        background.resume_helpers(background.cache_dir())  # the child paused them; it may have been killed
        # after the run, not during it: a fresh spare's imports would slow this run down
        if spare is None:
            keep_spare()
        else:  # the next run skips the imports, if this child may serve it
            _hand_back(spare, reusable=child.poll() is None and self.status == RunStatus.FINISHED)

    def _closed(self) -> bool:
        """The run's last event was read and its run.json closed (the child writes that right after)."""
        if not self.done:
            return False
        try:
            return runs.read_json(self.run_dir / "run.json").get("ended") is not None
        except (OSError, ValueError):
            return False

    def _start_child(self) -> tuple[subprocess.Popen, "_Spare | None"]:
        """(the child, the spare it is when it was one): the spare child if one is ready for this
        environment, else a new one; either way its output goes to the run folder's process.log
        (the child's tracebacks, for an admin)."""
        spare = _take_spare() if self.cfg.devices == 1 else None
        if spare is not None:
            try:
                spare.child.stdin.write(f"{self.run_dir.resolve()}\n".encode())
                spare.child.stdin.flush()  # kept open: after this run the child may serve the next
                spare.served += 1
                return spare.child, spare
            except OSError:  # it died while waiting (killed by hand): start one as usual
                spare.child.kill()
        with open(self.run_dir / "process.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "tl_core", "run-job", str(self.run_dir),
                                     "--devices", str(self.cfg.devices)],
                                    stdout=log, stderr=subprocess.STDOUT, env=child_env()), None

    def _emit_all(self, events) -> None:
        for e in events:
            self._emit(e)


def _died(returncode: int) -> Message:
    """Why a child that wrote no terminal event is gone, as a message kind (the UI's language)."""
    if returncode == -signal.SIGKILL:
        how = Message("job.how_killed", {"signal": -returncode})
    elif returncode < 0:
        how = Message("job.how_signal", {"signal": -returncode})
    else:
        how = Message("job.how_exit", {"status": returncode})
    return Message("job.child_died", {"how": how})


# How long a child that has just finished a run waits as the spare before a fresh one replaces
# it: a comparison submits its next member within about 1 s of the last one's end.
REUSE_GRACE_S = 10.0
# Runs one child serves at most: a bound on what a long-lived process can accumulate (memory
# the allocator keeps, state a library leaves behind)
MAX_RUNS_PER_CHILD = 8


@dataclass
class _Spare:
    """A `run-job --spare` child, the environment and folder it was started with, runs it served."""
    child: subprocess.Popen
    env: dict
    cwd: str
    served: int = 0


_spare_lock = threading.Lock()
_spare: _Spare | None = None
_spare_requests: queue.Queue[threading.Event] = queue.Queue()
_spawner: threading.Thread | None = None


def spare_wanted() -> bool:
    return os.environ.get("TL_SPARE_CHILD", "1") != "0"


def keep_spare(wait_s: float = 0.0) -> None:
    """Start the spare child unless one is alive (or switched off). It imports what a run needs,
    then waits on its stdin for the run folder to train (`run-job --spare`). Waits up to `wait_s`
    for the process to be started (not for its imports)."""
    global _spawner
    if not spare_wanted():
        return
    with _spare_lock:
        if _spawner is None:
            # a child started with PR_SET_PDEATHSIG dies with the *thread* that started it: a job's
            # thread or a Streamlit script run ends long before the spare is used, this one never
            _spawner = threading.Thread(target=_spawn_spares, daemon=True, name="tl-spare")
            _spawner.start()
    started = threading.Event()
    _spare_requests.put(started)
    started.wait(wait_s)


def spare_pid() -> int | None:
    """The spare child's process id while one is alive (for tests and `ps`)."""
    with _spare_lock:
        return _spare.child.pid if _spare is not None and _spare.child.poll() is None else None


def end_spare() -> None:
    """Let the spare go (it exits when its stdin closes)."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None:
        _let_go(spare, wait_s=30)


def _let_go(spare: _Spare, wait_s: float = 0.0) -> None:
    """Close the child's stdin: it exits once it reads EOF (after its imports or its last run).
    Reaped by a thread, so the caller (a job's thread, which a comparison joins) does not wait
    for the interpreter's exit, unless asked to, up to `wait_s`."""
    try:
        spare.child.stdin.close()
    except OSError:
        pass  # already gone
    reaper = threading.Thread(target=_reap, args=(spare.child,), daemon=True, name="tl-spare-reaper")
    reaper.start()
    reaper.join(wait_s)


def _reap(child: subprocess.Popen, deadline_s: float = 60.0) -> None:
    """Wait for a let-go child to exit; one still there after `deadline_s` is killed."""
    try:
        child.wait(deadline_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(30)  # SIGKILL ends it at once


def _hand_back(spare: _Spare, reusable: bool) -> None:
    """A child that has just finished a run becomes the spare for REUSE_GRACE_S (unless its run did
    not finish, it served its MAX_RUNS_PER_CHILD or a spare is there already); then, or else at
    once, a fresh one replaces it."""
    global _spare
    with _spare_lock:
        kept = reusable and spare.served < MAX_RUNS_PER_CHILD and (_spare is None or _spare.child.poll() is not None)
        if kept:
            _spare = spare
    if not kept:
        _let_go(spare)
        keep_spare()
        return
    timer = threading.Timer(REUSE_GRACE_S, _retire, args=(spare, spare.served))
    timer.daemon = True
    timer.start()


def _retire(spare: _Spare, served: int) -> None:
    """After the grace: the trained child, if no run took it meanwhile, gives way to a fresh spare."""
    global _spare
    with _spare_lock:
        if _spare is not spare or spare.served != served:
            return  # a run took it (or it was let go; or it is back from a later run, with a timer of its own)
        _spare = None
    _let_go(spare)
    keep_spare()


def _spawn_spares() -> None:
    global _spare
    while True:
        started = _spare_requests.get()
        with _spare_lock:
            if _spare is None or _spare.child.poll() is not None:
                env = child_env()
                try:
                    child = subprocess.Popen([sys.executable, "-m", "tl_core", "run-job", "--spare"],
                                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, env=env)
                    _spare = _Spare(child, same_run(env), os.getcwd())
                except OSError:
                    _spare = None  # out of processes: the next run starts its child as before
        started.set()


def _take_spare() -> _Spare | None:
    """The spare child, if it is alive and was started with this process's environment and folder
    (a test or an admin may have changed TL_CACHE or TL_RUNS since); a stale one is ended."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is None or usable_spare(spare.child, spare.env, spare.cwd) is None:
        return None
    return spare


def usable_spare(child: subprocess.Popen, env: dict, cwd: str) -> subprocess.Popen | None:
    """child if it is alive and was started with this process's environment and folder; else it
    is ended and None (a test or an admin may have changed TL_CACHE or TL_RUNS since)."""
    if child.poll() is None and env == same_run(child_env()) and cwd == os.getcwd():
        return child
    child.kill()
    child.wait(30)  # a deadline: SIGKILL ends it at once
    return None


def same_run(env: dict) -> dict:
    """The environment without what changes under a server while no run reads it: pytest's name of
    the current test, and the cache folder torch's compiler sets for itself once torch is imported
    (the server does import it, for a page's predictions; seen in the bench's first cold run)."""
    return {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "TORCHINDUCTOR_"))}


def wait_for_run_folder() -> Path | None:
    """In a spare child, after its imports or its last run: the run folder the server hands over
    on stdin (None when the server let it go). From then on its output goes to that folder's
    process.log."""
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        return None
    run_dir = Path(line)
    log = os.open(run_dir / "process.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return run_dir


def child_env() -> dict:
    # the child must import tl_core from the same checkout as this server, wherever it was started
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class _HereJob(Job):
    """A queued run folder trained by this very process (a process-runner child, a pool worker)."""

    def _emit(self, event) -> None:
        if isinstance(event, Progress) and event.phase == "weights":
            runs.append_event(self.run_dir, event)  # _record does not see it; the follower must
        super()._emit(event)

    def stop(self) -> None:
        self._stop.set()


def die_with_parent() -> None:
    """The kernel kills this process when its parent dies (Linux): a killed pool worker takes its
    job with it, so the run ends Interrupted rather than training on unwatched."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watcher's parent check below still ends it


def name_process(name: str) -> None:
    """This process's name as ps, top and psutil show it (Linux, 15 characters): a task child says
    whether it waits as the spare or works (bench/faults.py counts the working ones against the cap)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15])  # 15 = PR_SET_NAME
    except (OSError, AttributeError):
        pass  # not Linux: the name stays "python"


def _watch(job: Job, parent: int, done: threading.Event) -> None:
    """Beat the heartbeat, turn the stop file (or SIGTERM) into the stop flag, die with the parent."""
    while not done.wait(runs.HEARTBEAT_EVERY_S if not job._stop.is_set() else 1.0):
        if os.getppid() != parent:
            os._exit(137)  # orphaned: as if killed with the parent (PR_SET_PDEATHSIG elsewhere)
        try:
            runs.beat(job.run_dir)
            if runs.stop_requested(job.run_dir):
                job.stop()
        except OSError:
            pass  # shared storage hiccup: the next beat tries again


def run_here(run_dir: str | Path, cfg: RunConfig | None = None):
    """Train the queued run folder `run_dir` in this process; returns its last event.

    Used by the process runner's child and by pool workers. The config is run.json's unless given;
    the dataset is dataset.json's. Stop: runs.request_stop(run_dir) from anywhere, or SIGTERM.
    """
    from tl_core.training import distributed  # deferred: torch only where a run trains (ui imports this module)
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    run_dir = Path(run_dir)
    info = runs.read_json(run_dir / "run.json")
    if info.get("status") != runs.QUEUED:
        return None  # already stopped while queued (or run before): nothing to do
    cfg = cfg or RunConfig.from_dict(info["config"])
    job = _HereJob(None, cfg, Dataset.load(run_dir / "dataset.json"), run_dir)
    die_with_parent()
    parent, done = os.getppid(), threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: job.stop())
    runs.beat(run_dir)
    threading.Thread(target=_watch, args=(job, parent, done), daemon=True, name="tl-watch").start()
    try:
        if runs.stop_requested(run_dir):
            job._stop.set()  # stopped between being queued and starting here
        job.status = RunStatus.RUNNING
        job._record(distributed.finish_at_end(job._attempts(train)))  # rank 0 of a --devices N run
    finally:
        done.set()
    events = job.events()
    return events[-1] if events else None


def run_here_other_rank(run_dir: str | Path) -> None:
    """A rank other than 0 of a run-job under torchrun: trains its share of the run; rank 0 (run_here)
    alone writes the folder and watches the stop file, and its stop reaches every rank."""
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    run_dir = Path(run_dir)
    info = runs.read_json(run_dir / "run.json")
    if info.get("status") not in (runs.QUEUED, runs.RUNNING):
        return  # stopped while queued: rank 0 skips it too
    die_with_parent()
    for _ in train(RunConfig.from_dict(info["config"]), Dataset.load(run_dir / "dataset.json")):
        pass

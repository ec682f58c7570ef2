"""A task's work in a child process of its own: `python -m tl_core.jobs.task_child`.

Why: a task on a thread of the web server shares its interpreter. In the 20-session campaign of
issue 20 (bench/faults.py) the audits, speed probes and exports running on the server's threads
held the health check at p95 1,064 ms; the same server answered at p95 74 ms while a training ran
in a child process (tl_core.jobs.settings). A child has its own GIL, and a Stop ends it at once.

Not multiprocessing: every multiprocessing child (fork server included) first re-runs the parent's
`__main__`, and in the web server that is the app's own script (Streamlit installs each page run as
`__main__`): the first campaign with a fork server ran app.py, its warm-ups and its spare training
child, in every task. A plain subprocess reads the work from its stdin instead.

The work is a `Call`: a module-level function, sent by its name, and JSON arguments, as one JSON
line on the child's stdin (no pickles: DESIGN.md). The child writes JSON lines on its stdout:
{"progress": [done, total]} any number of times, then one of {"result": value},
{"user_error": Message.to_dict()} or {"failed": {"detail", "trace", "oom"}}.
One spare child waits with torch, timm and ONNX Runtime imported, so a task starts at once
(a fresh child spends seconds importing them); it is started again after each use.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tl_core.base.messages import Message, UserError, mentions_out_of_memory, short_error
from tl_core.jobs.process import child_env, die_with_parent, name_process, same_run, usable_spare

IMPORTS = ("torch", "timm", "onnxruntime", "tl_core.jobs.page_work")  # what a spare has ready
POLL_S = 0.2  # how often a stop is looked for
WAITING, WORKING = "tl-task-spare", "tl-task-work"  # a child's process name before and after it gets work
KILL_WAIT_S = 10  # a killed child is reaped within this


@dataclass(frozen=True)
class Call:
    """fn(*args, progress=report) in a child process: fn a module-level function, args and its
    result JSON values (a RunConfig or Dataset travels as its to_dict())."""

    fn: Callable
    args: tuple = ()

    def __post_init__(self):
        if "<" in self.fn.__qualname__ or "." in self.fn.__qualname__:
            raise TypeError(f"{self.fn.__qualname__} is not a module-level function: a child cannot import it")
        json.dumps(self.args)  # a TypeError here, in the page, names what cannot travel

    def to_line(self) -> bytes:
        return _line({"fn": f"{self.fn.__module__}:{self.fn.__qualname__}", "args": list(self.args)})


def _line(value) -> bytes:
    return json.dumps(value).encode() + b"\n"


class ChildFailed(Exception):
    """The work failed in the child: `detail` is a sentence's parameter, `trace` for an admin."""

    def __init__(self, detail, trace: str = "", out_of_memory: bool = False):
        super().__init__(str(detail))
        self.detail, self.trace, self.out_of_memory = detail, trace, out_of_memory


class ChildStopped(Exception):
    """The stop flag was set: the child was killed."""


def run(call: Call, report: Callable[[int, int], None], stop: threading.Event):
    """call's result, computed in a child; raises UserError (its sentence), ChildStopped or ChildFailed."""
    child = _spares.take() or _start()
    _spares.refill()  # the next task's child imports while this one works
    watcher = threading.Thread(target=_kill_on_stop, args=(child, stop), daemon=True, name="tl-task-stop")
    watcher.start()
    try:
        try:
            child.stdin.write(call.to_line())
            child.stdin.close()
        except OSError:
            pass  # it died before reading: its frames (none) and exit status say so below
        return _follow(child, report, stop)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(KILL_WAIT_S)
        watcher.join(KILL_WAIT_S)


def _start() -> subprocess.Popen:
    # started from the calling thread: PR_SET_PDEATHSIG follows that thread, which waits for the child
    return subprocess.Popen([sys.executable, "-m", "tl_core.jobs.task_child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=child_env())


def _kill_on_stop(child: subprocess.Popen, stop: threading.Event) -> None:
    while child.poll() is None:
        if stop.wait(POLL_S):
            child.kill()
            return


def _follow(child: subprocess.Popen, report, stop: threading.Event):
    while True:
        frame = _read_frame(child.stdout)
        if frame is None:  # gone: stopped, killed (the OOM killer) or crashed
            if stop.is_set():
                raise ChildStopped
            raise ChildFailed(_how(child.wait(KILL_WAIT_S)))  # SIGKILL's sentence: often memory
        if "progress" in frame:
            report(*frame["progress"])
        elif "result" in frame:
            return frame["result"]
        elif "user_error" in frame:
            raise UserError(Message.from_dict(frame["user_error"]))
        else:
            failed = frame["failed"]
            raise ChildFailed(failed["detail"], failed["trace"], failed["oom"])


def _read_frame(stream) -> dict | None:
    """The next whole line's frame, or None at the end (a line cut short by a kill counts as the end)."""
    line = stream.readline()
    if not line.endswith(b"\n"):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def _how(exitcode: int | None) -> Message:
    if exitcode is not None and exitcode < 0:
        return Message("job.how_killed" if exitcode == -9 else "job.how_signal", {"signal": -exitcode})
    return Message("job.how_exit", {"status": exitcode})


class _Spare:
    """One child that has done its imports and waits on stdin; started by a thread that lives as
    long as the server (PR_SET_PDEATHSIG follows the starting thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._child: tuple[subprocess.Popen, dict, str] | None = None
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    def refill(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._keep, daemon=True, name="tl-task-spare")
                self._thread.start()
        self._wanted.set()

    def take(self) -> subprocess.Popen | None:
        """The spare, if alive and started with this environment and folder; a stale one is ended."""
        with self._lock:
            spare, self._child = self._child, None
        return usable_spare(*spare) if spare is not None else None

    def _keep(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                if self._child is None or self._child[0].poll() is not None:
                    try:
                        self._child = (_start(), same_run(child_env()), os.getcwd())
                    except OSError:
                        self._child = None  # out of processes: the next task starts its own


_spares = _Spare()


# ---------------------------------------------------------------- in the child


def _main() -> None:
    die_with_parent()  # the server (or its spare-keeping thread) gone: nobody reads the frames
    name_process(WAITING)
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's print goes to the server's log, never into the frames
    for name in IMPORTS:
        try:
            __import__(name)
        except ImportError:
            pass  # optional (ONNX Runtime): the work imports what it needs
    line = sys.stdin.buffer.readline()  # a spare waits here
    if not line:
        return  # let go unused
    name_process(WORKING)

    def send(frame: bytes) -> None:
        frames.write(frame)  # encoded before: a frame is written whole or not at all
        frames.flush()

    def progress(done, total) -> None:
        send(_line({"progress": [int(done), int(total)]}))

    try:
        call = json.loads(line)
        module, name = call["fn"].split(":")
        result = getattr(importlib.import_module(module), name)(*call["args"], progress=progress)
        outcome = _line({"result": result})  # a result that JSON cannot carry fails here, as the work
    except UserError as e:
        outcome = _line({"user_error": e.message.to_dict()})
    except BaseException as e:  # noqa: BLE001  (every failure goes back as a sentence)
        oom = isinstance(e, MemoryError) or mentions_out_of_memory(str(e))
        outcome = _line({"failed": {"detail": short_error(e), "trace": traceback.format_exc(), "oom": oom}})
    send(outcome)


if __name__ == "__main__":
    _main()

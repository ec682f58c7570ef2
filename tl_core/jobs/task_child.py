"""A task's work in a child process of its own, forked from a fork server that imported torch once.

Why: a task on a thread of the web server shares its interpreter. In the 20-session campaign of
issue 20 (bench/faults.py) the audits, speed probes and exports running on the server's threads
held the health check at p95 1,064 ms; the same server answered at p95 74 ms while a training ran
in a child process (tl_core.jobs.settings). A child has its own GIL, and a Stop ends it at once.

multiprocessing's fork server (the kept library): one clean process imports torch, timm and ONNX
Runtime once; each task is a fork of it, so it starts in milliseconds with torch loaded, and never
inherits the web server's threads (forking the server itself would copy its locks mid-use).
The work is a `Call` of a module-level function (pickled by name) and its arguments; the child
reports progress and sends back the result, a user's sentence, or the failure's text.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tl_core.base.messages import Message, UserError, mentions_out_of_memory, short_error
from tl_core.jobs.process import die_with_parent

# imported once in the fork server, so a task's fork has them (a missing one is skipped quietly)
PRELOAD = ["torch", "timm", "onnxruntime", "PIL.Image", "tl_core.jobs.page_work"]
# multiprocessing re-runs the parent's __main__ script in every child: in the web server that is
# streamlit's console script, whose import took 0.8 s of each task's start (0.18 s once preloaded)
WEB_SERVER_MAIN = "streamlit.web.cli"
POLL_S = 0.2  # how often the waiting thread looks at the stop flag
KILL_WAIT_S = 10  # a killed child is reaped within this


@dataclass(frozen=True)
class Call:
    """fn(*args, progress=report) in a child process; fn must be a module-level function."""

    fn: Callable
    args: tuple = ()


class ChildFailed(Exception):
    """The work failed in the child: `detail` is a sentence's parameter, `trace` for an admin."""

    def __init__(self, detail, trace: str = "", out_of_memory: bool = False):
        super().__init__(str(detail))
        self.detail, self.trace, self.out_of_memory = detail, trace, out_of_memory


class ChildStopped(Exception):
    """The stop flag was set: the child was killed."""


_lock = threading.Lock()
_context = None


def context():
    """The fork-server context, with PRELOAD set before its server first starts."""
    global _context
    with _lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD + ([WEB_SERVER_MAIN] if WEB_SERVER_MAIN in sys.modules else []))
            _context = ctx
        return _context


def warm_up() -> None:
    """Start the fork server now (it imports torch: seconds), so the first task forks at once."""
    context()
    multiprocessing.forkserver.ensure_running()


def run(call: Call, report: Callable[[int, int], None], stop: threading.Event):
    """call's result, computed in a child; raises UserError (its sentence), ChildStopped or ChildFailed."""
    ctx = context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(call, send), name="tl-task", daemon=True)
    child.start()
    send.close()  # the child holds the other end: EOF here once it is gone
    try:
        return _follow(child, receive, report, stop)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(KILL_WAIT_S)


def _follow(child, receive, report, stop: threading.Event):
    while True:
        if stop.is_set():
            raise ChildStopped
        if not receive.poll(POLL_S):
            continue
        try:
            what, payload = receive.recv()
        except EOFError:  # gone without a word: killed (the OOM killer), or crashed in native code
            child.join(KILL_WAIT_S)
            raise ChildFailed(_how(child.exitcode)) from None  # SIGKILL's sentence says: often memory
        if what == "progress":
            report(*payload)
        elif what == "result":
            return payload
        elif what == "user_error":
            raise UserError(payload)
        else:
            raise ChildFailed(*payload)


def _how(exitcode: int | None) -> Message:
    if exitcode is not None and exitcode < 0:
        return Message("job.how_killed" if exitcode == -9 else "job.how_signal", {"signal": -exitcode})
    return Message("job.how_exit", {"status": exitcode})


def _child_main(call: Call, send) -> None:
    """In the child: run the work, send progress, then exactly one outcome."""
    die_with_parent()  # the fork server, which ends with the web server: a kill -9 ends its tasks too
    # the parent sees a daemon (ended at its exit); here it may start DataLoader workers (CUDA)
    multiprocessing.current_process()._config["daemon"] = False

    def progress(done: int, total: int) -> None:
        send.send(("progress", (int(done), int(total))))

    try:
        outcome = ("result", call.fn(*call.args, progress=progress))
    except UserError as e:
        outcome = ("user_error", e.message)
    except BaseException as e:  # noqa: BLE001  (every failure goes back as a sentence)
        oom = isinstance(e, MemoryError) or mentions_out_of_memory(str(e))
        outcome = ("failed", (short_error(e), traceback.format_exc(), oom))
    try:
        send.send(outcome)
    except Exception as e:  # a result that cannot be pickled: say so rather than die silently
        send.send(("failed", (short_error(e), traceback.format_exc(), False)))

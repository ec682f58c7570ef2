"""Task: heavy work a page asks for, run on a thread of its own in the same slots as trainings.

The audit's features, the speed probe, the feature map, the embeddings export, the model exports'
checks, the data-size curve and the wrong-folder search used to run in the page script, outside TL_MAX_JOBS: on the hosted server a few strangers clicking them could
starve the trainings and the web server itself (issue 20). A Task takes a slot from the SAME
JobManager as trainings (one FIFO queue, one cap), so TL_MAX_JOBS is how many heavy things the
server does at once, whoever asked for them.

Local mode has one user, who must not wait ten minutes behind their own training for an audit:
there a task starts at once, but still through this same Task (one code path; the page only polls
it). The work never touches the UI: it reports progress(done, total), and the page reads status,
queue position, progress and the result or the error sentence.

Where the work runs: a `task_child.Call` (what the pages give) runs in a child process of its
own (task_child says why: the web server's health check); a plain callable runs on the
task's own thread (light work, and the tests of the line and the caps).
"""
from __future__ import annotations

import secrets
import threading
import traceback
from collections.abc import Callable

from tl_core.base.messages import Message, UserError, mentions_out_of_memory, short_error
from tl_core.base.status import RunStatus
from tl_core.jobs import task_child
from tl_core.jobs.job import JobManager

# what each kind does, in words (a parameter of the task.* sentences)
WHAT = {
    "audit_features": Message("task.what_audit_features"),
    "speed": Message("task.what_speed"),
    "gallery_speed": Message("task.what_gallery_speed"),
    "similarity": Message("task.what_similarity"),
    "map": Message("task.what_map"),
    "embeddings": Message("task.what_embeddings"),
    "export_onnx": Message("task.what_export_onnx"),
    "export_safetensors": Message("task.what_export_safetensors"),
    "curve": Message("task.what_curve"),
    "issues": Message("task.what_issues"),
}


class TaskStopped(Exception):
    """Raised inside a task's work by its progress callback once stop() was asked."""


class Task:
    """One piece of heavy work: status (queued, running, finished, failed, stopped), its place
    in the line, progress (done, total), then `result` or `error` (a Message) and stop()."""

    def __init__(self, kind: str, owner: str | None, key, work: Callable, slots: JobManager | None):
        if kind not in WHAT:
            raise ValueError(f"unknown task kind {kind!r}")
        self.id = secrets.token_urlsafe(16)  # unguessable, like a job's id
        self.kind, self.owner, self.key = kind, owner, key
        self.status = RunStatus.QUEUED
        self.progress = (0, 0)
        self.result = None
        self.error: Message | None = None
        self.detail = ""  # the traceback of an unexpected failure, for an admin
        self._work, self._slots = work, slots
        self._stop = threading.Event()  # JobManager.acquire reads it: a stopped task leaves the queue
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tl-task-{kind}", daemon=True)

    @property
    def done(self) -> bool:
        return self.status.done

    def queue_position(self) -> int:
        """0 when running, done or not queued for a slot; else 1 + the number ahead of it."""
        return self._slots.position(self) if self._slots is not None else 0

    def stop(self) -> None:
        """A queued task leaves the line; a running one ends at its next progress report."""
        self._stop.set()
        if self._slots is not None:
            self._slots.wake()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the task has ended (within `timeout` seconds)."""
        return self._ended.wait(timeout)

    def _report(self, done: int, total: int) -> None:
        if self._stop.is_set():
            raise TaskStopped
        self.progress = (int(done), int(total))

    def _run(self) -> None:
        if self._slots is not None and not self._slots.acquire(self):
            self._end(RunStatus.STOPPED, error=Message("job.stopped_in_queue"))
            return
        try:
            self.status = RunStatus.RUNNING
            self._end(*self._outcome())
        finally:
            if not self.done:  # a BaseException (SystemExit...) went through: still end, and say so
                self._end(RunStatus.FAILED, error=Message("task.failed", {"what": WHAT[self.kind], "detail": "?"}))
            if self._slots is not None:
                self._slots.release()  # whatever happened, the next job or task gets the slot

    def _outcome(self) -> tuple:
        """(status, result, error) of running the work here."""
        what = WHAT[self.kind]
        try:
            result = self._call_work()
        except (TaskStopped, task_child.ChildStopped):
            return RunStatus.STOPPED, None, Message("task.stopped", {"what": what})
        except task_child.ChildFailed as e:  # in a child: its text and traceback came back
            self.detail = e.trace
            if e.out_of_memory:
                return RunStatus.FAILED, None, Message("task.out_of_memory", {"what": what})
            return RunStatus.FAILED, None, Message("task.failed", {"what": what, "detail": e.detail})
        except UserError as e:  # the work's own sentence (no weights, a missing image folder...)
            return RunStatus.FAILED, None, e.message
        except Exception as e:  # anything else: one sentence for the user, the traceback for an admin
            self.detail = traceback.format_exc()
            if isinstance(e, MemoryError) or mentions_out_of_memory(str(e)):
                return RunStatus.FAILED, None, Message("task.out_of_memory", {"what": what})
            return RunStatus.FAILED, None, Message("task.failed", {"what": what, "detail": short_error(e)})
        if self._stop.is_set():  # asked during work that reports no progress (the speed probe)
            return RunStatus.STOPPED, None, Message("task.stopped", {"what": what})
        return RunStatus.FINISHED, result, None

    def _call_work(self):
        if isinstance(self._work, task_child.Call):
            return task_child.run(self._work, self._report_from_child, self._stop)
        return self._work(self._report)

    def _report_from_child(self, done: int, total: int) -> None:
        self.progress = (int(done), int(total))  # a stop kills the child instead (task_child.run)

    def _end(self, status: RunStatus, result=None, error: Message | None = None) -> None:
        self.result, self.error = result, error
        self.status = status  # last: a poller that sees it done also sees the result
        self._ended.set()


class TaskRunner:
    """This server's tasks: one active task per (owner, kind), slots from `slots` when given.

    slots=None (local mode): a task starts at once. Otherwise it queues in `slots`, behind the
    trainings and tasks already waiting there, and holds one of its max_concurrent slots while it runs.
    """

    def __init__(self, slots: JobManager | None, keep_done: int = 32):
        self.slots = slots
        # finished tasks hold their results (a report, a zip of features): keep the latest per
        # (owner, kind) for a page that reattaches after a refresh, and at most keep_done of them
        self.keep_done = keep_done
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def start(self, kind: str, owner: str | None, key, work: Callable) -> Task:
        """A new task running work(progress) for `key`; or this owner's active task of this
        kind, whatever its key (a second click, or a stranger's tenth, runs nothing more)."""
        with self._lock:
            active = self.latest(owner, kind)
            if active is not None and not active.done:
                return active
            task = Task(kind, owner, key, work, self.slots)
            self._forget_done(owner, kind)
            self._tasks[task.id] = task
            if self.slots is not None:
                self.slots.enqueue(task)  # in line now: its position shows before its thread runs
        task._thread.start()
        return task

    def latest(self, owner: str | None, kind: str) -> Task | None:
        """This owner's last task of this kind, or None."""
        mine = [t for t in list(self._tasks.values()) if t.owner == owner and t.kind == kind]
        return mine[-1] if mine else None

    def get(self, task_id: str | None, owner: str | None) -> Task | None:
        task = self._tasks.get(task_id) if task_id else None
        return task if task is not None and task.owner == owner else None

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def _forget_done(self, owner: str | None, kind: str) -> None:
        for k in [k for k, t in self._tasks.items() if t.done and t.owner == owner and t.kind == kind]:
            del self._tasks[k]  # the owner starts a new one of this kind: its last result is replaced
        done = [k for k, t in self._tasks.items() if t.done]
        for k in done[:max(0, len(done) - self.keep_done)]:
            del self._tasks[k]


def make_tasks(settings, runner) -> TaskRunner:
    """The task runner for a server with these settings, beside its training runner."""
    if not settings.hosted:
        return TaskRunner(None)  # one user: an audit never waits behind that user's own training
    if settings.runner != "rq":
        return TaskRunner(runner)  # the trainings' own JobManager: one queue and one cap for both
    # TL_RUNNER=rq: trainings run in worker processes (often other machines), so this web process
    # holds none of their slots, yet tasks run here, beside the web server. They get a cap of their
    # own, TL_MAX_JOBS at once in one FIFO line: the web process then never does more heavy work at
    # once than a thread-runner server of the same settings would, whatever strangers click.
    return TaskRunner(JobManager(max_concurrent=settings.max_jobs))

"""Job: runs train() on a background thread. The only threading code in TL Studio.

The worker thread never touches the UI: it appends events to a buffer (read by the page's
polling fragment) and to the run folder's events.jsonl (read after a refresh or restart).
A process-wide cap on concurrent jobs keeps a shared server usable; more wait in a FIFO queue.
"""
from __future__ import annotations

import os
import secrets
import threading
import traceback
from collections import deque
from pathlib import Path

from . import runs
from .config import RunConfig
from .data import Dataset
from .events import Failed, Stopped, TERMINAL, Finished

_STATUS = {Finished: "finished", Stopped: "stopped", Failed: "failed"}


class Job:
    def __init__(self, manager: "JobManager", cfg: RunConfig, dataset: Dataset, run_dir: Path):
        self.id = secrets.token_urlsafe(16)  # unguessable: it is the only handle on the job
        self.cfg, self.dataset, self.run_dir = cfg, dataset, run_dir
        self._manager = manager
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list = []
        self.status = "queued"
        self._thread = threading.Thread(target=self._work, name=f"tl-job-{self.id[:6]}", daemon=True)

    def events(self, since: int = 0) -> list:
        with self._lock:
            return self._events[since:]

    def stop(self) -> None:
        self._stop.set()
        self._manager.wake()

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed")

    def queue_position(self) -> int:
        return self._manager.position(self)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _emit(self, event) -> None:
        with self._lock:
            self._events.append(event)
        if isinstance(event, TERMINAL):
            self.status = _STATUS[type(event)]

    def _work(self) -> None:
        from .train import train

        if not self._manager.acquire(self):
            for e in runs.record(self.run_dir, [Stopped(0, "Stopped before it started (it was queued).")]):
                self._emit(e)
            return
        self.status = "running"
        runs.mark_running(self.run_dir)
        try:
            for e in runs.record(self.run_dir, train(self.cfg, self.dataset, self._stop, self.run_dir)):
                self._emit(e)
        except BaseException as e:  # e.g. the disk filled while recording: still end as Failed
            failed = Failed(f"The run could not be recorded: {type(e).__name__}: {e}", traceback.format_exc())
            self._emit(failed)
            try:
                runs.finish_run(self.run_dir, failed)
            except OSError:
                pass
        finally:
            self._manager.release()


class JobManager:
    """Registry of jobs with a cap on how many train at once; the rest queue in order."""

    def __init__(self, max_concurrent: int = 1):
        self.max_concurrent = max(1, max_concurrent)
        self._cond = threading.Condition()
        self._running = 0
        self._queue: deque = deque()
        self._jobs: dict[str, Job] = {}

    def submit(self, cfg: RunConfig, dataset: Dataset, runs_root: str | Path) -> Job:
        run_dir = runs.create_run(runs_root, cfg, dataset.classes, dataset.to_dict())
        job = Job(self, cfg, dataset, run_dir)
        with self._cond:
            self._jobs[job.id] = job
            self._queue.append(job)
        job._thread.start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def position(self, job: Job) -> int:
        """0 when running or done; else 1 + the number of jobs ahead of it in the queue."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def acquire(self, job: Job) -> bool:
        with self._cond:
            while not (self._queue[0] is job and self._running < self.max_concurrent):
                if job._stop.is_set():
                    self._queue.remove(job)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.5)
            self._queue.popleft()
            self._running += 1
            self._cond.notify_all()
            return True

    def release(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


_DEFAULT: JobManager | None = None
_DEFAULT_LOCK = threading.Lock()


def default_manager() -> JobManager:
    """The process-wide manager; TL_MAX_JOBS sets the cap (default 1 per device)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = JobManager(int(os.environ.get("TL_MAX_JOBS", "1")))
        return _DEFAULT

"""Job: runs train() on a background thread. The only threading code in TL Studio.

The worker thread never touches the UI: it appends events to a buffer (read by the page's
polling fragment) and to the run folder's events.jsonl (read after a refresh or restart).
A process-wide cap on concurrent jobs keeps a shared server usable; more wait in a FIFO queue.

Where a job trains is one seam with three runners (settings.runner, TL_RUNNER): "thread" (Job,
train() on the job's thread, the local default), "process" (ProcessJob: the job's thread starts
`python -m tl_core run-job RUN_DIR` and follows its run folder, so a crash in native code ends
that job only), and "rq" (tl_core.jobs.pool: worker processes on a Redis queue). All three give the
page the same handle: id, run_dir, owner, status, events(since), stop(), done, queue_position().
"""
from __future__ import annotations

import ctypes
import gc
import os
import secrets
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from pathlib import Path

from tl_core.base.config import RunConfig
from tl_core.base.events import Failed, Note, Progress, Started, Stopped
from tl_core.base.messages import OUT_OF_MEMORY, ConfigError, Message, WeightsError, mentions_out_of_memory
from tl_core.base.status import RunStatus, status_after
from tl_core.data.dataset import Dataset
from tl_core.jobs import runs

# torch, timm and the hub (through .train and .hub) are imported inside the functions that need
# them: ui/ imports this module, and a page must not load torch just to list or poll jobs.


def is_out_of_memory(failed: Failed) -> bool:
    return mentions_out_of_memory(f"{failed.message}\n{failed.detail}")


def _explained(e):
    """A Failed event for running out of memory always carries the what-to-do sentence."""
    if isinstance(e, Failed) and is_out_of_memory(e) and e.kind != OUT_OF_MEMORY.kind:
        return Failed.of(OUT_OF_MEMORY, detail=e.detail)
    if isinstance(e, Failed) and "JobTimeoutException" in e.message:  # rq's TL_JOB_TIMEOUT_S
        return Failed.of(Message("job.timeout"), detail=e.detail)
    return e


def oom_retry_config(cfg: RunConfig, failed, device: str) -> RunConfig | None:
    """The config to retry with after `failed`, or None: only a CUDA out-of-memory failure with a
    batch that can still be halved earns one automatic retry (on CPU, OOM means swap, not a retry)."""
    if not isinstance(failed, Failed) or not device.startswith("cuda") or cfg.batch_size < 2:
        return None
    return cfg.replace(batch_size=cfg.batch_size // 2) if is_out_of_memory(failed) else None


def _likely_device(cfg: RunConfig) -> str:
    # an OOM can come before Started (moving the model to the GPU): guess as train.pick_device does
    import torch  # deferred: torch only once a job runs (see the note at the top)

    return "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"


def _free_cuda_memory() -> None:
    import torch  # deferred: torch only once a job runs (see the note at the top)

    gc.collect()  # the failed attempt's model and optimizer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Job:
    def __init__(self, manager: "JobManager", cfg: RunConfig, dataset: Dataset, run_dir: Path,
                 owner: str | None = None):
        self.id = secrets.token_urlsafe(16)  # unguessable: it is the only handle on the job
        self.cfg, self.dataset, self.run_dir = cfg, dataset, run_dir
        self.owner = owner  # the session that submitted it; None in single-user mode
        self._manager = manager
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list = []
        self.status = RunStatus.QUEUED
        self._thread = threading.Thread(target=self._work, name=f"tl-job-{self.id[:6]}", daemon=True)

    def events(self, since: int = 0) -> list:
        with self._lock:
            return self._events[since:]

    def stop(self) -> None:
        self._stop.set()
        self._manager.wake()

    @property
    def done(self) -> bool:
        return self.status.done

    def queue_position(self) -> int:
        return self._manager.position(self)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _emit(self, event) -> None:
        with self._lock:
            self._events.append(event)
        status = status_after(event)
        if status is not None:
            self.status = status

    def _fetch_weights(self) -> Failed | None:
        """Hub weights not cached yet: download them first, with Progress("weights") events live.

        train() would download them too, but silently inside model building; here the page can
        show a progress bar for a 100 MB download. The callback runs on this job's own thread.
        """
        from tl_core.models.model import resolve_source  # deferred: torch (see the note at the top)
        from tl_core.models.sources.hub import cache_status, fetch  # deferred: timm and torch (see the note at the top)

        cfg = self.cfg
        if resolve_source(cfg) != "hub":
            return None
        try:
            if not cache_status(cfg.backbone).cached:
                fetch(cfg.backbone, progress=lambda done, total: self._emit(Progress("weights", 0, done, total)))
        except WeightsError as e:
            return Failed.of(e.message)
        return None

    def _attempts(self, train):
        """train()'s events; after a CUDA out-of-memory failure, once more with half the batch."""
        runs.mark_running(self.run_dir)  # in here: if the disk is full, _record turns it into Failed
        failed = self._fetch_weights()
        if failed is not None:
            yield failed
            return
        cfg, device = self.cfg, _likely_device(self.cfg)
        for attempt in (1, 2):
            retry = None
            for e in train(cfg, self.dataset, self._stop, self.run_dir):
                device = e.device if isinstance(e, Started) else device
                retry = oom_retry_config(cfg, e, device) if attempt == 1 else None
                if retry is not None:
                    break
                yield _explained(e)
            if retry is None:
                return
            yield Note.of(Message("job.oom_retry", {"batch": cfg.batch_size, "half": retry.batch_size}))
            _free_cuda_memory()
            cfg = self.cfg = retry
            runs.update_run(self.run_dir, config=cfg.to_dict(), oom_retry=True)

    def _work(self) -> None:
        if not self._manager.acquire(self):  # first: the queue order must not wait on an import
            self._record([Stopped.of(Message("job.stopped_in_queue"), epoch=0)])
            return
        self.status = RunStatus.RUNNING
        try:
            from tl_core.training.train import train  # deferred: torch (see the note at the top)

            self._record(self._attempts(train))
        finally:
            self._manager.release()  # whatever happened, the next job in the queue gets the slot

    def _record(self, events) -> None:
        """Emit and persist events; if persisting fails (disk full), still end as Failed."""
        try:
            for e in runs.record(self.run_dir, events):
                self._emit(e)
        except BaseException as e:  # e.g. the disk filled while recording: still end as Failed
            # also rq's job timeout, when its alarm lands between two events rather than inside
            # train() (which turns it into Failed itself): _explained gives it its own sentence
            failed = _explained(Failed.of(Message("job.not_recorded", {"detail": f"{type(e).__name__}: {e}"}),
                                          detail=traceback.format_exc()))
            self._emit(failed)
            _end_run_folder(self.run_dir, failed)


def _end_run_folder(run_dir: Path, failed: Failed) -> None:
    """Write `failed` as the run folder's last event, then its status, as far as the disk still
    allows: the pool's web tier reads the run's end from events.jsonl, the run lists from run.json."""
    for write in (runs.append_event, runs.finish_run):
        try:
            write(run_dir, failed)
        except OSError:
            pass  # the UI still has the Failed event; the file stays as it was


class JobManager:
    """Registry of jobs with a cap on how many train at once; the rest queue in order.

    runner="thread" trains each job on its own thread in this process; runner="process" in a
    child process per job (ProcessJob). Both keep this manager's queue, cap and owner rules.
    """

    def __init__(self, max_concurrent: int = 1, keep_done: int = 200, job_classes=(Job, Job)):
        # (job class for a run on one device, for a run on several): a row of runners.JOB_CLASSES,
        # the one place that knows every runner
        self.job_classes = job_classes
        self.max_concurrent = max(1, max_concurrent)
        self.keep_done = keep_done  # finished jobs kept in memory for reattaching
        self._cond = threading.Condition()
        self._running = 0
        self._queue: deque = deque()
        self._jobs: dict[str, Job] = {}

    def submit(self, cfg: RunConfig, dataset: Dataset, runs_root: str | Path, owner: str | None = None) -> Job:
        """Create the run folder and queue the job. Raises runs.RunsFolderError (a sentence) when
        runs_root is unwritable or its disk nearly full: before anything starts. With `owner` (a
        session token, hosted mode) a session may have one active job at a time (ConfigError)."""
        if owner is not None and any(not j.done for j in self.jobs(owner)):
            # hosted fairness: one session cannot fill the queue ahead of a classroom
            raise ConfigError("job.one_at_a_time")
        run_dir = runs.create_run(runs_root, cfg, dataset.classes, dataset.to_dict())
        one_device, several_devices = self.job_classes
        job = (several_devices if cfg.devices > 1 else one_device)(self, cfg, dataset, run_dir, owner)
        with self._cond:
            self._forget_done()
            self._jobs[job.id] = job
            self._queue.append(job)
        job._thread.start()
        return job

    def _forget_done(self) -> None:
        # a server up for weeks must not keep every job's events in memory; a forgotten job is
        # still replayed from its run folder (ui.state.current_job falls back to events.jsonl)
        done = [k for k, j in self._jobs.items() if j.done]
        for k in done[:max(0, len(done) - self.keep_done)]:
            del self._jobs[k]

    def get(self, job_id: str | None, owner: str | None = None) -> Job | None:
        """The job, or None; with `owner`, only that session's job (hosted mode)."""
        job = self._jobs.get(job_id) if job_id else None
        return job if job is not None and (owner is None or job.owner == owner) else None

    def jobs(self, owner: str | None = None) -> list[Job]:
        return [j for j in list(self._jobs.values()) if owner is None or j.owner == owner]

    def queued(self) -> list[Job]:
        """The waiting jobs, first in line first (one consistent snapshot)."""
        with self._cond:
            return list(self._queue)

    def running_count(self) -> int:
        with self._cond:
            return self._running

    def position(self, job: Job) -> int:
        """0 when running or done; else 1 + the number of jobs ahead of it in the queue."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def enqueue(self, item) -> None:
        """Put a task (tl_core.jobs.tasks) in the same line as the jobs: its thread then calls
        acquire(), and it holds one of the same max_concurrent slots until release()."""
        with self._cond:
            self._queue.append(item)

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

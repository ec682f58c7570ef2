"""Worker pool on RQ + Redis: the hosted runner (TL_RUNNER=rq) and `python -m tl_core worker`.

Why RQ: its queue is the FIFO with a concurrency cap the app already has (one job per worker at a
time, so the cap is the number of workers), it forks a fresh process per job (a crash or a leak
ends with that job) and has explicit job timeouts. Redis is Debian's `redis-server` or any Redis.

Contract between the web tier and the workers:
- A job is JSON (rq's JSONSerializer, never pickle): the dotted name of `rq_job` and the args
  (run id, owner, config dict). A run id is the run folder's path relative to TL_RUNS
  ("<session>/<run>" hosted): a worker is given run ids, never user-supplied paths, and refuses
  one that leaves its own TL_RUNS or does not belong to the owner it came with.
- Run folders live on storage every machine sees at the same path (NFS, a shared volume). The
  worker writes events.jsonl there; the web tier follows it by cursor (runs.EventTail).
- Stop: the web tier writes the run's stop file (runs.request_stop); the job's watcher thread
  sees it within a second, wherever it runs. A queued job is cancelled in Redis instead.
- A killed worker takes its job process with it (job.run_here: PR_SET_PDEATHSIG); the run is then
  Interrupted (its pid is gone, or its heartbeat stops) with its best checkpoint kept.
- Nobody waits forever. A queued job with no live worker on the queue says so at once
  (PoolJob.waiting_note) and, after TL_QUEUE_NO_WORKER_S with still none, ends Failed and leaves the
  queue. A worker is live while its rq key exists: rq renews it at each heartbeat and lets it expire
  WORKER_TTL_S + 60 s after the last one, so a killed worker stops counting within that.
"""
from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path, PurePosixPath

from redis import Redis
from rq import Queue, Worker, worker_registration
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from tl_core.base.config import ConfigError, RunConfig
from tl_core.base.events import TERMINAL, Failed, Stopped
from tl_core.base.messages import Message
from tl_core.base.status import RunStatus, status_after
from tl_core.jobs import runs
from tl_core.jobs.launch import run_on_devices
from tl_core.jobs.process import run_here
from tl_core.jobs.settings import load_settings

QUEUE = "tl-train"
JOB_FUNCTION = "tl_core.jobs.pool.rq_job"  # enqueued by name: the web tier never imports the trainer
# a queued run whose Redis has not answered this long ends Failed with pool.unreachable (issue 20:
# "within 10 s"); the client's own timeouts are 5 s each (connect)
UNREACHABLE_GIVE_UP_S = 10.0
_GONE = ("failed", "canceled", "stopped", "finished")  # rq states in which a Queued run will never start
# rq's default worker TTL is 420 s: a SIGKILLed idle worker then looks alive for 480 s (TTL + 60).
# 60 s: an idle worker renews its key every 45 s (TTL - 15, one BLPOP) and a dead one is gone from
# the registry within 120 s, well inside TL_QUEUE_NO_WORKER_S's default of 300 s.
WORKER_TTL_S = 60


class PoolError(ConfigError):
    """The queue cannot be reached, or a job cannot be accepted; the message says what to do."""


def connect(url: str, check: bool = True) -> Redis:
    """A Redis client; with `check`, PoolError (a sentence) unless Redis answers now."""
    # both timeouts: a Redis that accepts and then hangs (stopped, overloaded) must not block a
    # page or a worker forever; 5 s each keeps "does not answer" within 10 s
    conn = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    if check:
        try:
            conn.ping()
        except Exception as e:  # redis raises ConnectionError, TimeoutError, AuthenticationError...
            raise PoolError("pool.unreachable", url=public_url(url), detail=type(e).__name__) from None
    return conn


def queue(conn: Redis) -> Queue:
    return Queue(QUEUE, connection=conn, serializer=JSONSerializer)


def run_id_of(run_dir: Path, runs_dir: str | Path) -> str:
    return Path(run_dir).resolve().relative_to(Path(runs_dir).resolve()).as_posix()


def resolve_run_id(runs_dir: str | Path, run_id: str, owner: str | None) -> Path:
    """The run folder a worker may train for `run_id`, or PoolError (never a path outside runs_dir)."""
    parts = PurePosixPath(run_id).parts
    if not parts or PurePosixPath(run_id).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise PoolError("pool.bad_run_id", run_id=run_id)
    if owner is not None and (len(parts) != 2 or parts[0] != owner):
        raise PoolError("pool.not_yours", run_id=run_id)
    root = Path(runs_dir).resolve()
    run_dir = (root / Path(*parts)).resolve()
    if not run_dir.is_relative_to(root) or not (run_dir / "run.json").is_file():
        raise PoolError("pool.no_run", run_id=run_id, root=str(root))
    return run_dir


# ---------------------------------------------------------------- worker side


def rq_job(run_id: str, owner: str | None, config: dict) -> dict:
    """What a worker runs for one job (in rq's fresh work-horse process): train the run folder."""
    run_dir = resolve_run_id(load_settings().runs_dir, run_id, owner)
    devices = max(int(config.get("devices", 1)), int(os.environ.get("TL_WORKER_DEVICES", "1")))
    if devices > 1:  # a worker bound to several GPUs trains each run on all of them (DDP)
        return {"run_id": run_id, "exit": run_on_devices(run_dir, devices)}
    last = run_here(run_dir, RunConfig.from_dict(config))
    return {"run_id": run_id, "status": type(last).__name__ if last is not None else "skipped"}


class TrainJob(RQJob):
    """The only job a TL Studio worker runs: rq_job. Anyone who can write to Redis could enqueue any
    importable function by name; the worker refuses everything but ours."""

    def perform(self):
        if self.func_name != JOB_FUNCTION:
            raise PoolError("pool.foreign_job", job=self.id, func=self.func_name, ours=JOB_FUNCTION)
        return super().perform()


def serve(redis_url: str, gpu: str | None = None, burst: bool = False, name: str | None = None,
          devices: int = 1) -> None:
    """Run one worker: one job at a time, each in a fresh forked process, until killed.

    `gpu`: "cpu" hides every GPU from its jobs; "0", "1"... binds it to that GPU, "0,1" to those
    (set before torch is imported anywhere in this process: its jobs see them as cuda:0, cuda:1).
    `devices` > 1: each job trains on that many GPUs at once (torchrun + DDP).
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu == "cpu" else gpu
    os.environ["TL_WORKER_DEVICES"] = str(max(1, devices))
    conn = connect(redis_url)
    worker_name = name or f"tl-{socket.gethostname()}-{gpu or 'any'}-{os.getpid()}"
    Worker([queue(conn)], connection=conn, serializer=JSONSerializer, name=worker_name, job_class=TrainJob,
           worker_ttl=WORKER_TTL_S).work(burst=burst, with_scheduler=False)


def live_workers(conn: Redis) -> int:
    """Workers serving the queue now: registered, and their key not expired (a killed worker's key
    expires WORKER_TTL_S + 60 s after its last heartbeat; a stopped one unregisters at once)."""
    keys = list(worker_registration.get_keys(queue=queue(conn)))
    return int(conn.exists(*keys)) if keys else 0


def public_url(url: str) -> str:
    """The Redis URL without its password: it is shown on pages that strangers read."""
    head, at, tail = url.rpartition("@")
    return url if not at else head.split("//", 1)[0] + "//" + tail


# ---------------------------------------------------------------- web side


class PoolJob:
    """The web tier's handle on one queued or training pool job (same surface as job.Job)."""

    def __init__(self, runner: "PoolRunner", job_id: str, run_dir: Path, owner: str | None):
        self.id, self.run_dir, self.owner = job_id, Path(run_dir), owner
        self._runner = runner
        self._tail = runs.EventTail(self.run_dir)
        self._unserved_since: float | None = None  # monotonic time this process first saw no worker
        self._unreachable_since: float | None = None  # ... first saw Redis not answer
        self._ended: RunStatus | None = None  # once the run folder is closed it stays so: no more reads

    def events(self, since: int = 0) -> list:
        return self._tail.since(since)

    @property
    def status(self) -> RunStatus:
        """The run's status, from its run folder (and, while Queued, from Redis)."""
        if self._ended is not None:
            return self._ended
        last = self._tail.events[-1] if self._tail.read() or self._tail.events else None
        try:
            info = runs.read_json(self.run_dir / "run.json")
        except (OSError, ValueError):
            info = None  # the folder is gone (deleted, storage lost)
        if isinstance(last, TERMINAL):
            # as job.Job's: ended once run.json is closed too, which the worker writes right after the
            # last event (a reader that saw Failed found run.json still Running: test_pool, in CI)
            if info is None or not runs.run_status(info, self.run_dir).active:
                self._ended = status_after(last)
                return self._ended
            return RunStatus.RUNNING
        if info is None:
            return RunStatus.INTERRUPTED
        if info.get("status") == runs.QUEUED:  # waiting in Redis, not in the process that made it
            rq_status = self._rq_status()
            if rq_status is None and self._unreachable_for() is not None:
                return RunStatus.FAILED if self._give_up_if_unreachable() else RunStatus.QUEUED
            if rq_status in (None, *_GONE):
                return RunStatus.INTERRUPTED
            return RunStatus.FAILED if self._give_up_if_unserved() else RunStatus.QUEUED
        return runs.run_status(info, self.run_dir)

    def lost_note(self) -> Message | None:
        """Why a run that was training is Interrupted (its worker died, or went silent on another
        machine: runs.HEARTBEAT_STALE_S); None while it trains or once it ended by itself."""
        try:
            info = runs.read_json(self.run_dir / "run.json")
        except (OSError, ValueError):
            return None
        if info.get("status") != runs.RUNNING or runs.run_status(info, self.run_dir) != RunStatus.INTERRUPTED:
            return None
        host = info.get("host", "?")
        if runs.heartbeat_stale(self.run_dir):
            silent = time.time() - (self.run_dir / runs.HEARTBEAT_FILE).stat().st_mtime
            why = Message("pool.worker_lost_beat", {"seconds": silent, "host": host})
        else:
            why = Message("pool.worker_lost_pid", {"pid": info.get("pid", "?"), "host": host})
        return Message("pool.worker_lost", {"why": why})

    def _unserved_for(self) -> float | None:
        """Seconds this job has waited with no live worker on the queue (None: one serves it, or
        Redis does not answer: that has its own sentence)."""
        try:
            serving = live_workers(self._runner.conn)
        except Exception:  # redis raises ConnectionError, TimeoutError...: pool.unreachable says so
            return None
        if serving:
            self._unserved_since = None
            return None
        if self._unserved_since is None:
            self._unserved_since = time.monotonic()
        return time.monotonic() - self._unserved_since

    def waiting_note(self) -> Message | None:
        """While it waits in the queue with no worker to take it: the sentence that says so (and
        what to do); None otherwise."""
        if self.status != RunStatus.QUEUED:
            return None
        if self._unreachable_since is not None:  # for at most UNREACHABLE_GIVE_UP_S, then it ends
            return Message("pool.unreachable", {"url": public_url(self._runner.url), "detail": "ConnectionError"})
        waited = self._unserved_for()
        if waited is None:
            return None
        left = max(0, round(self._runner.no_worker_s - waited))
        return Message("pool.no_worker", {"url": public_url(self._runner.url), "left": left})

    def _unreachable_for(self) -> float | None:
        """Seconds Redis has not answered this process about this job (None: it answers)."""
        try:
            self._runner.conn.ping()
        except Exception:  # redis raises ConnectionError, TimeoutError...
            if self._unreachable_since is None:
                self._unreachable_since = time.monotonic()
            return time.monotonic() - self._unreachable_since
        self._unreachable_since = None
        return None

    def _give_up_if_unreachable(self) -> bool:
        """A queued job whose Redis has not answered for UNREACHABLE_GIVE_UP_S: its run ends Failed
        with the sentence, in the run folder too (the run lists and `runs` read it there); a
        worker that finds it later on a restored Redis skips it (no longer Queued)."""
        if self._unreachable_for() < self._runner.unreachable_s:
            return False
        failed = Failed.of(Message("pool.unreachable", {"url": public_url(self._runner.url), "detail": "ConnectionError"}))
        runs.finish_run(self.run_dir, _record_one(self.run_dir, failed))
        return True

    def _give_up_if_unserved(self) -> bool:
        """After TL_QUEUE_NO_WORKER_S with no worker: take the job off the queue and end its run
        Failed, with the sentence. One web server does it (a Redis lock), the others read it."""
        waited = self._unserved_for()
        if waited is None or waited < self._runner.no_worker_s:
            return False
        job = self._rq_job()
        if job is None or not self._runner.conn.set(f"tl:gave-up:{self.id}", 1, nx=True, ex=7 * 86400):
            return False
        job.cancel()
        if runs.read_json(self.run_dir / "run.json").get("status") != runs.QUEUED:
            return False  # a worker took it in the meantime: it trains
        url = public_url(self._runner.url)
        failed = Failed.of(Message("pool.no_worker_gave_up", {"url": url, "seconds": self._runner.no_worker_s}))
        runs.finish_run(self.run_dir, _record_one(self.run_dir, failed))
        return True

    @property
    def done(self) -> bool:
        return not self.status.active

    def _rq_job(self):
        try:
            return RQJob.fetch(self.id, connection=self._runner.conn, serializer=JSONSerializer)
        except Exception:  # rq raises NoSuchJobError; a lost connection is also "unknown"
            return None

    def _rq_status(self) -> str | None:
        job = self._rq_job()
        return None if job is None else str(getattr(job.get_status(), "value", job.get_status()))

    def queue_position(self) -> int:
        """0 when training or done; else 1 + the number of jobs ahead of it in the queue."""
        try:
            pos = self._runner.queue.get_job_position(self.id)
        except Exception:  # Redis unreachable: the page still renders the run's events
            return 0
        return 0 if pos is None else pos + 1

    def stop(self) -> None:
        """Stop it wherever it is: a queued job leaves the queue; a training one ends Stopped."""
        runs.request_stop(self.run_dir)
        job = self._rq_job()
        if job is not None and self._rq_status() in ("queued", "deferred", "scheduled"):
            job.cancel()
            runs.finish_run(self.run_dir, _record_one(self.run_dir, Stopped.of(Message("job.stopped_in_queue"), epoch=0)))

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)


def _record_one(run_dir: Path, event):
    runs.append_event(run_dir, event)
    return event


class PoolRunner:
    """Submit, find and list jobs trained by `python -m tl_core worker` processes (the rq runner)."""

    def __init__(self, redis_url: str, runs_dir: str | Path, job_timeout_s: int = 86400, no_worker_s: int | None = None):
        self.url, self.runs_dir, self.job_timeout_s = redis_url, Path(runs_dir), job_timeout_s
        # how long a queued job may wait with no worker on the queue before it ends (TL_QUEUE_NO_WORKER_S)
        self.no_worker_s = load_settings().queue_no_worker_s if no_worker_s is None else no_worker_s
        self.unreachable_s = UNREACHABLE_GIVE_UP_S
        self.conn = connect(redis_url, check=False)  # pages still render while Redis is down
        self.queue = queue(self.conn)
        self._jobs: dict[str, PoolJob] = {}

    def submit(self, cfg: RunConfig, dataset, runs_root: str | Path, owner: str | None = None) -> PoolJob:
        """Create the run folder (under TL_RUNS, on shared storage) and enqueue it as JSON."""
        if owner is not None and any(not j.done for j in self.jobs(owner)):
            raise ConfigError("job.one_at_a_time")
        connect(self.url)  # a sentence now, not a run folder left Queued for a queue that is down
        run_dir = runs.create_run(runs_root, cfg, dataset.classes, dataset.to_dict())
        job_id = secrets.token_urlsafe(16)  # unguessable: it is the only handle on the job
        self.queue.enqueue_call(JOB_FUNCTION, args=(run_id_of(run_dir, self.runs_dir), owner, cfg.to_dict()),
                                job_id=job_id, timeout=self.job_timeout_s, result_ttl=7 * 86400,
                                failure_ttl=7 * 86400, description=f"train {run_dir.name}")
        self._jobs[job_id] = job = PoolJob(self, job_id, run_dir, owner)
        return job

    def get(self, job_id: str | None, owner: str | None = None) -> PoolJob | None:
        """The job, or None; with `owner`, only that session's. Any web server can reattach: the
        job's run id and owner are read back from Redis."""
        if not job_id:
            return None
        job = self._jobs.get(job_id) or self._from_redis(job_id)
        return job if job is not None and (owner is None or job.owner == owner) else None

    def _from_redis(self, job_id: str) -> PoolJob | None:
        try:
            rq_job = RQJob.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
            run_id, owner, _ = rq_job.args
            run_dir = resolve_run_id(self.runs_dir, run_id, owner)
        except Exception:  # unknown id, expired job, or a run folder that is gone
            return None
        self._jobs[job_id] = job = PoolJob(self, job_id, run_dir, owner)
        return job

    def jobs(self, owner: str | None = None) -> list[PoolJob]:
        return [j for j in list(self._jobs.values()) if owner is None or j.owner == owner]

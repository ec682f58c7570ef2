"""Where jobs run, chosen by the settings (TL_RUNNER): the one place that knows every runner.

A floor above job.py and pool.py: pool's work horse runs jobs through job.run_here, so job.py
must not import pool.py back.
"""
from __future__ import annotations

from tl_core.jobs.job import Job, JobManager
from tl_core.jobs.process import ProcessJob

# runner name -> (job class for a run on one device, for a run on several devices): a run on
# several GPUs is several processes (torchrun), which a thread cannot hold
JOB_CLASSES = {"thread": (Job, ProcessJob), "process": (ProcessJob, ProcessJob)}


def make_runner(settings):
    """The runner the settings name (TL_RUNNER): a JobManager (thread, process) or a pool.PoolRunner
    (rq). All have submit(cfg, dataset, runs_root, owner), get(job_id, owner), jobs(owner)."""
    if settings.runner == "rq":
        from tl_core.jobs.pool import PoolRunner  # deferred: rq and redis are needed only by a hosted web tier

        return PoolRunner(settings.redis_url, settings.runs_dir, settings.job_timeout_s)
    return JobManager(max_concurrent=settings.max_jobs, job_classes=JOB_CLASSES[settings.runner])

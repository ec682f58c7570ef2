"""`python -m tl_core worker` and `run-job`: serve the job queue; train one queued run folder here."""
from __future__ import annotations

import gc
import os
import signal

from tl_core.base.events import Finished
from tl_core.jobs.launch import close_after_torchrun
from tl_core.jobs.process import die_with_parent, run_here, run_here_other_rank, wait_for_run_folder
from tl_core.jobs.settings import load_settings

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def cmd_worker(a) -> int:
    from tl_core.jobs.pool import serve  # deferred: rq and redis are needed only by a worker

    if a.runs:
        os.environ["TL_RUNS"] = a.runs  # the job function reads it in the work horse
    serve(a.queue or load_settings().redis_url, gpu=a.gpu, burst=a.burst, devices=a.devices)
    return 0


def cmd_run_job(a) -> int:
    if a.spare:
        die_with_parent()  # a spare outliving its server would wait forever
    from tl_core.training import distributed  # deferred: torch (see the note at the top)

    if a.spare:  # one device only: the server hands several-device runs to a child of their own
        _import_what_a_run_needs()
        return _serve_handed_runs()
    if a.run_dir is None:
        raise SystemExit("run-job needs a run folder (or --spare)")
    if a.devices > 1 and not distributed.under_torchrun():
        code = distributed.launch(a.argv, a.devices)
        close_after_torchrun(a.run_dir, code)  # a rank killed: the run ends Failed, not Running forever
        return code
    if os.environ.get("RANK", "0") != "0":
        run_here_other_rank(a.run_dir)
        distributed.finish()
        return 0
    last = run_here(a.run_dir)
    distributed.finish()
    return 0 if last is None or isinstance(last, Finished) else 1


def _serve_handed_runs() -> int:
    """A spare: train each run folder the server hands over on stdin, one after another, until it
    lets this process go (EOF; tl_core.jobs.process._hand_back decides whether it serves another)."""
    import torch  # deferred: torch (see the note at the top); imported by then already

    while (run_dir := wait_for_run_folder()) is not None:
        run_here(run_dir)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # between runs a SIGTERM ends the process again
        gc.collect()  # the last run's model and optimizer: before the next one builds its own
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0


def _import_what_a_run_needs() -> None:
    """A spare child's head start: the modules every run imports (about 5 s of one core here)."""
    import tl_core.training.train  # noqa: F401  deferred: torch, timm (see the note at the top)

    try:
        import onnxruntime  # noqa: F401  deferred: the feature engine, when installed (0.4 s)
    except ImportError:
        pass


def add_parsers(sub) -> None:
    p = sub.add_parser("run-job", help="train a queued run folder in this process (the process runner's child)")
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--spare", action="store_true",
                   help="import first, then read the run folder from stdin (the process runner's spare)")
    p.add_argument("--devices", type=int, default=1, help="on N GPUs (torchrun + DDP)")
    p.set_defaults(handler=cmd_run_job)
    p = sub.add_parser("worker", help="serve the job queue: train queued runs, one at a time (TL_RUNNER=rq)")
    p.add_argument("--queue", metavar="redis://HOST:PORT", default=None, help="default: TL_REDIS_URL")
    p.add_argument("--gpu", default=None, help="bind this worker to one GPU (0, 1, ...) or to the cpu")
    p.add_argument("--runs", default=None, help="the shared folder of run folders (default: TL_RUNS)")
    p.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    p.add_argument("--devices", type=int, default=1, help="train each job on N GPUs at once (torchrun + DDP)")
    p.set_defaults(handler=cmd_worker)

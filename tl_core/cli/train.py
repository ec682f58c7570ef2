"""`python -m tl_core train`: train here, on N devices (torchrun), or enqueue for the worker pool."""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tl_core.base.config import DEFAULT_LR, STRATEGIES, RunConfig
from tl_core.base.events import TERMINAL
from tl_core.cli.common import Bars, default_augment, fetch_with_bar, final_line, print_report
from tl_core.data.dataset import load_dataset
from tl_core.jobs import runs
from tl_core.jobs.launch import RUN_DIR_NOTE, close_after_torchrun, note_run_dir

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a folder (or zip) of class folders")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default=RunConfig.backbone)
    p.add_argument("--strategy", choices=STRATEGIES, default="feature_extraction")
    p.add_argument("--unfreeze", type=int, default=1, help="stages unfrozen by --strategy partial")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=0, help="0: the backbone's own size")
    p.add_argument("--lr", type=float, default=None, help="head learning rate (default: by strategy)")
    p.add_argument("--pretrained", default="auto",
                   help="auto (default: an installed weights package, else the hub cache, else a download) | "
                        "package | hub | none | FILE | run:RUN_DIR")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear")
    p.add_argument("--optimizer", choices=["adamw", "sgd", "rmsprop"], default="adamw")
    p.add_argument("--augment", choices=["none", "light", "strong"], default=None,
                   help="default: light when fine-tuning, none for feature extraction (cached features never "
                        "see an augmented image)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--early-stop", type=int, default=0, help="patience in epochs; 0 = off")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    bf16 = p.add_mutually_exclusive_group()
    bf16.add_argument("--bf16", dest="bf16", action="store_const", const=True, default=None,
                      help="train in bfloat16 on a CPU with native bf16 (AVX-512 BF16/AMX): faster, slightly less "
                           "exact (default: automatic, bf16 where one training step measured >= 1.2x faster)")
    bf16.add_argument("--no-bf16", dest="bf16", action="store_const", const=False, help="train in fp32")
    p.add_argument("--no-activation-cache", dest="activation_cache", action="store_false",
                   help="partial: run every image through the frozen stages every epoch (the plain loop) instead "
                        "of training the last stages on their cached output")
    p.add_argument("--out", default="runs", help="the folder that holds run folders")
    p.add_argument("--queue", metavar="redis://HOST:PORT", default=None,
                   help="enqueue the run for `python -m tl_core worker` processes (whose TL_RUNS is --out, "
                        "on storage they share) and print its run id, instead of training here")
    p.add_argument("--wait", action="store_true", help="with --queue: follow the run and end as a local run does")
    p.add_argument("--devices", type=int, default=1,
                   help="train one run on N GPUs (or N CPU processes with --device cpu): torchrun + DDP")
    p.set_defaults(handler=run)


def _config(a) -> RunConfig:
    return RunConfig(backbone=a.backbone, pretrained=a.pretrained, strategy=a.strategy, unfreeze=a.unfreeze,
                     epochs=a.epochs, batch_size=a.batch_size, image_size=a.image_size,
                     lr=a.lr or DEFAULT_LR[a.strategy], head=a.head,
                     optimizer=a.optimizer, augment=a.augment or default_augment(a.strategy),
                     label_smoothing=a.label_smoothing,
                     early_stop_patience=a.early_stop, val_fraction=a.val_fraction, seed=a.seed, device=a.device,
                     cpu_bf16=a.bf16, activation_cache=a.activation_cache, devices=max(1, getattr(a, "devices", 1)))


def _train_other_rank(cfg, ds) -> int:
    """A rank other than 0 of a --devices N run: trains its share, writes nothing, prints nothing."""
    from tl_core.training import distributed  # deferred: torch (see the note at the top)
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    for _ in train(cfg, ds):
        pass
    distributed.finish()
    return 0


def run(a) -> int:
    from tl_core.training import distributed  # deferred: torch (see the note at the top)

    if a.devices > 1 and not distributed.under_torchrun() and not a.queue:
        return _launch(a)  # with --queue the worker launches torchrun
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    cfg = _config(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=".upload-", dir=out)  # a zip is extracted here, nowhere else
    ds = load_dataset(a.data, workdir=workdir, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if os.environ.get("RANK", "0") == "0":  # one report, not one per rank
        print_report(ds)
    if a.queue:
        return cmd_enqueue(a, cfg, ds, out)
    from tl_core.models.model import resolve_source  # deferred: torch (see the note at the top)

    if resolve_source(cfg) == "hub":
        fetch_with_bar(cfg.backbone)  # a download bar now, not a silent wait inside model building
    if os.environ.get("RANK", "0") != "0":
        return _train_other_rank(cfg, ds)
    run_dir = runs.create_run(out, cfg, ds.classes, ds.to_dict())
    note_run_dir(run_dir, os.environ)  # --devices N: the launcher closes it if torchrun ends it first
    runs.mark_running(run_dir)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: end as Stopped, keep the best model
    bars, last = Bars(), None
    for e in runs.record(run_dir, distributed.finish_at_end(train(cfg, ds, stop, run_dir))):
        bars.show(e)
        last = e
    bars.close()
    code = final_line(run_dir, last)  # first: torchrun may end this rank at once if another died
    distributed.finish()
    return code


def _launch(a) -> int:
    """--devices N: this command again under torchrun. A run its ranks left open (one was killed and
    torchrun ended the others before rank 0 said so) ends Failed here, with its final line."""
    from tl_core.training import distributed  # deferred: torch (see the note at the top)

    with tempfile.TemporaryDirectory(prefix="tl-torchrun-") as tmp:
        note = Path(tmp) / "run_dir"
        os.environ[RUN_DIR_NOTE] = str(note)  # torchrun passes the environment to every rank
        code = distributed.launch(a.argv, a.devices)
        run_dir = Path(note.read_text()) if note.is_file() else None
    ended = close_after_torchrun(run_dir, code) if run_dir is not None and code != 0 else None
    if ended is not None:
        print(ended.message, file=sys.stderr, flush=True)
        final_line(run_dir, ended)
    return code


def cmd_enqueue(a, cfg, ds, out: Path) -> int:
    """--queue: hand the run to the worker pool; with --wait follow it through its run folder."""
    from tl_core.jobs.pool import PoolRunner  # deferred: rq and redis are needed only with --queue

    job = PoolRunner(a.queue, out).submit(cfg, ds, out)  # TL_QUEUE_NO_WORKER_S from the environment
    print(json.dumps({"run_id": job.run_dir.name, "run_dir": str(job.run_dir), "job": job.id, "status": "Queued"}),
          flush=True)
    if not a.wait:
        return 0
    signal.signal(signal.SIGINT, lambda *_: job.stop())  # Ctrl-C stops the run on its worker
    bars, cursor, last, told = Bars(), 0, None, False
    while True:
        if not told and not cursor:  # once, at once: nobody serves the queue (and when it gives up)
            note = job.waiting_note()
            if note is not None:
                print(note, file=sys.stderr, flush=True)
                told = True
        done = job.done  # before reading: an end that this very check writes (no worker) is read below
        new = job.events(cursor)
        cursor += len(new)
        for e in new:
            bars.show(e)
            last = e
        if isinstance(last, TERMINAL) or (not new and done):
            break
        time.sleep(0.5)
    bars.close()
    if isinstance(last, TERMINAL):
        return final_line(job.run_dir, last)
    say_if_queue_down(a.queue)  # ended without an end: its worker died, or the queue went away
    return final_line(job.run_dir, None, job.lost_note())


def say_if_queue_down(url: str) -> None:
    from tl_core.jobs.pool import PoolError, connect  # deferred: rq and redis are needed only with --queue

    try:
        connect(url)
    except PoolError as e:
        print(e, file=sys.stderr, flush=True)

"""P2: full fine-tuning through a real tl_core Job vs a plain timm/PyTorch loop (epochs 2+)."""
from __future__ import annotations

import time
from pathlib import Path

from . import reference
from .common import Row, clock, median, threads_like_ours


def _cfg(args, epochs: int):
    from tl_core.base.config import RunConfig

    return RunConfig(backbone=args.backbone, pretrained="none", strategy="full", epochs=epochs,
                     batch_size=args.batch_size, image_size=args.image_size, augment="light", seed=0)


def ours(cfg, ds, runs_root: Path) -> tuple[list, list]:
    """A JobManager Job (thread, events, events.jsonl, progress), polled like the UI does (1 Hz).

    -> ([train images/s per epoch], [epoch seconds, train + val, per epoch]).
    """
    from tl_core.base.events import EpochEnd, Finished
    from tl_core.jobs.job import JobManager
    from tl_core.jobs.runs import read_events

    job = JobManager(1).submit(cfg, ds, runs_root)
    seen = 0
    while not job.done:
        time.sleep(1.0)
        seen += len(job.events(seen))  # what the page's fragment does each second
    job.join()
    events = read_events(job.run_dir)
    if not isinstance(events[-1], Finished):
        raise RuntimeError(f"tl_core job did not finish: {job.events()[-1]}")
    ends = [e for e in events if isinstance(e, EpochEnd)]
    import torch

    return [e.metrics["images_per_s"] for e in ends], [e.seconds for e in ends], torch.get_num_threads()


def ref(cfg, ds, threads: int | None = None) -> tuple[list, list]:
    import timm
    import torch

    from tl_core.data.transforms import preprocess_for

    torch.manual_seed(cfg.seed)
    model = timm.create_model(cfg.backbone, pretrained=False, num_classes=len(ds.classes))
    pp = preprocess_for(model, cfg.image_size)
    loop = reference.PlainFineTune(model, ds, pp, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed)
    if threads:  # the count ours used in the run next to this one
        torch.set_num_threads(threads)
    else:
        threads = threads_like_ours()
    rates, seconds = [], []
    for _ in range(cfg.epochs):
        t = clock()
        n, s = loop.train_epoch()
        loop.validate()
        rates.append(n / s)
        seconds.append(clock() - t)
    return rates, seconds, threads


def run(args, ds, workdir: Path, results: dict) -> list[Row]:
    """Alternates whole runs ours/ref (a Job cannot be paused between epochs); epoch 1 is warm-up."""
    cfg = _cfg(args, 1 + args.epochs)
    o_rate, o_sec, r_rate, r_sec, o_thr, r_thr = [], [], [], [], [], []
    for r in range(args.repeats):
        for who in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
            if who == "ours":
                rate, sec, thr = ours(cfg, ds, workdir / "runs")
                o_thr.append(thr)
                o_rate += rate[1:]
                o_sec += sec[1:]
            else:
                rate, sec, thr = ref(cfg, ds, o_thr[-1] if o_thr else None)
                r_thr.append(thr)
                r_rate += rate[1:]
                r_sec += sec[1:]
    results["p2"] = {"ours_train_s": len(ds.train) / median(o_rate), "ours_rate": median(o_rate)}
    size = cfg.image_size or "native"
    return [
        Row(f"P2 full fine-tune, train images/s (epochs 2+, {args.backbone} {size}px, batch {cfg.batch_size})",
            median(o_rate), median(r_rate), "img/s", ">= 0.95", o_rate, r_rate,
            note=f"torch threads: ours {o_thr}, reference {r_thr}; per epoch ours "
                 f"{[round(x, 1) for x in o_rate]}, reference {[round(x, 1) for x in r_rate]}"),
        Row("P2 full fine-tune, seconds per epoch (train + val)", median(o_sec), median(r_sec), "s", "", o_sec, r_sec),
    ]

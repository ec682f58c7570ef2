"""P1: feature extraction through tl_core (cold and warm feature cache) vs one plain forward pass."""
from __future__ import annotations

import os
from pathlib import Path

from . import reference
from .common import Row, clock, fresh_dir, median, threads_like_ours


def _cfg(args):
    from tl_core.base.config import RunConfig

    return RunConfig(backbone=args.backbone, pretrained="none", strategy="feature_extraction", epochs=20,
                     batch_size=args.batch_size, image_size=args.image_size, seed=0)


def ours_run(cfg, ds, runs_root: Path, threads: list) -> float:
    """Wall time of one recorded feature-extraction run (the app's path: train() + run folder)."""
    from tl_core.base.events import Finished
    from tl_core.jobs import runs
    from tl_core.training.train import train

    t = clock()
    run_dir = runs.create_run(runs_root, cfg, ds.classes, ds.to_dict())
    events = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))
    seconds = clock() - t
    threads.append(torch_threads())
    if not isinstance(events[-1], Finished):
        raise RuntimeError(f"tl_core run did not finish: {events[-1]}")
    return seconds


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def ref_pass(cfg, ds, threads: list, like: int | None = None) -> float:
    """One plain forward pass of the backbone over train+val (model creation not counted)."""
    import timm

    from tl_core.data.transforms import preprocess_for

    model = timm.create_model(cfg.backbone, pretrained=False, num_classes=len(ds.classes))
    pp = preprocess_for(model, cfg.image_size)
    if like:  # the count ours used in the run next to this one
        import torch

        torch.set_num_threads(like)
        threads.append(like)
    else:
        threads.append(threads_like_ours())
    t = clock()
    reference.embed(model, ds.train + ds.val, pp, cfg.batch_size)
    return clock() - t


def run(args, ds, workdir: Path) -> list[Row]:
    from tl_core.data.transforms import DECODED

    cfg = _cfg(args)
    runs_root = workdir / "runs"
    old_cache = os.environ.get("TL_CACHE")
    # warm-up: kernels, allocator and page cache (the JPEGs are read once before anything is timed)
    ref_pass(cfg, type(ds)(ds.root, ds.classes, ds.train[:cfg.batch_size], ds.val[:2], ds.report), [])
    for it in ds.train + ds.val:
        Path(it.path).read_bytes()
    cold, warm, ref, t_ours, t_ref = [], [], [], [], []
    try:
        for r in range(args.repeats):
            os.environ["TL_CACHE"] = str(fresh_dir(workdir, "tl_cache_"))
            DECODED.clear()  # a fresh app process: nothing decoded yet
            order = ("ours", "ref") if r % 2 == 0 else ("ref", "ours")
            for who in order:
                if who == "ref":
                    ref.append(ref_pass(cfg, ds, t_ref, t_ours[-2] if t_ours else None))
                else:
                    cold.append(ours_run(cfg, ds, runs_root, t_ours))
                    warm.append(ours_run(cfg, ds, runs_root, t_ours))
    finally:
        if old_cache is None:
            os.environ.pop("TL_CACHE", None)
        else:
            os.environ["TL_CACHE"] = old_cache
    n_img = len(ds.train) + len(ds.val)
    return [
        Row(f"P1 feature extraction, 20 head epochs, cold cache vs one forward pass ({n_img} images)",
            median(cold), median(ref), "s", "<= 1.3", cold, ref,
            note=f"torch threads: ours {t_ours}, reference {t_ref} (tl_core's load-aware choice)"),
        Row("P1 second run (feature cache hit) vs first run", median(warm), median(cold), "s", "<= 0.1",
            warm, cold),
    ]

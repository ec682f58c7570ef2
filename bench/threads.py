"""Threads: torch intra-op threads 1 vs N for training steps, and DataLoader num_workers 0 vs 1 (fork)."""
from __future__ import annotations

from pathlib import Path

from .common import Row, clock, median


def _model(args, ds):
    import timm
    import torch

    from tl_core.data.transforms import preprocess_for

    torch.manual_seed(0)
    model = timm.create_model(args.backbone, pretrained=False, num_classes=len(ds.classes))
    return model, preprocess_for(model, args.image_size)


def _step(model, opt, x, y):
    import torch

    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def thread_counts(args, ds) -> list[Row]:
    """Median seconds of one full fine-tune step (same batch) at 1 thread vs all cores, interleaved."""
    import torch

    from tl_core.data.transforms import ImageDataset, train_transform
    from tl_core.training.device import configure_threads

    n = configure_threads()
    model, pp = _model(args, ds)
    x, y = next(iter(torch.utils.data.DataLoader(ImageDataset(ds.train, pp, train_transform(pp, "light")),
                                                 batch_size=args.batch_size, shuffle=True)))  # floats
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = {1: [], n: []}
    try:
        for k in (1, n):  # warm-up at each setting
            torch.set_num_threads(k)
            _step(model, opt, x, y)
        for _ in range(args.steps):
            for k in (n, 1):
                torch.set_num_threads(k)
                t = clock()
                _step(model, opt, x, y)
                times[k].append(clock() - t)
    finally:
        torch.set_num_threads(n)
    b = len(y)
    ours = [b / s for s in times[n]]
    ref = [b / s for s in times[1]]
    return [Row(f"Threads: train step images/s, torch threads {n} (all cores) vs 1", median(ours), median(ref),
                "img/s", "", ours, ref)]


def workers(args, ds) -> list[Row]:
    """A tl_core-style training epoch on a subset, DataLoader num_workers 0 (tl_core) vs 1 (fork)."""
    import torch

    from tl_core.data.transforms import DECODED, BatchNormalize, ImageDataset, train_transform

    from .common import threads_like_ours

    threads = threads_like_ours()  # tl_core's choice; the thread-count rows above vary it
    items = ds.train[:args.subset]
    seconds = {0: [], 1: []}
    setups = {}
    DECODED.clear()  # each setting fills its own cache in its warm-up epoch (in the worker, for w=1)
    for w in (0, 1):
        model, pp = _model(args, ds)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()
        kw = {"num_workers": w}
        if w:
            kw.update(persistent_workers=True, multiprocessing_context="fork")
        loader = torch.utils.data.DataLoader(ImageDataset(items, pp, train_transform(pp, "light", normalize=False)),
                                             batch_size=args.batch_size, shuffle=True, **kw)
        setups[w] = (model, opt, loader)
    norm = BatchNormalize(pp)

    def epoch(w):
        model, opt, loader = setups[w]
        t = clock()
        for x, y in loader:
            _step(model, opt, norm(x), y)
        return clock() - t

    epoch(1)  # warm-up; the worker is forked before the parent's cache fills, so it decodes itself
    epoch(0)
    for _ in range(args.epochs):  # interleaved
        for w in (0, 1):
            seconds[w].append(epoch(w))
    del setups
    ours = [len(items) / s for s in seconds[0]]
    ref = [len(items) / s for s in seconds[1]]
    return [Row(f"Workers: training epoch images/s, num_workers 0 (tl_core) vs 1 fork ({len(items)} images)",
                median(ours), median(ref), "img/s", "", ours, ref, note=f"torch threads {threads}")]


def run(args, ds, workdir: Path, results: dict) -> list[Row]:
    return thread_counts(args, ds) + workers(args, ds)

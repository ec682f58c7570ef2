"""P3: the input pipeline alone (DataLoader without a model) vs the whole training epoch."""
from __future__ import annotations

from pathlib import Path

from . import reference
from .common import Row, clock, median


def _loader(items, pp, batch_size: int, transform, dataset_cls=None, **kw):
    import torch

    from tl_core.data.transforms import ImageDataset

    ds = dataset_cls(items, transform) if dataset_cls else ImageDataset(items, pp, transform)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(0), **kw)


def epoch_seconds(loader, normalize=None) -> float:
    t = clock()
    for x, _ in loader:
        if normalize is not None:
            normalize(x)  # tl_core normalises uint8 batches in the loop (transforms.BatchNormalize)
    return clock() - t


def train_epoch_seconds(args, ds) -> float:
    """Train-phase seconds of epoch 2 of a tl_core full fine-tune (when P2 did not run)."""
    from tl_core.base.events import EpochEnd
    from tl_core.training.train import train

    from .p2_finetune import _cfg

    ends = [e for e in train(_cfg(args, 2), ds) if isinstance(e, EpochEnd)]
    return len(ds.train) / ends[-1].metrics["images_per_s"]


def run(args, ds, workdir: Path, results: dict) -> list[Row]:
    import timm

    from tl_core.data.transforms import DECODED, BatchNormalize, preprocess_for, train_transform

    model = timm.create_model(args.backbone, pretrained=False, num_classes=len(ds.classes))
    pp = preprocess_for(model, args.image_size)
    ours = _loader(ds.train, pp, args.batch_size, train_transform(pp, "light", normalize=False))
    norm = BatchNormalize(pp)
    ref = _loader(ds.train, pp, args.batch_size, reference.train_tf(pp), reference.Files)
    cold, warm, plain = [], [], []
    for _ in range(args.repeats):
        DECODED.clear()
        cold.append(epoch_seconds(ours, norm))  # epoch 1: decodes every JPEG once
        warm.append(epoch_seconds(ours, norm))  # epoch 2+: DecodedCache hits
        plain.append(epoch_seconds(ref))  # a plain loader decodes every epoch
    train_s = results.get("p2", {}).get("ours_train_s") or train_epoch_seconds(args, ds)
    share = 100.0 * (1 - median(warm) / train_s)
    return [
        Row("P3 loader alone, epoch 2+ (DecodedCache) vs plain PIL loader", median(warm), median(plain), "s", "",
            warm, plain),
        Row("P3 loader alone, epoch 1 (decodes) vs epoch 2+", median(cold), median(warm), "s", "", cold, warm),
        Row("P3 model-compute share of a tl_core training epoch (epoch 2+)", share, None, "%", ">= 90",
            note=f"loader {median(warm):.2f} s of a {train_s:.1f} s training pass"),
    ]

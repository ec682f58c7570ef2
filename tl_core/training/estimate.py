"""The announced time of a comparison: real training and inference steps timed on this computer.

`measure_speed` times a few steps of the backbone at its image size on the dataset's own images
(seconds); `estimate_seconds` turns images/s into each member's time; `epochs_for_budget` is how
a user shortens a comparison to fit the time they have.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from tl_core.base.config import RunConfig
from tl_core.data.dataset import Dataset
from tl_core.data.transforms import BatchNormalize, ImageDataset, preprocess_for, train_transform
from tl_core.models.model import build_model
from tl_core.models.strategies import apply_strategy, set_train_mode
from tl_core.training.device import configure_threads, cpu_sample, pick_device
from tl_core.training.steps import make_optimizer

# features are embedded once, then the head trains on tensors: a fixed allowance per run for
# the head's epochs (measured well under a second on CPU for 1,000 images x 20 epochs)
HEAD_SECONDS = 1.0



@dataclass(frozen=True)
class Speed:
    """Throughput measured on this computer for one backbone and image size (images per second)."""

    device: str
    batch: int
    decode_s: float  # seconds to read and resize one image (first epoch only: then cached)
    build_s: float  # seconds to build the model
    train_ips: dict  # strategy -> training images/s (forward + backward + optimizer step)
    infer_ips: float  # inference images/s (validation, the feature pass)

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed_steps(fn, device, steps: int = 3) -> float:
    """Median seconds of `steps` calls after one warm-up (first-call allocations and kernel
    selection are not the steady state; the median ignores a step another process stalled)."""
    fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _train_step_seconds(model, cfg: RunConfig, x, y, device) -> float:
    groups = apply_strategy(model, cfg)
    optimizer = make_optimizer(cfg, groups)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        set_train_mode(model)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _timed_steps(step, device)


def measure_speed(base: RunConfig, dataset: Dataset, batch: int = 8) -> Speed:
    """Time real steps of base.backbone at its image size on a few of the dataset's images.

    The weights do not change the cost, so the model is built from random init (nothing to
    load or download). Takes seconds: one warm-up and three timed steps per kind of step.
    """
    sample = cpu_sample()
    device = pick_device(base)
    t = time.perf_counter()
    model = build_model(base.replace(pretrained="none"), len(dataset.classes))
    build_s = time.perf_counter() - t
    if device.type == "cpu":
        configure_threads(sample)  # the threads a run would use now (train.Run does the same)
    pp = preprocess_for(model, base.image_size)
    items = (dataset.train * batch)[:batch]
    t = time.perf_counter()
    images = ImageDataset(items, pp, train_transform(pp, base.augment, normalize=False))
    x = torch.stack([images[i][0] for i in range(len(items))])
    decode_s = (time.perf_counter() - t) / len(items)
    x = BatchNormalize(pp)(x.to(device))
    y = torch.tensor([it.label for it in items], device=device)
    model.to(device)
    ips = {}
    for strategy in ("full", "partial"):
        ips[strategy] = batch / _train_step_seconds(model, base.replace(strategy=strategy), x, y, device)
    ips["scratch"] = ips["full"]  # the same computation from other starting weights
    model.eval()
    with torch.inference_mode():
        infer = batch / _timed_steps(lambda: model(x), device)
    ips["feature_extraction"] = infer
    return Speed(str(device), batch, decode_s, build_s, ips, infer)


def _uses_features(cfg: RunConfig) -> bool:
    # feature extraction embeds every image once; fine-tuning from a solved head does so first too
    return (cfg.strategy == "feature_extraction" and cfg.feature_cache) or cfg.starts_from_probe


def estimate_seconds(cfg: RunConfig, dataset: Dataset, speed: Speed, features_cached: bool = False) -> float:
    """Seconds one member should take here: decoding once, the frozen feature pass and head solve
    when it has them (unless an earlier member cached the features), then epochs of training."""
    n_train, n_val = len(dataset.train), len(dataset.val)
    seconds = speed.build_s + (n_train + n_val) * speed.decode_s
    if _uses_features(cfg):
        seconds += HEAD_SECONDS + (0.0 if features_cached else (n_train + n_val) / speed.infer_ips)
    if cfg.strategy == "feature_extraction" and cfg.feature_cache:
        return seconds
    per_epoch = n_train / speed.train_ips[cfg.strategy] + n_val / speed.infer_ips
    return seconds + cfg.epochs * per_epoch


def estimate_total(members: list[RunConfig], dataset: Dataset, speed: Speed) -> float:
    """The members one after another; the feature cache carries over from one member to the next."""
    total, cached = 0.0, False
    for m in members:
        total += estimate_seconds(m, dataset, speed, features_cached=cached)
        cached = cached or _uses_features(m)
    return total


def epochs_for_budget(members: list[RunConfig], dataset: Dataset, speed: Speed, seconds: float) -> int:
    """The most epochs (at least 1) whose estimate fits in `seconds`: how a user shortens it."""
    best = 1
    for epochs in range(1, max(m.epochs for m in members) + 1):
        if estimate_total([m.replace(epochs=epochs) for m in members], dataset, speed) <= seconds:
            best = epochs
    return best

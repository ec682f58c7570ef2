"""Class weights for the loss when the training classes are imbalanced."""
from __future__ import annotations

from tl_core.base.config import RunConfig
from tl_core.data.audit import IMBALANCE_RATIO
from tl_core.data.dataset import Dataset


def class_weights(counts: list[int]) -> list[float]:
    """Loss weight per class, inversely proportional to its training images (mean weight 1)."""
    n, k = sum(counts), len(counts)
    return [n / (k * c) if c else 0.0 for c in counts]


def class_weights_for(cfg: RunConfig, ds: Dataset) -> list[float] | None:
    """Per-class loss weights when cfg asks for them, or (auto) when the training classes are
    imbalanced above IMBALANCE_RATIO; else None (a plain loss)."""
    counts = [0] * len(ds.classes)
    for it in ds.train:
        counts[it.label] += 1
    ratio = max(counts) / max(1, min(counts))
    on = cfg.class_weights == "on" or (cfg.class_weights == "auto" and ratio > IMBALANCE_RATIO)
    return class_weights(counts) if on else None

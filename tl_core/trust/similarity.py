"""How similar is a dataset to what the backbone was pretrained on? Measured, not asked.

A linear probe (tl_core.training.probe, L2 logistic regression, cross-validated) on the frozen pretrained
features of a stratified subset of the training split, against chance and against the same probe
on features of the same architecture with random weights. If the pretrained features separate the
classes well, the dataset is "similar" in the sense that matters for seed 001's four scenarios:
what the backbone learned to see is what these classes need. The random-init baseline tells how
much of that is pretraining rather than an easy task (random conv features already separate
classes that differ by colour). Only training images are used: the validation split stays unseen.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass

import torch

from tl_core.base.config import RunConfig
from tl_core.data.dataset import Dataset
from tl_core.training.device import configure_threads, cpu_sample
from tl_core.training.features import embed
from tl_core.training.probe import cv_accuracy
from tl_core.trust.verdict import wilson

PER_CLASS = 30  # images per class in the subset: enough for 5-fold CV, seconds on a CPU
MAX_IMAGES = 180
# "similar" when the probe closes at least this share of the gap between chance and 100%
# (ants/bees with ImageNet EfficientNet-Lite0: 0.9; generated shapes with random init: ~0.3)
SIMILAR_SCORE = 0.7


@dataclass(frozen=True)
class Similarity:
    probe_acc: float  # cross-validated accuracy on pretrained features
    random_acc: float  # the same on random-init features of the same architecture
    chance: float  # the largest class's share of the subset
    n_images: int
    seconds: float
    backbone: str

    @property
    def score(self) -> float:
        """0 at chance, 1 at a perfect probe: how much of the gap the pretrained features close."""
        return max(0.0, min(1.0, (self.probe_acc - self.chance) / max(1e-9, 1 - self.chance)))

    @property
    def pretraining_adds(self) -> bool:
        """The pretrained probe beats the random-init probe beyond the noise (Wilson intervals)."""
        n = self.n_images
        return wilson(round(self.probe_acc * n), n)[0] > wilson(round(self.random_acc * n), n)[1]

    @property
    def similar(self) -> bool:
        return self.score >= SIMILAR_SCORE and self.pretraining_adds

    def to_dict(self) -> dict:
        return {**asdict(self), "score": self.score, "similar": self.similar, "pretraining_adds": self.pretraining_adds}


def subset(dataset: Dataset, per_class: int = PER_CLASS, max_images: int = MAX_IMAGES, seed: int = 0) -> list:
    """A stratified sample of the training split (fixed seed)."""
    rng = random.Random(seed)
    k = max(2, min(per_class, max_images // max(1, len(dataset.classes))))
    out = []
    for label in range(len(dataset.classes)):
        items = [it for it in dataset.train if it.label == label]
        out += rng.sample(items, min(k, len(items)))
    return out


def _features(cfg: RunConfig, items: list) -> torch.Tensor:
    """Pooled features of `items` from cfg's backbone and starting weights (features.embed: cached)."""
    return torch.from_numpy(embed(cfg, items))


def measure(cfg: RunConfig, dataset: Dataset) -> Similarity:
    """Probe accuracy of cfg's pretrained features vs random-init features, on a training subset."""
    t0, sample = time.perf_counter(), cpu_sample()
    configure_threads(sample)
    items = subset(dataset, seed=cfg.seed)
    y = torch.tensor([it.label for it in items])
    c = len(dataset.classes)
    pretrained = cv_accuracy(_features(cfg.replace(strategy="feature_extraction"), items), y, c)
    torch.manual_seed(cfg.seed)  # the random-init baseline is the same every time (so it is cached too)
    random_init = cv_accuracy(_features(cfg.replace(strategy="scratch", pretrained="none"), items), y, c)
    chance = torch.bincount(y).max().item() / len(y)
    return Similarity(pretrained, random_init, chance, len(items), time.perf_counter() - t0, cfg.backbone)

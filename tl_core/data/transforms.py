"""Preprocessing shared by training, validation, prediction and export.

The numbers (input size, crop_pct, mean/std, interpolation) come from timm's data config for
the model; the pixels all go through data.load_rgb so training and prediction match exactly.
"""
from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

import numpy as np
import timm
import torch
from torchvision import transforms as T

from tl_core.base.config import megabytes
from tl_core.data.dataset import Item
from tl_core.data.decode import load_rgb


@dataclass(frozen=True)
class Preprocess:
    input_size: int  # square crop fed to the model
    scale_size: int  # the shorter side is resized to this before the centre crop
    mean: tuple
    std: tuple
    interpolation: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        return cls(int(d["input_size"]), int(d["scale_size"]), tuple(d["mean"]), tuple(d["std"]),
                   d["interpolation"])


def preprocess_for(model: torch.nn.Module, image_size: int = 0) -> Preprocess:
    cfg = timm.data.resolve_model_data_config(model)
    size = image_size or int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    return Preprocess(size, int(math.floor(size / crop_pct)), tuple(cfg["mean"]), tuple(cfg["std"]),
                      str(cfg.get("interpolation", "bicubic")))


def _to_tensor(pp: Preprocess, normalize: bool = True):
    # normalize=False: uint8 CHW tensors, normalised per batch by BatchNormalize in the loops.
    # Per-image ToTensor+Normalize are three small float ops per image; with 2 intra-op threads
    # on a busy 2-core CPU each one waits for the thread pool: 0.85-14 ms per 160 px image vs
    # 0.31 ms at 1 thread (bench/, P1 profile: 8.7 s of a 29.6 s cold feature run). The batched
    # ops below are the same arithmetic on the whole batch (bit-identical results).
    if not normalize:
        return [ToCHWUint8()]
    return [T.ToTensor(), T.Normalize(pp.mean, pp.std)]


class ToCHWUint8:
    """PIL RGB -> contiguous uint8 CHW tensor.

    The HWC->CHW copy is numpy's (no torch thread pool per image), and contiguous images make
    the DataLoader's torch.stack a plain copy: T.PILToTensor's permuted views took 0.3 s per
    batch of 32 in that stack on the busy 2-core machine (P1 profile).
    """

    def __call__(self, img):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)))


class BatchNormalize:
    """uint8 NCHW batch -> float, exactly ToTensor's /255 then Normalize's (x - mean) / std."""

    def __init__(self, pp: Preprocess):
        self.mean = torch.tensor(pp.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(pp.std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return x  # already normalised (a transform with normalize=True)
        if self.mean.device != x.device:
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return x.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)


def eval_transform(pp: Preprocess, normalize: bool = True):
    """PIL image already resized by load_rgb(short_side=pp.scale_size) -> normalised tensor.

    With normalize=False the result is a uint8 tensor for BatchNormalize (the training loops).
    """
    return T.Compose([T.CenterCrop(pp.input_size), *_to_tensor(pp, normalize)])


def train_transform(pp: Preprocess, augment: str, normalize: bool = True):
    # Gentle by default: timm's RandomResizedCrop(scale 0.08-1) kept a small from-scratch
    # texture set near chance in DESIGN.md's measurement; scale 0.5-1 + flip did clearly better.
    if augment == "none":
        return eval_transform(pp, normalize)
    if augment == "light":
        ops = [T.RandomResizedCrop(pp.input_size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
               T.ColorJitter(0.1, 0.1, 0.1)]
    else:  # strong
        ops = [T.RandomResizedCrop(pp.input_size, scale=(0.25, 1.0)), T.RandomHorizontalFlip(),
               T.RandomRotation(15), T.ColorJitter(0.3, 0.3, 0.3, 0.05)]
    return T.Compose([*ops, *_to_tensor(pp, normalize)])


class DecodedCache:
    """Decoded, resized images kept in memory within a byte budget while runs train.

    From the second epoch on, no JPEG is decoded again: on resnet18 at 224 px this removed the
    decode share of the epoch (see BENCHMARKS.md, P3). The budget (TL_DECODED_CACHE_MB, default
    512) bounds memory: P5 with 5,000 photos of 1-4 MP peaked at 3.21 GB with a 1 GB budget
    (imports 0.70 GB + training + cache); 512 MB holds ~2,000 images at 224 px. When full, new
    images are simply not cached (no eviction): epochs visit images in random order, where LRU
    would evict almost every image before its next use. The cache is emptied when the last run
    using it ends, so an app server does not hold a finished run's images.
    """

    def __init__(self, budget_bytes: int | None = None):
        mb = megabytes("TL_DECODED_CACHE_MB", 512)
        self.budget = budget_bytes if budget_bytes is not None else int(mb * 1024**2)
        self.used = 0
        self.users = 0  # runs currently training
        self._items: dict = {}
        self._lock = threading.Lock()

    def run_started(self) -> None:
        with self._lock:
            self.users += 1

    def run_ended(self) -> None:
        with self._lock:
            self.users = max(0, self.users - 1)
            if self.users == 0:
                self._items.clear()
                self.used = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0

    def get(self, path: str, short_side: int):
        key = (path, short_side)
        with self._lock:
            img = self._items.get(key)
            if img is not None:
                return img
        img = load_rgb(path, short_side)
        self._put(key, img)
        return img

    def _put(self, key, img) -> None:
        size = img.width * img.height * 3
        with self._lock:
            if key in self._items or self.used + size > self.budget:
                return
            self._items[key] = img
            self.used += size


DECODED = DecodedCache()


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Item], pp: Preprocess, transform):
        self.items, self.pp, self.transform = items, pp, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        return self.transform(DECODED.get(it.path, self.pp.scale_size)), it.label



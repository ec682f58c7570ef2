"""Preprocessing shared by training, validation, prediction and export.

The numbers (input size, crop_pct, mean/std, interpolation) come from timm's data config for
the model; the pixels all go through data.load_rgb so training and prediction match exactly.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import timm
import torch
from torchvision import transforms as T

from .data import Item, load_rgb


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


def _to_tensor(pp: Preprocess):
    return [T.ToTensor(), T.Normalize(pp.mean, pp.std)]


def eval_transform(pp: Preprocess):
    """PIL image already resized by load_rgb(short_side=pp.scale_size) -> normalised tensor."""
    return T.Compose([T.CenterCrop(pp.input_size), *_to_tensor(pp)])


def train_transform(pp: Preprocess, augment: str):
    # Gentle by default: timm's RandomResizedCrop(scale 0.08-1) kept a small from-scratch
    # texture set near chance in DESIGN.md's measurement; scale 0.5-1 + flip did clearly better.
    if augment == "none":
        return eval_transform(pp)
    if augment == "light":
        ops = [T.RandomResizedCrop(pp.input_size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
               T.ColorJitter(0.1, 0.1, 0.1)]
    else:  # strong
        ops = [T.RandomResizedCrop(pp.input_size, scale=(0.25, 1.0)), T.RandomHorizontalFlip(),
               T.RandomRotation(15), T.ColorJitter(0.3, 0.3, 0.3, 0.05)]
    return T.Compose([*ops, *_to_tensor(pp)])


class DecodedCache:
    """Decoded, resized images kept in memory within a byte budget (LRU).

    From the second epoch on, no JPEG is decoded again: on resnet18 at 224 px this removed the
    decode share of the epoch (see BENCHMARKS.md, P3).
    """

    def __init__(self, budget_bytes: int = 1536 * 1024**2):
        self.budget = budget_bytes
        self.used = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, short_side: int):
        key = (path, short_side)
        with self._lock:
            img = self._items.get(key)
            if img is not None:
                self._items.move_to_end(key)
                return img
        img = load_rgb(path, short_side)
        self._put(key, img)
        return img

    def _put(self, key, img) -> None:
        size = img.width * img.height * 3
        with self._lock:
            if key in self._items or size > self.budget:
                return
            self._items[key] = img
            self.used += size
            while self.used > self.budget:
                _, old = self._items.popitem(last=False)
                self.used -= old.width * old.height * 3


DECODED = DecodedCache()


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Item], pp: Preprocess, transform):
        self.items, self.pp, self.transform = items, pp, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        return self.transform(DECODED.get(it.path, self.pp.scale_size)), it.label


def preview_augmentations(cfg, image_path: str, n: int = 8) -> list:
    """`n` augmented versions of one image, as the model would see them (before normalising)."""
    from .model import create_for_preview

    pp = preprocess_for(create_for_preview(cfg.backbone), cfg.image_size)
    tf = train_transform(pp, cfg.augment)
    ops = [t for t in tf.transforms if not isinstance(t, (T.ToTensor, T.Normalize))]
    img = load_rgb(image_path, pp.scale_size)
    return [T.Compose(ops)(img) for _ in range(n)]

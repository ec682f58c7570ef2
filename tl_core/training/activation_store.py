"""Cached activations kept on disk between runs (partial fine-tuning, activations.ActivationLoop).

The frozen stages map the same photo, view and weights to the same activation, so a second partial
run on the same photos (another learning rate, more epochs) reads them back instead of running the
frozen stages again: on hymenoptera that pass was 6.3 of the warm cached run's 16.9 s
(BENCHMARKS.md). The views are drawn from a seed per (run seed, view, image), so a run reads exactly
what it would have computed.

One file per key under TL_CACHE/activations: the key hashes the backbone's weights and the
preprocessing (features.model_key), the freeze boundary, the precision of the frozen pass, the
augmentation, the seed, the number of views, and each photo's path, size and modification time in
order. Least recently used files go beyond TL_ACTIVATION_STORE_MB (default 1000); a file that cannot
be written (a full disk) or read (damaged) is skipped: the run computes its activations as before.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch

from tl_core.base import background
from tl_core.base.atomic import open_atomic
from tl_core.base.config import megabytes

SUFFIX = ".pt"


def root() -> Path:
    return background.cache_dir() / "activations"


def cap_bytes() -> int:
    return int(megabytes("TL_ACTIVATION_STORE_MB", 1000) * 1024**2)


def _photos(items) -> list:
    out = []
    for it in items:
        try:
            st = os.stat(it.path)
            out.append([str(it.path), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(it.path), None, None])  # gone: the run's own decode says so
    return out


def key(weights: str, boundary: int, bf16: bool, fp32_layers, augment: str, seed: int, views: int,
        train_items, val_items) -> str:
    """Same key <=> the frozen stages give the same activations for every view of every photo."""
    # "batchnorm": the frozen pass folds it into the convolutions (models.fold): files written before
    # that hold activations rounded differently, so they are not read as this pass's
    what = {"weights": weights, "boundary": boundary, "bf16": bf16, "fp32_layers": sorted(fp32_layers),
            "batchnorm": "folded",
            "augment": augment, "seed": seed, "views": views,
            "train": _photos(train_items), "val": _photos(val_items)}
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def load(k: str, views: int, n_train: int, n_val: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(train activations (V, n, ...), validation activations (n, ...)) kept under `k`, or None."""
    path = root() / f"{k}{SUFFIX}"
    try:
        kept = torch.load(path, weights_only=True)  # tensors only: never code from a file
        train, val = kept["train"], kept["val"]
        if tuple(train.shape[:2]) != (views, n_train) or val.shape[0] != n_val:
            raise ValueError("another shape than the key promised")
    except FileNotFoundError:
        return None
    except Exception:  # damaged or foreign: computed again, and this file goes
        path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: evicted last
    return train, val


def save(k: str, train: torch.Tensor, val: torch.Tensor) -> bool:
    """Keep the activations under `k` (False where they could not be written), then evict the least
    recently used files beyond the cap."""
    size = (train.numel() * train.element_size() + val.numel() * val.element_size())
    if size > cap_bytes():
        return False
    try:
        root().mkdir(parents=True, exist_ok=True)
        with open_atomic(root() / f"{k}{SUFFIX}", "wb") as f:
            torch.save({"train": train.contiguous(), "val": val.contiguous()}, f)
    except (OSError, RuntimeError):  # torch.save reports a failed write as a RuntimeError
        return False  # a full or read-only disk: this run already has its activations
    evict(keep=k)
    return True


def evict(keep: str | None = None) -> None:
    """Delete the least recently used files until the folder fits under the cap."""
    files = []
    for p in root().glob(f"*{SUFFIX}"):
        with contextlib.suppress(OSError):
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    total = sum(f[1] for f in files)
    for _, size, p in sorted(files):
        if total <= cap_bytes():
            break
        if p.stem != keep:
            p.unlink(missing_ok=True)
            total -= size

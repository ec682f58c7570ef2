"""Data audit: exact and near-duplicate images, where they sit (within train, across train and
validation = leakage, across classes = conflicting labels), class counts and imbalance.

Exact copies share a SHA-1 of their bytes (computed at ingest). Near copies (resized,
re-encoded, cropped by a few pixels) share most bits of a perceptual hash (pHash: the signs of
the lowest 8x8 DCT frequencies of a 32x32 grey thumbnail, against their median), and, once a
backbone is chosen, have nearly parallel backbone features. Fixes change only the split
(move a copy into the other split, or leave it out), never the user's files.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from tl_core.base.config import RunConfig
from tl_core.data.dataset import Dataset, Item
from tl_core.data.decode import load_rgb
from tl_core.data.ingest import Skipped

# Thresholds measured on the 887 TrashNet photos (issue-11 note) and on 30 of them copied
# resized to half, re-encoded at JPEG quality 30, and cropped by 4 and 8 px:
# - pHash Hamming distance (of 64 bits): resized and re-encoded copies 0-2, 4 px crops 0-4,
#   8 px crops 0-8. Distinct photos: 3 pairs at 2, 5 at 6, 6 at 8; those at <= 4 were all real
#   re-shots of one object, but at 6-8 half were different small objects on the same white
#   background (pHash sees mostly the lighting). So: <= 4 is "near" by the hash alone, 5-10
#   only when the backbone features agree.
HASH_SURE_BITS = 4
HASH_MAYBE_BITS = 10
# Cosine of EfficientNet-Lite0 features: the hash's real 6-8 bit pairs were 0.72-0.94, its false
# ones 0.29-0.65. Features alone are not robust to re-encoding (JPEG q30 copies: down to 0.71),
# so on their own they only add pairs above 0.93 (the top of the distinct-pair distribution,
# which were re-shots of one object when looked at).
FEATURE_CONFIRM_COSINE = 0.7
FEATURE_MIN_COSINE = 0.93
# Class weighting is switched on (RunConfig.class_weights="auto") when the largest training
# class is more than this many times the smallest.
IMBALANCE_RATIO = 1.5
_hashes: dict[str, int] = {}  # sha1 -> pHash: a file's hash is computed once per process


@dataclass(frozen=True)
class Pair:
    kind: str  # exact | near
    where: str  # train | val | train-val | classes
    a: str  # file paths
    b: str
    a_split: str
    b_split: str
    a_class: str
    b_class: str
    similarity: float  # 1.0 for exact; 1 - bits/64 (hash) or cosine (features)
    method: str  # sha1 | phash | phash+features | features


@dataclass
class AuditReport:
    pairs: list = field(default_factory=list)  # [Pair]
    counts: dict = field(default_factory=dict)  # {class: {"train": n, "val": n}}
    imbalance: float = 1.0  # largest / smallest training class
    class_weights_on: bool = False  # what RunConfig.class_weights="auto" will do

    def to_dict(self) -> dict:
        return {"pairs": [asdict(p) for p in self.pairs], "counts": self.counts,
                "imbalance": round(self.imbalance, 3), "class_weights_on": self.class_weights_on,
                "imbalance_ratio": IMBALANCE_RATIO}

    @classmethod
    def from_dict(cls, d: dict) -> "AuditReport":
        return cls([Pair(**p) for p in d["pairs"]], d["counts"], d["imbalance"], d["class_weights_on"])

    def by_where(self) -> dict:
        out: dict[str, list] = {}
        for p in self.pairs:
            out.setdefault(p.where, []).append(p)
        return out


def phash(source) -> int:
    """64-bit perceptual hash of an image (path, bytes or PIL image)."""
    # Kept over imagehash.phash (same distances on TrashNet): 1.7 vs 1.0 ms/image; 887 photos 25 vs 19 s (bench/phash)
    img = source if isinstance(source, Image.Image) else load_rgb(source, short_side=64)
    grey = np.asarray(img.convert("L").resize((32, 32), Image.BILINEAR), np.float64)
    d = _DCT @ grey @ _DCT.T
    low = d[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term would dominate the median
    return int(np.packbits(bits).view(">u8")[0])


def _dct_matrix(n: int = 32) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix()


def hashes(items: list[Item]) -> np.ndarray:
    """pHash of every item (uint64), each file hashed once per process."""
    for it in items:
        if it.sha1 not in _hashes:
            _hashes[it.sha1] = phash(it.path)
    return np.array([_hashes[it.sha1] for it in items], np.uint64)


_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2: 8x faster than the table (20k hashes: 21 s vs 169 s)
        return np.bitwise_count(x)
    return _BITS[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.int32)


def _rows_per_block(n: int) -> int:
    # ~4 M pair cells per block (tens of MB): 50,000 images stay within memory
    return max(1, min(n, 4_000_000 // max(1, n)))


def _close_pairs(h: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    """(i, j, bits) with i < j and Hamming distance <= max_bits, compared block by block."""
    out, step = [], _rows_per_block(len(h))
    for start in range(0, len(h), step):
        dist = _popcount(h[start:start + step, None] ^ h[None, start:])  # the upper triangle only
        for di, dj in zip(*np.nonzero(dist <= max_bits)):
            i, j = start + int(di), start + int(dj)
            if i < j:
                out.append((i, j, int(dist[di, dj])))
    return out


def _feature_pairs(unit: np.ndarray, min_cos: float) -> list[tuple[int, int, float]]:
    out, step = [], _rows_per_block(len(unit))
    for start in range(0, len(unit), step):
        sim = unit[start:start + step] @ unit[start:].T
        for di, dj in zip(*np.nonzero(sim >= min_cos)):
            i, j = start + int(di), start + int(dj)
            if i < j:
                out.append((i, j, float(sim[di, dj])))
    return out


def _where(a_split: str, b_split: str, a_label: int, b_label: int) -> str:
    if a_label != b_label:
        return "classes"
    return a_split if a_split == b_split else "train-val"


def audit(ds: Dataset, features: np.ndarray | None = None) -> AuditReport:
    """Every duplicate pair in `ds` (train + val), and its class counts.

    `features` (backbone features, one row per image, train then val) confirm the hash's
    uncertain pairs and add pairs whose features are nearly parallel.
    """
    items = ds.train + ds.val
    splits = ["train"] * len(ds.train) + ["val"] * len(ds.val)
    found: dict[tuple[int, int], tuple[str, float, str]] = {}
    by_sha: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_sha.setdefault(it.sha1, []).append(i)
    for group in by_sha.values():
        for i, j in itertools.combinations(group, 2):
            found[(i, j)] = ("exact", 1.0, "sha1")
    unit = None
    if features is not None and len(features) == len(items):
        f = np.asarray(features, np.float64)
        unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    for i, j, bits in _close_pairs(hashes(items), HASH_MAYBE_BITS if unit is not None else HASH_SURE_BITS):
        if bits <= HASH_SURE_BITS:
            found.setdefault((i, j), ("near", round(1 - bits / 64, 4), "phash"))
        elif float(unit[i] @ unit[j]) >= FEATURE_CONFIRM_COSINE:
            found.setdefault((i, j), ("near", round(1 - bits / 64, 4), "phash+features"))
    if unit is not None:
        for i, j, cos in _feature_pairs(unit, FEATURE_MIN_COSINE):
            found.setdefault((i, j), ("near", round(cos, 4), "features"))
    pairs = [Pair(kind, _where(splits[i], splits[j], items[i].label, items[j].label), items[i].path, items[j].path,
                  splits[i], splits[j], ds.classes[items[i].label], ds.classes[items[j].label], sim, method)
             for (i, j), (kind, sim, method) in sorted(found.items())]
    counts = ds.counts()
    train_sizes = [c["train"] for c in counts.values()]
    ratio = max(train_sizes) / max(1, min(train_sizes)) if train_sizes else 1.0
    return AuditReport(pairs, counts, ratio, ratio > IMBALANCE_RATIO)


# ---------------------------------------------------------------- fixes (the split only)


def drop(ds: Dataset, path: str, reason) -> Dataset:
    """The dataset without `path` (in either split); listed as skipped with `reason` (a Message, so
    each reader sees it in their language). Files untouched."""
    report = replace(ds.report, skipped=[*ds.report.skipped, Skipped(_relative(path, ds.root), reason)])
    return replace(ds, train=[it for it in ds.train if it.path != path],
                   val=[it for it in ds.val if it.path != path], report=report)


def move_to_train(ds: Dataset, path: str) -> Dataset:
    """The dataset with `path` moved from validation into training. Files untouched."""
    moved = [it for it in ds.val if it.path == path]
    return replace(ds, train=ds.train + moved, val=[it for it in ds.val if it.path != path])


def _relative(path: str, root: str) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name

""""None of these": is an image from none of the run's classes? (out-of-domain detection)

A softmax always names a class: 397 ant and bee photos shown to a TrashNet model got 184
confident wrong answers (docs/TRUST.md). A confidence threshold cannot tell "between two of my
classes" from "none of my classes". The distance to the k-th nearest training feature, after L2
normalisation (Sun et al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"), can:
an image far from every training image is from somewhere else.

- The bank: the training images' backbone features (the head's input), L2-normalised, stored
  in the run as float16 (ood_bank.npy; 1,000 images x 1,280 dims = 2.5 MB), so the exported
  predict.py computes the very same score from the same bank.
- The threshold keeps KEEP_IN_DOMAIN of the validation images in the domain (validation images
  are not in the bank, so they are scored as new images are).
- MSP (max softmax) and energy scores are here too: bench/ood.py measures all three from the
  same run (docs/TRUST.md).

The arithmetic is plain numpy so predict.py can repeat it without TL Studio.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tl_core.base.atomic import read_json, write_bytes_atomic, write_json_atomic
from tl_core.base.events import Note
from tl_core.base.messages import DataError, Message, short_error

OOD_FILE = "ood.json"
BANK_FILE = "ood_bank.npy"
# the threshold keeps this share of validation images "in the domain", like "not sure" keeps 95%
KEEP_IN_DOMAIN = 0.95


def k_for(n_bank: int) -> int:
    """k of the k-th nearest neighbour. Sun et al. use k = 50 on 50,000 CIFAR-10 images (0.1%);
    with the hundreds of images of a classroom run that would be k = 1, which one duplicate or
    outlier in the training set decides. bench/ood.py measured k = 1..20 on TrashNet and
    hymenoptera (docs/TRUST.md): AUROC within 0.01 for k 3-10; 5 it is, fewer on tiny banks."""
    return max(1, min(5, n_bank // 4))


def unit_rows(x) -> np.ndarray:
    """Rows scaled to length 1 (float32); an all-zero row stays zero."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_scores(bank: np.ndarray, features, k: int) -> np.ndarray:
    """Distance from each (unnormalised) feature row to its k-th nearest row of `bank` (unit rows):
    0 = identical direction, 2 = opposite. Higher = further from everything the model was trained on."""
    bank = np.asarray(bank, np.float32)
    q = unit_rows(features)
    k = max(1, min(k, len(bank)))
    sims = q @ bank.T
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * kth)).astype(np.float64)


def msp_scores(probs) -> np.ndarray:
    """1 - max softmax probability (Hendrycks & Gimpel 2017): higher = less sure = more out-of-domain."""
    return 1.0 - np.asarray(probs, np.float64).max(axis=1)


def energy_scores(logits) -> np.ndarray:
    """Negative free energy -logsumexp(logits) (Liu et al. 2020): higher = more out-of-domain."""
    z = np.asarray(logits, np.float64)
    m = z.max(axis=1, keepdims=True)
    return -(m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


def threshold_for(in_domain_scores, keep: float = KEEP_IN_DOMAIN) -> float:
    """The score above which an image is "none of these": `keep` of the in-domain scores stay at or
    below it. Halfway to the next score, not on one: an image scored exactly at the threshold would
    flip with the ~1e-6 difference between PyTorch and ONNX Runtime (1 of 36 did in a test)."""
    s = np.sort(np.asarray(in_domain_scores, np.float64))
    if len(s) == 0:
        return math.inf
    i = min(len(s) - 1, math.ceil(keep * len(s) - 1e-9) - 1)  # the fewest images that keep `keep`
    return float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i] + 1e-3)


def auroc(in_domain_scores, out_scores) -> float:
    """Probability that an out-of-domain image scores higher than an in-domain one (ties count 1/2)."""
    a, b = np.asarray(in_domain_scores, np.float64), np.asarray(out_scores, np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    from sklearn.metrics import roc_auc_score  # deferred: scikit-learn is only needed for measuring

    return float(roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b]))


@dataclass(frozen=True)
class OutOfDomain:
    """What travels with a run and its exports: the k, the threshold, and how it was chosen."""

    k: int = 5
    threshold: float = math.inf  # kNN distance above which the answer is "none of these"
    keep: float | None = KEEP_IN_DOMAIN  # None: the threshold was set by hand
    n_bank: int = 0
    n_val: int = 0
    dims: int = 0
    val_scores: list = field(default_factory=list)  # the validation images' scores (Evaluate's histogram)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["threshold"] = None if math.isinf(self.threshold) else self.threshold
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OutOfDomain":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("threshold") is None:
            known["threshold"] = math.inf
        return cls(**known)

    def in_domain(self, scores) -> np.ndarray:
        return np.asarray(scores) <= self.threshold


def fit(train_features, val_features, keep: float = KEEP_IN_DOMAIN) -> tuple[OutOfDomain, np.ndarray]:
    """-> (the detector, the float16 bank) from training and validation features."""
    bank = unit_rows(train_features).astype(np.float16)
    k = k_for(len(bank))
    val = knn_scores(bank, val_features, k)
    ood = OutOfDomain(k, threshold_for(val, keep), keep, len(bank), len(val), int(bank.shape[1]),
                      [round(float(v), 6) for v in val])
    return ood, bank


def save(run_dir: str | Path, ood: OutOfDomain, bank: np.ndarray) -> None:
    run_dir = Path(run_dir)
    write_bytes_atomic(run_dir / BANK_FILE, bank_bytes(bank))
    write_json_atomic(run_dir / OOD_FILE, ood.to_dict())


def bank_bytes(bank: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(bank, np.float16), allow_pickle=False)
    return buf.getvalue()


def load_bank(run_dir: str | Path) -> np.ndarray:
    return np.load(Path(run_dir) / BANK_FILE, allow_pickle=False)


def is_built(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    if not ((run_dir / OOD_FILE).exists() and (run_dir / BANK_FILE).exists()):
        return False
    model = run_dir / "model.safetensors"  # a checkpoint rewritten after the bank: build it again
    return not model.exists() or (run_dir / BANK_FILE).stat().st_mtime >= model.stat().st_mtime


def load(run_dir: str | Path) -> OutOfDomain | None:
    """The run's detector, or None when it has none (a run from before it, without its images)."""
    path = Path(run_dir) / OOD_FILE
    return OutOfDomain.from_dict(read_json(path)) if path.exists() else None


def mtime(run_dir: str | Path) -> float:
    path = Path(run_dir) / OOD_FILE
    return path.stat().st_mtime_ns if path.exists() else 0


def set_threshold(run_dir: str | Path, threshold: float) -> OutOfDomain:
    """Save a user-chosen threshold with the run (exports made afterwards carry it)."""
    ood = load(run_dir) or OutOfDomain()
    ood = OutOfDomain.from_dict({**ood.to_dict(), "threshold": float(threshold), "keep": None})
    write_json_atomic(Path(run_dir) / OOD_FILE, ood.to_dict())
    return ood


def build(run_dir: str | Path, progress=None) -> OutOfDomain:
    """Compute and save the run's bank and threshold from its own backbone's features (the best
    checkpoint's: feature extraction reads them from the cache, a fine-tuned run embeds its images
    once more). Raises FileNotFoundError for a run without its dataset.json."""
    from tl_core.trust.embeddings import run_features  # deferred: torch, for building only

    rf = run_features(run_dir, progress)
    if not rf.split_mask("train").any():
        raise FileNotFoundError(f"{run_dir}: none of its training images is still there")
    ood, bank = fit(rf.features[rf.split_mask("train")], rf.features[rf.split_mask("val")])
    save(run_dir, ood, bank)
    return ood


def ensure(run_dir: str | Path, progress=None) -> OutOfDomain | None:
    """The run's detector, built on first use; None when it cannot be (its images are gone)."""
    if is_built(run_dir):
        return load(run_dir)
    try:
        return build(run_dir, progress)
    except (FileNotFoundError, DataError):  # no dataset.json (DataError "trust.no_dataset_json"), or no images
        return None


def after_training(run_dir: str | Path):
    """Build the bank of a run that just finished -> a Note saying so (or why it could not be).
    Never raises: a run without "none of these" still answers with a class or "not sure"."""
    try:
        found = build(run_dir)
    except Exception as e:  # the model is trained and saved; this extra must not fail the run
        return Note.of(Message("ood.not_built", {"detail": short_error(e)}))
    return Note.of(Message("ood.built", {"n": found.n_bank, "threshold": found.threshold, "keep": found.keep}))

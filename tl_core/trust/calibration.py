"""Calibrated confidence: temperature scaling fitted on validation predictions, and "not sure".

A softmax says "99%" whether or not the model has seen anything like the image. Temperature
scaling (Guo et al. 2017) divides the logits by one number T fitted on the validation split
(minimum negative log-likelihood), which fixes over- or under-confidence without changing any
prediction. Below a confidence threshold, chosen on the same validation predictions, the app
answers "not sure" instead of a class.

Everything here works on plain arrays so that the exported predict.py can apply the very same
arithmetic without TL Studio (see export.py).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tl_core.base.atomic import read_json, write_json_atomic

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 15  # Guo et al.'s choice; the reliability diagram uses the same bins
# The "not sure" threshold keeps this share of the validation images the model got right
# answered: the lowest 5% of correct answers' confidence is where the model's mistakes and
# unfamiliar images live (measured on TrashNet in the issue-11 note).
KEEP_CORRECT = 0.95
# "ECE after" is measured on images the temperature was not fitted on: fit on 4/5 of the validation
# images, calibrate the other 1/5, five times (below 2 images per fold, it says it is in-sample)
CV_FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    """What travels with a run and its exports: how to turn logits into trustworthy probabilities."""

    temperature: float = 1.0
    threshold: float = 0.0  # calibrated top-1 probability below which the answer is "not sure"
    keep_correct: float = KEEP_CORRECT
    ece_before: float = float("nan")
    ece_after: float = float("nan")
    n_val: int = 0
    mistakes_caught: float = float("nan")  # share of validation mistakes below the threshold
    nll_before: float = float("nan")  # what the temperature minimises (ECE is noisy on few images)
    nll_after: float = float("nan")
    reliability_before: list = field(default_factory=list)  # [{"conf", "acc", "count"}] per bin
    reliability_after: list = field(default_factory=list)
    ece_after_cv: bool = False  # ece_after and reliability_after by cross-validation (else in-sample)
    ece_after_in_sample: float = float("nan")  # on the images T was fitted on (optimistic)

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        known = {k: (float("nan") if v is None else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def probabilities(self, logits) -> np.ndarray:
        """Calibrated probabilities (rows sum to 1) from raw logits."""
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)

    def is_sure(self, probs) -> np.ndarray:
        return np.asarray(probs).max(axis=-1) >= self.threshold


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels) -> float:
    """The T > 0 minimising validation NLL of softmax(logits / T), with a weak prior at T = 1.

    Without the prior, a validation split the model gets 100% right drives T to 0 (sharper is
    always "better" when nothing is wrong): 12 validation images of the sample gave T = 0.01
    and a "not sure" threshold of 0.9999999999. The prior, (log T)^2 per image set (one
    pseudo-observation), leaves T to the data as soon as it has mistakes to learn from.
    The objective is unimodal in log T: a golden-section search over [1/100, 100] to 1e-6.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if len(labels) == 0:
        return 1.0

    def objective(log_t: float) -> float:
        return nll(logits, labels, math.exp(log_t)) + log_t**2 / len(labels)

    lo, hi = math.log(0.01), math.log(100.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = objective(a), objective(b)
    while hi - lo > 1e-6:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = objective(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = objective(b)
    return math.exp((lo + hi) / 2)


def reliability(probs, labels, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count (empty bins left out)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for i in range(bins):
        inside = (conf > edges[i]) & (conf <= edges[i + 1]) if i else (conf >= 0) & (conf <= edges[1])
        if inside.any():
            rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "conf": float(conf[inside].mean()),
                         "acc": float(correct[inside].mean()), "count": int(inside.sum())})
    return rows


def ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    rows = reliability(probs, labels, bins)
    n = sum(r["count"] for r in rows)
    return sum(r["count"] * abs(r["acc"] - r["conf"]) for r in rows) / n if n else float("nan")


def choose_threshold(probs, labels, keep_correct: float = KEEP_CORRECT) -> float:
    """The confidence below which to say "not sure": `keep_correct` of correct answers stay above it."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    conf = probs.max(axis=1)
    right = conf[probs.argmax(axis=1) == labels]
    if len(right) == 0:
        return 0.0
    return float(np.quantile(right, 1.0 - keep_correct, method="lower"))


def cross_validated_probabilities(logits, labels, folds: int = CV_FOLDS, seed: int = 0) -> np.ndarray | None:
    """Calibrated probabilities of each image from a temperature fitted on the other folds; None when
    there are fewer than 2 images per fold."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if len(labels) < 2 * folds:
        return None
    fold = np.random.default_rng(seed).permutation(len(labels)) % folds
    probs = np.empty_like(logits)
    for k in range(folds):
        held = fold == k
        probs[held] = softmax(logits[held] / fit_temperature(logits[~held], labels[~held]))
    return probs


def calibrate(logits, labels, keep_correct: float = KEEP_CORRECT) -> Calibration:
    """Fit T on validation logits, choose the "not sure" threshold, and measure ECE before/after
    (after: by cross-validation over the validation images, CV_FOLDS folds)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    t = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits / t)
    threshold = choose_threshold(after, labels, keep_correct)
    wrong = after.argmax(1) != labels
    caught = float((after[wrong].max(1) < threshold).mean()) if wrong.any() else float("nan")
    held_out = cross_validated_probabilities(logits, labels)
    measured = after if held_out is None else held_out
    return Calibration(round(t, 6), threshold, keep_correct, ece(before, labels), ece(measured, labels), len(labels),
                       caught, nll(logits, labels, 1.0), nll(logits, labels, t),
                       reliability(before, labels), reliability(measured, labels), held_out is not None,
                       ece(after, labels))


def val_logits(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The best checkpoint's validation logits and labels, from val_predictions.json.

    Runs that predate stored logits have probabilities only: their logs are the logits up to a
    constant per row, which softmax ignores (floored at 1e-7 where rounding made them 0).
    """
    items = read_json(Path(run_dir) / "val_predictions.json")["items"]
    labels = np.array([it["true"] for it in items], np.int64)
    if items and "logits" in items[0]:
        return np.array([it["logits"] for it in items], np.float64), labels
    return np.log(np.maximum(np.array([it["probs"] for it in items], np.float64), 1e-7)), labels


def load(run_dir: str | Path) -> Calibration:
    """The run's calibration (fitted and saved on first use; re-fitted if the checkpoint is newer)."""
    run_dir = Path(run_dir)
    path, preds = run_dir / CALIBRATION_FILE, run_dir / "val_predictions.json"
    if path.exists() and (not preds.exists() or path.stat().st_mtime >= preds.stat().st_mtime):
        return Calibration.from_dict(read_json(path))
    if not preds.exists():
        return Calibration()
    cal = calibrate(*val_logits(run_dir))
    write_json_atomic(path, cal.to_dict())
    return cal


def set_threshold(run_dir: str | Path, threshold: float) -> Calibration:
    """Save a user-chosen "not sure" threshold with the run (exports made afterwards carry it)."""
    cal = load(run_dir)
    cal = Calibration.from_dict({**cal.to_dict(), "threshold": float(threshold), "keep_correct": None})
    write_json_atomic(Path(run_dir) / CALIBRATION_FILE, cal.to_dict())
    return cal

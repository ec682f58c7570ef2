"""Would more images help? A data-size curve measured on the run's own features.

The head on cached features is solved exactly (probe.py), so re-solving it on 20, 40, 60, 80 and
100% of the training images (stratified, FRACTION_SEEDS draws each) costs seconds. Each head is
scored on the run's fixed validation split, overall and per class. The reading is conservative:
- the gain per doubling is the slope of accuracy against log2(images) over 40-100%, so one
  noisy step does not decide it; it is never projected past 2x the images there are;
- the spread is how much the seeds disagree: a gain smaller than it is "too wide to tell".

The L2 strength is chosen once, by cross-validation on all training images, and kept for every
subset (the penalty is on the mean loss, so a smaller subset is regularised relatively more,
as cross-validation on it would also choose).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from tl_core.base.atomic import read_json, write_json_atomic
from tl_core.base.messages import Message
from tl_core.training.probe import MAX_ITER, ProbeSolver, choose_l2, one_thread

CURVE_FILE = "curve.json"
FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
FRACTION_SEEDS = 5
# points of validation accuracy per doubling of the training images
RISING_POINTS = 2.0  # at least this: "still rising"
FLAT_POINTS = 1.0  # below this (and the seeds agree): "flat"
TOP_CLASSES = 2  # the classes named in "more images of X and Y"
MIN_PER_CLASS = 5  # 20% of fewer is under 2 images of a class: no head to solve


def stratified_subset(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of `fraction` of each class's rows (at least 2 per class, or all it has)."""
    keep = []
    for c in np.unique(y):
        rows = np.nonzero(y == c)[0]
        n = min(len(rows), max(2, int(round(fraction * len(rows)))))
        keep.append(rng.choice(rows, n, replace=False))
    return np.sort(np.concatenate(keep))


def _solve_and_score(x, y, x_val, y_val, num_classes: int, l2: float, init=None):
    """(per validation image: 1 where the head solved on (x, y) is right, the solution). `init` warm-starts
    L-BFGS from the all-images solution: the subsets' optimum is near it (~3x fewer iterations)."""
    solver = ProbeSolver(torch.from_numpy(x), torch.from_numpy(y), num_classes, l2, init=init)
    solver.step(MAX_ITER)
    pred = solver.probe().logits(torch.from_numpy(x_val)).argmax(1).numpy()
    return (pred == y_val).astype(np.float64), solver.solution()


def measure(x_train, y_train, x_val, y_val, num_classes: int, l2: float | None = None,
            fractions=FRACTIONS, seeds: int = FRACTION_SEEDS) -> dict:
    """-> {"n": images per fraction, "overall": [fraction][seed] accuracy, "per_class": [fraction][seed][class]}."""
    x_train, x_val = np.asarray(x_train, np.float32), np.asarray(x_val, np.float32)
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    if l2 is None:
        l2 = choose_l2(torch.from_numpy(x_train), torch.from_numpy(y_train), num_classes)
    with one_thread():
        return _measure(x_train, y_train, x_val, y_val, num_classes, l2, fractions, seeds)


def _measure(x_train, y_train, x_val, y_val, num_classes, l2, fractions, seeds) -> dict:
    n, overall, per_class, init = [], [], [], None
    for fraction in sorted(fractions, reverse=True):  # all images first: its solution starts the others
        draws = 1 if fraction >= 1.0 else seeds  # all images: one draw is every draw
        accs, classes = [], []
        for seed in range(draws):
            rows = stratified_subset(y_train, fraction, np.random.default_rng(seed))
            right, solution = _solve_and_score(x_train[rows], y_train[rows], x_val, y_val, num_classes, l2, init)
            init = solution if init is None else init
            accs.append(float(right.mean()))
            classes.append([float(right[y_val == c].mean()) if (y_val == c).any() else float("nan")
                            for c in range(num_classes)])
        n.insert(0, len(rows))
        overall.insert(0, accs)
        per_class.insert(0, classes)
    return {"fractions": sorted(fractions), "n": n, "overall": overall, "per_class": per_class, "l2": l2}


def gain_per_doubling(n: list, accs: list) -> float:
    """Slope of mean accuracy (points) against log2(images), over 40-100% of the images."""
    x = np.log2(np.asarray(n[1:], np.float64))
    y = 100.0 * np.array([np.nanmean(a) for a in accs[1:]])
    return float(np.polyfit(x, y, 1)[0]) if len(set(x)) > 1 else 0.0


def spread(accs: list) -> float:
    """How much the seeds disagree (points): the mean range of accuracy over seeds, 40-80%."""
    ranges = [100.0 * (max(a) - min(a)) for a in accs[1:-1] if len(a) > 1]
    return float(np.mean(ranges)) if ranges else 0.0


def reading(curve: dict, classes: list) -> Message:
    """The conservative sentence: still rising (and for which classes), flat, or too wide to tell."""
    n, overall = curve["n"], curve["overall"]
    gain, wide = gain_per_doubling(n, overall), spread(overall)
    params = {"gain": gain, "spread": wide, "n_low": n[1], "n_used": n[-1], "n_double": 2 * n[-1]}
    if gain >= RISING_POINTS and gain > wide:
        return Message("curve.rising", {**params, "classes": _rising_classes(curve, classes)})
    if gain < FLAT_POINTS and wide < RISING_POINTS:
        return Message("curve.flat", params)
    return Message("curve.too_wide", params)


def _rising_classes(curve: dict, classes: list) -> Message | str:
    by_class = np.array(curve["per_class"], dtype=object)
    gains = []
    for c, name in enumerate(classes):
        accs = [[row[c] for row in by_class[f]] for f in range(len(curve["n"]))]
        gains.append((gain_per_doubling(curve["n"], accs), name))
    top = [name for g, name in sorted(gains, reverse=True)[:TOP_CLASSES] if g > 0] or [sorted(gains)[-1][1]]
    return top[0] if len(top) == 1 else Message("curve.pair", {"a": top[0], "b": top[1]})


def summary(curve: dict, classes: list) -> dict:
    """Means and standard deviations per fraction (overall and per class), and the reading."""
    def stats(rows):
        return {"mean": [float(np.nanmean(r)) for r in rows], "std": [float(np.nanstd(r)) for r in rows]}

    per_class = {name: stats([[seed[c] for seed in f] for f in curve["per_class"]]) for c, name in enumerate(classes)}
    message = reading(curve, classes)
    return {"fractions": curve["fractions"], "n": curve["n"], "overall": stats(curve["overall"]),
            "per_class": per_class, "gain_per_doubling": gain_per_doubling(curve["n"], curve["overall"]),
            "spread": spread(curve["overall"]), "l2": curve["l2"], "reading": message.to_dict(),
            "reading_en": message.render("en")}


def run_l2(run_dir: Path) -> float | None:
    """The L2 strength the run's own solved head chose (its "head.solved" note, or the solved head a
    fine-tuning started from), if it has one: choosing it again by cross-validation costs 45 solves
    (267 s wall on 1,000 x 1,280 features at load 15, against 3 s of CPU for the 21 solves of the curve)."""
    events = run_dir / "events.jsonl"
    if not events.exists():
        return None
    for line in events.read_text(encoding="utf-8").splitlines():
        if '"head.solved"' in line or '"head.fine_tune_from_solved"' in line:
            return float(json.loads(line).get("params", {}).get("l2", 0)) or None
    return None


def run_curve(run_dir: str | Path, progress=None) -> dict:
    """The run's data-size curve (on its best checkpoint's features), saved as curve.json."""
    from tl_core.trust.embeddings import run_features  # deferred: the one embedding path (features helper's)

    run_dir = Path(run_dir)
    path = run_dir / CURVE_FILE
    model = run_dir / "model.safetensors"
    if path.exists() and (not model.exists() or path.stat().st_mtime >= model.stat().st_mtime):
        return read_json(path)
    rf = run_features(run_dir, progress)
    train, val = rf.split_mask("train"), rf.split_mask("val")
    counts = np.bincount(rf.labels[train], minlength=len(rf.classes))
    if counts.min() < MIN_PER_CLASS:
        c = int(counts.argmin())
        message = Message("curve.too_few", {"need": MIN_PER_CLASS, "name": rf.classes[c], "n": int(counts[c])})
        return {"n": [], "overall": {"mean": [], "std": []}, "per_class": {}, "classes": rf.classes,
                "reading": message.to_dict(), "reading_en": message.render("en")}
    t0 = time.perf_counter()
    curve = measure(rf.features[train], rf.labels[train], rf.features[val], rf.labels[val], len(rf.classes),
                    run_l2(run_dir))
    result = {**summary(curve, rf.classes), "seconds": round(time.perf_counter() - t0, 3), "classes": rf.classes}
    write_json_atomic(path, result)
    return result

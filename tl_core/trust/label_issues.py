"""Likely label errors: images whose folder disagrees with confident out-of-sample predictions.

Confident learning (Northcutt et al. 2021, cleanlab's find_label_issues): every image gets
class probabilities from a model that never saw it (out-of-fold linear probes on the cached
backbone features, probe.out_of_fold_proba). A class "claims" an image when the image's
probability for it reaches that class's own average self-confidence (the mean probability its
labelled images get for it). An image claimed by a class other than its folder's is a likely
label issue; they are ranked by how much more the claiming class is believed than the folder.

Kept instead of cleanlab's own find_label_issues (issue 19, bench/ood.py): on TrashNet's Lite0
features with 44 labels flipped on purpose (5%, 3 seeds, the same out-of-fold probabilities),
this finds them with F1 0.477 (precision 0.35, recall 0.77) and cleanlab 2.9's default with F1
0.457 (0.31, 0.86), lower on each of the 3 seeds; it also takes 1 ms against 0.6-1.3 s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tl_core.base.atomic import read_json, write_json_atomic
from tl_core.training.probe import out_of_fold_proba
from tl_core.trust.embeddings import run_features

LABEL_ISSUES_FILE = "label_issues.json"


def find_label_issues(proba: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, float]]:
    """(row, suggested class, margin) for each likely mislabelled row, largest margin first."""
    proba, labels = np.asarray(proba, np.float64), np.asarray(labels, np.int64)
    n, k = proba.shape
    thresholds = np.array([proba[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    above = proba >= thresholds[None, :] - 1e-12
    claimed = np.where(above, proba, -1.0).argmax(1)
    issue = above.any(1) & (claimed != labels)
    rows = np.nonzero(issue)[0]
    margins = proba[rows, claimed[rows]] - proba[rows, labels[rows]]
    order = np.argsort(-margins)
    return [(int(rows[i]), int(claimed[rows[i]]), float(margins[i])) for i in order]


def label_issues(run_dir: str | Path, progress=None) -> dict:
    """Likely label errors among the run's images (train and validation), saved with the run.

    -> {"issues": [{"path", "split", "given", "suggested", "p_given", "p_suggested"}],
        "n_images", "oof_acc"}; the out-of-fold accuracy says how far the probes can be trusted.
    """
    run_dir = Path(run_dir)
    path = run_dir / LABEL_ISSUES_FILE
    model_file = run_dir / "model.safetensors"
    if path.exists() and path.stat().st_mtime >= model_file.stat().st_mtime:
        return read_json(path)
    rf = run_features(run_dir, progress)
    y = torch.from_numpy(rf.labels)
    proba = out_of_fold_proba(torch.from_numpy(rf.features), y, len(rf.classes)).double().numpy()
    issues = [{"path": rf.paths[i], "split": rf.splits[i], "given": rf.classes[rf.labels[i]],
               "suggested": rf.classes[c], "p_given": round(float(proba[i, rf.labels[i]]), 4),
               "p_suggested": round(float(proba[i, c]), 4)}
              for i, c, _ in find_label_issues(proba, rf.labels)]
    result = {"issues": issues, "n_images": len(rf.paths),
              "oof_acc": float((proba.argmax(1) == rf.labels).mean())}
    write_json_atomic(path, result)
    return result

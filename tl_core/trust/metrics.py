"""Evaluation numbers from a run's saved validation predictions (scikit-learn's metrics, no torch)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tl_core.base.atomic import read_json


@dataclass(frozen=True)
class Evaluation:
    classes: list
    accuracy: float
    confusion: list  # confusion[true][pred] = count
    per_class: list  # [{"class", "precision", "recall", "f1", "support"}]
    misclassified: list  # [{"path", "true", "pred", "confidence"}], most confident first


def _per_class(y_true: list, y_pred: list, classes: list) -> list:
    from sklearn.metrics import precision_recall_fscore_support  # seconds to import; pages import this module
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(classes))), zero_division=0)
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)]


def evaluation_from_predictions(preds: dict) -> Evaluation:
    """preds: {"classes": [...], "items": [{"path", "true", "probs"}]} as train() writes it."""
    from sklearn.metrics import accuracy_score, confusion_matrix  # heavy (scipy): see _per_class
    classes, items = preds["classes"], preds["items"]
    n = len(classes)
    if not items:  # sklearn refuses empty inputs; no validation images: nothing measured
        empty = [{"class": c, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for c in classes]
        return Evaluation(classes, 0.0, [[0] * n for _ in range(n)], empty, [])
    y_true = [it["true"] for it in items]
    y_pred = [max(range(n), key=it["probs"].__getitem__) for it in items]
    wrong = [{"path": it["path"], "true": classes[t], "pred": classes[p], "confidence": it["probs"][p]}
             for it, t, p in zip(items, y_true, y_pred) if p != t]
    wrong.sort(key=lambda w: -w["confidence"])
    return Evaluation(classes, float(accuracy_score(y_true, y_pred)),
                      confusion_matrix(y_true, y_pred, labels=list(range(n))).tolist(),
                      _per_class(y_true, y_pred, classes), wrong)


def right_per_image(run_dir: str | Path) -> tuple:
    """((validation image path, right at the best checkpoint?), ...) sorted by path, from the run's
    val_predictions.json: what the verdict's paired test compares. () when the file is missing or unreadable."""
    try:
        items = read_json(Path(run_dir) / "val_predictions.json")["items"]
        return tuple(sorted((it["path"], max(range(len(it["probs"])), key=it["probs"].__getitem__) == it["true"])
                            for it in items))
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def evaluation(run_dir: str | Path) -> Evaluation:
    """The Evaluation of a run's best checkpoint, from its saved val_predictions.json."""
    return evaluation_from_predictions(read_json(Path(run_dir) / "val_predictions.json"))

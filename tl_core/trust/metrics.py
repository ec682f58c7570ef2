"""Evaluation numbers from a run's saved validation predictions (plain Python, no torch)."""
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


def _per_class(confusion: list, classes: list) -> list:
    rows = []
    for i, name in enumerate(classes):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(len(classes)))
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows


def evaluation_from_predictions(preds: dict) -> Evaluation:
    """preds: {"classes": [...], "items": [{"path", "true", "probs"}]} as train() writes it."""
    classes = preds["classes"]
    n = len(classes)
    confusion = [[0] * n for _ in range(n)]
    wrong = []
    for it in preds["items"]:
        probs = it["probs"]
        pred = max(range(n), key=probs.__getitem__)
        confusion[it["true"]][pred] += 1
        if pred != it["true"]:
            wrong.append({"path": it["path"], "true": classes[it["true"]], "pred": classes[pred],
                          "confidence": probs[pred]})
    total = sum(map(sum, confusion))
    accuracy = sum(confusion[i][i] for i in range(n)) / total if total else 0.0
    wrong.sort(key=lambda w: -w["confidence"])
    return Evaluation(classes, accuracy, confusion, _per_class(confusion, classes), wrong)


def evaluation(run_dir: str | Path) -> Evaluation:
    """The Evaluation of a run's best checkpoint, from its saved val_predictions.json."""
    return evaluation_from_predictions(read_json(Path(run_dir) / "val_predictions.json"))

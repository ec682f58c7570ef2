"""A run's backbone features (tl_core.training.features.embed: computed once, cached), for the
label-error search, calibration checks, the map and the embeddings export (.npz + .csv + a
scikit-learn snippet).

Seed 003: a pretrained network is also a feature extractor for classical algorithms. The
exported features are exactly the input of the run's head, so a logistic regression on them
reproduces the head (the snippet proves it on the validation split).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tl_core.base.atomic import open_atomic, read_json, write_json_atomic, write_text_atomic
from tl_core.base.config import RunConfig
from tl_core.base.messages import DataError
from tl_core.data.dataset import Dataset
from tl_core.models.checkpoint import load_model
from tl_core.training.balance import class_weights_for
from tl_core.training.features import embed
from tl_core.training.probe import choose_l2


@dataclass
class RunFeatures:
    """Features of every image of a run's dataset, with where each came from."""

    classes: list
    paths: list  # absolute paths
    splits: list  # "train" | "val"
    labels: np.ndarray  # folder labels
    features: np.ndarray  # (n, d) float32
    val_acc: float  # the run's own validation accuracy (its head on these features)
    logits: np.ndarray  # the run's head on the features

    def split_mask(self, split: str) -> np.ndarray:
        return np.array([s == split for s in self.splits])


def run_dataset(run_dir: Path) -> Dataset:
    path = Path(run_dir) / "dataset.json"
    if not path.exists():
        raise DataError("trust.no_dataset_json", run=Path(run_dir).name)
    return Dataset.from_dict(read_json(path))


def run_features(run_dir: str | Path, progress=None) -> RunFeatures:
    """Features of the run's train and validation images under its best checkpoint's backbone."""
    run_dir = Path(run_dir)
    model, cfg, classes, pp = load_model(run_dir)
    ds = run_dataset(run_dir)
    items = [it for it in ds.train + ds.val if Path(it.path).exists()]
    feats = embed(model, items, progress, pp=pp)
    with torch.inference_mode():
        logits = model.get_classifier()(torch.from_numpy(feats)).double().numpy()
    n_train = sum(1 for it in ds.train if Path(it.path).exists())
    splits = ["train"] * n_train + ["val"] * (len(items) - n_train)
    labels = np.array([it.label for it in items], np.int64)
    val = np.array(splits) == "val"
    acc = float((logits[val].argmax(1) == labels[val]).mean()) if val.any() else float("nan")
    return RunFeatures(classes, [it.path for it in items], splits, labels, feats, acc, logits)


def export_embeddings(run_dir: str | Path, out_dir: str | Path, progress=None) -> dict:
    """Write embeddings.npz, embeddings.csv and sklearn_check.py under out_dir; -> their paths."""
    rf = run_features(run_dir, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(run_dataset(Path(run_dir)).root)
    files = [_relative(p, root) for p in rf.paths]
    np.savez_compressed(out / "embeddings.npz", features=rf.features, labels=rf.labels,
                        files=np.array(files), splits=np.array(rf.splits), classes=np.array(rf.classes))
    with open_atomic(out / "embeddings.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "split", "label", *[f"f{i}" for i in range(rf.features.shape[1])]])
        for name, split, label, row in zip(files, rf.splits, rf.labels, rf.features):
            w.writerow([name, split, rf.classes[label], *(f"{v:.7g}" for v in row)])
    write_text_atomic(out / "sklearn_check.py", sklearn_snippet(rf.val_acc, head_c(run_dir, rf), _class_weight(run_dir)))
    write_json_atomic(out / "embeddings.json", {"head_val_acc": rf.val_acc, "classes": rf.classes,
                                                "dims": int(rf.features.shape[1])})
    return {"npz": str(out / "embeddings.npz"), "csv": str(out / "embeddings.csv"),
            "snippet": str(out / "sklearn_check.py"), "head_val_acc": rf.val_acc}


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def head_c(run_dir, rf: RunFeatures) -> float:
    """scikit-learn's C for a logistic regression like the convex head solver (probe.py).

    probe.fit_logistic minimises mean cross-entropy + l2/2 * |W|^2 on standardised features;
    scikit-learn minimises C * sum cross-entropy + 1/2 * |W|^2, so on the same standardised
    features C = 1 / (l2 * n_train). l2 is chosen by the same cross-validation on the training split.
    """
    # with class weights (mean 1 over classes) the weights still sum to n_train: C is unchanged
    train = rf.split_mask("train")
    l2 = choose_l2(torch.from_numpy(rf.features[train]), torch.from_numpy(rf.labels[train]), len(rf.classes))
    return 1.0 / (float(l2) * int(train.sum()))


def _class_weight(run_dir) -> dict | None:
    """The run's per-class loss weights as scikit-learn's class_weight (None when off)."""
    cfg = RunConfig.from_dict(read_json(Path(run_dir) / "run.json")["config"])
    weights = class_weights_for(cfg, run_dataset(Path(run_dir)))
    return {i: round(w, 8) for i, w in enumerate(weights)} if weights else None


_SKLEARN = '''"""Reproduce the TL Studio head with scikit-learn on the exported backbone features.

pip install numpy scikit-learn; run next to embeddings.npz: python sklearn_check.py
"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HEAD_VAL_ACC = {acc!r}  # the TL Studio head's validation accuracy on these features
C = {c!r}  # the head's L2 strength (chosen by 5-fold CV on train) as C = 1 / (l2 * n_train)
CLASS_WEIGHT = {class_weight!r}  # TL Studio's class-weighted loss (on when classes are imbalanced)

d = np.load("embeddings.npz")
x, y, split = d["features"].astype(np.float64), d["labels"], d["splits"]
train, val = split == "train", split == "val"

logreg = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight=CLASS_WEIGHT, max_iter=5000, tol=1e-8))
logreg.fit(x[train], y[train])
print(f"logistic regression: val acc {{logreg.score(x[val], y[val]):.4f}}  (TL Studio head: {{HEAD_VAL_ACC:.4f}})")

# k-NN on L2-normalised features (cosine distance): no training at all
unit = x / np.linalg.norm(x, axis=1, keepdims=True)
knn = KNeighborsClassifier(n_neighbors=5).fit(unit[train], y[train])
print(f"5-NN (cosine):       val acc {{knn.score(unit[val], y[val]):.4f}}")
'''


def sklearn_snippet(head_val_acc: float, c: float, class_weight: dict | None = None) -> str:
    return _SKLEARN.format(acc=round(float(head_val_acc), 6), c=float(c), class_weight=class_weight)


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates of the features: "pca" (instant) or "tsne" (keeps neighbourhoods; seconds)."""
    from sklearn.decomposition import PCA  # scikit-learn takes seconds to import: only the map needs it
    from sklearn.manifold import TSNE  # the same deferred import

    x = np.asarray(features, np.float64)
    if len(x) < 2:  # one image: nothing to spread out
        return np.zeros((len(x), 2))
    if method == "tsne" and len(x) > 5:
        top = PCA(min(50, *x.shape), random_state=seed).fit_transform(x)  # the usual PCA-50 first: faster, less noise
        return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(top)
    xy = PCA(min(2, *x.shape), random_state=seed).fit_transform(x)
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))  # a single feature: a line on the x axis

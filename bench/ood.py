"""Issue 19 measurements on real photos: "none of these" (kNN against MSP and energy, from the same
runs), the data-size curve's time, and cleanlab's label-issue finder against ours.

    .venv/bin/python -m bench.ood --trashnet ../shared/data/trashnet --hymenoptera ../shared/data/hymenoptera_data

Trains the default run (RunConfig() defaults: tf_efficientnet_lite0, packaged ImageNet weights,
feature extraction, solved head) on each dataset, and one TrashNet run per held-out class. Every
score of a pair comes from the same run: kNN on its features (its float16 bank), MSP on its
calibrated probabilities, energy on its logits. Thresholds keep 95% of validation images in;
they are chosen on one half of the validation images and measured on the other (and swapped),
so "in-domain answers lost" is not the 5% the threshold was set to by construction.
Prints one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported; benchmarks never download

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.jobs import runs  # noqa: E402
from tl_core.models.checkpoint import load_model  # noqa: E402
from tl_core.training.train import train  # noqa: E402
from tl_core.trust import calibration, ood  # noqa: E402
from tl_core.training.features import embed  # noqa: E402
from tl_core.trust.embeddings import run_dataset, run_features  # noqa: E402

KS = (1, 3, 5, 10, 20)


def train_run(data: Path, out: Path, name: str) -> Path:
    ds = load_dataset(data, workdir=str(out / f"{name}-work"))
    cfg = RunConfig()
    run_dir = runs.create_run(out / "runs", cfg, ds.classes, ds.to_dict())
    last = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))[-1]
    assert type(last).__name__ == "Finished", last
    return run_dir


def outside_features(run_dir: Path, folder: Path, only: str | None = None) -> np.ndarray:
    """The run's backbone features of every image under `folder` (of class `only`, if given)."""
    model, _, _, pp = load_model(run_dir)
    ds = load_dataset(folder, val_fraction=0.5)
    items = [it for it in ds.train + ds.val if only is None or ds.classes[it.label] == only]
    return embed(model, items, pp=pp)


def scores_of(run_dir: Path, feats: np.ndarray, k: int | None = None) -> dict:
    """kNN, MSP and energy scores of features under the run (higher = more out-of-domain)."""
    model, *_ = load_model(run_dir)
    with torch.inference_mode():
        logits = model.get_classifier()(torch.from_numpy(feats)).double().numpy()
    cal = calibration.load(run_dir)
    detector = ood.load(run_dir)
    bank = ood.load_bank(run_dir)
    probs = cal.probabilities(logits)
    return {"knn": ood.knn_scores(bank, feats, k or detector.k), "msp": ood.msp_scores(probs),
            "energy": ood.energy_scores(logits), "probs": probs}


def cross_fitted(val: np.ndarray, out: np.ndarray, right: np.ndarray, seed: int = 0) -> dict:
    """Threshold at 95% kept on one half of validation, measured on the other half (both ways)."""
    idx = np.random.default_rng(seed).permutation(len(val))
    halves = (idx[: len(idx) // 2], idx[len(idx) // 2:])
    lost, lost_right, flagged = [], [], []
    for fit_on, test_on in (halves, halves[::-1]):
        t = ood.threshold_for(val[fit_on])
        lost.append(float((val[test_on] > t).mean()))
        lost_right.append(float((val[test_on][right[test_on]] > t).mean()))
        flagged.append(float((out > t).mean()))
    return {"auroc": ood.auroc(val, out), "flagged": float(np.mean(flagged)), "val_lost": float(np.mean(lost)),
            "correct_lost": float(np.mean(lost_right))}


def pair(run_dir: Path, out_feats: np.ndarray, name: str) -> dict:
    rf = run_features(run_dir)
    val = rf.split_mask("val")
    v = scores_of(run_dir, rf.features[val])
    o = scores_of(run_dir, out_feats)
    right = v["probs"].argmax(1) == rf.labels[val]
    cal = calibration.load(run_dir)
    result = {"pair": name, "n_val": int(val.sum()), "n_out": len(out_feats), "k": ood.load(run_dir).k}
    for score in ("knn", "msp", "energy"):
        result[score] = cross_fitted(v[score], o[score], right)
    # the app's whole answer: "none of these" (kNN) or "not sure" (calibrated MSP below the run's threshold)
    t_knn = ood.load(run_dir).threshold
    either_out = (o["knn"] > t_knn) | (o["probs"].max(1) < cal.threshold)
    either_val = (v["knn"] > t_knn) | (v["probs"].max(1) < cal.threshold)
    result["app_answer"] = {"out_none_or_not_sure": float(either_out.mean()),
                            "out_none_of_these": float((o["knn"] > t_knn).mean()),
                            "out_not_sure_only_today": float((o["probs"].max(1) < cal.threshold).mean()),
                            "val_correct_withheld": float(either_val[right].mean()),
                            "note": "thresholds of the run itself, chosen on all of its validation images"}
    result["knn_auroc_by_k"] = {k: ood.auroc(scores_of(run_dir, rf.features[val], k)["knn"],
                                             scores_of(run_dir, out_feats, k)["knn"]) for k in KS}
    return result


def held_out(trashnet: Path, out: Path, klass: str) -> dict:
    """Train on TrashNet without `klass`; its photos are the near out-of-domain images."""
    data = out / f"trashnet-without-{klass}"
    if not data.exists():
        shutil.copytree(trashnet, data, ignore=lambda d, names: [n for n in names if n == klass])
    run_dir = train_run(data, out, f"without-{klass}")
    return pair(run_dir, outside_features(run_dir, trashnet, only=klass), f"trashnet without {klass}")


def curve_time(run_dir: Path) -> dict:
    from tl_core.trust.curve import CURVE_FILE, run_curve

    (run_dir / CURVE_FILE).unlink(missing_ok=True)
    t = time.perf_counter()
    result = run_curve(run_dir)
    return {"seconds_total": round(time.perf_counter() - t, 2), "seconds_solving": result["seconds"],
            "n_train": result["n"][-1], "reading": result["reading_en"], "means": result["overall"]["mean"]}


def label_issue_finders(run_dir: Path, share: float = 0.05, seeds=(0, 1, 2)) -> dict:
    """Plant label flips in `share` of the images and measure how well each finder recovers them
    (precision, recall, F1 against the planted set), on the same out-of-fold probabilities."""
    from cleanlab.filter import find_label_issues as cleanlab_find  # the library compared with ours

    from tl_core.training.probe import out_of_fold_proba
    from tl_core.trust.label_issues import find_label_issues as ours_find

    from tl_core.trust.curve import run_l2

    rf = run_features(run_dir)
    x, n, c = torch.from_numpy(rf.features), len(rf.labels), len(rf.classes)
    l2 = run_l2(run_dir)  # the run's own (cross-validated once): 5 solves per seed instead of 50
    rows = {"ours": [], "cleanlab": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        flipped = rng.choice(n, int(share * n), replace=False)
        noisy = rf.labels.copy()
        noisy[flipped] = (noisy[flipped] + rng.integers(1, c, len(flipped))) % c
        proba = out_of_fold_proba(x, torch.from_numpy(noisy), c, l2=l2).double().numpy()
        t = time.perf_counter()
        found_ours = {r for r, _, _ in ours_find(proba, noisy)}
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        found_cl = set(np.nonzero(cleanlab_find(noisy, proba))[0].tolist())
        t_cl = time.perf_counter() - t
        for name, found, secs in (("ours", found_ours, t_ours), ("cleanlab", found_cl, t_cl)):
            hit = len(found & set(flipped.tolist()))
            prec, rec = hit / max(1, len(found)), hit / len(flipped)
            rows[name].append({"seed": seed, "found": len(found), "precision": prec, "recall": rec,
                               "f1": 2 * prec * rec / max(1e-12, prec + rec), "seconds": secs})
    return {"planted": int(share * n), "n": n, **{k: {"f1_mean": float(np.mean([r["f1"] for r in v])), "runs": v}
                                                  for k, v in rows.items()}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trashnet", type=Path, required=True)
    p.add_argument("--hymenoptera", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="tl-bench-ood-")))
    p.add_argument("--held-out", default="all", help="TrashNet classes to hold out (comma list, or all)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    results = {"load_before": os.getloadavg()}
    trash_run = train_run(a.trashnet, a.out, "trashnet")
    hym_run = train_run(a.hymenoptera, a.out, "hymenoptera")
    results["pairs"] = [pair(trash_run, outside_features(trash_run, a.hymenoptera), "trashnet model, hymenoptera photos"),
                        pair(hym_run, outside_features(hym_run, a.trashnet), "hymenoptera model, trashnet photos")]
    _show(results)
    results["curve"] = {"trashnet": curve_time(trash_run), "hymenoptera": curve_time(hym_run)}
    results["label_issues_trashnet"] = label_issue_finders(trash_run)
    _show(results)
    classes = run_dataset(trash_run).classes if a.held_out == "all" else a.held_out.split(",")
    results["held_out"] = []
    for c in classes:
        results["held_out"].append(held_out(a.trashnet, a.out, c))
        _show(results)
    results["load_after"] = os.getloadavg()
    _show(results)


def _show(results: dict) -> None:
    """Each section as soon as it is measured (a long campaign on a shared machine may be cut short)."""
    print(json.dumps(results), flush=True)

if __name__ == "__main__":
    main()

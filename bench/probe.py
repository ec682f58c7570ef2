"""The linear probe, ours (torch L-BFGS, tl_core/training/probe.py) against scikit-learn's
LogisticRegressionCV / cross_val_predict, on real photos: time and accuracy side by side.

    .venv/bin/python -m bench.probe --data ../shared/data/trashnet --repeats 3

Features: RunConfig() defaults (tf_efficientnet_lite0 with its packaged ImageNet weights), every
image of --data embedded once and kept in bench/out/ (the probe is what is timed, not the
backbone). Both sides standardise the features, try the same L2 grid with 5 stratified folds on
the training split, refit on the whole training split and are scored on the validation split;
then each gives out-of-fold probabilities for the training rows (what label issues use).
The first repetition is "cold" (imports, first allocations), the rest are medians ("warm").
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tl_core.base.config import RunConfig
from tl_core.data.dataset import load_dataset
from tl_core.training import probe
from tl_core.training.device import configure_threads, cpu_sample
from tl_core.training.features import embed

OUT = Path(__file__).resolve().parent / "out"


def features(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) under RunConfig() defaults, embedded once and kept."""
    ds = load_dataset(data)
    cache = OUT / f"probe_features_{data.name}_{len(ds.train)}_{len(ds.val)}.npz"
    if not cache.exists():
        t = time.perf_counter()
        f = embed(RunConfig(), ds.train + ds.val)
        print(f"embedded {len(f)} images in {time.perf_counter() - t:.0f} s", flush=True)
        OUT.mkdir(exist_ok=True)
        np.savez(cache, x=f, y=np.array([it.label for it in ds.train + ds.val]), n_train=len(ds.train))
    z = np.load(cache)
    n = int(z["n_train"])
    return z["x"][:n], z["y"][:n], z["x"][n:], z["y"][n:]


def ours(xtr, ytr, xva, yva) -> dict:
    x, y, c = torch.from_numpy(xtr).float(), torch.from_numpy(ytr).long(), int(ytr.max()) + 1
    t = time.perf_counter()
    l2 = probe.choose_l2(x, y, c)
    fitted = probe.fit_logistic(x, y, c, l2)
    fit_s = time.perf_counter() - t
    acc = fitted.accuracy(torch.from_numpy(xva).float(), torch.from_numpy(yva).long())
    t = time.perf_counter()
    oof = probe.out_of_fold_proba(x, y, c, l2=l2)
    oof_s = time.perf_counter() - t
    return {"l2": l2, "fit_s": fit_s, "val_acc": acc, "oof_s": oof_s,
            "oof_acc": float((oof.argmax(1) == y).float().mean())}


def sklearn(xtr, ytr, xva, yva) -> dict:
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # bench only
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # bench only
    from sklearn.pipeline import make_pipeline  # bench only
    from sklearn.preprocessing import StandardScaler  # bench only

    warnings.filterwarnings("ignore", category=FutureWarning)  # sklearn 1.9 announces 1.10's defaults
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    n_fit = len(ytr) * 4 // 5  # ours: mean loss + l2/2 |W|^2; sklearn: C * summed loss + 1/2 |W|^2
    cs = [1 / (l2 * n_fit) for l2 in probe.L2_GRID]
    t = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=cs, cv=folds, scoring="accuracy",
                                                                 max_iter=probe.MAX_ITER))
    model.fit(xtr, ytr)
    fit_s = time.perf_counter() - t
    c_best = float(model[-1].C_[0])
    acc = float((model.predict(xva) == yva).mean())
    t = time.perf_counter()
    one = make_pipeline(StandardScaler(), LogisticRegression(C=c_best, max_iter=probe.MAX_ITER))
    oof = cross_val_predict(one, xtr, ytr, cv=folds, method="predict_proba")
    oof_s = time.perf_counter() - t
    return {"l2": 1 / (c_best * n_fit), "fit_s": fit_s, "val_acc": acc, "oof_s": oof_s,
            "oof_acc": float((oof.argmax(1) == ytr).mean())}


def summarise(runs: list[dict]) -> dict:
    out = {"cold_fit_s": runs[0]["fit_s"], "cold_oof_s": runs[0]["oof_s"]}
    warm = runs[1:] or runs
    for key in ("fit_s", "oof_s"):
        out[f"warm_{key}"] = statistics.median(r[key] for r in warm)
    out.update({k: runs[-1][k] for k in ("l2", "val_acc", "oof_acc")})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/trashnet"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    xtr, ytr, xva, yva = features(Path(args.data))
    from threadpoolctl import threadpool_limits  # bench only (scikit-learn's own dependency)

    threads = configure_threads(cpu_sample())  # the thread count tl_core's policy would use now
    threadpool_limits(threads)  # numpy/scipy's BLAS (scikit-learn) on as many threads as torch (ours)
    results: dict[str, list] = {"ours": [], "sklearn": []}
    for i in range(args.repeats):  # alternated, so both see the same background load
        for name, fn in (("sklearn", sklearn), ("ours", ours)):
            results[name].append(fn(xtr, ytr, xva, yva))
            print(f"repetition {i + 1} {name}: {json.dumps(results[name][-1])}", flush=True)
    report = {name: summarise(r) for name, r in results.items()}
    report.update(n_train=len(ytr), n_val=len(yva), dim=int(xtr.shape[1]), threads=threads,
                  load_average=os.getloadavg())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""python -m bench.quality: model quality with the app's defaults, beside what an expert would do.

    python -m bench.quality                        # hymenoptera + trashnet from ../shared/data
    python -m bench.quality --data FOLDER ...      # any folders of class sub-folders
    python -m bench.quality --write                # also append the table to BENCHMARKS.md

For each dataset, on the app's own split (load_dataset's stratified 80/20, or the folder's
train/ + val/): every strategy with the app's default settings (default backbone and its
default weights source, each strategy's default learning rate, 10 epochs), and beside it two
expert references on the same split:
- linear probe: scikit-learn LogisticRegression on the same frozen features (a plain PIL +
  torchvision forward pass), standardised, its C chosen by 5-fold cross-validation on the
  training split only;
- plain fine-tuning: the timm model with the same starting weights, timm's own training
  transform, AdamW lr 1e-4 with a cosine schedule, the same number of epochs; the accuracy of
  the last epoch (nothing is picked on the validation split).
Validation images are never used to choose anything in the references.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported; benchmarks never download

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tl_core.base.config import DEFAULT_LR, STRATEGIES, RunConfig  # noqa: E402
from tl_core.base.events import Failed, Finished  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.training.train import train  # noqa: E402

from .common import ROOT, machine  # noqa: E402
from .reference import Files, embed  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = [SHARED / "hymenoptera_data", SHARED / "trashnet"]


def app_run(ds, strategy: str, epochs: int) -> dict:
    """One run through tl_core.training.train with the app's defaults for `strategy`."""
    cfg = RunConfig(strategy=strategy, lr=DEFAULT_LR[strategy], epochs=epochs)
    t = time.perf_counter()
    last = None
    for e in train(cfg, ds):
        last = e
    if isinstance(last, Failed):
        return {"what": f"app: {strategy}", "acc": None, "seconds": time.perf_counter() - t, "note": last.message}
    assert isinstance(last, Finished), last
    return {"what": f"app: {strategy}", "acc": last.metrics["val/acc"], "seconds": time.perf_counter() - t,
            "note": f"best epoch {last.best_epoch} of {epochs}"}


def _pretrained_model(num_classes: int):
    from tl_core.models.model import build_model

    return build_model(RunConfig(), num_classes)  # the default backbone and weights source


def expert_probe(ds) -> dict:
    """scikit-learn logistic regression on frozen features; C by 5-fold CV on train only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tl_core.data.transforms import preprocess_for

    t = time.perf_counter()
    model = _pretrained_model(len(ds.classes))
    pp = preprocess_for(model, 0)
    x_train, x_val = (embed(model, items, pp, 32).numpy() for items in (ds.train, ds.val))
    y_train = np.array([it.label for it in ds.train])
    y_val = np.array([it.label for it in ds.val])
    grid = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                        {"logisticregression__C": np.logspace(-4, 2, 13)},
                        cv=StratifiedKFold(5, shuffle=True, random_state=0))
    grid.fit(x_train, y_train)
    acc = float((grid.predict(x_val) == y_val).mean())
    c = grid.best_params_["logisticregression__C"]
    return {"what": "expert: logistic regression on frozen features", "acc": acc,
            "seconds": time.perf_counter() - t, "note": f"C={c:.3g} by 5-fold CV on train"}


def expert_finetune(ds, epochs: int) -> dict:
    """timm's training transform, AdamW 1e-4, cosine; last-epoch accuracy."""
    import timm.data

    torch.manual_seed(0)
    t = time.perf_counter()
    model = _pretrained_model(len(ds.classes))
    data_cfg = timm.data.resolve_data_config(model=model)
    train_tf = timm.data.create_transform(**data_cfg, is_training=True)
    eval_tf = timm.data.create_transform(**data_cfg)
    train_loader = torch.utils.data.DataLoader(Files(ds.train, train_tf), batch_size=32, shuffle=True,
                                               drop_last=len(ds.train) % 32 == 1)
    val_loader = torch.utils.data.DataLoader(Files(ds.val, eval_tf), batch_size=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(train_loader))
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return {"what": "expert: plain timm fine-tuning (all layers)", "acc": correct / len(ds.val),
            "seconds": time.perf_counter() - t, "note": f"last of {epochs} epochs"}


def bench_dataset(folder: Path, strategies, epochs: int, experts) -> list[dict]:
    """Each row is printed as one JSON line as soon as it is measured."""
    ds = load_dataset(folder)
    jobs = [lambda s=s: app_run(ds, s, epochs) for s in strategies]
    jobs += [lambda: expert_probe(ds)] if "probe" in experts else []
    jobs += [lambda: expert_finetune(ds, epochs)] if "finetune" in experts else []
    rows = []
    for job in jobs:
        row = job()
        row.update(data=folder.name, n_train=len(ds.train), n_val=len(ds.val))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| data | what | val accuracy | time | note |", "|---|---|---|---|---|"]
    for r in rows:
        acc = "failed" if r["acc"] is None else f"{r['acc']:.1%} ({round(r['acc'] * r['n_val'])}/{r['n_val']})"
        lines.append(f"| {r['data']} ({r['n_train']} train) | {r['what']} | {acc} | {r['seconds']:.0f} s | {r['note']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", type=Path, help="dataset folder (repeatable)")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--epochs", type=int, default=RunConfig.epochs)
    p.add_argument("--experts", default="probe,finetune", help="expert references to run: probe,finetune (or none)")
    p.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    a = p.parse_args(argv)
    folders = a.data or [d for d in DEFAULT_DATA if d.is_dir()]
    rows = []
    for folder in folders:
        rows += bench_dataset(folder, [s for s in a.strategies.split(",") if s], a.epochs, a.experts.split(","))
    text = markdown(rows)
    print(text)
    if a.write:
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write(f"\n\n### Model quality run, {time.strftime('%Y-%m-%d %H:%M')}\n\n"
                    f"Machine: {json.dumps(machine())}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 11 measurements on real photos: audit, calibration, "not sure" on unfamiliar photos,
label issues, the scikit-learn reproduction and export parity.

    .venv/bin/python -m bench.trust --data ../shared/data/trashnet --ood ../shared/data/hymenoptera_data

Trains the default run (RunConfig() defaults: tf_efficientnet_lite0, packaged ImageNet weights,
feature extraction) on --data, then prints one JSON object with every figure, and writes
montages of the duplicate pairs and label issues (for looking at them) under --out.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tl_core.base.config import RunConfig
from tl_core.data import audit
from tl_core.data.dataset import load_dataset
from tl_core.jobs import runs
from tl_core.serving.export import export_run
from tl_core.serving.predict import Predictor
from tl_core.training.features import embed
from tl_core.training.train import train
from tl_core.trust import calibration
from tl_core.trust.embeddings import export_embeddings
from tl_core.trust.label_issues import label_issues


def montage(rows: list[tuple[list[str], str]], path: Path, side: int = 160) -> None:
    """Rows of images with a caption line each: for looking at what was found."""
    if not rows:
        return
    width = max(len(r[0]) for r in rows) * (side + 6)
    sheet = Image.new("RGB", (width, len(rows) * (side + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (paths, caption) in enumerate(rows):
        for c, p in enumerate(paths):
            im = Image.open(p).convert("RGB")
            im.thumbnail((side, side))
            sheet.paste(im, (c * (side + 6), k * (side + 18) + 16))
        draw.text((2, k * (side + 18) + 2), caption, fill="black")
    sheet.save(path)


def audit_figures(ds, cfg: RunConfig, out: Path) -> dict:
    t = time.perf_counter()
    by_hash = audit.audit(ds)
    hash_s = time.perf_counter() - t
    feats = embed(cfg, ds.train + ds.val)
    both = audit.audit(ds, feats)
    rel = lambda p: str(Path(p).relative_to(ds.root))  # noqa: E731
    pairs = [{"where": p.where, "kind": p.kind, "method": p.method, "similarity": p.similarity,
              "a": rel(p.a), "b": rel(p.b)} for p in both.pairs]
    montage([([p.a, p.b], f"{p.where} {p.method} {p.similarity}") for p in both.pairs], out / "audit_pairs.png")
    return {"hash_only_pairs": len(by_hash.pairs), "hash_seconds": round(hash_s, 2), "with_features_pairs": pairs,
            "imbalance": round(both.imbalance, 3), "class_weights_on": both.class_weights_on}


def train_default(ds, cfg: RunConfig, out: Path) -> Path:
    run_dir = runs.create_run(out / "runs", cfg, ds.classes, ds.to_dict())
    last = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))[-1]
    assert type(last).__name__ == "Finished", last
    return run_dir


def ood_figures(run_dir: Path, ood: Path) -> dict:
    """Photos of classes the model does not know: "not sure" against a confident (wrong) answer,
    calibrated (the app) and, for comparison, the raw softmax with its threshold chosen the same way."""
    import torch

    pred = Predictor(run_dir)
    cal = pred.calibration()
    paths = sorted(str(p) for p in ood.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    logits = []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            logits.append(pred.model(pred.tensor(paths[start:start + 32])).double().numpy())
    logits = np.concatenate(logits)
    probs = cal.probabilities(logits)
    sure = probs.max(1) >= cal.threshold
    val_logits, val_labels = calibration.val_logits(run_dir)
    raw_threshold = calibration.choose_threshold(calibration.softmax(val_logits), val_labels, cal.keep_correct)
    raw = calibration.softmax(logits)
    return {"images": len(paths), "not_sure": int((~sure).sum()), "confident_wrong": int(sure.sum()),
            "threshold": cal.threshold, "median_top_prob": float(np.median(probs.max(1))),
            "confident_wrong_classes": {c: int((probs[sure].argmax(1) == i).sum()) for i, c in enumerate(pred.classes)},
            "raw_softmax": {"threshold": raw_threshold, "confident_wrong": int((raw.max(1) >= raw_threshold).sum()),
                            "median_top_prob": float(np.median(raw.max(1))),
                            "above_0.9": int((raw.max(1) >= 0.9).sum())},
            "calibrated_above_0.9": int((probs.max(1) >= 0.9).sum())}


def sklearn_figures(run_dir: Path, out: Path) -> dict:
    exp = export_embeddings(run_dir, out / "embeddings")
    r = subprocess.run([sys.executable, "sklearn_check.py"], cwd=out / "embeddings", capture_output=True, text=True,
                       check=True)
    return {"head_val_acc": exp["head_val_acc"], "sklearn_stdout": r.stdout.strip().splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/trashnet")
    ap.add_argument("--ood", default="/work/shared/data/hymenoptera_data")
    ap.add_argument("--out", default="/tmp/tl_trust")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig()
    ds = load_dataset(a.data, val_fraction=cfg.val_fraction, seed=cfg.seed)
    result = {"config": {"backbone": cfg.backbone, "pretrained": cfg.pretrained, "strategy": cfg.strategy},
              "images": len(ds.train) + len(ds.val), "audit": audit_figures(ds, cfg, out)}
    run_dir = train_default(ds, cfg, out)
    info = runs.read_run(run_dir)
    cal = calibration.load(run_dir)
    result["run"] = {"dir": str(run_dir), "val_acc": info.metrics.get("val/acc")}
    result["calibration"] = {k: cal.to_dict()[k] for k in ("temperature", "threshold", "ece_before", "ece_after",
                                                            "n_val", "mistakes_caught", "nll_before", "nll_after")}
    issues = label_issues(run_dir)
    result["label_issues"] = {"n": len(issues["issues"]), "oof_acc": issues["oof_acc"],
                              "issues": [{k: (str(Path(v).relative_to(ds.root)) if k == "path" else v)
                                          for k, v in i.items()} for i in issues["issues"]]}
    montage([([i["path"]], f"{Path(i['path']).name}: {i['given']} -> {i['suggested']} {i['p_suggested']:.2f}")
             for i in issues["issues"]], out / "label_issues.png")
    result["ood"] = ood_figures(run_dir, Path(a.ood))
    result["sklearn"] = sklearn_figures(run_dir, out)
    for fmt in ("onnx", "safetensors"):
        r = export_run(run_dir, fmt, out / "exports")
        result[f"parity_{fmt}"] = {"n_images": r.n_images, "top1_agreement": r.agreement,
                                   "max_abs_prob_diff": r.max_abs_diff}
    print(json.dumps(result, indent=1))
    (out / "trust.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

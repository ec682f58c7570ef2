"""Issue 21: does bf16 training cost accuracy on this CPU? fp32 against bf16 autocast, side by side.

For each dataset (hymenoptera, TrashNet) and strategy (full, partial), the same run through
train() twice: RunConfig.cpu_bf16 False, then True (the order alternates per seed), with the
packaged ImageNet weights of the default backbone. Reports the final validation accuracy of
each, the difference in points, and the training images/s (median over the epochs after the
first). The rule in tl_core.training.precision turns bf16 on only where a training step is
measured >= 1.2x faster on a CPU with native bf16; this says whether that costs accuracy.

    python -m bench.bf16_accuracy [--epochs 4] [--seeds 0] [--backbone tf_efficientnet_lite0] [--pretrained auto]

Needs ../shared/data (not a test). Results: a markdown table on stdout and build/bf16_accuracy.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

from .common import ROOT, clock, cpu_model, median
from .engines import _run

DATA = {"hymenoptera": ROOT.parent / "shared" / "data" / "hymenoptera_data",
        "trashnet": ROOT.parent / "shared" / "data" / "trashnet"}


def one_run(cfg, ds) -> dict:
    """train() once (bench.engines._run) -> final val accuracy, train images/s after the first epoch,
    wall seconds, and the run's notes (the precision it trained in among them)."""
    seconds, ends, _, notes = _run(cfg, ds)
    rates = [e.metrics["images_per_s"] for e in ends[1:]] or [ends[-1].metrics["images_per_s"]]
    return {"val_acc": ends[-1].metrics["val/acc"], "images_per_s": median(rates), "seconds": seconds,
            "notes": [str(n) for n in notes]}


def measure(datasets: list[str], strategies: list[str], backbone: str, epochs: int, seeds: list[int],
            pretrained: str = "auto") -> list[dict]:
    from tl_core.base.config import RunConfig
    from tl_core.data.dataset import load_dataset

    rows = []
    for name in datasets:
        ds = load_dataset(DATA[name])
        for strategy in strategies:
            for seed in seeds:
                row = {"dataset": name, "strategy": strategy, "seed": seed, "backbone": backbone, "epochs": epochs,
                       "pretrained": pretrained,
                       "train_images": len(ds.train), "val_images": len(ds.val)}
                for bf16 in ((False, True) if seed % 2 == 0 else (True, False)):
                    cfg = RunConfig(backbone=backbone, strategy=strategy, epochs=epochs, seed=seed, cpu_bf16=bf16,
                                    pretrained=pretrained)
                    row["bf16" if bf16 else "fp32"] = one_run(cfg, ds)
                row["points"] = 100 * (row["bf16"]["val_acc"] - row["fp32"]["val_acc"])
                row["speedup"] = row["bf16"]["images_per_s"] / row["fp32"]["images_per_s"]
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| dataset (train/val) | strategy | seed | val acc fp32 | val acc bf16 | bf16 - fp32 | "
             "train img/s fp32 / bf16 | speed-up |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} ({r['train_images']}/{r['val_images']}) | {r['strategy']} | {r['seed']} | "
                     f"{100 * r['fp32']['val_acc']:.1f}% | {100 * r['bf16']['val_acc']:.1f}% | "
                     f"{r['points']:+.1f} points | {r['fp32']['images_per_s']:.1f} / {r['bf16']['images_per_s']:.1f}"
                     f" | {r['speedup']:.2f}x |")
    worst = min(r["points"] for r in rows)
    lines.append(f"\nLargest drop: {-worst:.1f} points (mean difference "
                 f"{statistics.mean(r['points'] for r in rows):+.2f}); the rule keeps bf16 off above 1 point.")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="hymenoptera,trashnet")
    p.add_argument("--strategies", default="full,partial")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", default="0")
    # offline only the default backbone's weights are packaged: "none" compares the precisions of
    # another backbone (resnet18) trained from its random start
    p.add_argument("--pretrained", default="auto")
    args = p.parse_args(argv)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t = clock()
    rows = measure(args.datasets.split(","), args.strategies.split(","), args.backbone, args.epochs,
                   [int(s) for s in args.seeds.split(",")], args.pretrained)
    print(f"\n{cpu_model()}, {os.cpu_count()} cores; load average at start {load}; took {clock() - t:.0f} s\n")
    print(markdown(rows))
    out = ROOT / "build" / "bf16_accuracy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu_model(), "load_at_start": load, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()

"""Does transfer learning work here? Pretrain on task B, fine-tune on task A, compare with scratch.

Task A: ants vs bees (../shared/data/hymenoptera_data, 245 train / 153 val photos) at 96 px.
Task B, two kinds, each trained from random init with TL Studio's own loop and saved as a run:
  shapes    generated shapes (tl_core.data.synthetic), 4 classes, 64 px: another domain entirely.
  rotation  A's *training* photos rotated by 0/90/180/270 degrees, the label is the rotation
            (a self-supervised pretext task; A's labels and A's val photos are never used).
Then every arm trains on A with the same epochs, data, batch size, learning rate and seed:
  scratch          random init (strategy scratch)
  from-<B>         pretrained="run:<B run>" (strategy full: its backbone, a new head)
The pretrained arms had extra compute before (pretraining B): the claim is only that the same
fine-tuning budget on A does better (or not) from B's weights. Median over seeds is printed.

    .venv/bin/python bench/transfer.py            # 283 s on this 2-core CPU (load ~2.5);
                                                  # 24 min while other jobs shared the cores (load 5-9)
    .venv/bin/python bench/transfer.py --seeds 0 --epochs 6   # quick look
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.base.events import EpochEnd, Failed, Finished  # noqa: E402
from tl_core.data.dataset import load_dataset
from tl_core.data.decode import load_rgb  # noqa: E402
from tl_core.data.synthetic import SHAPES, make_shapes_dataset  # noqa: E402
from tl_core.jobs import runs  # noqa: E402
from tl_core.training.train import train  # noqa: E402

HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="test_resnet")
    p.add_argument("--size", type=int, default=96, help="image size for task A and the rotation task")
    p.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs on A, every arm")
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--backbone-lr-mult", type=float, default=1.0,
                   help="pretrained arms' backbone lr factor; 1.0 = the same lr as scratch, so only the "
                        "initialisation differs (the app's default for full fine-tuning is 0.1)")
    p.add_argument("--tasks", nargs="+", default=["shapes", "rotation"], choices=["shapes", "rotation"])
    p.add_argument("--out", default=None, help="folder for runs and results.json (default: a temp folder)")
    return p.parse_args()


def run(root: Path, cfg: RunConfig, ds) -> tuple[Path, dict, float]:
    """One TL Studio run, recorded like the app records it: (run folder, metrics, seconds).

    metrics: the best epoch's (what the app keeps) plus "final/acc", the last epoch's val acc,
    which involves no selection on the validation set.
    """
    t = time.perf_counter()
    run_dir = runs.create_run(root, cfg, ds.classes)
    last, final = None, {}
    for last in runs.record(run_dir, train(cfg, ds, run_dir=run_dir)):
        if isinstance(last, EpochEnd):
            final = last.metrics
    if isinstance(last, Failed):
        raise SystemExit(f"{cfg.strategy} run failed: {last.message}")
    assert isinstance(last, Finished)
    return run_dir, {**last.metrics, "final/acc": final.get("val/acc")}, time.perf_counter() - t


def rotation_task(dest: Path, size: int) -> Path:
    """A's training photos, downscaled once, saved under {train,val}/rot000..rot270.

    The split is by photo: with a photo's other rotations in train, a net that memorises photos
    scored *below* chance on val (0.16-0.22 over 10 epochs, 4 classes) in a first version.
    """
    src = sorted(p for p in (HYMENOPTERA / "train").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for i, path in enumerate(src):
        split = "val" if i % 7 == 0 else "train"  # ~14% of the photos, all four rotations each
        img = load_rgb(path, short_side=int(size * 1.15))
        side = min(img.size)  # square, so a rotation does not show up as a change of aspect ratio
        img = img.crop(((img.width - side) // 2, (img.height - side) // 2,
                        (img.width + side) // 2, (img.height + side) // 2))
        for angle in (0, 90, 180, 270):
            (dest / split / f"rot{angle:03d}").mkdir(parents=True, exist_ok=True)
            img.rotate(angle).save(dest / split / f"rot{angle:03d}" / f"{i:04d}.jpg", quality=92)
    return dest


def pretrain(work: Path, task: str, args) -> tuple[Path, dict, float]:
    if task == "shapes":
        folder = make_shapes_dataset(work / "data-shapes", per_class=100, size=64, classes=SHAPES, seed=123)
        size, augment = 64, "light"
    else:
        folder = rotation_task(work / "data-rotation", args.size)
        size, augment = args.size, "none"  # a horizontal flip turns a 90-degree photo into a 270 one
    ds = load_dataset(folder, val_fraction=0.15, seed=0)
    cfg = RunConfig(backbone=args.backbone, pretrained="none", strategy="scratch", epochs=args.pretrain_epochs,
                    batch_size=32, image_size=size, lr=args.lr, seed=0, augment=augment)
    return run(work / "runs", cfg, ds)


def finetune_arms(work: Path, sources: dict, args) -> dict:
    """val/acc of every arm and seed on task A, plus seconds per run."""
    ds = load_dataset(HYMENOPTERA)  # its own train/ and val/ split
    base = RunConfig(backbone=args.backbone, epochs=args.epochs, batch_size=32, image_size=args.size,
                     lr=args.lr, augment="light")
    arms = {"scratch": base.replace(strategy="scratch", pretrained="none")}
    for task, run_dir in sources.items():
        arms[f"from-{task}"] = base.replace(strategy="full", pretrained=f"run:{run_dir}",
                                            backbone_lr_mult=args.backbone_lr_mult)
    results = {name: {"acc": [], "final_acc": [], "seconds": []} for name in arms}
    for seed in args.seeds:
        for name, cfg in arms.items():
            _, metrics, secs = run(work / "runs", cfg.replace(seed=seed), ds)
            results[name]["acc"].append(round(metrics["val/acc"], 4))
            results[name]["final_acc"].append(round(metrics["final/acc"], 4))
            results[name]["seconds"].append(round(secs, 1))
            print(f"  seed {seed}  {name:<14} val acc best {metrics['val/acc']:.3f} "
                  f"final {metrics['final/acc']:.3f}  ({secs:.0f} s)", flush=True)
    return results


def main() -> None:
    args = parse_args()
    if not HYMENOPTERA.is_dir():
        raise SystemExit(f"task A needs {HYMENOPTERA} (the PyTorch tutorial's ants/bees photos)")
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tl-transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sources, pre = {}, {}
    for task in args.tasks:
        run_dir, metrics, secs = pretrain(work, task, args)
        sources[task] = run_dir
        pre[task] = {"val_acc": round(metrics["val/acc"], 4), "seconds": round(secs, 1), "run": str(run_dir)}
        print(f"pretrain {task:<9} val acc {metrics['val/acc']:.3f} on its own task ({secs:.0f} s)", flush=True)
    results = finetune_arms(work, sources, args)
    total = time.perf_counter() - t0
    print(f"\nants vs bees, {args.backbone} at {args.size} px, {args.epochs} epochs, lr {args.lr} "
          f"(pretrained backbones x{args.backbone_lr_mult}), "
          f"val acc (best epoch / last epoch), seeds {args.seeds}:")
    for name, r in results.items():
        print(f"  {name:<14} median best {statistics.median(r['acc']):.3f} final "
              f"{statistics.median(r['final_acc']):.3f}   per seed best {r['acc']} final {r['final_acc']}   "
              f"{statistics.median(r['seconds']):.0f} s per run")
    print(f"total {total:.0f} s; runs in {work / 'runs'}")
    summary = {"args": vars(args), "pretrain": pre, "finetune": results, "total_seconds": round(total, 1)}
    (work / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

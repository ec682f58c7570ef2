"""Regenerate the bundled starter weights: python assets/make_starter_weights.py

ImageNet weights come from the internet. So that the app's whole flow (feature extraction
included) works offline and in CI, TL Studio ships one tiny pretrained backbone of its own:
timm's `test_resnet` (0.37 M parameters) trained from scratch on a *different* generated task
(task B: four shape classes, stars included, with clutter and random colours, other seeds than
the sample dataset). It is honest transfer learning at toy scale: the sample dataset (task A)
reuses these features with a new head.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetensors.torch import load_file, save_file  # noqa: E402

from tl_core.jobs import runs  # noqa: E402
from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.data.synthetic import SHAPES, make_shapes_dataset  # noqa: E402
from tl_core.training.train import train  # noqa: E402

OUT = Path(__file__).resolve().parent / "weights" / "test_resnet.shapes_b.safetensors"
CFG = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=25, lr=3e-3,
                batch_size=32, image_size=96, seed=1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = make_shapes_dataset(Path(tmp) / "task_b", per_class=150, size=64, classes=SHAPES, seed=101)
        ds = load_dataset(data, seed=1)
        run_dir = runs.create_run(Path(tmp) / "runs", CFG, ds.classes)
        for e in runs.record(run_dir, train(CFG, ds, run_dir=run_dir)):
            if type(e).__name__ == "EpochEnd":
                print(f"epoch {e.epoch}: val acc {e.metrics['val/acc']:.3f}", flush=True)
        info = json.loads((run_dir / "run.json").read_text())
        state = {k: v for k, v in load_file(str(run_dir / "model.safetensors")).items() if not k.startswith("fc.")}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # the task-B head is left out: a user's classes always get a new head
    save_file(state, str(OUT), metadata={"task": "generated shapes, 4 classes", "val_acc": f"{info['metrics']['val/acc']:.3f}"})
    print(f"wrote {OUT} (task B val acc {info['metrics']['val/acc']:.3f})")


if __name__ == "__main__":
    main()

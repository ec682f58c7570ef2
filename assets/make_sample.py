"""Regenerate the bundled sample dataset: python assets/make_sample.py

Three shape classes x 40 images at 64 px, drawn by tl_core.synthetic (license-free, no download).
Each class has its own shape *and* colour: with shape alone (random colours, clutter) test_resnet
from scratch stayed at 46-54% after 15 epochs; with both cues it reaches 100% validation accuracy
in 8 epochs (13 s on this 2-core CPU), which is what a first walk-through needs.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core.synthetic import make_shapes_dataset  # noqa: E402

OUT = Path(__file__).resolve().parent / "sample"


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    make_shapes_dataset(OUT, per_class=40, size=64, classes=("circle", "square", "triangle"), seed=0, fmt="png",
                        colour_coded=True)
    n = sum(1 for _ in OUT.rglob("*.png"))
    size = sum(p.stat().st_size for p in OUT.rglob("*.png"))
    print(f"wrote {n} images ({size / 1e6:.2f} MB) to {OUT}")


if __name__ == "__main__":
    main()

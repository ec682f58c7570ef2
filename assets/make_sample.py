"""Regenerate the bundled sample datasets: python assets/make_sample.py [TRASHNET_DIR]

recycling/  "Teach a recycling sorter": real photos from TrashNet (MIT licence, notice in
            recycling/LICENSE.md, which must stay with the images): 4 bins x 50 photos, the
            first 50 of each class folder in sorted order, resized to 256x192 JPEG (quality 85)
            so assets/ stays small. Needs the TrashNet folder (default ../shared/data/trashnet).
shapes/     Three coloured shapes x 40 images at 64 px, drawn by tl_core.data.synthetic (license-free):
            each class has its own shape *and* colour, so even a backbone trained from scratch
            learns it in seconds; the tests and the from-scratch demo use it.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tl_core.data.synthetic import make_shapes_dataset  # noqa: E402

OUT = Path(__file__).resolve().parent / "samples"
BINS = ("cardboard", "glass", "metal", "plastic")
PER_CLASS = 50
SIZE = (256, 192)  # TrashNet's 512x384, halved: still above every curated backbone's input size


def make_recycling(trashnet: Path) -> Path:
    out = OUT / "recycling"
    if out.exists():
        shutil.rmtree(out)
    for name in BINS:
        (out / name).mkdir(parents=True)
        for src in sorted((trashnet / name).glob("*.jpg"))[:PER_CLASS]:
            with Image.open(src) as img:
                small = ImageOps.exif_transpose(img).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS)
            small.save(out / name / src.name, quality=85, optimize=True)
    notice = (trashnet / "README.md").read_text()
    (out / "LICENSE.md").write_text(
        "These photos are a resized subset of TrashNet (github.com/garythung/trashnet), made by "
        "assets/make_sample.py from the copy described below. Its licence (MIT) applies to them.\n\n" + notice)
    return out


def make_shapes() -> Path:
    out = OUT / "shapes"
    if out.exists():
        shutil.rmtree(out)
    return make_shapes_dataset(out, per_class=40, size=64, classes=("circle", "square", "triangle"), seed=0,
                               fmt="png", colour_coded=True)


def _describe(folder: Path) -> str:
    files = [p for p in folder.rglob("*") if p.suffix in (".png", ".jpg")]
    return f"{len(files)} images ({sum(p.stat().st_size for p in files) / 1e6:.2f} MB) in {folder}"


def main() -> None:
    trashnet = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "trashnet"
    print("wrote", _describe(make_recycling(trashnet)))
    print("wrote", _describe(make_shapes()))


if __name__ == "__main__":
    main()

"""Generated, license-free image classes (coloured shapes on textured backgrounds).

Used for the bundled sample dataset, the tests and the benchmarks, so that nothing depends
on downloads. Classes differ by shape; colour, size, position and background vary within a
class, so a model has to learn shape rather than a single colour.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star")


def _star(cx, cy, r):
    pts = []
    for i in range(10):
        rr = r if i % 2 == 0 else r * 0.45
        a = math.pi / 2 + i * math.pi / 5
        pts.append((cx + rr * math.cos(a), cy - rr * math.sin(a)))
    return pts


CLASS_COLOURS = {"circle": (220, 40, 40), "square": (40, 180, 40), "triangle": (40, 60, 220), "star": (230, 200, 30)}


def draw_shape(shape: str, size: int, rng: random.Random, colour_coded: bool = False,
               clutter: bool = True) -> Image.Image:
    """One image of `shape`; with colour_coded each class also has its own colour (an easy task)."""
    bg = tuple(rng.randint(0, 255) for _ in range(3)) if not colour_coded else (rng.randint(90, 160),) * 3
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 8) if clutter and not colour_coded else 0):  # background clutter so colour alone is not enough
        x, y = rng.randint(0, size), rng.randint(0, size)
        c = tuple(rng.randint(0, 255) for _ in range(3))
        d.line((x, y, rng.randint(0, size), rng.randint(0, size)), fill=c, width=rng.randint(1, 3))
    r = rng.uniform(0.18, 0.32) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    fg = tuple((v + 128 + rng.randint(-40, 40)) % 256 for v in bg)  # contrasting colour
    if colour_coded:
        fg = tuple(min(255, max(0, v + rng.randint(-25, 25))) for v in CLASS_COLOURS[shape])
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif shape == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    else:
        d.polygon(_star(cx, cy, r * 1.2), fill=fg)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def make_shapes_dataset(
    root: str | Path,
    per_class: int = 20,
    size: int = 64,
    classes: tuple[str, ...] = SHAPES[:3],
    seed: int = 0,
    fmt: str = "png",
    colour_coded: bool = False,
    clutter: bool = True,
) -> Path:
    """Write `root/<class>/<i>.<fmt>` images and return root."""
    root = Path(root)
    rng = random.Random(seed)
    for shape in classes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = draw_shape(shape, size, rng, colour_coded, clutter)
            img.save(root / shape / f"{shape}_{i:04d}.{fmt}", quality=92)  # quality: JPEG only
    return root

"""Generated transfer tasks for the comparison tests, built from real training (no fixed numbers).

- related: a backbone pretrained on one generated shapes task (task B: four shapes, random
  colours, clutter), reused on another (task A: three of the shapes, other seeds, few images).
- colour-blind: a backbone pretrained on grayscale shapes whose first layer then sees luminance
  only (each input channel gets the mean of the three channels' weights, what timm's
  adapt_input_conv does when it loads 1-channel weights into an RGB model); the target's classes
  differ only by the colour of the shape, at nearly equal brightness, so its features cannot
  tell them apart while a network trained from scratch sees colour at once.
"""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

from tl_core.base.config import RunConfig
from tl_core.data.dataset import load_dataset
from tl_core.data.synthetic import SHAPES, make_shapes_dataset
from tl_core.jobs import runs
from tl_core.training.train import train

SIZE = 48
PRETRAIN = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=15, lr=3e-3,
                     batch_size=32, image_size=SIZE, augment="none", seed=1, device="cpu")
# classes that differ only by hue; R+G+B is the same for all three
COLOURS = {"red": (190, 70, 70), "green": (70, 190, 70), "blue": (70, 70, 190)}


def _pretrain(data: Path, out: Path, gray_first_layer: bool) -> Path:
    ds = load_dataset(data, seed=1)
    run_dir = runs.create_run(out.parent / "pretrain_runs", PRETRAIN, ds.classes)
    last = list(runs.record(run_dir, train(PRETRAIN, ds, run_dir=run_dir)))[-1]
    assert type(last).__name__ == "Finished", last
    print(f"pretraining {data.name}: val acc {last.metrics['val/acc']:.2f}")
    state = {k: v for k, v in load_file(str(run_dir / "model.safetensors")).items() if not k.startswith("fc.")}
    if gray_first_layer:
        name = next(k for k, v in state.items() if v.ndim == 4 and v.shape[1] == 3)  # the stem's first conv
        w = state[name]
        state[name] = w.mean(1, keepdim=True).expand_as(w).contiguous()
    save_file(state, str(out))
    return out


def related_weights(tmp: Path) -> Path:
    data = make_shapes_dataset(tmp / "task_b", per_class=120, size=SIZE, classes=SHAPES, seed=101, clutter=False)
    return _pretrain(data, tmp / "related.safetensors", gray_first_layer=False)


def colour_blind_weights(tmp: Path) -> Path:
    data = make_shapes_dataset(tmp / "task_gray", per_class=80, size=SIZE, classes=SHAPES, seed=102, clutter=False)
    for p in data.rglob("*.png"):
        Image.open(p).convert("L").convert("RGB").save(p)
    return _pretrain(data, tmp / "colour_blind.safetensors", gray_first_layer=True)


def shapes_target(tmp: Path, train_per_class: int = 12, val_per_class: int = 30) -> Path:
    root = tmp / "target_shapes"
    make_shapes_dataset(root / "train", per_class=train_per_class, size=SIZE, seed=7, clutter=False)
    make_shapes_dataset(root / "val", per_class=val_per_class, size=SIZE, seed=8, clutter=False)
    return root


def _colour_image(colour, rng: random.Random) -> Image.Image:
    g = rng.randint(90, 160)
    img = Image.new("RGB", (SIZE, SIZE), (g, g, g))
    r = rng.uniform(0.2, 0.35) * SIZE
    cx, cy = rng.uniform(r, SIZE - r), rng.uniform(r, SIZE - r)
    fill = tuple(min(255, max(0, v + rng.randint(-15, 15))) for v in colour)
    shape = rng.choice(["ellipse", "rectangle"])
    getattr(ImageDraw.Draw(img), shape)((cx - r, cy - r, cx + r, cy + r), fill=fill)
    return img


def colour_target(tmp: Path, train_per_class: int = 12, val_per_class: int = 30) -> Path:
    root = tmp / "target_colours"
    rng = random.Random(9)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for name, colour in COLOURS.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _colour_image(colour, rng).save(root / split / name / f"{i}.png")
    return root

"""P5: peak RSS of ingest + 1 epoch of full fine-tuning on many large JPEGs, in a fresh process.

The images are generated (1-4 MP photo-like JPEGs) in the parent; a child process does only
`load_dataset` + `train` so its peak RSS (VmHWM) is the app's, not the benchmark's.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from .common import ROOT, Row, clock


def generate(root: Path, n: int, seed: int = 0) -> tuple[Path, int]:
    """n JPEGs of 1-4 megapixels in 2 classes; -> (root, total bytes on disk)."""
    from PIL import Image

    from tl_core.data.synthetic import draw_shape

    rng = random.Random(seed)
    total = 0
    for i in range(n):
        cls = ("circle", "square")[i % 2]
        (root / cls).mkdir(parents=True, exist_ok=True)
        mp = rng.uniform(1.0, 4.0) * 1e6  # the issue: 1-4 MP photos
        aspect = rng.choice((4 / 3, 3 / 2, 3 / 4))
        w = int((mp * aspect) ** 0.5)
        h = int(mp / w)
        img = draw_shape(cls, 256, rng).resize((w, h), Image.BICUBIC)
        # grain so the JPEGs have photo-like sizes (a few hundred KB), not flat-colour ones
        noise = Image.effect_noise((w, h), 24).convert("RGB")
        img = Image.blend(img, noise, 0.15)
        path = root / cls / f"{i:05d}.jpg"
        img.save(path, quality=90)
        total += path.stat().st_size
    return root, total


def peak_rss() -> int:
    """Peak RSS of this process in bytes: VmHWM, which exec resets. (getrusage's ru_maxrss keeps
    the parent's RSS at fork time across exec on Linux: it reported the benchmark's 2.2 GB.)"""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(argv: list[str]) -> None:
    """Runs in the fresh process: ingest + 1 epoch; prints one JSON line."""
    import psutil

    data, backbone, image_size, batch_size = argv[0], argv[1], int(argv[2]), int(argv[3])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import timm  # noqa: F401
    import torch  # noqa: F401  (imports are part of the baseline, not of the dataset)

    from tl_core.base.config import RunConfig
    from tl_core.base.events import Finished
    from tl_core.data.dataset import load_dataset
    from tl_core.data.transforms import DECODED
    from tl_core.training.train import train

    proc = psutil.Process()
    base = proc.memory_info().rss
    t = clock()
    ds = load_dataset(data)
    ingest_s = clock() - t
    after_ingest = proc.memory_info().rss
    peak_ingest = peak_rss()
    cfg = RunConfig(backbone=backbone, pretrained="none", strategy="full", epochs=1, batch_size=batch_size,
                    image_size=image_size)
    t = clock()
    events = list(train(cfg, ds))
    train_s = clock() - t
    print(json.dumps({
        "ok": isinstance(events[-1], Finished), "last": type(events[-1]).__name__,
        "n_train": len(ds.train), "n_val": len(ds.val), "base": base, "after_ingest": after_ingest,
        "peak_ingest": peak_ingest, "peak": peak_rss(),
        "decoded_cache": DECODED.used, "ingest_s": ingest_s, "train_s": train_s}))


def run(args, ds, workdir: Path, results: dict) -> list[Row]:
    t = clock()
    root, disk = generate(workdir / "p5_photos", args.p5_images)
    gen_s = clock() - t
    out = subprocess.run([sys.executable, "-m", "bench.p5_memory", str(root), args.backbone,
                          str(args.image_size), str(args.batch_size)],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"P5 child failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if not r["ok"]:
        raise RuntimeError(f"P5 training ended with {r['last']}")
    gb = 1024**3
    held = (r["after_ingest"] - r["base"]) / gb
    note = (f"{args.p5_images} JPEGs of 1-4 MP, {disk / gb:.2f} GB on disk (generated in {gen_s:.0f} s); "
            f"RSS after imports {r['base'] / gb:.2f} GB, after ingest {r['after_ingest'] / gb:.2f} GB "
            f"(+{held:.3f} GB: the originals are not held), peak during ingest {r['peak_ingest'] / gb:.2f} GB; "
            f"DecodedCache {r['decoded_cache'] / gb:.3f} GB; ingest {r['ingest_s']:.0f} s, "
            f"1 epoch ({r['n_train']} train + {r['n_val']} val) {r['train_s']:.0f} s")
    return [
        Row(f"P5 peak RSS, ingest + 1 full fine-tune epoch ({args.p5_images} photos of 1-4 MP)", r["peak"] / gb,
            None, "GB", "<= 3", note=note),
        Row("P5 RSS held after ingest (above imports) vs the originals' size on disk", held, disk / gb, "GB", "<= 0.1"),
    ]


if __name__ == "__main__":
    child(sys.argv[1:])

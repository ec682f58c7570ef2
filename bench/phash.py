"""The audit's perceptual hash, ours (numpy DCT, tl_core/data/audit.py) against imagehash.phash, on
real photos: would the audit's thresholds hold with imagehash, and how long hashing takes.
Result (BENCHMARKS.md): the same distances, but imagehash is slower, so audit.py keeps ours.

    .venv/bin/python -m bench.phash --data ../shared/data/trashnet

For both hashes: the Hamming distances of 30 photos to their own copies (resized to half,
re-encoded at JPEG quality 30, cropped by 4 and by 8 pixels), and how many pairs of distinct
photos fall at each distance up to 10 bits (the thresholds need copies at or under
HASH_SURE_BITS and few distinct pairs there); time per image with decoding (cold: first pass) and
the hash alone on decoded thumbnails (warm: median of 3, alternated). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tl_core.data import audit
from tl_core.data.decode import load_rgb


def imagehash_phash(img: Image.Image) -> int:
    import imagehash  # the candidate library, only for this comparison

    return int(str(imagehash.phash(img)), 16)


def copies(img: Image.Image) -> dict[str, Image.Image]:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=30)
    w, h = img.size
    return {"half": img.resize((w // 2, h // 2), Image.BILINEAR), "jpeg_q30": Image.open(io.BytesIO(buf.getvalue())),
            "crop_4px": img.crop((4, 4, w - 4, h - 4)), "crop_8px": img.crop((8, 8, w - 8, h - 8))}


def _bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def measure(name: str, hash_fn, paths: list[Path], sample: list[Path]) -> dict:
    t = time.perf_counter()
    h = np.array([hash_fn(load_rgb(p, short_side=64)) for p in paths], np.uint64)
    seconds = time.perf_counter() - t
    copy_bits: dict[str, list[int]] = {}
    for p in sample:
        original = load_rgb(p)  # full size: the copies are made from the photo itself
        base = hash_fn(original.copy())
        for kind, img in copies(original).items():
            copy_bits.setdefault(kind, []).append(_bits(base, hash_fn(img.convert("RGB"))))
    dist = audit._popcount(h[:, None] ^ h[None, :])
    upper = dist[np.triu_indices(len(h), 1)]
    return {"hash": name, "images": len(paths), "seconds": round(seconds, 2),
            "ms_per_image": round(1000 * seconds / len(paths), 2),
            "copies_max_bits": {k: max(v) for k, v in copy_bits.items()},
            "copies_bits": {k: sorted(v) for k, v in copy_bits.items()},
            "distinct_pairs_at_bits": {b: int((upper == b).sum()) for b in range(11)}}


def hash_only_ms(fns: dict, paths: list[Path], repeats: int = 3) -> dict:
    """Median ms per image of each hash on already decoded thumbnails, alternated (same load)."""
    thumbs = [load_rgb(p, short_side=64) for p in paths]
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            for img in thumbs:
                fn(img)
            times[name].append(1000 * (time.perf_counter() - t) / len(thumbs))
    return {name: round(sorted(v)[len(v) // 2], 3) for name, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.phash", description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/trashnet"))
    p.add_argument("--copies", type=int, default=30, help="photos copied resized, re-encoded, cropped")
    args = p.parse_args(argv)
    paths = sorted(q for q in Path(args.data).rglob("*") if q.suffix.lower() in (".jpg", ".jpeg", ".png"))
    sample = paths[:: max(1, len(paths) // args.copies)][: args.copies]
    out = [measure("ours (numpy DCT)", audit.phash, paths, sample),
           measure("imagehash.phash", imagehash_phash, paths, sample)]
    fast = hash_only_ms({"ours": audit.phash, "imagehash": imagehash_phash}, paths[:200])
    print(json.dumps({"results": out, "hash_only_ms_median": fast, "thresholds": {"sure": audit.HASH_SURE_BITS, "maybe": audit.HASH_MAYBE_BITS},
                      "load_average": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()

"""A fake camera for Chromium (--use-file-for-fake-video-capture): a Y4M video written with numpy
from the sample's real photos. Chromium loops the file; each photo shows for `seconds_each` seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples" / "recycling"


def _yuv420(img: Image.Image) -> bytes:
    ycbcr = np.asarray(img.convert("YCbCr"), dtype=np.float32)
    y = ycbcr[..., 0]
    # 4:2:0: one chroma sample per 2x2 block, averaged
    cb = ycbcr[..., 1].reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).mean(axis=(1, 3))
    cr = ycbcr[..., 2].reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).mean(axis=(1, 3))
    return b"".join(np.clip(p, 0, 255).round().astype(np.uint8).tobytes() for p in (y, cb, cr))


def write_y4m(target: Path, photos: list[Path] | None = None, size=(480, 360), fps: int = 10,
              seconds_each: float = 1.0) -> Path:
    photos = photos or [sorted((SAMPLES / c).glob("*.jpg"))[0] for c in ("cardboard", "glass", "metal", "plastic")]
    w, h = size
    with open(target, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for photo in photos:
            frame = _yuv420(Image.open(photo).convert("RGB").resize((w, h)))
            for _ in range(max(1, round(fps * seconds_each))):
                f.write(b"FRAME\n" + frame)
    return target

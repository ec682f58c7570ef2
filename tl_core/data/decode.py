"""The one image decode of TL Studio: training, validation, prediction and export see identical pixels.

Any Pillow mode becomes 8-bit RGB with EXIF orientation applied; sizes are checked from the
header before a pixel is decoded.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from tl_core.base.messages import DataError, Message

# a 100000x1 PNG is a few hundred bytes but resizes to 6.4 Gpx at short side 64: refuse slivers
MAX_ASPECT = 50
# per image, below Pillow's own 89 Mpx bomb guard: one 89 Mpx decode is 267 MB of RGB
DEFAULT_MAX_PIXELS = 40_000_000


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency composited on white, 16-bit scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr * 255.0 / peak, 0, 255).astype(np.uint8))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def _check_size(img: Image.Image, max_pixels: int | None, short_side: int | None) -> None:
    # Checked from the header, before any pixel is decoded. An explicit test rather than
    # Pillow's DecompressionBombWarning: turning that warning into an error needs
    # warnings.catch_warnings, which is not thread-safe (jobs and uploads run on threads).
    # callers that pass no limit (training, prediction uploads) still get the ingest default,
    # below Pillow's own 89 Mpx: one 89 Mpx decode is 267 MB of RGB per request
    limit = max_pixels or DEFAULT_MAX_PIXELS
    w, h = img.size
    if limit and w * h > limit:
        raise DataError("data.over_pixel_limit", w=w, h=h, limit=limit)
    if short_side and (min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h)):
        raise DataError("data.too_thin", w=w, h=h, ratio=MAX_ASPECT)


def load_rgb(source, short_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (path, bytes or file object) to RGB with EXIF orientation applied.

    With `short_side`, JPEGs are decoded at a reduced DCT scale (Image.draft) and the result is
    resized so its shorter side equals `short_side`: this is the one resize used for training,
    validation and prediction alike, so all three see identical pixels.
    """
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    img = Image.open(source)
    _check_size(img, max_pixels, short_side)
    if short_side:
        img.draft("RGB", (short_side, short_side))  # only JPEG honours it; cheap 1/2..1/8 decode
    img = ImageOps.exif_transpose(img)
    img = _to_rgb(img)
    return resize_short_side(img, short_side) if short_side else img


def resize_short_side(img: Image.Image, short_side: int) -> Image.Image:
    """Bicubic resize so the shorter side is `short_side` (aspect kept): the one resize of TL Studio."""
    scale = short_side / min(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.BICUBIC) if size != img.size else img


def check_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Message | None:
    """Return None when `data` is a decodable image, else the reason it is not."""
    if not data:
        return Message("data.empty_file")
    try:
        # a reduced decode still reads the whole stream, so truncation is caught
        load_rgb(data, short_side=64, max_pixels=max_pixels)
    except DataError as e:
        return e.message
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        return Message("data.pixel_bomb", {"detail": str(e)})
    except Image.UnidentifiedImageError:
        return Message("data.heic" if is_heic(data) else "data.not_an_image")
    except MemoryError:
        return Message("data.too_big_to_decode")
    except Exception as e:  # fuzzed files raise struct.error, IndexError, EOFError...: all mean "damaged"
        return Message("data.damaged", {"detail": f"{type(e).__name__}: {e}"})
    return None


# the ISO-BMFF brands of HEIC/HEIF photos (iPhones save these by default); pillow-heif is not
# a dependency, so they are named and refused rather than called "not an image"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def is_heic(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS

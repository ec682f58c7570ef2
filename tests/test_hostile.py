"""Hostile-input corpus: every case is generated here (no binary fixtures) and must end with a
sentence naming the file and the reason, no exception other than DataError, nothing written
outside the dataset's folder, and the rest of the dataset still usable.

Complements tests/test_data.py (which has the first zip-slip, zip-bomb, broken-file and
duplicate tests); `python -m tests.reliability` turns the rows recorded here into docs/RELIABILITY.md.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reliability import case  # noqa: F401  (fixture)

from tl_core.base.messages import DataError
from tl_core.base.status import RunStatus
from tl_core.data.dataset import ingest_uploads, load_dataset
from tl_core.data.decode import load_rgb
from tl_core.data.ingest import IngestLimits
from tl_core.data.synthetic import make_shapes_dataset
from tl_core.jobs.settings import load_settings

GOOD = ("circle", "square")
PER_CLASS = 4


# ---------------------------------------------------------------- generators


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A 1-bit greyscale PNG of width x height zeros, written row by row: ~100 KB on disk,
    900 Mpx decoded, and never more than one row in memory here."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_bytes(size=(48, 32), colour=(10, 200, 30)) -> bytes:
    return _save(Image.new("RGB", size, colour), "JPEG", quality=90)


def _exif_rotated() -> bytes:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90° clockwise: 40x20 on disk shows as 20x40
    return _save(img, "JPEG", exif=exif.tobytes())


def _palette_transparent() -> bytes:
    pal = Image.new("P", (24, 24), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    return _save(pal, "PNG", transparency=0)  # index 0 (red) fully transparent


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _ztxt_bomb() -> bytes:
    png = _save(Image.new("RGB", (24, 24)), "PNG")
    text = _chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 50_000_000, 9))  # 50 MB of comment
    return png[:33] + text + png[33:]  # right after IHDR


def _flipped_bytes() -> bytes:
    data = bytearray(_save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)), "PNG"))
    for i in range(60, len(data) - 20, 7):
        data[i] ^= 0xFF  # bit rot inside IDAT
    return bytes(data)


def _gray16() -> bytes:
    return _save(Image.fromarray(np.full((24, 24), 128 * 257, np.uint16)), "PNG")


# (case, file name under circle/, bytes, expectation): "ok" or a fragment of the skip reason
FILE_CASES = [
    ("truncated JPEG", "trunc.jpg", _jpeg_bytes()[:300], "damaged"),
    ("zero-byte file", "empty.jpg", b"", "empty file"),
    ("text file named .jpg", "notes.jpg", b"these are my notes, not a photo\n" * 10, "not an image"),
    ("HTML named .png", "page.png", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
     "not an image"),
    ("PNG decompression bomb 30000x30000 (1-bit)", "bomb.png", png_bomb(), "pixel limit"),
    ("PNG sliver 60000x1 (resizes to 245 Mpx)", "sliver.png", png_bomb(60000, 1), "too thin"),
    ("PNG zTXt chunk inflating to 50 MB", "comment_bomb.png", _ztxt_bomb(), "too large"),
    ("PNG with flipped bytes (bit rot)", "rot.png", _flipped_bytes(), "damaged"),
    ("GIF (animated, 3 frames)", "anim.gif", _animated_gif(), "ok"),
    ("WebP", "photo.webp", _save(Image.new("RGB", (24, 24), (9, 9, 200)), "WEBP"), "ok"),
    ("TIFF", "scan.tiff", _save(Image.new("RGB", (24, 24), (9, 200, 9)), "TIFF"), "ok"),
    ("BMP", "paint.bmp", _save(Image.new("RGB", (24, 24), (200, 9, 9)), "BMP"), "ok"),
    ("16-bit greyscale PNG", "depth16.png", _gray16(), "ok"),
    ("CMYK JPEG", "print.jpg", _save(Image.new("CMYK", (24, 24), (0, 255, 255, 0)), "JPEG"), "ok"),
    ("palette PNG with transparency", "pal.png", _palette_transparent(), "ok"),
    ("EXIF-rotated JPEG (orientation 6)", "rotated.jpg", _exif_rotated(), "ok"),
    ("file nested 50 folders deep", "/".join(["d"] * 50) + "/deep.png", _gray16(), "nested more than"),
]

# what the accepted files must look like after decoding: (size, pixel at (5, 5))
DECODED = {
    "depth16.png": ((24, 24), (128, 128, 128)),
    "print.jpg": ((24, 24), None),
    "pal.png": ((24, 24), (255, 255, 255)),  # transparent -> white, not the hidden red
    "rotated.jpg": ((20, 40), None),
    "anim.gif": ((24, 24), (255, 0, 0)),  # the first frame
}


# ---------------------------------------------------------------- checks shared by the cases


def good_dataset(root: Path) -> Path:
    return make_shapes_dataset(root, per_class=PER_CLASS, size=24, classes=GOOD)


def files_under(path: Path) -> set:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")} if path.exists() else set()


class Outside:
    """Snapshot of everything under `base` except `inside`: nothing may appear there."""

    def __init__(self, base: Path, inside: Path):
        self.base, self.inside = base, inside.resolve()
        self.before = self._files()

    def _files(self) -> set:
        return {p for p in files_under(self.base) if not (self.base / p).resolve().is_relative_to(self.inside)}

    def check(self) -> None:
        assert self._files() == self.before, "something was written outside the dataset folder"


def usable(ds, n_good: int = 2 * PER_CLASS) -> None:
    """The rest of the dataset is intact: all good images present, each one decodes."""
    items = ds.train + ds.val
    assert len([i for i in items if Path(i.path).parent.name in GOOD]) >= n_good
    for it in items:
        assert load_rgb(it.path, short_side=32).mode == "RGB"


def skipped(ds) -> dict:
    return {s.name: str(s.reason) for s in ds.report.skipped}


# ---------------------------------------------------------------- one hostile file in a good dataset


@pytest.mark.parametrize("label,name,data,expect", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_hostile_file(tmp_path, case, label, name, data, expect):
    case(label, "accepted and decoded to RGB" if expect == "ok" else f"skipped, reason mentions '{expect}'")
    root = good_dataset(tmp_path / "ds")
    target = root / "circle" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    outside = Outside(tmp_path, root)
    t = time.perf_counter()
    ds = load_dataset(root)
    took = time.perf_counter() - t
    reasons = skipped(ds)
    rel = f"circle/{name}"
    if expect == "ok":
        item = next(i for i in ds.train + ds.val if i.path.endswith(name))
        img = load_rgb(item.path)
        size, pixel = DECODED.get(name, ((24, 24), None))
        case.observe(f"accepted as {img.mode} {img.size[0]}x{img.size[1]}")
        assert rel not in reasons and img.mode == "RGB" and img.size == size
        if pixel:
            assert img.getpixel((5, 5)) == pixel
    else:
        case.observe(f"skipped '{rel}': {reasons.get(rel)}")
        assert expect in reasons[rel], reasons
    case.observe(f"{took:.2f} s")
    usable(ds)
    outside.check()


def test_file_over_the_per_image_size_limit_is_skipped_unread(tmp_path, case):
    case("file over the per-image byte limit", "skipped before it is read into memory")
    root = good_dataset(tmp_path / "ds")
    big = root / "square" / "huge.bmp"
    big.write_bytes(_save(Image.new("RGB", (400, 400)), "BMP"))  # 480 KB
    ds = load_dataset(root, limits=IngestLimits(max_file_bytes=100_000))
    reason = skipped(ds)["square/huge.bmp"]
    case.observe(f"skipped: {reason}")
    assert "per-image limit" in reason
    usable(ds)


# ---------------------------------------------------------------- links and special files


def test_symlinks_are_not_followed(tmp_path, case):
    case("symlinks inside a class folder (file, folder, loop) and a symlinked train/",
         "each skipped as 'symbolic link'; nothing outside read")
    secret = tmp_path / "server"
    make_shapes_dataset(secret, per_class=3, size=24, classes=("secret",))
    root = good_dataset(tmp_path / "ds")
    (root / "circle" / "link.png").symlink_to(secret / "secret" / "secret_0000.png")
    (root / "circle" / "linkdir").symlink_to(secret / "secret", target_is_directory=True)
    (root / "square" / "loop").symlink_to(root / "square", target_is_directory=True)
    (root / "stolen").symlink_to(secret / "secret", target_is_directory=True)  # a whole class
    ds = load_dataset(root)
    reasons = skipped(ds)
    links = sorted(k for k, v in reasons.items() if "symbolic link" in v)
    case.observe(f"skipped as links: {', '.join(links)}; classes {ds.classes}")
    assert links == ["circle/link.png", "circle/linkdir", "square/loop", "stolen"]
    assert ds.classes == list(GOOD)
    assert not any("secret" in i.path for i in ds.train + ds.val)
    usable(ds)


def test_symlinked_split_folder_is_not_followed(tmp_path, case):
    case("train/ is a symlink to a folder elsewhere", "not treated as the train split")
    elsewhere = make_shapes_dataset(tmp_path / "elsewhere", per_class=3, size=24, classes=GOOD)
    root = tmp_path / "ds"
    good_dataset(root / "val")
    (root / "train").symlink_to(elsewhere, target_is_directory=True)
    ds = load_dataset(root)
    paths = [i.path for i in ds.train + ds.val]
    case.observe(f"split_given={ds.split_given}; classes {ds.classes}; reasons {sorted(set(skipped(ds).values()))}")
    assert not ds.split_given and not any("elsewhere" in p for p in paths)


def test_fifo_is_skipped_not_read(tmp_path, case):
    case("named pipe (FIFO) named .jpg", "skipped; ingest does not hang")
    root = good_dataset(tmp_path / "ds")
    os.mkfifo(root / "circle" / "pipe.jpg")
    ds = load_dataset(root)
    case.observe(f"skipped: {skipped(ds).get('circle/pipe.jpg')}")
    assert "not a regular file" in skipped(ds)["circle/pipe.jpg"]
    usable(ds)


# ---------------------------------------------------------------- class names


def _pairs(classes: dict) -> list:
    """Upload pairs for {class: count}, distinct images, as a browser folder upload names them."""
    out = []
    for ci, (cls, count) in enumerate(classes.items()):
        for i in range(count):
            img = Image.new("RGB", (24, 24), (ci * 50 % 256, i * 30 % 256, 77))
            out.append((f"mydata/{cls}/{i}.png", _save(img, "PNG")))
    return out


def test_unicode_and_emoji_class_names(tmp_path, case):
    case("unicode and emoji class names (猫, 🐶 dogs, Ελληνικά)", "kept as written, usable")
    ds = ingest_uploads(_pairs({"猫": 3, "🐶 dogs": 3, "Ελληνικά": 3}), tmp_path / "work")
    case.observe(f"classes {ds.classes}")
    assert ds.classes == sorted(["猫", "🐶 dogs", "Ελληνικά"])
    for it in ds.train + ds.val:
        assert Path(it.path).is_file()


def test_nfd_and_nfc_spellings_are_one_class(tmp_path, case):
    case("'café' spelt NFD (macOS) and NFC in one upload", "one class, not two that look the same")
    pairs = _pairs({"cafe\u0301": 3, "tea": 3}) + [(f"mydata/caf\u00e9/x{i}.png", _jpeg_bytes((24, 24), (i, 9, 9)))
                                                  for i in range(3)]
    ds = ingest_uploads(pairs, tmp_path / "work")
    case.observe(f"classes {ds.classes}, counts {ds.counts()}")
    assert ds.classes == ["caf\u00e9", "tea"] and sum(ds.counts()["caf\u00e9"].values()) == 6


def test_class_names_differing_by_case_warn(tmp_path, case):
    case("class names differ only by case (Cat, cat)", "kept apart, with a warning naming both")
    ds = ingest_uploads(_pairs({"Cat": 5, "cat": 5, "dog": 5}), tmp_path / "work")
    warning = next(str(w) for w in ds.report.warnings if "case" in str(w))
    case.observe(warning)
    assert "Cat, cat" in warning and len(ds.classes) == 3


def test_class_with_one_image_warns(tmp_path, case):
    case("a class folder with one image", "usable; warnings: very few images, no validation image")
    ds = ingest_uploads(_pairs({"cats": 6, "dogs": 1}), tmp_path / "work")
    text = " | ".join(map(str, ds.report.warnings))
    case.observe(text)
    assert "very few images in: dogs" in text and "no validation image for: dogs" in text
    assert ds.counts()["dogs"] == {"train": 1, "val": 0}


def test_every_class_with_one_image_is_refused_at_ingest(tmp_path, case):
    case("every class has one image", "DataError at ingest (not a failure when training starts)")
    with pytest.raises(DataError, match="at least 2 images") as e:
        ingest_uploads(_pairs({"cats": 1, "dogs": 1}), tmp_path / "work")
    case.observe(str(e.value))


def test_single_class_upload_is_refused(tmp_path, case):
    case("a single class", "DataError: needs at least 2 classes")
    with pytest.raises(DataError, match="found one class folder \\('cats'\\).*at least 2") as e:
        ingest_uploads(_pairs({"cats": 5}), tmp_path / "work")
    case.observe(str(e.value))


def test_zero_usable_images_names_the_files(tmp_path, case):
    case("0 usable images (all broken)", "DataError naming skipped files and reasons; report attached")
    pairs = [("d/cats/a.jpg", b"not a jpeg"), ("d/cats/b.png", b""), ("d/dogs/c.png", b"<html>")]
    with pytest.raises(DataError) as e:
        ingest_uploads(pairs, tmp_path / "work")
    msg = str(e.value)
    case.observe(msg)
    assert "no usable image" in msg and "cats/a.jpg" in msg and "not an image" in msg
    assert {s.name for s in e.value.report.skipped} == {"cats/a.jpg", "cats/b.png", "dogs/c.png"}


def test_duplicates_across_classes_in_an_upload_are_flagged(tmp_path, case):
    case("same file uploaded in two classes", "flagged in report.duplicates and a warning")
    pairs = _pairs({"cats": 4, "dogs": 4})
    pairs.append(("mydata/dogs/copy.png", pairs[0][1]))
    ds = ingest_uploads(pairs, tmp_path / "work")
    case.observe(f"duplicates {ds.report.duplicates}")
    assert ds.report.duplicates == [["cats/0.png", "dogs/copy.png"]]


# ---------------------------------------------------------------- zips


def _zip(members: dict, method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _good_members(prefix="data/") -> dict:
    return {f"{prefix}{c}/{i}.png": _save(Image.new("RGB", (24, 24), (ci * 90, i * 40, 50)), "PNG")
            for ci, c in enumerate(GOOD) for i in range(PER_CLASS)}


SLIP = ["../../evil.png", "data/../../../evil.png", "/tmp/evil.png", "..\\..\\evil.png", "C:/Windows/evil.png"]


@pytest.mark.parametrize("member", SLIP)
def test_zip_slip_is_refused_before_anything_is_written(tmp_path, case, member):
    case(f"zip slip member '{member}'", "whole zip refused, naming the zip and the member; nothing written")
    work = tmp_path / "work"
    data = _zip({**_good_members(), member: _jpeg_bytes()})
    outside = Outside(tmp_path, work)
    with pytest.raises(DataError, match="outside the archive") as e:
        ingest_uploads([("holiday.zip", data)], work)
    case.observe(str(e.value))
    assert "holiday.zip" in str(e.value) and member in str(e.value)
    assert not [p for p in work.rglob("*") if p.is_file()]
    outside.check()


def test_zip_bomb_over_the_hosted_cap(tmp_path, case):
    case("zip bomb: 300 MB of zeros in ~300 KB, hosted limits", "refused from the header, nothing extracted")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("data/cats/zeros.png", "w", force_zip64=True) as f:
            block = b"\0" * 2**20
            for _ in range(300):
                f.write(block)
        for name, data in _good_members().items():
            zf.writestr(name, data)
    limits = load_settings({"TL_MODE": "hosted"}).ingest_limits()
    t = time.perf_counter()
    with pytest.raises(DataError, match="unpacks to") as e:
        ingest_uploads([("bomb.zip", buf.getvalue())], tmp_path / "work", limits=limits)
    case.observe(f"{len(buf.getvalue()) / 1e3:.0f} KB zip: {e.value} ({time.perf_counter() - t:.2f} s)")
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def _patch_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Make the local and central headers of member `name` declare `size` uncompressed bytes."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = out.find(sig)
        while i != -1:
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(name)] == name:
                out[i + off:i + off + 4] = struct.pack("<I", size)
            i = out.find(sig, i + 4)
    return bytes(out)


def test_zip_member_lying_about_its_size(tmp_path, case):
    case("zip member whose header says 100 bytes but inflates to 20 MB", "at most 100 bytes written; member skipped")
    members = {**_good_members(), "data/circle/liar.png": b"\0" * 20_000_000}
    data = _patch_sizes(_zip(members), b"data/circle/liar.png", 100)
    ds = ingest_uploads([("liar.zip", data)], tmp_path / "work")
    reasons = skipped(ds)
    case.observe(f"skipped: {reasons.get('data/circle/liar.png') or reasons}")
    liar = list((tmp_path / "work").rglob("liar.png"))
    assert not liar or liar[0].stat().st_size <= 100
    assert "data/circle/liar.png" in reasons or any("liar" in k for k in reasons)
    usable(ds)


def _encrypt_flag(data: bytes, name: bytes) -> bytes:
    """Set the 'encrypted' flag bit of member `name` (zipfile cannot write encrypted zips)."""
    out = bytearray(data)
    for sig, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        i = out.find(sig)
        while i != -1:
            if out[i + name_at:i + name_at + len(name)] == name:
                out[i + flag_at] |= 1
            i = out.find(sig, i + 4)
    return bytes(out)


def test_encrypted_zip_member_is_skipped(tmp_path, case):
    case("password-protected member in a zip", "that member skipped with the reason; the rest usable")
    data = _encrypt_flag(_zip({**_good_members(), "data/circle/secret.png": _gray16()}), b"data/circle/secret.png")
    ds = ingest_uploads([("locked.zip", data)], tmp_path / "work")
    reason = skipped(ds)["data/circle/secret.png"]
    case.observe(f"skipped: {reason}")
    assert "password-protected" in reason
    usable(ds)


def test_zip_with_too_many_members(tmp_path, case):
    case("zip with more members than TL_MAX_IMAGES", "refused from the directory, nothing extracted")
    members = {f"data/{GOOD[i % 2]}/{i}.png": b"x" for i in range(30)}
    with pytest.raises(DataError, match="over the limit of 10") as e:
        ingest_uploads([("many.zip", _zip(members))], tmp_path / "work", limits=IngestLimits(max_files=10))
    case.observe(str(e.value))
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_not_a_zip_named_zip(tmp_path, case):
    case("a text file named .zip", "DataError: damaged or not a zip, naming it")
    with pytest.raises(DataError, match="not a zip") as e:
        ingest_uploads([("photos.zip", b"PK but not really")], tmp_path / "work")
    case.observe(str(e.value))
    assert "photos.zip" in str(e.value)


def test_overlong_member_name_is_skipped(tmp_path, case):
    case("zip member with a 300-character file name", "skipped ('could not be saved'), no OSError escapes")
    long_name = "data/circle/" + "x" * 300 + ".png"
    ds = ingest_uploads([("long.zip", _zip({**_good_members(), long_name: _gray16()}))], tmp_path / "work")
    reason = skipped(ds)[long_name]
    case.observe(f"skipped: {reason}")
    assert "could not be saved" in reason
    usable(ds)


def test_macos_and_jupyter_junk_in_a_zip(tmp_path, case):
    case(".DS_Store, __MACOSX/._*, Thumbs.db, .ipynb_checkpoints in a zip", "each skipped as system file/folder")
    junk = {"__MACOSX/data/circle/._0.png": b"\0\5\26\7", "data/.DS_Store": b"\0\0\0\1Bud1",
            "data/square/Thumbs.db": b"\xd0\xcf\x11\xe0", "data/circle/.ipynb_checkpoints/0-checkpoint.png": _gray16()}
    ds = ingest_uploads([("mac.zip", _zip({**_good_members(), **junk}))], tmp_path / "work")
    reasons = skipped(ds)
    case.observe("; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())))
    assert set(junk) <= set(reasons) and all("system" in reasons[k] for k in junk)
    assert ds.classes == list(GOOD)
    usable(ds)


def test_mixed_corpus_in_one_zip(tmp_path, case):
    case("every hostile file of the corpus in one zip upload", "each skipped or accepted as in the table; rest usable")
    members = {**_good_members(), **{f"data/circle/{name}": data for _, name, data, _ in FILE_CASES}}
    work = tmp_path / "work"
    outside = Outside(tmp_path, work)
    ds = ingest_uploads([("everything.zip", _zip(members))], work)
    reasons = skipped(ds)
    for _, name, _, expect in FILE_CASES:
        if expect == "ok":
            assert any(i.path.endswith("/" + name) for i in ds.train + ds.val), name
        elif expect != "nested more than":  # 50 folders: within the upload's depth it is the file itself
            assert expect in reasons[f"circle/{name}"], (name, reasons)
    case.observe(f"{len(ds.train) + len(ds.val)} images used, {len(reasons)} skipped")
    usable(ds)
    outside.check()


# ---------------------------------------------------------------- scale


def _peak_rss_mb(fn):
    """(result, seconds, peak RSS in MB during fn) sampled every 10 ms from /proc."""
    import psutil

    proc, peak, done = psutil.Process(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    start_rss = proc.memory_info().rss
    t.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        done.set()
        t.join()
    return result, time.perf_counter() - t0, max(peak[0], start_rss) / 2**20, start_rss / 2**20


def test_ten_thousand_tiny_images(tmp_path, case):
    case("10,000 tiny images (2 classes x 5,000 8x8 PNG) as a folder upload", "all ingested; time and memory printed")
    pairs = [(f"big/{c}/{i:05d}.png", _save(Image.new("RGB", (8, 8), (i % 256, i // 256, ci * 200)), "PNG"))
             for ci, c in enumerate(("a", "b")) for i in range(5000)]
    cpu0 = time.process_time()
    ds, seconds, peak, start = _peak_rss_mb(lambda: ingest_uploads(pairs, tmp_path / "work"))
    cpu = time.process_time() - cpu0  # CPU seconds: steadier than wall time on a shared machine
    assert len(ds.train) + len(ds.val) == 10_000 and not ds.report.skipped
    case.observe(f"10,000 used in {seconds:.1f} s ({10_000 / seconds:,.0f} img/s); peak RSS {peak:,.0f} MB "
                 f"(+{peak - start:,.0f} MB over the {start:,.0f} MB before)")
    load = os.getloadavg()[0]  # the machine is shared: the time means little without it
    case.measure("10k tiny images ingest time", f"{seconds:.1f} s wall ({10_000 / seconds:,.0f} images/s), "
                 f"{cpu:.1f} s CPU, load average {load:.1f} on {os.cpu_count()} CPUs")
    case.measure("10k tiny images ingest peak RSS", f"{peak:,.0f} MB (+{peak - start:,.0f} MB)")
    hosted = load_settings({"TL_MODE": "hosted"}).ingest_limits()
    with pytest.raises(DataError, match="too many files") as e:
        ingest_uploads(pairs, tmp_path / "work2", limits=hosted)
    case.observe(f"hosted limits: {e.value}")


# ---------------------------------------------------------------- uploaded weights files (end to end)
# tests/test_weights.py checks weights.inspect_weights_file / create_backbone directly; here the
# same files go through a Job, as a hosted user's upload would.


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _weights_job(tmp_path, shapes, path: Path):
    from tl_core.base.config import RunConfig
    from tl_core.jobs.job import JobManager

    cfg = RunConfig(backbone="test_resnet", pretrained=str(path), strategy="full", epochs=1, image_size=32)
    job = JobManager(1).submit(cfg, shapes, tmp_path / "runs")
    job.join(60)
    return job, job.events()[-1]


def test_pickle_that_executes_code_fails_the_run_unexecuted(tmp_path, shapes, case):
    case("uploaded .pth whose pickle runs os.system", "run Failed with 'refused ... run code'; payload never executed")
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pth"
    torch.save({"conv1.0.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    job, last = _weights_job(tmp_path, shapes, path)
    case.observe(f"{job.status}: {last.message}")
    assert job.status == RunStatus.FAILED and "refused" in last.message and "weights.pth" in last.message
    assert not marker.exists()


def test_safetensors_with_wrong_shapes_fails_the_run_with_the_mismatch(tmp_path, shapes, case):
    case("uploaded .safetensors with a wrongly shaped tensor", "run Failed naming the file, the tensor and both shapes")
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("test_resnet", num_classes=3).state_dict()
    state["conv1.0.weight"] = state["conv1.0.weight"].new_zeros(5, 3, 3, 3)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    job, last = _weights_job(tmp_path, shapes, path)
    case.observe(f"{job.status}: {last.message}")
    assert job.status == RunStatus.FAILED and "other.safetensors" in last.message and "conv1.0.weight" in last.message

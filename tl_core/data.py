"""Ingest user images into a validated Dataset, split it, and build the transforms.

Every file that is not a usable image is skipped and listed with the reason; nothing a user
uploads is ever used as a disk path unsanitised.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import shutil
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from .atomic import write_json_atomic
from .messages import DataError, Message

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", ".git", "__pycache__"}
MAX_DEPTH = 32  # folders below the dataset root; deeper is an upload accident, not a dataset
MIN_PER_CLASS_WARN = 5
IMBALANCE_WARN = 5.0
# a 100000x1 PNG is a few hundred bytes but resizes to 6.4 Gpx at short side 64: refuse slivers
MAX_ASPECT = 50
_COPY_CHUNK = 1024**2


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = 4 * 1024**3  # total uncompressed size of an upload or zip
    max_files: int = 50_000
    max_pixels: int = 40_000_000  # per image; Pillow's own bomb guard stays on above this
    max_file_bytes: int = 256 * 1024**2  # per file: each image is read into memory once to hash it


@dataclass(frozen=True)
class Item:
    path: str
    label: int
    sha1: str


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: Message | str  # a Message (kind + params); plain text in datasets saved by older versions


@dataclass
class Report:
    skipped: list = field(default_factory=list)  # [Skipped]
    warnings: list = field(default_factory=list)  # [Message] (plain str from older versions)
    duplicates: list = field(default_factory=list)  # [[name, name, ...]] same bytes, several classes


@dataclass
class Dataset:
    root: str
    classes: list
    train: list  # [Item]
    val: list  # [Item]
    report: Report
    split_given: bool = False

    def counts(self) -> dict:
        out = {c: {"train": 0, "val": 0} for c in self.classes}
        for split, items in (("train", self.train), ("val", self.val)):
            for it in items:
                out[self.classes[it.label]][split] += 1
        return out

    def to_dict(self) -> dict:
        return asdict(self)  # Messages become {"kind", "params"}; from_dict turns them back

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        rep = d["report"]
        report = Report([Skipped(s["name"], _message(s["reason"])) for s in rep["skipped"]],
                        [_message(w) for w in rep["warnings"]], list(rep["duplicates"]))
        return cls(d["root"], list(d["classes"]), [Item(**i) for i in d["train"]],
                   [Item(**i) for i in d["val"]], report, d.get("split_given", False))

    def save(self, path: str | Path) -> None:
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _message(v) -> Message | str:
    return Message.from_dict(v) if isinstance(v, dict) else v


# ---------------------------------------------------------------- decoding


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
    limit = max_pixels or IngestLimits.max_pixels
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


def _check_image(data: bytes, limits: IngestLimits) -> Message | None:
    """Return None when `data` is a decodable image, else the reason it is not."""
    if not data:
        return Message("data.empty_file")
    try:
        # a reduced decode still reads the whole stream, so truncation is caught
        load_rgb(data, short_side=64, max_pixels=limits.max_pixels)
    except DataError as e:
        return e.message
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        return Message("data.pixel_bomb", {"detail": str(e)})
    except Image.UnidentifiedImageError:
        return Message("data.not_an_image")
    except MemoryError:
        return Message("data.too_big_to_decode")
    except Exception as e:  # fuzzed files raise struct.error, IndexError, EOFError...: all mean "damaged"
        return Message("data.damaged", {"detail": f"{type(e).__name__}: {e}"})
    return None


# ---------------------------------------------------------------- safe writing of uploads


def _mb(n: int) -> str:
    # MiB, as TL_MAX_UPLOAD_MB and Streamlit's server.maxUploadSize count them
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def _safe_parts(name: str) -> list[str] | None:
    """Split an uploaded/zip member name into safe path parts, or None if it must be refused."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return [unicodedata.normalize("NFC", p) for p in parts]


def _junk_reason(parts: list[str], is_dir: bool = False) -> Message | None:
    lowered = [p.lower() for p in parts]
    if any(p in JUNK_DIRS for p in (lowered if is_dir else lowered[:-1])):
        return Message("data.system_folder")
    if lowered[-1] in JUNK_NAMES or parts[-1].startswith("._"):
        return Message("data.system_file")
    if any(p.startswith(".") for p in parts):
        return Message("data.hidden")
    if len(parts) > MAX_DEPTH:
        return Message("data.too_deep", {"depth": MAX_DEPTH})
    return None


def _write_member(dest: Path, parts: list[str], data) -> None:
    """Write bytes, or copy a file object, to dest/parts; OSError when the disk refuses the name."""
    target = dest.joinpath(*parts)
    # belt and braces: the resolved path must stay inside dest
    if dest.resolve() not in target.resolve().parents:
        raise DataError("data.outside_folder", name="/".join(parts))
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (bytes, bytearray)):
        target.write_bytes(data)
    else:
        with open(target, "wb") as f:
            shutil.copyfileobj(data, f, _COPY_CHUNK)


def _store_files(files, dest: Path, limits: IngestLimits, report: Report) -> None:
    """Write (name, bytes) pairs under dest; junk and unwritable names are skipped and listed."""
    total = 0
    for count, (name, data) in enumerate(files):
        if count >= limits.max_files:
            raise DataError("data.too_many_files", report, limit=limits.max_files)
        parts = _safe_parts(name)
        if parts is None:
            raise DataError("data.upload_escapes", report, name=name)
        junk = _junk_reason(parts)
        if junk:
            report.skipped.append(Skipped(name, junk))
            continue
        total += len(data)
        if total > limits.max_bytes:
            raise DataError("data.upload_too_large", report, limit=_mb(limits.max_bytes))
        _write_or_skip(dest, parts, name, data, report)


def _write_or_skip(dest: Path, parts: list[str], name: str, data, report: Report) -> None:
    try:
        _write_member(dest, parts, data)
    except OSError as e:  # a 300-character name, a file where a folder should be, ...
        report.skipped.append(Skipped(name, Message("data.cannot_save", {"detail": str(e.strerror or e)})))


def _zip_infos(zf: zipfile.ZipFile, label: str, limits: IngestLimits, report: Report) -> list:
    """The zip's file entries, after checking names, count and declared sizes (nothing read yet)."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_files:
        raise DataError("data.zip_too_many", report, label=label, n=len(infos), limit=limits.max_files)
    for i in infos:
        if _safe_parts(i.filename) is None:
            raise DataError("data.zip_escapes", report, label=label, member=i.filename)
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_bytes:
        raise DataError("data.zip_too_big", report, label=label, size=_mb(declared), limit=_mb(limits.max_bytes))
    return infos


class _Capped(io.RawIOBase):
    """A zip member stream that raises once it yields more than its header declared."""

    def __init__(self, f, name: str, limit: int):
        self.f, self.name, self.left = f, name, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.left -= n
        if self.left < 0:  # a lying header cannot inflate past the declared total
            raise DataError("data.zip_member_lies", name=self.name)
        return n


def extract_zip(zip_source, dest: Path, limits: IngestLimits, report: Report, label=None) -> None:
    """Extract a zip under dest, streaming each member (memory stays flat whatever its size)."""
    label = label or Message("data.the_zip")
    try:
        with zipfile.ZipFile(zip_source) as zf:
            for info in _zip_infos(zf, label, limits, report):
                parts = _safe_parts(info.filename)
                junk = _junk_reason(parts)
                if junk:
                    report.skipped.append(Skipped(info.filename, junk))
                else:
                    _extract_member(zf, info, dest, parts, report)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise DataError("data.zip_damaged", report, label=label) from None


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, parts: list, report: Report) -> None:
    target = dest.joinpath(*parts)
    try:
        with zf.open(info) as f:
            _write_or_skip(dest, parts, info.filename, io.BufferedReader(_Capped(f, info.filename, info.file_size)),
                           report)
    except DataError as e:
        _discard(target)
        raise DataError("data.zip_bomb", report, detail=e.message) from None
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        # encrypted members, unsupported compression, bad CRC: that file is lost, the rest is usable
        _discard(target)
        reason = (Message("data.zip_password") if info.flag_bits & 0x1
                  else Message("data.zip_member_failed", {"detail": str(e)}))
        report.skipped.append(Skipped(info.filename, reason))


def _discard(target: Path) -> None:
    try:
        if target.is_file():
            target.unlink()
    except OSError:
        pass  # the name never made it to disk (too long, or a folder is in the way)


# ---------------------------------------------------------------- scanning a folder


def _find_root(folder: Path) -> Path:
    """Descend through single wrapper folders (mydata/ -> mydata/cats, mydata/dogs)."""
    for _ in range(MAX_DEPTH):
        entries = [p for p in folder.iterdir() if not _junk_reason([p.name], p.is_dir())]
        dirs = [p for p in entries if p.is_dir() and not p.is_symlink()]
        files = [p for p in entries if p.is_file()]
        if len(dirs) == 1 and not files:
            folder = dirs[0]
        else:
            return folder
    return folder


def _split_dirs(root: Path) -> dict | None:
    # a symlinked train/ could point anywhere on the server: never followed
    names = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.is_symlink()}
    val = names.get("val") or names.get("valid") or names.get("validation")
    if "train" in names and val is not None:
        return {"train": names["train"], "val": val}
    return None


def _class_files(class_dir: Path, root: Path, report: Report):
    for p in sorted(class_dir.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            report.skipped.append(Skipped(rel, Message("data.symlink")))
        elif p.is_file():
            junk = _junk_reason(list(p.relative_to(root).parts))
            if junk:
                report.skipped.append(Skipped(rel, junk))
            else:
                yield p, rel
        elif not p.is_dir():  # a FIFO would block the read forever
            report.skipped.append(Skipped(rel, Message("data.not_regular")))


def _scan_classes(split_root: Path, report: Report, limits: IngestLimits, base: Path) -> dict:
    """-> {class name: [(path, sha1)]} for usable images under split_root's class folders."""
    found: dict[str, list] = {}
    for entry in sorted(split_root.iterdir()):
        rel = entry.relative_to(base).as_posix()
        junk = _junk_reason([entry.name], entry.is_dir())
        if junk:
            report.skipped.append(Skipped(rel, junk))
        elif entry.is_symlink():
            report.skipped.append(Skipped(rel, Message("data.symlink")))
        elif entry.is_file():
            report.skipped.append(Skipped(rel, Message("data.not_in_class")))
        elif entry.is_dir():
            found[entry.name] = _usable_images(entry, base, report, limits)
    return found


def _usable_images(class_dir: Path, base: Path, report: Report, limits: IngestLimits) -> list:
    out = []
    for p, rel in _class_files(class_dir, base, report):
        size = p.stat().st_size
        if size > limits.max_file_bytes:
            report.skipped.append(Skipped(rel, Message("data.file_over_limit",
                                                       {"size": _mb(size), "limit": _mb(limits.max_file_bytes)})))
            continue
        data = p.read_bytes()
        reason = _check_image(data, limits)
        if reason:
            report.skipped.append(Skipped(rel, reason))
        else:
            out.append((str(p), hashlib.sha1(data).hexdigest()))
    return out


# ---------------------------------------------------------------- building the dataset


def _skipped_examples(report: Report, n: int = 3) -> Message | str:
    ex = [Message("data.skipped_item", {"name": x.name, "reason": x.reason}) for x in report.skipped[:n]]
    return Message("data.skipped_examples", {"n": len(report.skipped), "examples": ex}) if ex else ""


def _check_classes(found: dict, report: Report) -> None:
    if len(found) < 2:
        raise DataError("data.too_few_classes", report, n=len(found), skipped=_skipped_examples(report))
    if not any(found.values()):
        raise DataError("data.no_usable_image", report, skipped=_skipped_examples(report))
    empty = [c for c, files in found.items() if not files]
    if empty:
        raise DataError("data.empty_classes", report, names=", ".join(empty))
    _warn_lookalike_names(found, report)
    sizes = {c: len(f) for c, f in found.items()}
    small = [c for c, n in sizes.items() if n < MIN_PER_CLASS_WARN]
    if small:
        report.warnings.append(Message("data.warn_few", {"names": ", ".join(small), "min": MIN_PER_CLASS_WARN}))
    if max(sizes.values()) > IMBALANCE_WARN * min(sizes.values()):
        big, small = max(sizes, key=sizes.get), min(sizes, key=sizes.get)
        report.warnings.append(Message("data.warn_imbalance", {"ratio": f"{IMBALANCE_WARN:.0f}", "big": big,
                                                               "n_big": sizes[big], "small": small,
                                                               "n_small": sizes[small]}))


def _warn_lookalike_names(found: dict, report: Report) -> None:
    # "Cat"/"cat", or "café" spelt with a combining accent (macOS) and without: different
    # folders on Linux that a user cannot tell apart on screen
    key = lambda c: unicodedata.normalize("NFC", c).casefold()  # noqa: E731
    seen = Counter(key(c) for c in found)
    clash = sorted(c for c in found if seen[key(c)] > 1)
    if clash:
        report.warnings.append(Message("data.warn_case", {"names": ", ".join(clash)}))


def _check_split(classes: list, train: list, val: list, report: Report) -> None:
    if not val:
        raise DataError("data.no_val", report)
    in_val = {it.label for it in val}
    no_val = [c for i, c in enumerate(classes) if i not in in_val]
    if no_val:
        report.warnings.append(Message("data.warn_no_val", {"names": ", ".join(no_val)}))


def _flag_duplicates(found_by_split: list[dict], base: Path, report: Report) -> None:
    classes_of = defaultdict(set)
    names_of = defaultdict(list)
    for found in found_by_split:
        for cls, files in found.items():
            for path, sha in files:
                classes_of[sha].add(cls)
                names_of[sha].append(Path(path).relative_to(base).as_posix())
    for sha, classes in classes_of.items():
        if len(classes) > 1:
            report.duplicates.append(sorted(names_of[sha]))
    if report.duplicates:
        report.warnings.append(Message("data.warn_duplicates", {"n": len(report.duplicates)}))


def _stratified_split(found: dict, classes: list, val_fraction: float, seed: int):
    rng = random.Random(seed)
    train, val = [], []
    for label, cls in enumerate(classes):
        files = sorted(found[cls])
        rng.shuffle(files)
        # at least one val image per class when the class has 2+, never all of them
        n_val = min(len(files) - 1, max(1, math.floor(len(files) * val_fraction))) if len(files) > 1 else 0
        val += [Item(p, label, s) for p, s in files[:n_val]]
        train += [Item(p, label, s) for p, s in files[n_val:]]
    return train, val


def load_dataset(source, workdir=None, val_fraction: float = 0.2, seed: int = 0,
                 limits: IngestLimits | None = None) -> Dataset:
    """A Dataset from a folder of class folders, a folder with train/ and val/, or a .zip of either.

    A zip is extracted into `workdir` (required for zips) and never outside it.
    """
    limits = limits or IngestLimits()
    source = Path(source)
    report = Report()
    if not source.exists():
        raise DataError("data.not_found", path=str(source))
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise DataError("data.not_folder_or_zip", name=source.name)
        if workdir is None:
            raise DataError("data.zip_needs_workdir")
        dest = _fresh_dir(Path(workdir))
        extract_zip(source, dest, limits, report, source.name)
        source = dest
    return _dataset_from_folder(source, val_fraction, seed, limits, report)


def ingest_uploads(files, workdir, val_fraction: float = 0.2, seed: int = 0,
                   limits: IngestLimits | None = None) -> Dataset:
    """A Dataset from uploaded (relative name, bytes) pairs: a folder upload, or a single zip."""
    limits = limits or IngestLimits()
    files = list(files)
    report = Report()
    dest = _fresh_dir(Path(workdir))
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        extract_zip(io.BytesIO(files[0][1]), dest, limits, report, PurePosixPath(files[0][0]).name)
    else:
        _store_files(files, dest, limits, report)
    return _dataset_from_folder(dest, val_fraction, seed, limits, report)


def _fresh_dir(workdir: Path) -> Path:
    dest = workdir / "data"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return dest


def _dataset_from_folder(folder: Path, val_fraction, seed, limits, report: Report) -> Dataset:
    if not any(folder.iterdir()):
        raise DataError("data.no_files", report)
    root = _find_root(folder)
    splits = _split_dirs(root)
    if splits:
        found_train = _scan_classes(splits["train"], report, limits, root)
        found_val = _scan_classes(splits["val"], report, limits, root)
        classes = sorted(set(found_train) | set(found_val))
        merged = {c: found_train.get(c, []) + found_val.get(c, []) for c in classes}
        _check_classes(merged, report)
        _flag_duplicates([found_train, found_val], root, report)
        train = [Item(p, classes.index(c), s) for c in classes for p, s in found_train.get(c, [])]
        val = [Item(p, classes.index(c), s) for c in classes for p, s in found_val.get(c, [])]
        _check_split(classes, train, val, report)
        return Dataset(str(root), classes, train, val, report, split_given=True)
    found = _scan_classes(root, report, limits, root)
    if not found and root != folder:  # _find_root walked into the only class folder there is
        raise DataError("data.one_class", report, name=root.name)
    _check_classes(found, report)
    _flag_duplicates([found], root, report)
    classes = sorted(found)
    train, val = _stratified_split(found, classes, val_fraction, seed)
    _check_split(classes, train, val, report)
    return Dataset(str(root), classes, train, val, report)

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
import warnings
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", ".git", "__pycache__"}
MAX_DEPTH = 32  # folders below the dataset root; deeper is an upload accident, not a dataset
MIN_PER_CLASS_WARN = 5
IMBALANCE_WARN = 5.0


class DataError(ValueError):
    """A dataset that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = 4 * 1024**3  # total uncompressed size of an upload or zip
    max_files: int = 50_000
    max_pixels: int = 40_000_000  # per image; Pillow's own bomb guard stays on above this


@dataclass(frozen=True)
class Item:
    path: str
    label: int
    sha1: str


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass
class Report:
    skipped: list = field(default_factory=list)  # [Skipped]
    warnings: list = field(default_factory=list)  # [str]
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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        rep = d["report"]
        report = Report([Skipped(**s) for s in rep["skipped"]], list(rep["warnings"]), list(rep["duplicates"]))
        return cls(d["root"], list(d["classes"]), [Item(**i) for i in d["train"]],
                   [Item(**i) for i in d["val"]], report, d.get("split_given", False))

    def save(self, path: str | Path) -> None:
        from .runs import write_json_atomic

        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        return cls.from_dict(json.loads(Path(path).read_text()))


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


def load_rgb(source, short_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (path, bytes or file object) to RGB with EXIF orientation applied.

    With `short_side`, JPEGs are decoded at a reduced DCT scale (Image.draft) and the result is
    resized so its shorter side equals `short_side`: this is the one resize used for training,
    validation and prediction alike, so all three see identical pixels.
    """
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    with warnings.catch_warnings():
        # Pillow only warns between max_pixels and 2x; a hosted app must refuse, not warn.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(source)
        if max_pixels and img.width * img.height > max_pixels:
            raise DataError(f"image is {img.width}x{img.height} pixels, over the {max_pixels:,} pixel limit")
        if short_side:
            img.draft("RGB", (short_side, short_side))  # only JPEG honours it; cheap 1/2..1/8 decode
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    if short_side:
        w, h = img.size
        scale = short_side / min(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size != img.size:
            img = img.resize(size, Image.BICUBIC)
    return img


def _check_image(data: bytes, limits: IngestLimits) -> str | None:
    """Return None when `data` is a decodable image, else the reason it is not."""
    if not data:
        return "empty file (0 bytes)"
    try:
        # a reduced decode still reads the whole stream, so truncation is caught
        load_rgb(data, short_side=64, max_pixels=limits.max_pixels)
    except DataError as e:
        return str(e)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return "image too large (decompression-bomb guard)"
    except Image.UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError) as e:
        return f"damaged image ({e})"
    return None


# ---------------------------------------------------------------- safe writing of uploads


def _safe_parts(name: str) -> list[str] | None:
    """Split an uploaded/zip member name into safe path parts, or None if it must be refused."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return [unicodedata.normalize("NFC", p) for p in parts]


def _junk_reason(parts: list[str], is_dir: bool = False) -> str | None:
    lowered = [p.lower() for p in parts]
    if any(p in JUNK_DIRS for p in (lowered if is_dir else lowered[:-1])):
        return "system folder (e.g. __MACOSX, .ipynb_checkpoints)"
    if lowered[-1] in JUNK_NAMES or parts[-1].startswith("._"):
        return "system file (e.g. .DS_Store, Thumbs.db)"
    if any(p.startswith(".") for p in parts):
        return "hidden file or folder"
    if len(parts) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} folders deep"
    return None


def _write_member(dest: Path, parts: list[str], data: bytes) -> None:
    target = dest.joinpath(*parts)
    # belt and braces: the resolved path must stay inside dest
    if dest.resolve() not in target.resolve().parents:
        raise DataError(f"refused {'/'.join(parts)}: it would be written outside the dataset folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _store_files(files, dest: Path, limits: IngestLimits, report: Report) -> None:
    total = 0
    for count, (name, data) in enumerate(files):
        if count >= limits.max_files:
            raise DataError(f"too many files: the limit is {limits.max_files:,}; upload fewer images")
        parts = _safe_parts(name)
        if parts is None:
            raise DataError(f"refused the upload: '{name}' points outside its folder (absolute path or '..')")
        junk = _junk_reason(parts)
        if junk:
            report.skipped.append(Skipped(name, junk))
            continue
        total += len(data)
        if total > limits.max_bytes:
            raise DataError(f"upload too large: over {limits.max_bytes / 1e9:.1f} GB uncompressed")
        _write_member(dest, parts, data)


def _zip_members(zf: zipfile.ZipFile, limits: IngestLimits):
    """Yield (name, bytes) for the zip's files after checking names and declared sizes."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    for i in infos:
        if _safe_parts(i.filename) is None:
            raise DataError(f"refused the zip: member '{i.filename}' points outside the archive (absolute path or '..')")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_bytes:
        raise DataError(f"refused the zip: it unpacks to {declared / 1e9:.1f} GB, over the "
                        f"{limits.max_bytes / 1e9:.1f} GB limit")
    for i in infos:
        with zf.open(i) as f:
            # read at most the declared size + 1: a lying header cannot inflate past the cap
            data = f.read(i.file_size + 1)
        if len(data) > i.file_size:
            raise DataError(f"refused the zip: member '{i.filename}' is larger than its header says")
        yield i.filename, data


def extract_zip(zip_source, dest: Path, limits: IngestLimits, report: Report) -> None:
    try:
        with zipfile.ZipFile(zip_source) as zf:
            _store_files(_zip_members(zf, limits), dest, limits, report)
    except zipfile.BadZipFile:
        raise DataError("the zip file is damaged or not a zip; re-create it and upload again") from None


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
    names = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    val = names.get("val") or names.get("valid") or names.get("validation")
    if "train" in names and val is not None:
        return {"train": names["train"], "val": val}
    return None


def _class_files(class_dir: Path, root: Path, report: Report):
    for p in sorted(class_dir.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            report.skipped.append(Skipped(rel, "symbolic link (not followed)"))
        elif p.is_file():
            junk = _junk_reason(list(p.relative_to(root).parts))
            if junk:
                report.skipped.append(Skipped(rel, junk))
            else:
                yield p, rel


def _scan_classes(split_root: Path, report: Report, limits: IngestLimits, base: Path) -> dict:
    """-> {class name: [(path, sha1)]} for usable images under split_root's class folders."""
    found: dict[str, list] = {}
    for entry in sorted(split_root.iterdir()):
        rel = entry.relative_to(base).as_posix()
        junk = _junk_reason([entry.name], entry.is_dir())
        if junk:
            report.skipped.append(Skipped(rel, junk))
        elif entry.is_symlink():
            report.skipped.append(Skipped(rel, "symbolic link (not followed)"))
        elif entry.is_file():
            report.skipped.append(Skipped(rel, "not inside a class folder"))
        elif entry.is_dir():
            found[entry.name] = _usable_images(entry, base, report, limits)
    return found


def _usable_images(class_dir: Path, base: Path, report: Report, limits: IngestLimits) -> list:
    out = []
    for p, rel in _class_files(class_dir, base, report):
        data = p.read_bytes()
        reason = _check_image(data, limits)
        if reason:
            report.skipped.append(Skipped(rel, reason))
        else:
            out.append((str(p), hashlib.sha1(data).hexdigest()))
    return out


# ---------------------------------------------------------------- building the dataset


def _check_classes(found: dict, report: Report) -> None:
    if len(found) < 2:
        raise DataError(f"found {len(found)} class folder(s); a classifier needs at least 2. "
                        "Put each class's images in its own sub-folder (e.g. data/cats, data/dogs).")
    empty = [c for c, files in found.items() if not files]
    if empty:
        raise DataError(f"class folder(s) with no usable image: {', '.join(empty)}. "
                        "Add images there or remove the folder (see the skipped-files list).")
    lowered = Counter(c.casefold() for c in found)
    clash = sorted(c for c in found if lowered[c.casefold()] > 1)
    if clash:
        report.warnings.append(f"class names differ only by case: {', '.join(clash)}; "
                               "they are kept as separate classes — merge them if they are the same thing")
    sizes = {c: len(f) for c, f in found.items()}
    small = [c for c, n in sizes.items() if n < MIN_PER_CLASS_WARN]
    if small:
        report.warnings.append(f"very few images in: {', '.join(small)} (fewer than {MIN_PER_CLASS_WARN}); "
                               "results will be unreliable — add more if you can")
    if max(sizes.values()) > IMBALANCE_WARN * min(sizes.values()):
        report.warnings.append(f"classes are imbalanced more than {IMBALANCE_WARN:.0f}:1 "
                               f"({max(sizes, key=sizes.get)}: {max(sizes.values())}, "
                               f"{min(sizes, key=sizes.get)}: {min(sizes.values())}); accuracy can mislead")


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
        report.warnings.append(f"{len(report.duplicates)} image(s) appear in more than one class; "
                               "check their labels (listed under duplicates)")


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
        raise DataError(f"{source} does not exist")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise DataError(f"{source.name} is neither a folder nor a zip file")
        if workdir is None:
            raise DataError("a zip needs a working folder to be extracted into")
        dest = _fresh_dir(Path(workdir))
        extract_zip(source, dest, limits, report)
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
        extract_zip(io.BytesIO(files[0][1]), dest, limits, report)
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
        raise DataError("no files found; upload a folder that holds one sub-folder per class")
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
        return Dataset(str(root), classes, train, val, report, split_given=True)
    found = _scan_classes(root, report, limits, root)
    _check_classes(found, report)
    _flag_duplicates([found], root, report)
    classes = sorted(found)
    train, val = _stratified_split(found, classes, val_fraction, seed)
    return Dataset(str(root), classes, train, val, report)


def preview_augmentations(cfg, image_path: str, n: int = 8) -> list:
    """`n` augmented versions of one image as training would show them (see transforms)."""
    from .transforms import preview_augmentations as preview  # torch is only needed here

    return preview(cfg, image_path, n)

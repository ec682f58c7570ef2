"""The Dataset: a scan of class folders (or train/ and val/), checked and split, with a report.

Every file that is not a usable image is skipped and listed with the reason.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import random
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from tl_core.base.atomic import write_json_atomic
from tl_core.base.messages import DataError, Message
from tl_core.data.decode import check_image
from tl_core.data.ingest import (
    MAX_DEPTH,
    IngestLimits,
    Report,
    Skipped,
    extract_zip,
    fresh_dir,
    junk_reason,
    mb,
    store_files,
)

MIN_PER_CLASS_WARN = 5


IMBALANCE_WARN = 5.0


@dataclass(frozen=True)
class Item:
    path: str
    label: int
    sha1: str


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


def _find_root(folder: Path) -> Path:
    """Descend through single wrapper folders (mydata/ -> mydata/cats, mydata/dogs)."""
    for _ in range(MAX_DEPTH):
        entries = [p for p in folder.iterdir() if not junk_reason([p.name], p.is_dir())]
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
            junk = junk_reason(list(p.relative_to(root).parts))
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
        junk = junk_reason([entry.name], entry.is_dir())
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
                                                       {"size": mb(size), "limit": mb(limits.max_file_bytes)})))
            continue
        data = p.read_bytes()
        reason = check_image(data, limits.max_pixels)
        if reason:
            report.skipped.append(Skipped(rel, reason))
        else:
            out.append((str(p), hashlib.sha1(data).hexdigest()))
    return out


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
        raise DataError("data.empty_classes", report, names=", ".join(empty), n=len(empty))
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
        dest = fresh_dir(Path(workdir))
        extract_zip(source, dest, limits, report, source.name)
        source = dest
    return _dataset_from_folder(source, val_fraction, seed, limits, report)


def ingest_uploads(files, workdir, val_fraction: float = 0.2, seed: int = 0,
                   limits: IngestLimits | None = None) -> Dataset:
    """A Dataset from uploaded (relative name, bytes) pairs: a folder upload, or a single zip."""
    limits = limits or IngestLimits()
    files = list(files)
    report = Report()
    dest = fresh_dir(Path(workdir))
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        extract_zip(io.BytesIO(files[0][1]), dest, limits, report, PurePosixPath(files[0][0]).name)
    else:
        store_files(files, dest, limits, report)
    return _dataset_from_folder(dest, val_fraction, seed, limits, report)


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

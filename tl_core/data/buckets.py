"""Class buckets: a dataset made in the browser, one bucket of images per class, kept in a session's workspace.

A bucket folder is named by an id (c1, c2, ...), never by the class name a user types, so a
rename touches only the index and a name can never become a path. Images go through the one
decode check (tl_core/data/decode.py) before they are kept; "Use these classes" hard-links the
images into a fresh upload folder named by class and reads it with load_dataset: the same checks
and stratified split as any upload, and nothing copied twice.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tl_core.base.atomic import open_atomic, read_json, write_bytes_atomic, write_json_atomic
from tl_core.base.messages import DataError, Message
from tl_core.data.dataset import Dataset, load_dataset
from tl_core.data.decode import check_image, load_rgb
from tl_core.data.ingest import IngestLimits, Skipped, mb

MAX_NAME = 60  # characters in a class name: a folder name on every OS, and a readable chart label
THUMB_SIDE = 96  # px, the thumbnail's short side: the grid shows them at 96 px
FEW_IMAGES = 10  # under this a class gets a hint to add more
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
               "TIFF": ".tif"}
# letters, marks (accents), digits, spaces and a little punctuation: no slash, no emoji, no control
_ALLOWED_PUNCTUATION = set("-_.,()&+'")


@dataclass(frozen=True)
class BucketClass:
    id: str
    name: str
    count: int


@dataclass
class Added:
    """What add_images kept and what it refused, each refusal with its reason."""

    added: list = field(default_factory=list)  # [file name kept]
    skipped: list = field(default_factory=list)  # [Skipped]
    stopped: Message | None = None  # a cap reached: the files after it were not kept


def validate_name(name: str, taken: list[str] = ()) -> str:
    """The class name as it will be kept (NFC, spaces collapsed), or DataError saying why it is refused."""
    clean = " ".join(unicodedata.normalize("NFC", name or "").split())
    if not clean:
        raise DataError("buckets.name_empty")
    if len(clean) > MAX_NAME:
        raise DataError("buckets.name_too_long", n=len(clean), limit=MAX_NAME)
    bad = [c for c in clean if not (unicodedata.category(c)[0] in "LMN" or c == " " or c in _ALLOWED_PUNCTUATION)]
    if bad:
        raise DataError("buckets.name_bad_characters", chars=" ".join(dict.fromkeys(bad)))
    if clean.startswith("."):
        raise DataError("buckets.name_dot")
    if clean.casefold() in {t.casefold() for t in taken}:
        raise DataError("buckets.name_taken", name=clean)
    return clean


class Buckets:
    """The class buckets kept under `folder` (one session's workspace/buckets)."""

    def __init__(self, folder: str | Path, limits: IngestLimits | None = None):
        self.folder = Path(folder)
        self.limits = limits or IngestLimits()
        self.index_path = self.folder / "index.json"

    # ------------------------------------------------------------ the index
    def _index(self) -> dict:
        try:
            index = read_json(self.index_path)
        except (OSError, ValueError):
            return {"classes": [], "next_class": 1, "next_image": 1}
        return index

    def _save(self, index: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.index_path, index)

    def _entry(self, index: dict, class_id: str) -> dict:
        for c in index["classes"]:
            if c["id"] == class_id:
                return c
        raise DataError("buckets.no_such_class", id=class_id)

    def _class_dir(self, class_id: str) -> Path:
        if not re.fullmatch(r"c[0-9]+", class_id):  # ids come back from the page: never a path
            raise DataError("buckets.no_such_class", id=class_id)
        return self.folder / class_id

    def _thumb_dir(self, class_id: str) -> Path:
        return self.folder / "thumbs" / class_id

    # ------------------------------------------------------------ classes
    def classes(self) -> list[BucketClass]:
        return [BucketClass(c["id"], c["name"], len(self.images(c["id"]))) for c in self._index()["classes"]]

    def counts(self) -> dict[str, int]:
        return {c.name: c.count for c in self.classes()}

    def add_class(self, name: str | None = None) -> str:
        """A new empty bucket named `name` (or "Class N"); returns its id."""
        index = self._index()
        taken = [c["name"] for c in index["classes"]]
        if name is None:
            n = len(taken) + 1
            while f"class {n}" in {t.casefold() for t in taken}:
                n += 1
            name = f"Class {n}"
        name = validate_name(name, taken)
        class_id = f"c{index['next_class']}"
        index["next_class"] += 1
        index["classes"].append({"id": class_id, "name": name})
        self._class_dir(class_id).mkdir(parents=True, exist_ok=True)
        self._save(index)
        return class_id

    def rename(self, class_id: str, name: str) -> str:
        """Rename a bucket; returns the name kept (normalised) or raises DataError with the reason."""
        index = self._index()
        entry = self._entry(index, class_id)
        taken = [c["name"] for c in index["classes"] if c["id"] != class_id]
        entry["name"] = validate_name(name, taken)
        self._save(index)
        return entry["name"]

    def delete_class(self, class_id: str) -> None:
        index = self._index()
        index["classes"] = [c for c in index["classes"] if c["id"] != class_id]
        self._save(index)
        shutil.rmtree(self._class_dir(class_id), ignore_errors=True)
        shutil.rmtree(self._thumb_dir(class_id), ignore_errors=True)

    def clear(self, class_id: str) -> None:
        """Remove all of a bucket's images; the bucket and its name stay."""
        self._entry(self._index(), class_id)
        for folder in (self._class_dir(class_id), self._thumb_dir(class_id)):
            shutil.rmtree(folder, ignore_errors=True)
        self._class_dir(class_id).mkdir(parents=True, exist_ok=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------ images
    def images(self, class_id: str) -> list[Path]:
        folder = self._class_dir(class_id)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def thumbnail(self, image: Path) -> Path:
        """The image's 96 px thumbnail (made when the image was added; remade if missing)."""
        thumb = self._thumb_dir(image.parent.name) / (image.stem + ".jpg")
        if not thumb.is_file():
            _write_thumb(thumb, image.read_bytes())
        return thumb

    def delete_image(self, class_id: str, name: str) -> None:
        path = self._class_dir(class_id) / Path(name).name  # a name from the page: never a path
        path.unlink(missing_ok=True)
        (self._thumb_dir(class_id) / (Path(name).stem + ".jpg")).unlink(missing_ok=True)

    def _totals(self) -> tuple[int, int]:
        files = [p for c in self._index()["classes"] for p in self.images(c["id"])]
        return len(files), sum(p.stat().st_size for p in files)

    def add_images(self, class_id: str, files) -> Added:
        """Keep the (name, bytes) pairs that are usable images; each refusal is listed with its reason.

        The hosted caps (total images, total size) stop the adding with one sentence; what was
        kept before the cap stays.
        """
        index = self._index()
        self._entry(index, class_id)
        n_images, n_bytes = self._totals()
        result = Added()
        for name, data in files:
            stop = self._cap_reached(n_images, n_bytes + len(data))
            if stop is not None:
                result.stopped = stop
                break
            reason = self._refusal(data)
            if reason is not None:
                result.skipped.append(Skipped(name, reason))
                continue
            result.added.append(self._keep(index, class_id, data))
            n_images, n_bytes = n_images + 1, n_bytes + len(data)
        self._save(index)
        return result

    def _cap_reached(self, n_images: int, n_bytes: int) -> Message | None:
        if n_images >= self.limits.max_files:
            return Message("buckets.image_cap", {"limit": self.limits.max_files})
        if n_bytes > self.limits.max_bytes:
            return Message("buckets.size_cap", {"limit": mb(self.limits.max_bytes)})
        return None

    def _refusal(self, data: bytes) -> Message | None:
        if len(data) > self.limits.max_file_bytes:
            return Message("data.file_over_limit", {"size": mb(len(data)), "limit": mb(self.limits.max_file_bytes)})
        return check_image(data, self.limits.max_pixels)

    def _keep(self, index: dict, class_id: str, data: bytes) -> str:
        number = index["next_image"]
        index["next_image"] = number + 1
        name = f"{number:06d}{_extension(data)}"
        self._class_dir(class_id).mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._class_dir(class_id) / name, data)
        _write_thumb(self._thumb_dir(class_id) / f"{number:06d}.jpg", data)
        return name

    # ------------------------------------------------------------ in and out
    def open_dataset(self, ds: Dataset) -> list[str]:
        """Replace the buckets with a loaded Dataset's classes (train + val), hard-linked, not copied."""
        self.remove_all()
        index = {"classes": [], "next_class": 1, "next_image": 1}
        ids = []
        for label, name in enumerate(ds.classes):
            class_id = f"c{index['next_class']}"
            index["next_class"] += 1
            index["classes"].append({"id": class_id, "name": validate_name(name)})
            self._class_dir(class_id).mkdir(parents=True, exist_ok=True)
            for item in ds.train + ds.val:
                if item.label == label:
                    number = index["next_image"]
                    index["next_image"] += 1
                    _link(Path(item.path), self._class_dir(class_id) / f"{number:06d}{Path(item.path).suffix.lower()}")
            ids.append(class_id)
        self._save(index)
        return ids

    def snapshot(self, workdir: str | Path) -> Path:
        """The buckets as class folders named by class (hard links) under workdir/<content hash>."""
        entries = self._index()["classes"]
        h = hashlib.sha1()
        for c in entries:
            h.update(f"{c['name']}\0{[p.name for p in self.images(c['id'])]}\n".encode())
        dest = Path(workdir) / f"buckets-{h.hexdigest()[:12]}"
        if dest.is_dir():
            return dest  # the same classes and images: already made (a run may be reading it)
        tmp = dest.with_name(dest.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        for c in entries:
            (tmp / c["name"]).mkdir(parents=True, exist_ok=True)
            for p in self.images(c["id"]):
                _link(p, tmp / c["name"] / p.name)
        tmp.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        return dest

    def to_dataset(self, workdir: str | Path, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
        """"Use these classes": a Dataset through the same checks and stratified split as an upload."""
        if len(self._index()["classes"]) < 2:
            raise DataError("buckets.need_two")
        return load_dataset(self.snapshot(workdir), val_fraction=val_fraction, seed=seed, limits=self.limits)

    def export_zip(self, target: str | Path) -> Path:
        """A zip of class folders (the Zip tab loads it back), written atomically."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_atomic(target) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:  # JPEGs: compressed
            for c in self._index()["classes"]:
                zf.writestr(f"{c['name']}/", b"")
                for p in self.images(c["id"]):
                    zf.write(p, f"{c['name']}/{p.name}")
        return target


def _extension(data: bytes) -> str:
    try:
        fmt = Image.open(io.BytesIO(data)).format  # the header only
    except Exception:  # already decoded once by check_image: cannot happen in practice
        fmt = None
    return _EXTENSIONS.get(fmt or "", ".img")


def _write_thumb(thumb: Path, data: bytes) -> None:
    thumb.parent.mkdir(parents=True, exist_ok=True)
    img = load_rgb(data, short_side=THUMB_SIDE)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    write_bytes_atomic(thumb, buf.getvalue())


def _link(source: Path, target: Path) -> None:
    # a hard link costs no disk; across file systems (a sample in the repo, a workspace
    # elsewhere) the one copy is made here
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)

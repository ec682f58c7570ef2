"""Upload and zip safety: what a user sends is written under one folder, never used as a path unsanitised.

Junk (system files, hidden files), unsafe names (absolute, `..`), oversized uploads and zip
bombs are refused or skipped and listed in a Report, with the reason as a Message.
"""
from __future__ import annotations

import io
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tl_core.base.atomic import open_atomic
from tl_core.base.messages import DataError, Message
from tl_core.data.decode import DEFAULT_MAX_PIXELS

JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", ".git", "__pycache__"}


MAX_DEPTH = 32  # folders below the dataset root; deeper is an upload accident, not a dataset


_COPY_CHUNK = 1024**2


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = 4 * 1024**3  # total uncompressed size of an upload or zip
    max_files: int = 50_000
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image; Pillow's own bomb guard stays on above this
    max_file_bytes: int = 256 * 1024**2  # per file: each image is read into memory once to hash it


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: Message | str  # a Message (kind + params); plain text in datasets saved by older versions


@dataclass
class Report:
    skipped: list = field(default_factory=list)  # [Skipped]
    warnings: list = field(default_factory=list)  # [Message] (plain str from older versions)
    duplicates: list = field(default_factory=list)  # [[name, name, ...]] same bytes, several classes


def mb(n: int) -> str:
    # MiB, as TL_MAX_UPLOAD_MB and Streamlit's server.maxUploadSize count them
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def safe_parts(name: str) -> list[str] | None:
    """Split an uploaded/zip member name into safe path parts, or None if it must be refused."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return [unicodedata.normalize("NFC", p) for p in parts]


def junk_reason(parts: list[str], is_dir: bool = False) -> Message | None:
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
    with open_atomic(target, "wb") as f:  # a kill mid-upload leaves no half image behind
        if isinstance(data, (bytes, bytearray)):
            f.write(data)
        else:
            shutil.copyfileobj(data, f, _COPY_CHUNK)


def store_files(files, dest: Path, limits: IngestLimits, report: Report) -> None:
    """Write (name, bytes) pairs under dest; junk and unwritable names are skipped and listed."""
    total = 0
    for count, (name, data) in enumerate(files):
        if count >= limits.max_files:
            raise DataError("data.too_many_files", report, limit=limits.max_files)
        parts = safe_parts(name)
        if parts is None:
            raise DataError("data.upload_escapes", report, name=name)
        junk = junk_reason(parts)
        if junk:
            report.skipped.append(Skipped(name, junk))
            continue
        total += len(data)
        if total > limits.max_bytes:
            raise DataError("data.upload_too_large", report, limit=mb(limits.max_bytes))
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
        if safe_parts(i.filename) is None:
            raise DataError("data.zip_escapes", report, label=label, member=i.filename)
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_bytes:
        raise DataError("data.zip_too_big", report, label=label, size=mb(declared), limit=mb(limits.max_bytes))
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
                parts = safe_parts(info.filename)
                junk = junk_reason(parts)
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


def fresh_dir(workdir: Path) -> Path:
    dest = workdir / "data"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return dest

"""The feature cache: one entry per (backbone weights + preprocessing, engine, image), LRU-capped.

An SQLite file (the standard library's; no server) under TL_CACHE/features/. Each batch of new
features is one transaction, so a killed process or a full disk leaves every earlier entry as it
was; readers refresh an entry's `used` time, and writes evict the least recently used entries
until the file holds at most TL_FEATURE_CACHE_MB (default 2,000 MB). The old layout (one
safetensors file per backbone, rewritten whole on every new image) is removed on first use.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np

from tl_core.base import background
from tl_core.base.config import megabytes

DEFAULT_CAP_MB = 2000.0
BUSY_TIMEOUT_S = 10.0  # another process writing: wait this long at most, then go on without the cache
_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    model TEXT NOT NULL, engine TEXT NOT NULL, image TEXT NOT NULL,
    dim INTEGER NOT NULL, vec BLOB NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (model, engine, image));
CREATE INDEX IF NOT EXISTS features_used ON features (used);
"""


class CacheWriteError(RuntimeError):
    """A batch could not be stored (disk full, database locked past the deadline, damaged file)."""


def cache_root() -> Path:
    return background.cache_dir() / "features"


def cap_bytes() -> int:
    """TL_FEATURE_CACHE_MB as bytes (a bad value: the default)."""
    return int(megabytes("TL_FEATURE_CACHE_MB", DEFAULT_CAP_MB) * 1e6)


class FeatureStore:
    """Features by (model key, engine, image sha1). Reads never raise: a damaged or unreadable
    cache is a miss. Writes raise CacheWriteError and leave earlier entries untouched."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else cache_root() / "features.sqlite"
        self.db = None
        try:
            self.db = self._open()
        except (sqlite3.Error, OSError):
            self.db = None  # unreadable: every lookup misses, every write is refused

    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            _remove_old_layout(self.path.parent)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        if fresh:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # evicted pages go back to the disk
        db.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer
        db.executescript(_SCHEMA)
        return db

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.executescript("PRAGMA incremental_vacuum;")  # free pages (LRU updates) back to the disk
            except sqlite3.Error:
                pass  # a busy or read-only file keeps its free pages for the next writes
            self.db.close()
            self.db = None

    def get(self, model: str, engines: list[str], images: list[str]) -> dict[str, tuple[np.ndarray, str]]:
        """{sha1: (vector, engine)} for the images found under any of `engines` (first wins)."""
        found: dict[str, tuple[np.ndarray, str]] = {}
        if self.db is None or not images:
            return found
        try:
            for engine in engines:
                wanted = [s for s in dict.fromkeys(images) if s not in found]
                for chunk in _chunks(wanted, 500):  # SQLite's limit on parameters per statement
                    rows = self.db.execute(
                        f"SELECT image, vec FROM features WHERE model = ? AND engine = ? AND image IN "
                        f"({','.join('?' * len(chunk))})", (model, engine, *chunk)).fetchall()
                    found.update({img: (np.frombuffer(vec, np.float32), engine) for img, vec in rows})
            self._touch(model, list(found))
        except sqlite3.Error:
            return found  # a damaged file: what was read so far, the rest is a miss
        return found

    def _touch(self, model: str, images: list[str]) -> None:
        try:
            now = time.time()
            for chunk in _chunks(images, 500):
                self.db.execute(f"UPDATE features SET used = ? WHERE model = ? AND image IN "
                                f"({','.join('?' * len(chunk))})", (now, model, *chunk))
        except sqlite3.Error:
            pass  # a read-only or full disk: the entries stay, only their LRU order is older

    def put(self, model: str, engine: str, rows: dict[str, np.ndarray]) -> None:
        """Store one batch in one transaction, then evict to the cap; raises CacheWriteError."""
        if self.db is None:
            raise CacheWriteError(f"the feature cache {self.path} cannot be opened")
        now = time.time()
        data = [(model, engine, img, int(v.size), np.ascontiguousarray(v, np.float32).tobytes(), now)
                for img, v in rows.items()]
        try:
            with self.db:  # BEGIN ... COMMIT, or ROLLBACK on an error: all of the batch or none
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)", data)
            self.evict(cap_bytes())
        except sqlite3.Error as e:
            raise CacheWriteError(f"{type(e).__name__}: {e}") from e

    def used_bytes(self) -> int:
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page

    def evict(self, cap: int) -> int:
        """Remove least recently used entries until the file's used pages fit in `cap`; -> entries removed."""
        removed = 0
        while (used := self.used_bytes()) > cap:
            rows = self.db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            # as many of the oldest as the excess holds at the average entry size (at least 1)
            n_old = max(1, -(-(used - cap) * rows // max(1, used)))
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                n = self.db.execute("DELETE FROM features WHERE rowid IN "
                                    "(SELECT rowid FROM features ORDER BY used LIMIT ?)", (n_old,)).rowcount
            removed += n
            if n == 0:
                break
        if removed:
            self.db.executescript("PRAGMA incremental_vacuum;")  # execute() would step once: one page
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def count(self, model: str | None = None) -> int:
        if self.db is None:
            return 0
        if model is None:
            return self.db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM features WHERE model = ?", (model,)).fetchone()[0]


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _remove_old_layout(folder: Path) -> None:
    """The old one-file-per-backbone caches: never read again, and never evicted otherwise."""
    for old in folder.glob("*.safetensors"):
        old.unlink(missing_ok=True)

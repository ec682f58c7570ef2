"""Atomic file writes (temp file + fsync + rename) and JSON reading: the ground floor of tl_core.

Readers see the old file or the new one, never half of either; a killed process or a full disk
leaves nothing half-written behind. No other tl_core module is imported here.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def open_atomic(path: str | Path, mode: str = "wb", **kwargs):
    """A file to write `path` through (a csv writer, a copied stream): it appears whole at the end
    of the with-block, or not at all if the block raises (a full disk, a kill)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic writes a whole file (mode 'w' or 'wb'), not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of either
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not also leave litter behind
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file."""
    with open_atomic(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """`text` as UTF-8, written atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data) -> None:
    """`data` as indented UTF-8 JSON, written atomically."""
    write_bytes_atomic(Path(path), json.dumps(data, indent=2, ensure_ascii=False).encode())


def read_json(path: str | Path):
    """The JSON value stored in `path` (ValueError if it is not JSON, OSError if unreadable)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))

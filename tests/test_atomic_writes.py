"""Every file TL Studio writes appears whole or not at all: writes go through tl_core/base/atomic.py
(temp file + fsync + rename). A bare write_text / write_bytes / open(..., "w") anywhere else in the
app or the library is a file a kill or a full disk can leave half-written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tl_core.base.atomic import open_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
ATOMIC = ROOT / "tl_core" / "base" / "atomic.py"
# .write_text( / .write_bytes( / open(..., "w"|"wb"|"x"...) with the mode as the 2nd argument or mode=
BARE_WRITE = re.compile(r"""\.write_(text|bytes)\(|\bopen\([^()]*(\([^()]*\)[^()]*)*,\s*(mode\s*=\s*)?["'][wx]b?\+?["']""")


def _sources() -> list[Path]:
    files = [ROOT / "app.py", *(ROOT / "tl_core").rglob("*.py"), *(ROOT / "ui").rglob("*.py"),
             *(ROOT / "app_pages").rglob("*.py")]
    return [f for f in files if f != ATOMIC]


def bare_writes(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if BARE_WRITE.search(line)]


def test_no_bare_file_writes_outside_atomic_py():
    found = {str(f.relative_to(ROOT)): hits for f in _sources() if (hits := bare_writes(f.read_text(encoding="utf-8")))}
    assert not found, f"write through tl_core.base.atomic instead: {found}"


@pytest.mark.parametrize("line", ['p.write_text("x")', "(d / 'a').write_bytes(b)", 'open(p, "w")',
                                  'open(str(p), "wb", newline="")', "open(p, mode='w')", "open(Path(a, b), 'x')"])
def test_the_grep_sees_each_spelling_of_a_bare_write(line):
    assert bare_writes(line), line


@pytest.mark.parametrize("line", ['open(p, "rb")', "open(p)", 'open(p, "ab")', "write_text_atomic(p, s)",
                                  "read_text()"])
def test_the_grep_leaves_reads_appends_and_atomic_writes_alone(line):
    assert not bare_writes(line), line


def test_a_failed_write_leaves_the_old_file_and_no_litter(tmp_path):
    path = tmp_path / "labels.txt"
    write_text_atomic(path, "old\n")
    with pytest.raises(RuntimeError), open_atomic(path, "w", encoding="utf-8") as f:
        f.write("half of the new")
        raise RuntimeError("the disk filled up")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["labels.txt"]

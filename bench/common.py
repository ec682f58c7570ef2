"""Shared helpers: the machine, timing, datasets, the result table."""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


@dataclass
class Row:
    what: str
    ours: float
    ref: float | None = None  # None: the row is a single number (e.g. a share or a peak)
    unit: str = ""
    target: str = ""  # e.g. "<= 1.3" on the ratio (or on `ours` when ref is None)
    samples: list = field(default_factory=list)  # the raw values behind `ours`
    ref_samples: list = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.ref else self.ours / self.ref

    @property
    def n(self) -> int:
        return max(len(self.samples), len(self.ref_samples), 1)

    def met(self) -> str:
        if not self.target:
            return ""
        op, value = self.target.split()
        x = self.ratio if self.ref is not None else self.ours
        if x is None:
            return "?"
        ok = x <= float(value) if op == "<=" else x >= float(value)
        return "yes" if ok else "NO"


def threads_like_ours() -> int:
    """Give the reference the thread count tl_core's policy picks now (train.configure_threads),
    so a ratio compares the loops, not thread counts (the Threads rows measure those)."""
    from tl_core.training.device import configure_threads, cpu_sample

    return configure_threads(cpu_sample())


def helpers_gone(deadline_s: float = 300.0, what: str = "-m tl_core.base.background") -> float:
    """Wait, up to `deadline_s`, until no process whose command line contains `what` is left: by
    default any tl_core helper (background.start runs each as `-m tl_core.base.background MODULE`),
    such as an engine probe an earlier bench started under another TL_CACHE, which no run of this
    bench pauses; -> seconds waited. Beside one, a cold TrashNet feature run measured 1.008x the
    plain pass, not 0.40-0.49."""
    import psutil

    def left() -> bool:
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid != os.getpid() and what in " ".join(proc.info.get("cmdline") or []):
                return True
        return False
    t0 = time.monotonic()
    while left() and time.monotonic() - t0 < deadline_s:
        time.sleep(0.5)
    return time.monotonic() - t0


def median(xs) -> float:
    return float(statistics.median(xs))


def clock() -> float:
    return time.perf_counter()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import timm
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "torch": torch.__version__, "timm": timm.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "load_avg_at_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def dataset_for(args, workdir: Path):
    """The benchmark dataset: --data PATH, or --generate N images of --size px (JPEG)."""
    from tl_core.data.dataset import load_dataset
    from tl_core.data.synthetic import SHAPES, make_shapes_dataset

    if args.generate:
        per_class = max(2, args.generate // 4)
        root = make_shapes_dataset(workdir / "generated", per_class=per_class, size=args.size,
                                   classes=SHAPES, fmt="jpg")
        return load_dataset(root)
    return load_dataset(args.data)


def fresh_dir(parent: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def fmt(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if unit == "%":
        return f"{x:.1f}%"
    if abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"
    return f"{s} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = ["what", "ours", "reference", "ratio", "target", "met", "n"]
    body = [[r.what, fmt(r.ours, r.unit), fmt(r.ref, r.unit), "-" if r.ratio is None else f"{r.ratio:.3f}",
             r.target or "-", r.met() or "-", str(r.n)] for r in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    notes = [f"- {r.what}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))

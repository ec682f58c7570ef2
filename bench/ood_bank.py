"""What the "none of these" bank adds to the end of a run (runs.record -> ood.after_training), in seconds.

    .venv/bin/python -m bench.ood_bank [DATA ...] [--repeats 3]   # default: the sample and hymenoptera

For each dataset: trains the default run (RunConfig(): EfficientNet-Lite0, packaged weights, feature
extraction, solved head) with a feature cache of its own, recording it as the app does, then times
ood.after_training on the finished run folder (its bank files removed first):
- warm: the feature cache the training pass filled, as a feature-extraction run has it at its end;
- cold: an empty feature cache, as a fine-tuned run has it (its backbone changed while training, so
  every image is embedded once more under the best checkpoint).
Prints one line per dataset with medians and the load average (the cores are shared: times move with it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported; benchmarks never download
os.environ.setdefault("TL_BACKGROUND_PROBE", "0")  # no engine probe competing with the timed passes

from bench.common import HYMENOPTERA, ROOT  # noqa: E402
from tl_core.base import events as ev  # noqa: E402
from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.jobs import runs  # noqa: E402
from tl_core.training.train import train  # noqa: E402
from tl_core.trust import ood  # noqa: E402

SAMPLE = ROOT / "assets" / "samples" / "recycling"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _trained(ds, root: Path) -> tuple[Path, float, float]:
    """(run folder, training seconds, seconds from the last epoch's end to the bank's note)."""
    cfg = RunConfig()
    run_dir = runs.create_run(root, cfg, ds.classes, ds.to_dict())
    t0 = last_epoch = time.perf_counter()
    in_run = float("nan")
    for e in runs.record(run_dir, train(cfg, ds, run_dir=run_dir)):
        if isinstance(e, ev.EpochEnd):
            last_epoch = time.perf_counter()
        if isinstance(e, ev.Note) and e.kind == "ood.built":
            in_run = time.perf_counter() - last_epoch
        if isinstance(e, ev.TERMINAL):
            assert isinstance(e, ev.Finished), e
    return run_dir, time.perf_counter() - t0, in_run


def _bank_seconds(run_dir: Path) -> float:
    for name in (ood.OOD_FILE, ood.BANK_FILE):
        (run_dir / name).unlink(missing_ok=True)
    t = time.perf_counter()
    note = ood.after_training(run_dir)
    seconds = time.perf_counter() - t
    assert note.kind == "ood.built", note
    return seconds


def measure(data: Path, repeats: int, tmp: Path) -> dict:
    os.environ["TL_CACHE"] = str(tmp / "cache")
    ds = load_dataset(data)
    run_dir, train_s, in_run = _trained(ds, tmp / "runs")
    warm = [_bank_seconds(run_dir) for _ in range(repeats)]
    cold = []
    for i in range(repeats):
        os.environ["TL_CACHE"] = str(tmp / f"empty-{i}")  # read by each FeatureStore as it opens
        cold.append(_bank_seconds(run_dir))
    return {"data": data.name, "images": len(ds.train) + len(ds.val), "train_s": train_s, "in_run_s": in_run,
            "warm_s": statistics.median(warm), "cold_s": statistics.median(cold), "warm": warm, "cold": cold}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", default=[str(SAMPLE), str(HYMENOPTERA)])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    for data in a.data:
        before = _load()
        with tempfile.TemporaryDirectory(prefix="tl_bench_bank_") as tmp:
            r = measure(Path(data), a.repeats, Path(tmp))
        print(f"{r['data']} ({r['images']} images): default run trained in {r['train_s']:.1f} s; bank in the run "
              f"{r['in_run_s']:.1f} s (last epoch's end to its note); after_training warm cache median "
              f"{r['warm_s']:.2f} s ({', '.join(f'{x:.2f}' for x in r['warm'])}), empty cache median "
              f"{r['cold_s']:.2f} s ({', '.join(f'{x:.2f}' for x in r['cold'])}); load {before} -> {_load()}",
              flush=True)


if __name__ == "__main__":
    main()

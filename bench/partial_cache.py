"""Issue 21 part 4: partial fine-tuning from cached activations against the plain loop.

The same run (EfficientNet-Lite0 from its packaged ImageNet weights, partial, last 2 stages,
10 epochs, light augmentation, seed 0) twice per dataset, side by side: with the activation cache
(the default) and with `activation_cache=False` (the plain loop, `train --no-activation-cache`).
Each path has its own fresh TL_CACHE: the first run is cold (engine probe, features for the
solved starting head), a second run on the same cache is warm. Wall time of the whole train()
call, the seconds spent in each phase (where the speed-up can come from), and validation accuracy.

    .venv/bin/python -m bench.partial_cache [--data hymenoptera,trashnet] [--epochs 10] [--states cold,warm]

Targets: plain/cached >= 2.5, accuracy within 1 point. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .common import helpers_gone

ROOT = Path(__file__).resolve().parents[1]
DATA = {"hymenoptera": ROOT.parent / "shared" / "data" / "hymenoptera_data",
        "trashnet": ROOT.parent / "shared" / "data" / "trashnet"}


def one_run(cfg, ds, cache: Path, others: list[Path]) -> dict:
    """train() on `cache`, with the helpers that earlier runs left on the `others` caches paused, as
    a run pauses those of its own cache: before, the probe the cold run of one loop left ran beside
    the next run of the other loop (the warm cached run's frozen pass took 17.9-25.5 s, the cold
    one's 9.5-15.3 s)."""
    from tl_core.base import background
    from tl_core.base.events import EpochEnd, Finished
    from tl_core.training.train import train

    os.environ["TL_CACHE"] = str(cache)
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as paused:
        for other in others:
            paused.enter_context(background.run_active(other))
        t0 = time.perf_counter()
        events, phases = timed_events(train(cfg, ds))
        wall = time.perf_counter() - t0
    last = events[-1]
    assert isinstance(last, Finished), last
    # the best epoch too: 0 would mean fine-tuning never beat the solved starting head, and then
    # equal accuracies would say nothing about the two loops
    last_epoch = [e for e in events if isinstance(e, EpochEnd)][-1]
    return {"wall_s": wall, "acc": last.metrics["val/acc"], "best_epoch": last.best_epoch,
            "last_acc": last_epoch.metrics["val/acc"], "load": load, "phases_s": phases}


def timed_events(events) -> tuple[list, dict]:
    """(the events, seconds per phase): the time before each event is charged to its phase (a
    Progress's phase: weights, features, activations, train, val; else the event's type)."""
    from tl_core.base.events import Progress

    import torch

    out, phases, last = [], {}, time.perf_counter()
    for e in events:
        now = time.perf_counter()
        key = e.phase if isinstance(e, Progress) else type(e).__name__
        phases[key] = round(phases.get(key, 0.0) + now - last, 2)
        # the run's threads in each phase: a run that starts while a helper is busy takes fewer
        phases[f"{key} threads"] = sorted(set(phases.get(f"{key} threads", [])) | {torch.get_num_threads()})
        last = now
        out.append(e)
    return out, phases


_ALL_CACHES: set[Path] = set()  # every TL_CACHE this bench made: their helpers pause during each run


def measure(name: str, epochs: int, states: list[str]) -> list[dict]:
    from tl_core.base.config import RunConfig
    from tl_core.data.dataset import load_dataset

    ds = load_dataset(DATA[name])
    base = RunConfig(strategy="partial", unfreeze=2, epochs=epochs, lr=1e-3)
    tmp = Path(tempfile.mkdtemp(prefix="tl-partial-"))
    rows = []
    for state in states:
        out = {"data": name, "cache": state, "n_train": len(ds.train), "n_val": len(ds.val)}
        caches = {"cached": tmp / "cache-cached", "plain": tmp / "cache-plain"}
        _ALL_CACHES.update(caches.values())
        for label, cfg in (("cached", base), ("plain", base.replace(activation_cache=False))):
            # warm: the same cache as this path's cold run; every other cache of this bench paused
            # (an earlier dataset's probe, left beside TrashNet's cold step timing, made it 28 s, not 13)
            r = one_run(cfg, ds, caches[label], sorted(_ALL_CACHES - {caches[label]}))
            out.update({f"{label}_{k}": v for k, v in r.items()})
        out["speedup"] = out["plain_wall_s"] / out["cached_wall_s"]
        out["acc_points"] = 100 * (out["cached_acc"] - out["plain_acc"])
        print(json.dumps(out), file=sys.stderr, flush=True)
        rows.append(out)
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="hymenoptera,trashnet")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--states", default="cold,warm")
    a = ap.parse_args(argv)
    print(f"waited {helpers_gone():.0f} s for helpers left by earlier runs to end", file=sys.stderr, flush=True)
    rows = [r for name in a.data.split(",") for r in measure(name, a.epochs, a.states.split(","))]
    print(f"| data (partial, last 2 stages, {a.epochs} epochs) | cache | plain s | cached s | plain/cached "
          "(target >= 2.5) | acc plain | acc cached | points | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} ({r['n_train']}/{r['n_val']}) | {r['cache']} | {r['plain_wall_s']:.1f} | "
              f"{r['cached_wall_s']:.1f} | {r['speedup']:.2f} | {r['plain_acc']:.1%} | {r['cached_acc']:.1%} | "
              f"{r['acc_points']:+.1f} | {r['cached_load']:.1f} / {r['plain_load']:.1f} | "
              f"{r['plain_best_epoch']} / {r['cached_best_epoch']} | {r['plain_last_acc']:.1%} / {r['cached_last_acc']:.1%} |")
    print("\nseconds per phase (the time before each event, charged to its phase):")
    for r in rows:
        print(f"- {r['data']}, {r['cache']}: plain {r['plain_phases_s']}; cached {r['cached_phases_s']}")
    return rows


if __name__ == "__main__":
    main()

"""`python -m tl_core compare`: scratch vs feature extraction vs partial vs full, with a verdict."""
from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from tl_core.base.config import RunConfig
from tl_core.base.formatting import duration
from tl_core.base.status import RunStatus
from tl_core.cli.common import fetch_with_bar, print_report
from tl_core.data.dataset import load_dataset
from tl_core.jobs.energy import describe
from tl_core.jobs.job import JobManager
from tl_core.trust.verdict import wilson

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="scratch vs feature extraction vs partial vs full fine-tuning, with a verdict")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default=RunConfig.backbone)
    p.add_argument("--pretrained", default="auto",
                   help="the pretrained members' weights: auto | package | hub | FILE | run:RUN_DIR")
    p.add_argument("--strategies", default=",".join(STRATEGIES_ORDER), help="comma-separated, of: "
                   + ", ".join(STRATEGIES_ORDER))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="shorten: the most epochs whose measured estimate fits in this many minutes")
    p.add_argument("--estimate-only", action="store_true", help="measure and print the estimate, train nothing")
    for flag, kind, default in (("--unfreeze", int, 1), ("--batch-size", int, 32), ("--image-size", int, 0),
                                ("--seed", int, 0), ("--val-fraction", float, 0.2)):
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--augment", choices=["none", "light", "strong"], default="light")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", default="runs", help="the folder that holds run folders")
    p.set_defaults(handler=run)


STRATEGIES_ORDER = ("scratch", "feature_extraction", "partial", "full")


def _member_line(r: dict) -> str:
    if r.get("acc") is None:
        return f"{r['strategy']}: {r.get('status')}"
    lo, hi = wilson(r["correct"], r["n_val"])
    energy = describe(r.get("energy"))
    return (f"{r['strategy']}: {r['acc']:.1%} (95% interval {lo:.1%}-{hi:.1%}, {r['n_val']} validation images) "
            f"in {duration(r['wall_s'] or 0)}, {energy}")


def run(a) -> int:
    from tl_core.jobs import compare  # deferred: torch (see the note at the top)
    from tl_core.models.model import resolve_source  # deferred: torch (see the note at the top)
    from tl_core.training import estimate as timing  # deferred: torch (see the note at the top)

    base = RunConfig(backbone=a.backbone, pretrained=a.pretrained, epochs=a.epochs, unfreeze=a.unfreeze,
                     batch_size=a.batch_size, image_size=a.image_size, seed=a.seed, val_fraction=a.val_fraction,
                     augment=a.augment, device=a.device)
    members = compare.member_configs(base, tuple(s.strip() for s in a.strategies.split(",") if s.strip()))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(a.data, workdir=tempfile.mkdtemp(prefix=".upload-", dir=out), val_fraction=a.val_fraction,
                      seed=a.seed)
    print_report(ds)
    if resolve_source(base) == "hub":
        fetch_with_bar(base.backbone)
    speed = timing.measure_speed(base, ds)
    if a.budget_minutes:
        epochs = timing.epochs_for_budget(members, ds, speed, a.budget_minutes * 60)
        members = [m.replace(epochs=epochs) for m in members]
    estimate = timing.estimate_total(members, ds, speed)
    rates = ", ".join(f"{k} {v:.1f} img/s" for k, v in speed.train_ips.items())
    print(f"about {duration(estimate)} here for {len(members)} runs of {members[0].epochs} epochs "
          f"(measured on {speed.device}: {rates})", file=sys.stderr)
    if a.estimate_only:
        print(json.dumps({"estimate_s": estimate, "epochs": members[0].epochs, "speed": speed.to_dict()}))
        return 0
    group = compare.CompareGroup(JobManager(1), members, ds, out, estimate_s=estimate).start()
    signal.signal(signal.SIGINT, lambda *_: group.stop())  # Ctrl-C: stop; finished members are kept
    _follow(group, compare)
    summary = compare.summary(compare.read_group(group.path))
    for sentence in summary["sentences"]:
        print(sentence, file=sys.stderr)
    print(json.dumps(summary))
    return 0 if summary["verdict"] is not None else 1


def _follow(group, compare) -> None:
    """Print each member's line as it ends (the group runs on its own thread)."""
    shown = set()
    while True:
        done = group.done
        for r in compare.results(compare.read_group(group.path)):
            if r["strategy"] not in shown and r.get("status") in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED):
                shown.add(r["strategy"])
                print(_member_line(r), file=sys.stderr)
        if done:
            return
        time.sleep(0.5)

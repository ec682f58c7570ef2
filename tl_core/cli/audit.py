"""`python -m tl_core audit`: duplicates, leakage, conflicting labels, class counts."""
from __future__ import annotations

import json
import sys
import tempfile

from tl_core.base.config import RunConfig
from tl_core.cli.common import print_report
from tl_core.data.audit import audit
from tl_core.data.dataset import load_dataset

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    workdir = tempfile.mkdtemp(prefix="tl-audit-")  # a zip is extracted here, nowhere else
    ds = load_dataset(a.data, workdir=workdir, val_fraction=a.val_fraction, seed=a.seed)
    print_report(ds)
    features = None
    if a.backbone:
        from tl_core.training.features import embed  # deferred: torch (see the note at the top)

        cfg = RunConfig(backbone=a.backbone, pretrained=a.pretrained)
        print(f"computing {a.backbone} features of {len(ds.train) + len(ds.val)} images...", file=sys.stderr)
        features = embed(cfg, ds.train + ds.val)
    report = audit(ds, features)
    for p in report.pairs:
        print(f"{p.kind} ({p.where}, {p.method} {p.similarity:.3f}): {p.a} <-> {p.b}", file=sys.stderr)
    if report.class_weights_on:
        print(f"classes imbalanced {report.imbalance:.2f}:1: training weighs the loss by class "
              "(RunConfig.class_weights=auto)", file=sys.stderr)
    print(json.dumps(report.to_dict()))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="duplicates, train/val leakage, conflicting labels, class counts")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default="", help="also compare backbone features (e.g. tf_efficientnet_lite0)")
    p.add_argument("--pretrained", default="auto",
                   help="auto | package | hub | none | FILE | run:RUN_DIR (with --backbone)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run)

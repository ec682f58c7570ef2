"""`python -m tl_core runs`: the run folders under a root, one JSON line each."""
from __future__ import annotations

import json

from tl_core.jobs import runs

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    for r in runs.list_runs(a.root):
        print(json.dumps({"run_dir": r.dir, "status": r.status, "backbone": r.config.backbone,
                          "strategy": r.config.strategy, "val/acc": r.metrics.get("val/acc"), "parent": r.parent}))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in a folder")
    p.add_argument("root", nargs="?", default="runs")
    p.set_defaults(handler=run)

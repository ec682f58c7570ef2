"""`python -m tl_core runs`: the run folders under a root, one JSON line each; `--check`: are they whole?"""
from __future__ import annotations

import json

from tl_core.base.messages import Message
from tl_core.jobs import run_check, runs

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    if a.check:
        return check(a.root)
    for r in runs.list_runs(a.root):
        print(json.dumps({"run_dir": r.dir, "status": r.status, "backbone": r.config.backbone,
                          "strategy": r.config.strategy, "val/acc": r.metrics.get("val/acc"), "parent": r.parent}))
    return 0


def check(root: str) -> int:
    """One line per problem, then a summary; exit status 1 when anything is wrong."""
    problems = run_check.check_runs(root)
    for p in problems:
        print(p)
    n = run_check.count_runs(root)
    print(Message("check.found", {"problems": len(problems), "n": n, "root": root}) if problems
          else Message("check.all_whole", {"n": n, "root": root}))
    return 1 if problems else 0


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in a folder (--check: are they whole?)")
    p.add_argument("root", nargs="?", default="runs")
    p.add_argument("--check", action="store_true",
                   help="check every run folder (status vs events, temporary files, checkpoints, images) instead")
    p.set_defaults(handler=run)

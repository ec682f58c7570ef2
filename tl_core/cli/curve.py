"""`python -m tl_core curve RUN`: would more images help? Accuracy against training-set size."""
from __future__ import annotations

import json
import sys
from pathlib import Path

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    from tl_core.trust.curve import run_curve  # deferred: torch (see the note at the top)

    result = run_curve(Path(a.run_dir))
    print(f"{'images':>8}  {'accuracy':>9}  {'+/- (seeds)':>11}", file=sys.stderr)
    for n, mean, std in zip(result["n"], result["overall"]["mean"], result["overall"]["std"]):
        print(f"{n:>8}  {mean:>9.1%}  {std:>11.1%}", file=sys.stderr)
    print(result["reading_en"], file=sys.stderr)
    print(json.dumps(result))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("curve", help="would more images help? accuracy on 20-100%% of the training images")
    p.add_argument("run_dir")
    p.set_defaults(handler=run)

"""python -m tl_core train|predict|export|audit|compare|curve|runs|weights|worker|run-job ..."""
from __future__ import annotations

import argparse
import sys

from tl_core.base.messages import UserError
from tl_core.cli import audit, compare, curve, export, predict, runs, train, weights, worker

# each module registers its sub-command and sets `handler`; the order is the order of --help
COMMAND_MODULES = (train, predict, export, audit, compare, curve, runs, weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tl_core", description="TL Studio: transfer learning for images")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    worker.add_parsers(sub)
    return parser


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # --devices re-runs the same command under torchrun
    try:
        return a.handler(a)
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

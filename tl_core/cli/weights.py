"""`python -m tl_core weights status|fetch|inspect`: pretrained weights, cached or in a file."""
from __future__ import annotations

import sys

from tl_core.base.messages import WeightsError
from tl_core.cli.common import fetch_with_bar

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def add_parser(subparsers) -> None:
    """Register `weights status|fetch|inspect` on the CLI's sub-command parsers."""
    p = subparsers.add_parser("weights", help="pretrained weights: cache status, download, check a file")
    sub = p.add_subparsers(dest="weights_command", required=True)
    s = sub.add_parser("status", help="are the hub weights cached? size, cache folder")
    s.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    f = sub.add_parser("fetch", help="download hub weights into the cache, with a progress bar")
    f.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    i = sub.add_parser("inspect", help="check that a weights file fits a backbone")
    i.add_argument("name", metavar="NAME", help="timm backbone name")
    i.add_argument("file", help=".safetensors / .pth / .pt file")
    p.set_defaults(handler=run)


def run(args) -> int:
    """Run a parsed `weights` sub-command; returns the exit status (0 when everything worked)."""
    commands = {"status": _cli_status, "fetch": _cli_fetch, "inspect": _cli_inspect}
    return commands[args.weights_command](args)


def _for_each(names: list[str], action) -> int:
    """Print action(name) for each name; a WeightsError is printed and makes the exit status 1."""
    rc = 0
    for name in names:
        try:
            print(f"{name}: {action(name)}")
        except WeightsError as e:
            print(f"{name}: {e}", file=sys.stderr)
            rc = 1
    return rc


def _status_line(name: str) -> str:
    from tl_core.models.model import readiness  # deferred: torch (see the note at the top)
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    ready = readiness(name)
    if ready.kind in ("package", "pip"):
        return ready.text
    st = hub.cache_status(name)
    return f"{'cached' if st.cached else 'not cached'}, {hub.mb(st.size_bytes)}, {st.repo_id} -- {st.message}"


def _cli_status(args) -> int:
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    rc = _for_each(args.names, _status_line)
    print(f"cache: {hub.cache_dir()}")
    return rc


def _cli_fetch(args) -> int:
    return _for_each(args.names, fetch_with_bar)


def _cli_inspect(args) -> int:
    from tl_core.models.sources.weights import (  # deferred: timm and torch (see the note at the top)
        inspect_weights_file,
        shape_text,
    )

    try:
        report = inspect_weights_file(args.name, args.file)
    except WeightsError as e:
        print(e, file=sys.stderr)
        return 1
    print(report.message)
    for key, got, want in report.mismatched[:20]:
        print(f"  shape  {key}: file {shape_text(got)}, model {shape_text(want)}")
    for key in report.missing[:20]:
        print(f"  missing     {key}")
    for key in report.unexpected[:20]:
        print(f"  unexpected  {key}")
    return 0 if report.ok else 1

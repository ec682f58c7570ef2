"""torchrun launch: one run on several GPUs, as the pool worker with --devices N starts it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tl_core.jobs.process import _child_env, _die_with_parent


def run_on_devices(run_dir: str | Path, devices: int) -> int:
    """Train the queued run folder on `devices` GPUs under torchrun (a pool worker with --devices N);
    the torchrun agent dies with this process, and its ranks with it."""
    _die_with_parent()
    cmd = [sys.executable, "-m", "tl_core", "run-job", str(run_dir), "--devices", str(devices)]
    return subprocess.call(cmd, env=_child_env(), preexec_fn=_die_with_parent)

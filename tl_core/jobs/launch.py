"""torchrun launch: one run on several GPUs, as the pool worker with --devices N starts it, and
what the launcher writes when torchrun ends a run that could not say so itself."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tl_core.base.atomic import write_text_atomic
from tl_core.base.events import TERMINAL, Failed
from tl_core.base.messages import Message
from tl_core.base.status import RunStatus
from tl_core.jobs import runs
from tl_core.jobs.process import child_env, die_with_parent

# `train --devices N` (the CLI) does not know its run folder before rank 0 makes it: rank 0 writes
# the folder's path to the file this variable names, and the launcher reads it after torchrun.
RUN_DIR_NOTE = "TL_TORCHRUN_RUN_DIR_FILE"


def run_on_devices(run_dir: str | Path, devices: int) -> int:
    """Train the queued run folder on `devices` GPUs under torchrun (a pool worker with --devices N);
    the torchrun agent dies with this process, and its ranks with it."""
    die_with_parent()
    cmd = [sys.executable, "-m", "tl_core", "run-job", str(run_dir), "--devices", str(devices)]
    return subprocess.call(cmd, env=child_env(), preexec_fn=die_with_parent)


def note_run_dir(run_dir: Path, environ: dict) -> None:
    """Rank 0 of `train --devices N`: tell the launcher where the run folder is."""
    if environ.get(RUN_DIR_NOTE):
        write_text_atomic(environ[RUN_DIR_NOTE], str(run_dir))


def close_after_torchrun(run_dir: str | Path, returncode: int):
    """After torchrun exits: a run its ranks left open (rank 0 killed, or torchrun's SIGKILL after
    its 30 s grace) ends Failed with the sentence, keeping whatever checkpoint rank 0 wrote; returns
    the event it closed the run with. A run that ended by itself is left as it is (None)."""
    run_dir = Path(run_dir)
    try:
        info = runs.read_json(run_dir / "run.json")
    except (OSError, ValueError):
        return None  # never made (torchrun failed first): nothing to close
    if not RunStatus(info.get("status", "Interrupted")).active:
        return None
    ended = next((e for e in reversed(runs.read_events(run_dir)) if isinstance(e, TERMINAL)), None)
    if ended is None:  # killed between its last event and its end
        how = Message("ddp.how_launcher", {"status": returncode})
        ended = Failed.of(Message("ddp.peer_died", {"how": how}), detail=f"torchrun exit status {returncode}")
        runs.append_event(run_dir, ended)
    runs.finish_run(run_dir, ended)  # killed after its last event was written, before run.json
    return ended

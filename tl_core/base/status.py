"""The run-status vocabulary: one enum, spelled once.

The values are what run.json stores (and has stored since the first release), so old run
folders read back unchanged; a lower-case spelling is accepted when reading.
"""
from __future__ import annotations

from enum import StrEnum

from tl_core.base.events import Failed, Finished, Stopped


class RunStatus(StrEnum):
    """Where a run (or the Job training it) stands."""

    QUEUED = "Queued"
    RUNNING = "Running"
    FINISHED = "Finished"
    STOPPED = "Stopped"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"  # its process died without a terminal event

    @classmethod
    def _missing_(cls, value):
        # "finished" from older job code or hand-edited run.json
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        return None

    @property
    def active(self) -> bool:
        """Queued or Running: its process may still write to the run."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def done(self) -> bool:
        """Finished, Stopped or Failed (the run ended and said so)."""
        return self in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED)

    @property
    def key(self) -> str:
        """Lower-case name, for message/text tables (status_finished, ...)."""
        return self.name.lower()


_TERMINAL = {Finished: RunStatus.FINISHED, Stopped: RunStatus.STOPPED, Failed: RunStatus.FAILED}


def status_after(event) -> RunStatus | None:
    """The status a terminal event (Finished/Stopped/Failed) ends a run with; None for others."""
    return _TERMINAL.get(type(event))

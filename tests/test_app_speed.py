"""Issue 21 part 0: the app trains at CLI speed. Local runs train in a child process watched by a
thread of the server; the Train page rebuilds its charts only when events arrive."""
from __future__ import annotations

import os
import threading

from conftest import tiny_cfg, wait_for

from tl_core.base.events import EpochEnd, Progress
from tl_core.base.status import RunStatus
import pytest

from tl_core.jobs import process, runs
from tl_core.jobs.process import ProcessJob
from tl_core.jobs.runners import make_runner
from tl_core.jobs.settings import load_settings
from ui import charts

LABELS = {k: k for k in ("loss", "acc", "train", "val", "epoch", "raw", "smoothed", "step_loss", "step")}


def test_runs_train_in_a_process_by_default_locally_and_hosted():
    assert load_settings({}).runner == "process"
    assert load_settings({"TL_MODE": "hosted"}).runner == "process"
    assert load_settings({"TL_RUNNER": "thread"}).runner == "thread"
    assert load_settings({"TL_MODE": "hosted", "TL_RUNNER": "thread"}).runner == "thread"


def test_the_default_local_runner_trains_in_a_child_process(shapes, tmp_path):
    manager = make_runner(load_settings({"TL_RUNS": str(tmp_path)}))
    job = manager.submit(tiny_cfg(strategy="scratch", epochs=1), shapes, tmp_path)
    assert isinstance(job, ProcessJob)
    job.join(300)  # a deadline: a child that hangs fails the test rather than the suite
    assert job.status == RunStatus.FINISHED, job.events()[-1:]
    assert runs.read_json(job.run_dir / "run.json")["pid"] != os.getpid()  # the trainer was another process
    assert any(isinstance(e, EpochEnd) for e in job.events())  # followed live from the run folder


@pytest.fixture
def spare(monkeypatch, tmp_path):
    """The spare child switched on (the suite keeps it off), started and waited for; let go after."""
    # runs that earlier tests' pages started in this process end first: one ending under
    # TL_SPARE_CHILD=1 would start a spare of its own (a CI run saw it replace ours)
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("tl-job-")], 300,
             "earlier tests' runs to end")
    monkeypatch.setenv("TL_SPARE_CHILD", "1")
    monkeypatch.setenv("TL_RUNS", str(tmp_path))
    process.keep_spare(wait_s=10)
    pid = process.spare_pid()
    assert pid is not None
    yield pid
    process.end_spare()


def _train_one(shapes, tmp_path) -> ProcessJob:
    manager = make_runner(load_settings({"TL_RUNS": str(tmp_path)}))
    job = manager.submit(tiny_cfg(strategy="scratch", epochs=1), shapes, tmp_path)
    job.join(300)  # a deadline: a child that hangs fails the test rather than the suite
    assert job.status == RunStatus.FINISHED, job.events()[-1:]
    return job


def _trained_by(job, pid: int) -> bool:
    """job's child was process `pid`, which wrote its run folder, output included."""
    return job.child_pid == pid and runs.read_json(job.run_dir / "run.json")["pid"] == pid \
        and (job.run_dir / "process.log").exists()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_spare_trains_runs_back_to_back_then_gives_way_to_a_fresh_one(shapes, tmp_path, spare, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # torch sets it in the server by itself
    assert _trained_by(_train_one(shapes, tmp_path), spare)
    assert process.spare_pid() == spare  # it waits for the next run (a comparison's next member)
    monkeypatch.setattr(process, "REUSE_GRACE_S", 0.5)
    assert _trained_by(_train_one(shapes, tmp_path), spare)  # no imports again
    # nobody took it within the grace: let go, and a fresh spare (imports only) in its place
    wait_for(lambda: _gone(spare), 60, "the trained child to exit")
    wait_for(lambda: process.spare_pid() not in (None, spare), 60, "a fresh spare")


@pytest.mark.parametrize("why", ["served its runs", "the run failed"])
def test_a_child_that_served_its_runs_or_failed_one_is_not_kept(shapes, tmp_path, spare, monkeypatch, why):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    manager = make_runner(load_settings({"TL_RUNS": str(tmp_path)}))
    if why == "served its runs":
        monkeypatch.setattr(process, "MAX_RUNS_PER_CHILD", 1)
        cfg = tiny_cfg(strategy="scratch", epochs=1)
    else:  # the loss is not a number after the first steps: Failed
        cfg = tiny_cfg(strategy="scratch", epochs=1, lr=1e12)
    job = manager.submit(cfg, shapes, tmp_path)
    job.join(300)
    assert job.child_pid == spare
    assert job.status == (RunStatus.FINISHED if why == "served its runs" else RunStatus.FAILED), job.events()[-1:]
    assert process.spare_pid() != spare  # let go as the run ended, not kept for the grace
    wait_for(lambda: _gone(spare), 60, "the child to exit")
    wait_for(lambda: process.spare_pid() not in (None, spare), 60, "a fresh spare")


def test_a_spare_started_with_another_environment_is_not_used(shapes, tmp_path, spare, monkeypatch):
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "another_cache"))  # the spare would use the old one
    job = _train_one(shapes, tmp_path)
    assert job.child_pid != spare
    with pytest.raises(ProcessLookupError):
        os.kill(spare, 0)  # the stale spare was ended (and reaped), not left waiting


def test_a_spare_let_go_exits_by_itself(spare):
    process.end_spare()  # closes its stdin; waits (with a deadline) for it to exit
    with pytest.raises(ProcessLookupError):
        os.kill(spare, 0)


def _events(n_steps: int, epochs: int = 0) -> list:
    events = [Progress("train", 1, s, 10, 1.0 / s, 10.0, 5.0) for s in range(1, n_steps + 1)]
    metrics = {"train/loss": 1.0, "train/acc": 0.5, "val/loss": 1.0, "val/acc": 0.5}
    return events + [EpochEnd(e, metrics, True, 3.0) for e in range(1, epochs + 1)]


def test_charts_are_rebuilt_only_when_events_arrive():
    memo: dict = {}
    events = _events(3)
    curves, steps = charts.run_figures(events, "run-a", LABELS, memo)
    assert curves is None and steps is not None  # no epoch yet: no curves
    assert charts.run_figures(list(events), "run-a", LABELS, memo)[1] is steps  # a poll with nothing new
    more = _events(3, epochs=1)
    curves, newer = charts.run_figures(more, "run-a", LABELS, memo)
    assert curves is not None and newer is not steps
    assert charts.run_figures(more, "run-b", LABELS, memo)[1] is not newer  # another run (or language)

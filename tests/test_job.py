"""Jobs on real threads: queueing, stop, failures become events."""
import time

from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.base.status import RunStatus
from tl_core.jobs import runs
from tl_core.jobs.job import JobManager


def _wait(job, seconds=120):
    job.join(seconds)
    assert job.done, job.status


def test_cap_queues_jobs_in_order(shapes, tmp_path):
    jm = JobManager(max_concurrent=1)
    cfg = tiny_cfg(strategy="scratch", epochs=2)
    first, second, third = (jm.submit(cfg, shapes, tmp_path) for _ in range(3))
    time.sleep(0.3)
    assert (first.queue_position(), second.queue_position(), third.queue_position()) == (0, 1, 2)
    assert runs.read_run(second.run_dir).status == "Queued"
    third.stop()  # stopping a queued job ends it without running
    for job in (first, second, third):
        _wait(job)
    assert (first.status, second.status, third.status) == (RunStatus.FINISHED, RunStatus.FINISHED, RunStatus.STOPPED)
    assert len({first.id, second.id, third.id}) == 3 and len(first.id) >= 20


def test_job_events_are_mirrored_in_events_jsonl(shapes, tmp_path):
    job = JobManager().submit(tiny_cfg(strategy="scratch", epochs=1), shapes, tmp_path)
    _wait(job)
    live = [ev.to_dict(e) for e in job.events()]
    replay = [ev.to_dict(e) for e in runs.read_events(job.run_dir)]
    assert live == replay and live[-1]["type"] == "Finished"
    assert runs.read_run(job.run_dir).status == "Finished"


def test_stop_a_running_job(shapes, tmp_path):
    job = JobManager().submit(tiny_cfg(strategy="scratch", epochs=50), shapes, tmp_path)
    while not any(isinstance(e, ev.EpochEnd) for e in job.events()):
        time.sleep(0.05)
    job.stop()
    _wait(job, 30)
    assert job.status == RunStatus.STOPPED and runs.read_run(job.run_dir).status == "Stopped"
    assert (job.run_dir / "model.safetensors").is_file()


def test_a_failure_is_an_event_not_a_dead_thread(shapes, tmp_path):
    job = JobManager().submit(tiny_cfg(strategy="scratch", backbone="no_such_model"), shapes, tmp_path)
    _wait(job)
    last = job.events()[-1]
    assert job.status == RunStatus.FAILED and isinstance(last, ev.Failed) and "no_such_model" in last.message


def test_partial_last_line_is_ignored(tmp_path):
    (tmp_path / "events.jsonl").write_text(
        '{"type": "Note", "message": "hello"}\n{"type": "EpochEnd", "epoch": 1, "metr')
    assert runs.read_events(tmp_path) == [ev.Note("hello")]

"""Heavy page work as tasks in the trainings' job slots (issue 20), with real tiny timm models: a
hosted server's audit features wait behind a training, the cap counts both. The pages' work runs in
child processes (tl_core.jobs.task_child); plain callables on threads."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_cfg, wait_for

from tl_core.base.events import EpochEnd
from tl_core.base.messages import DataError
from tl_core.base.status import RunStatus
from tl_core.data import audit
from tl_core.jobs import page_work
from tl_core.jobs.job import JobManager
from tl_core.jobs.settings import load_settings
from tl_core.jobs.task_child import Call
from tl_core.jobs.tasks import TaskRunner, make_tasks

SLOW = dict(strategy="scratch", epochs=200)  # holds its slot until stopped


def _running_training(jm: JobManager, shapes, tmp_path):
    job = jm.submit(tiny_cfg(**SLOW), shapes, tmp_path)
    deadline = time.time() + 120
    while not any(isinstance(e, EpochEnd) for e in job.events()) and time.time() < deadline:
        time.sleep(0.05)
    assert job.status == RunStatus.RUNNING, job.status
    return job


def _audit_features(shapes, folder: Path):
    """The Data page's own work: embed every image (a real test_resnet) and audit, in a child."""
    shapes.save(folder / "dataset.json")
    return Call(page_work.audit_with_features, (tiny_cfg().to_dict(), str(folder / "dataset.json")))


def _end(task, seconds=120):
    assert task.wait(seconds), task.status
    return task


def test_hosted_audit_features_wait_behind_a_training_then_run(shapes, tmp_path):
    jm = JobManager(max_concurrent=1)
    tasks = make_tasks(load_settings({"TL_MODE": "hosted", "TL_RUNNER": "thread"}), jm)
    job = _running_training(jm, shapes, tmp_path)
    task = tasks.start("audit_features", "session-a", "k", _audit_features(shapes, tmp_path))
    time.sleep(1.0)  # the training still holds the only slot
    assert (task.status, task.queue_position(), task.progress) == (RunStatus.QUEUED, 1, (0, 0))
    assert jm.running_count() == 1
    job.stop()
    _end(task)
    assert task.status == RunStatus.FINISHED, task.error
    n = len(shapes.train) + len(shapes.val)
    assert task.progress == (n, n) and task.result["counts"] == shapes.counts()
    assert jm.running_count() == 0 and task.queue_position() == 0


def test_local_mode_audit_does_not_wait_behind_a_training(shapes, tmp_path):
    jm = JobManager(max_concurrent=1)
    tasks = make_tasks(load_settings({"TL_MODE": "local"}), jm)
    job = _running_training(jm, shapes, tmp_path)
    try:
        task = _end(tasks.start("audit_features", None, "k", _audit_features(shapes, tmp_path)))
        assert task.status == RunStatus.FINISHED and not job.done, "it ran while the training held the slot"
    finally:
        job.stop()
        job.join(60)


def test_rq_web_tier_caps_tasks_with_a_line_of_its_own():
    tasks = make_tasks(load_settings({"TL_MODE": "hosted", "TL_RUNNER": "rq", "TL_MAX_JOBS": "1"}), None)
    release = threading.Event()
    first = tasks.start("speed", "a", "k", lambda progress: release.wait(60))
    second = tasks.start("speed", "b", "k", lambda progress: "b's")
    time.sleep(0.5)
    assert tasks.slots.max_concurrent == 1 and (first.status, second.status) == (RunStatus.RUNNING, RunStatus.QUEUED)
    release.set()
    assert _end(second).result == "b's"


def test_never_more_than_the_cap_counting_trainings_and_tasks(shapes, tmp_path):
    """Two trainings and six sessions' tasks on a cap of 2: at every sample, at most 2 run."""
    jm = JobManager(max_concurrent=2)
    tasks = TaskRunner(jm)
    lock, inside, most = threading.Lock(), [0], [0]

    def busy(progress):
        with lock:
            inside[0] += 1
        try:
            for i in range(20):
                progress(i, 20)
                time.sleep(0.02)
        finally:
            with lock:
                inside[0] -= 1

    jobs = [jm.submit(tiny_cfg(strategy="scratch", epochs=2), shapes, tmp_path) for _ in range(2)]
    started = [tasks.start(kind, f"s{i}", "k", busy) for i in range(3) for kind in ("speed", "map")]
    samples = []
    while not all(x.done for x in jobs + started):
        running = sum(x.status == RunStatus.RUNNING for x in jobs + started)
        samples.append((running, jm.running_count(), inside[0]))
        time.sleep(0.01)
    assert all(x.status == RunStatus.FINISHED for x in jobs + started), [x.status for x in jobs + started]
    assert max(s[0] for s in samples) == 2 and max(s[1] for s in samples) == 2, "the cap was reached and held"
    assert all(a <= 2 and b <= 2 and c <= 2 for a, b, c in samples), max(samples)
    assert any(c > 0 for _, _, c in samples) and jm.running_count() == 0


def test_stop_a_queued_task_it_never_runs(shapes, tmp_path):
    jm = JobManager(max_concurrent=1)
    tasks = TaskRunner(jm)
    job = _running_training(jm, shapes, tmp_path)
    ran = []
    task = tasks.start("map", "a", "k", lambda progress: ran.append(1))
    assert task.queue_position() == 1
    task.stop()
    _end(task, 10)
    assert task.status == RunStatus.STOPPED and ran == [] and jm.queued() == [] and not job.done
    assert task.error.render("en") == "Stopped before it started (it was queued)."
    job.stop()
    job.join(60)


def test_stop_a_running_task_at_its_next_progress_report():
    tasks = TaskRunner(None)
    reports = []

    def endless(progress):
        for i in range(10_000):
            progress(i, 10_000)
            reports.append(i)
            time.sleep(0.01)
        return "never"

    task = tasks.start("embeddings", "a", "k", endless)
    while not reports:
        time.sleep(0.01)
    task.stop()
    _end(task, 10)
    assert task.status == RunStatus.STOPPED and task.result is None and len(reports) < 10_000
    assert task.error.render("en") == "Stopped before finishing exporting the features."


@pytest.mark.parametrize("lang, sentence", [
    ("en", "Could not finish drawing the feature map (the cache file is damaged); try again."),
    ("es", "No se pudo terminar de dibujar el mapa de características (the cache file is damaged); inténtalo de nuevo."),
])
def test_a_failing_task_ends_with_its_sentence_and_frees_its_slot(lang, sentence):
    jm = JobManager(max_concurrent=1)
    tasks = TaskRunner(jm)

    def broken(progress):
        raise OSError("the cache file is damaged")

    task = _end(tasks.start("map", "a", "k", broken))
    assert task.status == RunStatus.FAILED and task.error.render(lang) == sentence
    assert "OSError" in task.detail and jm.running_count() == 0
    assert _end(tasks.start("speed", "a", "k", lambda progress: 42)).result == 42, "the slot was given back"


def test_a_user_error_keeps_its_own_sentence(tmp_path):
    from tl_core.data.dataset import load_dataset

    def no_images(progress):
        return load_dataset(tmp_path / "nothing here")

    task = _end(TaskRunner(None).start("audit_features", "a", "k", no_images))
    assert task.status == RunStatus.FAILED
    with pytest.raises(DataError) as raised:
        no_images(None)
    assert task.error == raised.value.message


def test_a_second_click_reuses_the_running_task():
    tasks = TaskRunner(JobManager(max_concurrent=1))
    release = threading.Event()
    calls = []

    def work(progress):
        calls.append(1)
        release.wait(60)
        return len(calls)

    first = tasks.start("speed", "a", "k1", work)
    again = tasks.start("speed", "a", "k2", work)  # another key too: one active task per session and kind
    other = tasks.start("speed", "b", "k1", work)  # another session: its own task, in the line
    assert again is first and other is not first and tasks.latest("a", "speed") is first
    assert tasks.get(first.id, "b") is None and tasks.get(first.id, "a") is first
    release.set()
    assert _end(first).result == 1 and _end(other).status == RunStatus.FINISHED and len(calls) == 2
    assert tasks.start("speed", "a", "k2", work) is not first, "an ended task gives way to a new one"


# ---------------------------------------------------------------- the pages' work in a child process


@pytest.fixture(autouse=True)
def child_imports_this_module(monkeypatch):
    """The work below is pickled by name (test_tasks.whoami...): a child must find this folder."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))


def whoami(progress) -> int:
    """A task's work that says where it ran (module-level: the child imports it by name)."""
    for i in range(3):
        progress(i + 1, 3)
    return os.getpid()


def forever(pid_file: str, progress) -> None:
    """Work that never ends on its own; writes its process id first."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        progress(0, 1)
        time.sleep(0.05)


def fails(progress) -> None:
    raise OSError("the cache file is damaged")


def not_json(progress) -> set:
    return {"a set"}  # JSON has no sets


def no_dataset(folder: str, progress):
    from tl_core.data.dataset import load_dataset

    return load_dataset(folder)


def _pid_of(pid_file: Path) -> int:
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    return int(pid_file.read_text())


def _gone(pid: int, seconds: float = 10) -> bool:
    import psutil

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_pages_work_runs_in_a_child_process_with_its_progress():
    task = _end(TaskRunner(JobManager(max_concurrent=1)).start("map", "a", "k", Call(whoami)))
    assert task.status == RunStatus.FINISHED, task.error
    assert task.result != os.getpid() and task.progress == (3, 3)


def test_a_task_child_never_runs_the_servers_main_script(tmp_path, monkeypatch):
    """Streamlit installs each page run as __main__; multiprocessing's children re-run __main__'s
    file first (the app's router, its warm-ups and spares, in every task): a task child must not."""
    import sys
    import types

    script, marker = tmp_path / "app.py", tmp_path / "app.py ran"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    task = _end(TaskRunner(None).start("map", "a", "k", Call(whoami)))
    assert task.status == RunStatus.FINISHED and not marker.exists()


def test_stop_kills_the_child_at_once(tmp_path):
    jm = JobManager(max_concurrent=1)
    task = TaskRunner(jm).start("embeddings", "a", "k", Call(forever, (str(tmp_path / "pid"),)))
    pid = _pid_of(tmp_path / "pid")
    task.stop()
    _end(task, 10)
    assert task.status == RunStatus.STOPPED and _gone(pid) and jm.running_count() == 0
    assert task.error.render("en") == "Stopped before finishing exporting the features."


def test_a_child_killed_from_outside_ends_failed_and_frees_its_slot(tmp_path):
    jm = JobManager(max_concurrent=1)
    tasks = TaskRunner(jm)
    task = tasks.start("map", "a", "k", Call(forever, (str(tmp_path / "pid"),)))
    os.kill(_pid_of(tmp_path / "pid"), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    _end(task, 10)
    assert task.status == RunStatus.FAILED and jm.running_count() == 0
    assert "signal 9, SIGKILL: often the system ran out of memory" in task.error.render("en")
    assert _end(tasks.start("map", "a", "k", Call(whoami))).status == RunStatus.FINISHED


def test_a_child_failure_comes_back_as_a_sentence_with_its_traceback():
    task = _end(TaskRunner(None).start("map", "a", "k", Call(fails)))
    assert task.status == RunStatus.FAILED
    assert task.error.render("en") == "Could not finish drawing the feature map (the cache file is damaged); try again."
    assert "OSError" in task.detail and "in fails" in task.detail


def test_a_user_error_in_a_child_keeps_its_own_sentence(tmp_path):
    task = _end(TaskRunner(None).start("audit_features", "a", "k", Call(no_dataset, (str(tmp_path / "none"),))))
    assert task.status == RunStatus.FAILED
    with pytest.raises(DataError) as raised:
        no_dataset(str(tmp_path / "none"), None)
    assert task.error == raised.value.message


def test_a_call_and_its_result_travel_as_json_only():
    """No pickles (DESIGN.md): the work goes by name with JSON arguments, the result comes back as JSON."""
    with pytest.raises(TypeError):
        Call(whoami, (object(),))  # refused in the page, where the mistake is
    with pytest.raises(TypeError):
        Call(lambda progress: 1)  # a child cannot import it by name
    task = _end(TaskRunner(None).start("map", "a", "k", Call(not_json)))
    assert task.status == RunStatus.FAILED
    assert "is not JSON serializable" in task.error.render("en") and "not_json" not in task.error.render("en")


def test_a_task_child_says_whether_it_waits_or_works(tmp_path):
    """ps and the fault campaign tell the spare (imports done, no work) from a child holding work."""
    import psutil

    from tl_core.jobs import task_child

    task = TaskRunner(None).start("map", "a", "k", Call(forever, (str(tmp_path / "pid"),)))
    try:
        assert psutil.Process(_pid_of(tmp_path / "pid")).name() == task_child.WORKING
        spare = wait_for(lambda: task_child._spares._child, 60, "the next spare")[0]
        assert wait_for(lambda: psutil.Process(spare.pid).name() == task_child.WAITING, 60, "the spare's name")
    finally:
        task.stop()
        _end(task, 10)

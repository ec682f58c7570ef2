"""Job runners on real components: a process per job, and the RQ worker pool on a real redis-server
(Debian's, started here on 127.0.0.1 at a free port) with real `python -m tl_core worker` processes.

`make test` installs redis-server as root (CI); without it the pool tests are skipped with a note.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_cfg, wait_for

from tl_core.base import events as ev
from tl_core.base.config import RunConfig
from tl_core.base.messages import render
from tl_core.base.status import RunStatus
from tl_core.jobs import runs
from tl_core.jobs.job import JobManager
from tl_core.jobs.runners import JOB_CLASSES
from tl_core.jobs.settings import new_session_token

ROOT = Path(__file__).resolve().parent.parent
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
needs_redis = pytest.mark.skipif(not Path(REDIS).is_file(),
                                 reason="redis-server is missing (sudo apt-get install redis-server; `make test` does it as root)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = _free_port()
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    from redis import Redis

    conn = Redis(port=port)
    wait_for(lambda: _pings(conn), 20, "redis-server to answer")
    yield f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def _pings(conn) -> bool:
    try:
        return conn.ping()
    except Exception:
        return False


class Workers:
    """Real `python -m tl_core worker` processes serving one runs folder."""

    def __init__(self, url: str, runs_root: Path, cache: Path):
        self.url, self.runs_root, self.procs = url, runs_root, []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TL_CACHE": str(cache),
                    "TL_NUM_THREADS": "1"}  # 2 workers on a 2-core machine: one thread each

    def start(self, n: int) -> None:
        for _ in range(n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "tl_core", "worker", "--queue", self.url, "--runs", str(self.runs_root),
                 "--gpu", "cpu"], env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()


@pytest.fixture
def pool(redis_url, tmp_path):
    from redis import Redis

    Redis.from_url(redis_url).flushdb()  # each test starts with an empty queue
    root = tmp_path / "runs"
    root.mkdir()
    workers = Workers(redis_url, root, tmp_path / "cache")
    yield workers
    workers.stop()


def _runner(pool):
    from tl_core.jobs.pool import PoolRunner

    return PoolRunner(pool.url, pool.runs_root)


def _horse_and_worker(run_dir: Path) -> tuple[int, int]:
    """(pid of the process training the run, pid of its parent: the rq worker)."""
    pid = int(runs.read_json(run_dir / "run.json")["pid"])
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return pid, ppid


def _trained_an_epoch(job) -> bool:
    return any(isinstance(e, ev.EpochEnd) for e in job.events())


# ------------------------------------------------------------------ process runner


def test_process_runner_trains_in_a_child_and_a_crash_ends_that_job_only(shapes, tmp_path):
    jm = JobManager(max_concurrent=2, job_classes=JOB_CLASSES["process"])
    victim = jm.submit(tiny_cfg(strategy="scratch", epochs=200), shapes, tmp_path)
    other = jm.submit(tiny_cfg(strategy="scratch", epochs=2), shapes, tmp_path)
    wait_for(lambda: _trained_an_epoch(victim), 120, "the first epoch")
    child = int(runs.read_json(victim.run_dir / "run.json")["pid"])
    assert child != os.getpid(), "the job trains in a process of its own"
    os.kill(child, signal.SIGKILL)  # a crash in native code, or the kernel's out-of-memory killer
    victim.join(30)
    other.join(120)
    last = victim.events()[-1]
    assert victim.status == RunStatus.FAILED and isinstance(last, ev.Failed) and "ended unexpectedly" in last.message
    assert (victim.run_dir / "model.safetensors").is_file(), "the best checkpoint is kept"
    assert other.status == RunStatus.FINISHED and runs.read_run(other.run_dir).status == "Finished"
    live = [ev.to_dict(e) for e in other.events()]
    assert live == [ev.to_dict(e) for e in runs.read_events(other.run_dir)]


def test_process_runner_stop(shapes, tmp_path):
    job = JobManager(job_classes=JOB_CLASSES["process"]).submit(tiny_cfg(strategy="scratch", epochs=200), shapes, tmp_path)
    wait_for(lambda: _trained_an_epoch(job), 120, "the first epoch")
    job.stop()
    job.join(60)
    assert job.status == RunStatus.STOPPED and runs.read_run(job.run_dir).status == "Stopped"


# ------------------------------------------------------------------ worker pool


@needs_redis
def test_four_sessions_six_jobs_two_workers(pool, shapes):
    pool.start(2)
    runner = _runner(pool)
    # both workers serving before the first submit: one that starts late (its imports, under load)
    # would leave the other to train all six one after the other (CI saw it once)
    from tl_core.jobs.pool import live_workers
    wait_for(lambda: live_workers(runner.conn) == 2, 120, "both workers to register")
    sessions = [new_session_token() for _ in range(4)]
    # 6 epochs: long enough for the two workers' jobs to overlap (with 2, one job ended before the
    # other worker had started its own, and the overlap check below failed on a clean-clone CI run)
    cfg = tiny_cfg(strategy="scratch", epochs=6)
    jobs = {s: [runner.submit(cfg, shapes, pool.runs_root / s, owner=s)] for s in sessions}
    for s in sessions[:2]:  # one active job per session: these two queue their second when free
        jobs[s][0].join(240)
        jobs[s].append(runner.submit(cfg.replace(seed=1), shapes, pool.runs_root / s, owner=s))
    every = [j for js in jobs.values() for j in js]
    for j in every:
        j.join(240)
    assert [j.status for j in every] == [RunStatus.FINISHED] * 6, [(j.status, j.events()[-1:]) for j in every]
    for s in sessions:
        mine = {j.id for j in jobs[s]}
        assert {j.id for j in runner.jobs(s)} == mine
        assert {Path(r.dir) for r in runs.list_runs(pool.runs_root / s)} == {j.run_dir for j in jobs[s]}
        others = [j for t in sessions if t != s for j in jobs[t]]
        assert all(runner.get(j.id, owner=s) is None for j in others), "another session's job is not reachable"
    assert len({runs.read_json(j.run_dir / "run.json")["pid"] for j in every}) == 6, "a fresh process per job"
    spans = sorted((runs.read_json(j.run_dir / "run.json")["started"], runs.read_json(j.run_dir / "run.json")["ended"])
                   for j in every)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), "two workers trained at the same time"


@needs_redis
def test_killed_worker_leaves_its_run_interrupted_and_others_finish(pool, shapes):
    pool.start(2)
    runner = _runner(pool)
    long = runner.submit(tiny_cfg(strategy="scratch", epochs=300), shapes, pool.runs_root)
    wait_for(lambda: _trained_an_epoch(long), 120, "the first epoch")
    short = [runner.submit(tiny_cfg(strategy="scratch", epochs=2, seed=i), shapes, pool.runs_root) for i in (1, 2)]
    horse, worker = _horse_and_worker(long.run_dir)
    assert worker in {p.pid for p in pool.procs}
    os.kill(worker, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: long.status == RunStatus.INTERRUPTED, 60, "the run to show Interrupted")
    print(f"\nworker death -> run Interrupted: {time.monotonic() - t0:.2f} s")
    assert runs.read_run(long.run_dir).status == "Interrupted"
    why = render(long.lost_note())  # the sentence the page and `train --queue --wait` show
    assert "The worker training this run stopped" in why and f"process {horse} " in why, why
    assert (long.run_dir / "model.safetensors").is_file(), "its best checkpoint is kept"
    wait_for(lambda: not Path(f"/proc/{horse}").exists(), 10, "the job process to die with its worker")
    for j in short:
        j.join(240)
    assert [j.status for j in short] == [RunStatus.FINISHED] * 2


@needs_redis
def test_queued_job_shows_its_position_and_stops_without_running(pool, shapes):
    from redis import Redis
    from rq.job import JobStatus

    from tl_core.jobs.pool import queue

    runner = _runner(pool)  # no worker yet: everything waits in Redis
    first, second = (runner.submit(tiny_cfg(strategy="scratch", epochs=1), shapes, pool.runs_root) for _ in range(2))
    assert (first.queue_position(), second.queue_position()) == (1, 2)
    assert first.status == RunStatus.QUEUED
    first.stop()
    assert first.status == RunStatus.STOPPED and runs.read_run(first.run_dir).status == "Stopped"
    assert second.queue_position() == 1
    # anyone who can write to Redis can enqueue a function by name: the worker runs only ours
    marker = pool.runs_root.parent / "should-not-exist"
    foreign = queue(Redis.from_url(pool.url)).enqueue_call("os.makedirs", args=(str(marker),))
    pool.start(1)
    second.join(240)
    assert second.status == RunStatus.FINISHED
    assert not any(isinstance(e, ev.Started) for e in first.events()), "the stopped job never trained"
    wait_for(lambda: foreign.get_status(refresh=True) in (JobStatus.FAILED, JobStatus.FINISHED), 60, "the worker")
    assert foreign.get_status() == JobStatus.FAILED and not marker.exists()


@needs_redis
def test_a_queued_job_with_no_worker_says_so_at_once_and_ends_failed_after_its_deadline(pool, shapes):
    from tl_core.jobs.pool import PoolRunner, live_workers

    runner = PoolRunner(pool.url, pool.runs_root, no_worker_s=3)  # TL_QUEUE_NO_WORKER_S, small for the test
    job = runner.submit(tiny_cfg(strategy="scratch", epochs=1), shapes, pool.runs_root)
    note = job.waiting_note()  # at once, not after the deadline
    assert note is not None and f"No worker is serving the queue at {pool.url}" in render(note), note
    assert f"No worker is serving the queue at {pool.url}" not in render(note, "es"), "Spanish too"
    wait_for(lambda: job.done, 60, "the queued job to give up")
    last = job.events()[-1]
    assert job.status == RunStatus.FAILED and isinstance(last, ev.Failed) and "TL_QUEUE_NO_WORKER_S" in last.message
    info = runs.read_json(job.run_dir / "run.json")
    assert info["status"] == "Failed" and info["error"] == last.message and info["ended"] >= info["created"]
    assert [type(e) for e in runs.read_events(job.run_dir)] == [ev.Failed], "one line: it never started"
    assert job.waiting_note() is None
    # it left the queue: a worker that comes later trains the next job, never this one
    pool.start(1)
    wait_for(lambda: live_workers(runner.conn), 60, "the worker to register")
    later = runner.submit(tiny_cfg(strategy="scratch", epochs=1, seed=1), shapes, pool.runs_root)
    assert later.waiting_note() is None, "a worker serves the queue: nothing to say"
    later.join(240)
    assert later.status == RunStatus.FINISHED
    assert [type(e) for e in runs.read_events(job.run_dir)] == [ev.Failed] and job.status == RunStatus.FAILED


@needs_redis
def test_a_queued_run_whose_redis_dies_says_so_and_ends_failed_in_its_folder(shapes, tmp_path):
    from redis import Redis

    from tl_core.jobs.pool import PoolRunner

    port = _free_port()
    redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _pings(Redis(port=port)), 20, "redis-server to answer")
        url = f"redis://127.0.0.1:{port}/0"
        runner = PoolRunner(url, tmp_path, no_worker_s=3600)  # no worker: it waits in the queue
        job = runner.submit(tiny_cfg(strategy="scratch", epochs=1), shapes, tmp_path)
        assert job.status == RunStatus.QUEUED
    finally:
        redis.kill()
        redis.wait()
    assert job.status == RunStatus.QUEUED  # a short outage: it still waits, and says why
    assert f"The queue at {url} does not answer" in render(job.waiting_note())
    wait_for(lambda: job.done, 60, "the queued run to end")  # after UNREACHABLE_GIVE_UP_S
    last = job.events()[-1]
    assert job.status == RunStatus.FAILED and isinstance(last, ev.Failed) and last.kind == "pool.unreachable"
    assert runs.read_json(job.run_dir / "run.json")["status"] == "Failed"  # the run lists and `runs` agree


@needs_redis
def test_cli_queue_wait_with_no_worker_says_so_and_ends_failed(pool, shapes_dir):
    env = {**pool.env, "TL_QUEUE_NO_WORKER_S": "3"}
    out = subprocess.run(_queue_cli(shapes_dir, pool.runs_root, pool.url), env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    final = json.loads(out.stdout.strip().splitlines()[-1])
    assert f"No worker is serving the queue at {pool.url}" in out.stderr, out.stderr
    assert out.returncode == 1 and final["status"] == "Failed" and "TL_QUEUE_NO_WORKER_S" in final["message"]
    assert runs.read_run(final["run_dir"]).status == "Failed"


def test_worker_refuses_paths_outside_its_runs_folder(tmp_path):
    # pure path checks: no Redis needed, so this runs everywhere
    from tl_core.jobs.pool import PoolError, resolve_run_id

    root = tmp_path / "runs"
    (root / "tok" / "run1").mkdir(parents=True)
    (root / "tok" / "run1" / "run.json").write_text("{}")
    assert resolve_run_id(root, "tok/run1", "tok") == (root / "tok" / "run1").resolve()
    for bad, owner in (("../x", None), ("/etc", None), ("tok/../../x", None), ("tok/run1", "other"), ("nope", None)):
        with pytest.raises(PoolError):
            resolve_run_id(root, bad, owner)


# ------------------------------------------------------------------ the queue does not answer


def test_a_comparison_on_a_queue_that_does_not_answer_ends_with_that_sentence(shapes, tmp_path):
    from tl_core.jobs import compare
    from tl_core.jobs.pool import PoolRunner

    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    members = [RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1)]
    group = compare.CompareGroup(PoolRunner(url, tmp_path / "runs"), members, shapes, tmp_path / "runs").start()
    group.join(timeout=60)  # a deadline for the test, not a timing claim
    saved = compare.read_group(group.path)
    assert saved["ended"] is not None, "the group must end, not retry forever"
    assert "does not answer" in render(saved["error"]) and url in render(saved["error"])


@needs_redis
def test_a_comparison_with_no_worker_ends_after_one_deadline_not_one_per_member(pool, shapes):
    from tl_core.jobs import compare
    from tl_core.jobs.pool import PoolRunner

    members = [RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1, image_size=32,
                         seed=seed) for seed in (0, 1)]
    group = compare.CompareGroup(PoolRunner(pool.url, pool.runs_root, no_worker_s=2), members, shapes,
                                 pool.runs_root).start()
    group.join(timeout=60)  # a deadline for the test, not a timing claim
    saved = compare.read_group(group.path)
    assert saved["ended"] is not None and "No worker served the queue" in render(saved["error"])
    assert saved["members"][1]["run_dir"] is None, "the second member was never queued"


def _queue_cli(shapes_dir, out: Path, url: str) -> list:
    return [sys.executable, "-m", "tl_core", "train", str(shapes_dir), "--backbone", "test_resnet", "--pretrained",
            "none", "--strategy", "scratch", "--epochs", "1", "--image-size", "32", "--out", str(out),
            "--queue", url, "--wait"]


def test_cli_queue_wait_on_a_queue_that_does_not_answer_says_so(shapes_dir, tmp_path):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(_queue_cli(shapes_dir, tmp_path / "runs", url), env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and f"The queue at {url} does not answer" in out.stderr, out.stderr


@needs_redis
def test_redis_killed_while_cli_waits_in_the_queue_says_so(shapes_dir, tmp_path):
    port = _free_port()
    redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    from redis import Redis

    wait_for(lambda: _pings(Redis(port=port)), 20, "redis-server to answer")
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cli = subprocess.Popen(_queue_cli(shapes_dir, tmp_path / "runs", url), env=env, cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(cli.stdout.readline())["status"] == "Queued"  # no worker: it waits in the queue
        redis.kill()
        redis.wait()
        _, err = cli.communicate(timeout=120)
    finally:
        for proc in (redis, cli):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert cli.returncode != 0 and f"The queue at {url} does not answer" in err, err


@needs_redis
def test_cli_queue_wait_ends_like_a_local_run(pool, shapes_dir):
    pool.start(1)
    cmd = [sys.executable, "-m", "tl_core", "train", str(shapes_dir), "--backbone", "test_resnet", "--pretrained",
           "none", "--strategy", "scratch", "--epochs", "2", "--image-size", "48", "--batch-size", "16",
           "--out", str(pool.runs_root), "--queue", pool.url]
    out = subprocess.run(cmd + ["--wait"], env=pool.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    queued, final = json.loads(lines[0]), json.loads(lines[-1])
    assert out.returncode == 0, out.stderr
    assert queued["status"] == "Queued" and queued["run_id"]
    assert final["status"] == "Finished" and final["run_dir"] == queued["run_dir"] and final["val/acc"] is not None
    assert set(final) == {"run_dir", "status", "val/acc", "val/loss", "best_epoch", "train_seconds"}
    no_wait = subprocess.run(cmd, env=pool.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert no_wait.returncode == 0 and json.loads(no_wait.stdout.strip().splitlines()[-1])["status"] == "Queued"


@needs_redis
def test_stop_on_the_page_ends_the_job_on_the_worker(pool, shapes, monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for k, v in {"TL_RUNNER": "rq", "TL_REDIS_URL": pool.url, "TL_RUNS": str(pool.runs_root),
                 "TL_WORKSPACE": str(tmp_path / "workspace")}.items():
        monkeypatch.setenv(k, v)
    st.cache_resource.clear()  # server_settings() and the runner are per server process
    pool.start(1)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["config"] = tiny_cfg(strategy="scratch", epochs=300, device="cpu")
        at.session_state["dataset"] = shapes
        at.run()
        at.switch_page("app_pages/train.py").run()
        at.button(key="train_start").click().run()
        assert not at.exception, at.exception
        run_dir = pool.runs_root / at.session_state["job_run"]
        wait_for(lambda: any(isinstance(e, ev.EpochEnd) for e in runs.read_events(run_dir)), 120, "the first epoch")
        horse, worker = _horse_and_worker(run_dir)
        assert worker in {p.pid for p in pool.procs}, "it trains on the worker"
        at.run()
        at.button(key="train_stop").click().run()
        wait_for(lambda: at.run() and "Stopped" in _texts(at), 60, "the page to show Stopped")
        assert runs.read_run(run_dir).status == "Stopped"
        wait_for(lambda: not Path(f"/proc/{horse}").exists(), 10, "the job process to end")
        assert all(p.poll() is None for p in pool.procs), "the worker lives on for the next job"
    finally:
        st.cache_resource.clear()


@needs_redis
def test_the_train_page_says_when_no_worker_serves_the_queue(pool, shapes, monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for k, v in {"TL_RUNNER": "rq", "TL_REDIS_URL": pool.url, "TL_RUNS": str(pool.runs_root),
                 "TL_WORKSPACE": str(tmp_path / "workspace"), "TL_QUEUE_NO_WORKER_S": "3"}.items():
        monkeypatch.setenv(k, v)
    st.cache_resource.clear()  # server_settings() and the runner are per server process
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["config"] = tiny_cfg(strategy="scratch", epochs=1, device="cpu")
        at.session_state["dataset"] = shapes
        at.run()
        at.switch_page("app_pages/train.py").run()
        at.button(key="train_start").click().run()
        assert not at.exception, at.exception
        assert f"No worker is serving the queue at {pool.url}" in _texts(at), _texts(at)
        wait_for(lambda: at.run() and "TL_QUEUE_NO_WORKER_S" in _texts(at), 60, "the page to say it gave up")
        assert runs.read_run(pool.runs_root / at.session_state["job_run"]).status == "Failed"
    finally:
        st.cache_resource.clear()


def _texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("success", "info", "warning", "error", "caption") for e in getattr(at, kind))


def test_a_pool_job_ends_when_its_run_json_is_closed_too(tmp_path, shapes):
    # the worker writes the last event, then run.json: a reader between the two must not see an end
    # that run.json (the run lists, `runs`) does not show yet; and a worker that died between them
    # must not leave the job running forever
    from tl_core.base.messages import Message
    from tl_core.jobs.pool import PoolJob

    failed = ev.Failed.of(Message("job.timeout"))
    closing, died = (runs.create_run(tmp_path, tiny_cfg(), shapes.classes, shapes.to_dict()) for _ in range(2))
    for run_dir in (closing, died):
        runs.mark_running(run_dir)  # this process trains it
        runs.append_event(run_dir, failed)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runs.update_run(died, pid=gone.pid)
    between, after_death = PoolJob(None, "a", closing, None), PoolJob(None, "b", died, None)
    assert between.status == RunStatus.RUNNING and not between.done
    assert after_death.status == RunStatus.FAILED and after_death.done
    runs.finish_run(closing, failed)
    assert between.status == RunStatus.FAILED and between.done


@needs_redis
def test_a_job_past_its_timeout_ends_failed_not_running_forever(pool, shapes):
    from tl_core.jobs.pool import PoolRunner

    pool.start(1)
    job = PoolRunner(pool.url, pool.runs_root, job_timeout_s=15).submit(
        tiny_cfg(strategy="scratch", epochs=1000), shapes, pool.runs_root)
    job.join(120)
    last = job.events()[-1]
    assert job.status == RunStatus.FAILED and isinstance(last, ev.Failed) and "TL_JOB_TIMEOUT_S" in last.message, last
    assert runs.read_run(job.run_dir).status == "Failed"

"""Many users on one server: sessions isolated by the per-session runs root, jobs capped and queued.

The soak test runs N simulated sessions on threads through one JobManager(max_concurrent=2),
each with its own generated upload, workspace and a tiny real training run.
"""
from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from reliability import case  # noqa: F401  (fixture)

import tl_core.training.train  # noqa: F401  (torch imported before the memory baselines are taken)
from tl_core.base.config import ConfigError, RunConfig
from tl_core.base.events import Finished
from tl_core.base.status import RunStatus
from tl_core.data.dataset import ingest_uploads
from tl_core.jobs import runs
from tl_core.jobs.job import JobManager
from tl_core.jobs.sessions import cleanup_idle_sessions, make_room_for_run, prune_uploads
from tl_core.jobs.settings import (
    Settings,
    SettingsError,
    check_config,
    load_settings,
    new_session_token,
    session_runs_root,
    session_workspace,
    valid_token,
)

N_SESSIONS = 6
MAX_JOBS = 2


def hosted(tmp_path, **extra) -> Settings:
    env = {"TL_MODE": "hosted", "TL_RUNS": str(tmp_path / "runs"), "TL_WORKSPACE": str(tmp_path / "workspace"),
           "TL_MAX_JOBS": str(MAX_JOBS), "TL_MIN_FREE_MB": "1", **extra}
    return load_settings(env)


def upload_for(session: int, per_class: int = 6) -> list:
    """A browser folder upload whose class names and pixels belong to this session only."""
    pairs = []
    for ci, cls in enumerate((f"s{session}_left", f"s{session}_right")):
        for i in range(per_class):
            img = Image.new("RGB", (32, 32), (40 + 150 * ci, (session * 37 + i * 11) % 256, 90))
            img.paste((255 - 200 * ci, 20, 20), (4 + 16 * ci, 8, 12 + 16 * ci, 24))  # learnable: box side
            buf = io.BytesIO()
            img.save(buf, "PNG")
            pairs.append((f"upload{session}/{cls}/{i}.png", buf.getvalue()))
    return pairs


class Peak:
    """Peak RSS of this process while the block runs, sampled every 20 ms."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self.done = psutil.Process(), 0, threading.Event()
        self.start = self.proc.memory_info().rss
        self.cpu0 = time.process_time()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0
        self.done.set()
        self.thread.join()
        self.peak_mb, self.start_mb = max(self.peak, self.start) / 2**20, self.start / 2**20


def _session(i: int, settings, manager, tokens, jobs, barrier) -> None:
    token = tokens[i]
    ws = session_workspace(settings, token)
    ds = ingest_uploads(upload_for(i), ws / "uploads" / "first", limits=settings.ingest_limits())
    root = session_runs_root(settings, token)
    cfg = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1 + i % 2,
                    image_size=32, batch_size=8, seed=i)
    check_config(settings, cfg)
    make_room_for_run(settings, root)
    barrier.wait()  # everyone submits at once: the queue is contended
    jobs[i] = manager.submit(cfg, ds, root, owner=token)


def _watch(manager, jobs, stop, seen) -> None:
    """Sample the queue: never more than MAX_JOBS running; waiting jobs keep submission order."""
    while not stop.is_set():
        running, waiting = manager.running_count(), manager.queued()
        seen["max_running"] = max(seen["max_running"], running)
        seen["max_waiting"] = max(seen["max_waiting"], len(waiting))
        order = [j.id for j in manager.jobs()]  # registry order = submission order
        idx = [order.index(j.id) for j in waiting]
        seen["fifo"] &= idx == sorted(idx)
        for pos, j in enumerate(waiting, 1):
            seen["positions_ok"] &= j.queue_position() in (pos, pos - 1, 0)  # may move up between reads
        time.sleep(0.01)


def test_sessions_share_two_training_slots_and_stay_isolated(tmp_path, case):
    case(f"{N_SESSIONS} sessions (threads), JobManager(max_concurrent={MAX_JOBS}), each uploads and trains test_resnet",
         f"all finish; never more than {MAX_JOBS} at once; FIFO queue positions; each sees only its own runs")
    settings = hosted(tmp_path)
    manager = JobManager(settings.max_jobs)
    tokens = [new_session_token() for _ in range(N_SESSIONS)]
    jobs: list = [None] * N_SESSIONS
    barrier = threading.Barrier(N_SESSIONS)
    seen = {"max_running": 0, "max_waiting": 0, "fifo": True, "positions_ok": True}
    stop_watch = threading.Event()
    watcher = threading.Thread(target=_watch, args=(manager, jobs, stop_watch, seen), daemon=True)
    with Peak() as peak:
        watcher.start()
        threads = [threading.Thread(target=_session, args=(i, settings, manager, tokens, jobs, barrier))
                   for i in range(N_SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for j in jobs:
            j.join(180)
        stop_watch.set()
        watcher.join()
    statuses = [j.status for j in jobs]
    overlap = _max_overlap([runs.read_json(j.run_dir / "run.json") for j in jobs])
    case.observe(f"statuses {sorted(set(statuses))}; at most {seen['max_running']} running (run.json overlap "
                 f"{overlap}), up to {seen['max_waiting']} queued, FIFO {seen['fifo']}; {peak.seconds:.1f} s, "
                 f"peak RSS {peak.peak_mb:,.0f} MB (+{peak.peak_mb - peak.start_mb:,.0f} MB)")
    case.measure(f"soak: {N_SESSIONS} sessions x tiny run, {MAX_JOBS} slots, wall time",
                 f"{peak.seconds:.1f} s wall, {peak.cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f}")
    case.measure(f"soak: {N_SESSIONS} sessions peak RSS",
                 f"{peak.peak_mb:,.0f} MB (+{peak.peak_mb - peak.start_mb:,.0f} MB)")
    assert statuses == [RunStatus.FINISHED] * N_SESSIONS, [j.events()[-1] for j in jobs]
    assert seen["max_running"] <= MAX_JOBS and overlap <= MAX_JOBS and seen["max_waiting"] >= 1
    assert seen["fifo"] and seen["positions_ok"]
    _assert_isolated(settings, manager, tokens, jobs)


def _max_overlap(infos: list) -> int:
    edges = sorted([(i["started"], 1) for i in infos] + [(i["ended"], -1) for i in infos])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def _assert_isolated(settings, manager, tokens, jobs) -> None:
    for i, (token, job) in enumerate(zip(tokens, jobs)):
        root = session_runs_root(settings, token)
        mine = runs.list_runs(root)
        assert [r.name for r in mine] == [job.run_dir.name]
        assert mine[0].classes == [f"s{i}_left", f"s{i}_right"]
        data_root = Path(runs.read_json(job.run_dir / "dataset.json")["root"]).resolve()
        assert data_root.is_relative_to(session_workspace(settings, token).resolve())
        assert manager.jobs(owner=token) == [job]
        for other in tokens:
            if other != token:
                assert manager.get(job.id, owner=other) is None
    assert manager.get(jobs[0].id, owner=tokens[0]) is jobs[0]


def test_one_active_job_per_session(tmp_path, shapes, case):
    case("one session presses Start twice", "second submit refused with a sentence; other sessions unaffected")
    settings = hosted(tmp_path)
    manager = JobManager(1)
    me, other = new_session_token(), new_session_token()
    cfg = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=20, image_size=32)
    first = manager.submit(cfg, shapes, session_runs_root(settings, me), owner=me)
    try:
        with pytest.raises(ConfigError, match="already have a run") as e:
            manager.submit(cfg, shapes, session_runs_root(settings, me), owner=me)
        theirs = manager.submit(cfg, shapes, session_runs_root(settings, other), owner=other)
        case.observe(f"{e.value}; other session queued at position {theirs.queue_position()}")
        assert theirs.queue_position() in (0, 1)
    finally:
        for j in manager.jobs():
            j.stop()
            j.join(10)
    assert len(runs.list_runs(session_runs_root(settings, me))) == 1


def test_starting_points_of_other_sessions_are_refused(tmp_path, case):
    case("hosted: a config whose pretrained points at another session's run or weights",
         "ConfigError sentence; own run and own weights file accepted")
    settings = hosted(tmp_path)
    me, other = new_session_token(), new_session_token()
    theirs = session_runs_root(settings, other) / "20260101-run"
    mine = session_runs_root(settings, me) / "20260101-run"
    weights = session_workspace(settings, me) / "weights" / "w.safetensors"
    base = dict(backbone="test_resnet", strategy="full")
    check_config(settings, RunConfig(pretrained=f"run:{mine}", **base), me)
    check_config(settings, RunConfig(pretrained=str(weights), **base), me)
    refused = []
    for bad in (f"run:{theirs}", f"run:{mine}/../../{other}/x", str(session_workspace(settings, other) / "w.pth")):
        with pytest.raises(ConfigError, match="another session") as e:
            check_config(settings, RunConfig(pretrained=bad, **base), me)
        refused.append(bad)
    case.observe(f"{len(refused)} foreign starting points refused: {e.value}")


def test_session_tokens_cannot_reach_other_folders(tmp_path, case):
    case("session token from a URL: '../', short, or someone else's folder name",
         "SettingsError; tokens are 32 random chars")
    settings = hosted(tmp_path)
    tokens = {new_session_token() for _ in range(100)}
    assert len(tokens) == 100 and all(valid_token(t) and len(t) >= 32 for t in tokens)
    bad = ["../" + next(iter(tokens)), "..", "", "abc", "a/b" * 10, "x" * 65, None, next(iter(tokens)) + "\n"]
    refused = 0
    for token in bad:
        with pytest.raises(SettingsError):
            session_runs_root(settings, token)
        refused += 1
    length = len(next(iter(tokens)))
    case.observe(f"{refused} of {len(bad)} bad tokens refused; 100 new tokens distinct, {length} chars")
    local = load_settings({"TL_RUNS": str(tmp_path / "shared")})
    assert session_runs_root(local, None) == session_runs_root(local, new_session_token()) == tmp_path / "shared"


def test_oldest_runs_are_cleaned_up_per_session(tmp_path, shapes, case):
    case("TL_MAX_RUNS_PER_SESSION=3 with 5 old runs + 1 still running",
         "oldest finished runs deleted to make room; the running one kept")
    settings = hosted(tmp_path, TL_MAX_RUNS_PER_SESSION="3")
    root = session_runs_root(settings, new_session_token())
    from tl_core.base.events import Finished

    made = []
    for k in range(6):
        run_dir = runs.create_run(root, RunConfig(backbone="test_resnet", pretrained="none"), shapes.classes)
        runs.update_run(run_dir, created=1000.0 + k)  # k = age order, oldest first
        if k == 0:
            runs.mark_running(run_dir)  # alive in this process: must survive
        else:
            runs.finish_run(run_dir, Finished({}, 1, 0.1))
        made.append(run_dir)
    removed = make_room_for_run(settings, root)
    left = sorted(r.name for r in runs.list_runs(root))
    case.observe(f"removed {len(removed)}, kept {len(left)} (running one kept: {made[0].name in left})")
    assert made[0].name in left and len(left) == 3
    assert sorted(p.name for p in removed) == sorted(p.name for p in made[1:4])


def test_idle_sessions_expire_but_not_while_training(tmp_path, shapes, case):
    from tl_core.base.events import Stopped

    case("sessions idle longer than TL_SESSION_TTL_HOURS", "their runs and uploads deleted, unless a run is active")
    settings = hosted(tmp_path, TL_SESSION_TTL_HOURS="1")
    idle, busy = new_session_token(), new_session_token()
    for token in (idle, busy):
        (session_workspace(settings, token) / "up.png").write_bytes(b"x")
        run_dir = runs.create_run(session_runs_root(settings, token), RunConfig(backbone="test_resnet"), shapes.classes)
        if token == busy:
            runs.mark_running(run_dir)
        else:
            runs.finish_run(run_dir, Stopped(0))
    removed = cleanup_idle_sessions(settings, now=time.time() + 2 * 3600)
    case.observe(f"removed {len(removed)} of 2 sessions (the idle one)")
    assert removed == [idle]
    assert not (tmp_path / "runs" / idle).exists() and not (tmp_path / "workspace" / idle).exists()
    assert (tmp_path / "workspace" / busy / "up.png").exists()


def test_settings_from_environment(tmp_path, case):
    case("settings: TL_MODE unset / hosted / bad values",
         "local by default; hosted caps; a sentence naming the bad variable")
    local, host = load_settings({}), hosted(tmp_path)
    assert local.mode == "local" and not local.hosted and local.max_runs_per_session == 0
    assert host.ingest_limits().max_bytes == 200 * 1024**2 and host.max_images == 5000 and host.max_jobs == MAX_JOBS
    with pytest.raises(SettingsError, match="TL_MAX_EPOCHS='lots'"):
        load_settings({"TL_MAX_EPOCHS": "lots"})
    with pytest.raises(SettingsError, match="TL_MODE"):
        load_settings({"TL_MODE": "public"})
    with pytest.raises(ConfigError, match="30 or fewer") as e:
        check_config(host, RunConfig(epochs=100))
    case.observe(str(e.value))
    import tl_core.jobs.settings as mod

    for name in ("TL_MODE", "TL_RUNS", "TL_WORKSPACE", *(f"TL_{f.upper()}" for f in mod._DEFAULTS["local"])):
        assert name in mod.__doc__, f"{name} is not in the settings table"


def test_old_uploads_are_pruned_but_not_while_a_run_reads_them(tmp_path, case):
    case("one session uploads 4 times while its first upload is training",
         "older uploads deleted; the one in use and the newest kept")
    settings = hosted(tmp_path)
    token = new_session_token()
    uploads = session_workspace(settings, token) / "uploads"
    datasets = []
    for k in range(4):
        datasets.append(ingest_uploads(upload_for(k, per_class=2), uploads / f"u{k}"))
        os.utime(uploads / f"u{k}", (1000 + k, 1000 + k))  # k = upload order
    run_dir = runs.create_run(session_runs_root(settings, token), RunConfig(backbone="test_resnet"),
                              datasets[0].classes, datasets[0].to_dict())
    runs.mark_running(run_dir)  # reads u0's images
    removed = prune_uploads(settings, token, keep=1)
    left = sorted(d.name for d in uploads.iterdir())
    case.observe(f"removed {sorted(d.name for d in removed)}, kept {left}")
    assert left == ["u0", "u3"]


def _four_uploads_and_a_finished_run_on(settings, token, which: int):
    uploads = session_workspace(settings, token) / "uploads"
    datasets = []
    for k in range(4):
        datasets.append(ingest_uploads(upload_for(k, per_class=2), uploads / f"u{k}"))
        os.utime(uploads / f"u{k}", (1000 + k, 1000 + k))  # k = upload order
    run_dir = runs.create_run(session_runs_root(settings, token), RunConfig(backbone="test_resnet"),
                              datasets[which].classes, datasets[which].to_dict())
    runs.finish_run(run_dir, Finished(metrics={"val/acc": 1.0}, best_epoch=1, train_seconds=1.0))
    return uploads, run_dir


def test_local_mode_never_deletes_an_upload_a_finished_run_reads(tmp_path, case):
    case("local mode: train on the first upload, then upload three more", "the first upload stays (its run needs it)")
    settings = load_settings({"TL_RUNS": str(tmp_path / "runs"), "TL_WORKSPACE": str(tmp_path / "workspace")})
    token = new_session_token()
    uploads, run_dir = _four_uploads_and_a_finished_run_on(settings, token, which=0)
    removed = prune_uploads(settings, token, keep=1)
    left = sorted(d.name for d in uploads.iterdir())
    case.observe(f"removed {sorted(d.name for d in removed)}, kept {left}")
    assert left == ["u0", "u3"]
    assert runs.read_run(run_dir).images_removed is None


def test_hosted_caps_remove_a_finished_runs_images_and_its_run_json_says_so(tmp_path, case):
    case("hosted: a finished run's upload falls out of the session's upload cap",
         "the folder goes; run.json records images_removed")
    settings = hosted(tmp_path)
    token = new_session_token()
    uploads, run_dir = _four_uploads_and_a_finished_run_on(settings, token, which=1)
    prune_uploads(settings, token, keep=1)
    case.observe(f"kept {sorted(d.name for d in uploads.iterdir())}; images_removed="
                 f"{runs.read_run(run_dir).images_removed}")
    assert sorted(d.name for d in uploads.iterdir()) == ["u3"]
    assert runs.read_run(run_dir).images_removed is not None


def test_finished_jobs_are_forgotten_after_keep_done(tmp_path, shapes, case):
    case("a server running for weeks: many finished jobs", "only the newest keep_done stay in memory; runs stay on disk")
    manager = JobManager(1, keep_done=2)
    cfg = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1, image_size=32)
    made = []
    for _ in range(5):
        job = manager.submit(cfg, shapes, tmp_path / "runs")
        job.stop()
        job.join(30)
        made.append(job)
    kept = manager.jobs()
    case.observe(f"{len(kept)} of 5 jobs in memory; {len(runs.list_runs(tmp_path / 'runs'))} run folders on disk")
    assert kept == made[-3:] and len(runs.list_runs(tmp_path / "runs")) == 5
    assert manager.get(made[0].id) is None

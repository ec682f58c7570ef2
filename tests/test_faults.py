"""Faults during a run: out of memory, NaN, stops in every phase, a killed process, a full or
unwritable disk. Each ends in a known state with a sentence, and the run folder stays readable.

tests/test_train.py already covers an exception mid-run keeping the best checkpoint and the
NaN sentence from train(); here the same faults go through Job and the run folder.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_cfg
from reliability import case  # noqa: F401  (fixture)

from tl_core.base import events as ev
from tl_core.base.status import RunStatus
from tl_core.jobs import runs
from tl_core.jobs.job import JobManager, oom_retry_config
from tl_core.serving.predict import Predictor
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent
STOP_WITHIN_S = 5.0


def _types(events) -> list:
    return [type(e).__name__ for e in events]


def assert_consistent(run_dir: Path, status: str) -> list:
    """run.json and events.jsonl agree, nothing half-written is left, a saved model loads."""
    info = runs.read_run(run_dir)
    events = runs.read_events(run_dir)
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    assert info.status == status and len(events) == len(lines)
    assert type(events[-1]).__name__ == status
    assert not list(run_dir.glob(".*.tmp")), "a temporary file was left behind"
    if (run_dir / "model.safetensors").exists():
        image = runs.read_json(run_dir / "dataset.json")["val"][0]["path"]
        assert len(Predictor(run_dir).top_k([image])[0]) == len(info.classes)
    return events


def _run_dir(tmp_path, cfg, ds) -> Path:
    return runs.create_run(tmp_path / "runs", cfg, ds.classes, ds.to_dict())


# ---------------------------------------------------------------- out of memory


def _failing_model(monkeypatch, forward):
    """Real models from train's own build_model, whose forward pass is `forward`."""
    import tl_core.training.train as train_mod

    real = train_mod.build_model

    def build(cfg, n):
        model = real(cfg, n)
        model.forward = forward
        return model
    monkeypatch.setattr(train_mod, "build_model", build)


def test_cuda_oom_is_a_sentence(shapes, monkeypatch, case):
    case("out of memory (torch.OutOfMemoryError) in the first batch",
         "Failed: a sentence suggesting a smaller batch or image size")

    def forward(x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    _failing_model(monkeypatch, forward)
    out = list(train(tiny_cfg(strategy="scratch", epochs=1), shapes))
    case.observe(out[-1].message)
    assert isinstance(out[-1], ev.Failed) and "smaller batch size or image size" in out[-1].message


def test_cpu_allocator_oom_through_a_job_is_a_sentence(shapes, tmp_path, monkeypatch, case):
    case("CPU allocator out of memory (RuntimeError: DefaultCPUAllocator: can't allocate memory)",
         "Failed with the same sentence; no retry on CPU")
    _failing_model(monkeypatch, lambda x: torch.empty(2**44, dtype=torch.uint8))  # a real 16 TiB allocation
    job = JobManager(1).submit(tiny_cfg(strategy="scratch", epochs=1), shapes, tmp_path / "runs")
    job.join(60)
    events = job.events()
    case.observe(f"{events[-1].message} | events: {', '.join(dict.fromkeys(_types(events)))}")
    assert job.status == RunStatus.FAILED and "smaller batch size or image size" in events[-1].message
    assert not any(isinstance(e, ev.Note) for e in events)
    assert runs.read_run(job.run_dir).error == events[-1].message


OOM = ev.Failed("Out of memory: choose a smaller batch size or image size (or a smaller backbone) and start again.",
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB")


@pytest.mark.parametrize("failed,device,batch,want", [
    (OOM, "cuda", 32, 16), (OOM, "cuda:0", 3, 1), (OOM, "cpu", 32, None), (OOM, "cuda", 1, None),
    (ev.Failed("Training failed: ValueError: bad"), "cuda", 32, None), (ev.Stopped(1), "cuda", 32, None),
])
def test_oom_retry_decision(failed, device, batch, want):
    retry = oom_retry_config(tiny_cfg(batch_size=batch), failed, device)
    assert (retry.batch_size if retry else None) == want


def test_cuda_oom_retries_once_with_half_the_batch(shapes, tmp_path, monkeypatch, case):
    """The Job's retry path, driven by a train() that reports CUDA and runs out of memory every
    time: one retry at half the batch, announced by a Note, then Failed (no success is faked)."""
    case("CUDA out of memory, twice",
         "one automatic retry at half the batch with a Note, then Failed; run.json has the batch used")
    calls = []

    def fake_train(cfg, dataset, stop, run_dir):
        calls.append(cfg.batch_size)
        yield ev.Started("cuda", dataset.classes, 1, 1, 1, 1, cfg.epochs, 1, cfg.strategy, cfg.backbone)
        yield OOM
    import tl_core.training.train as train_mod
    monkeypatch.setattr(train_mod, "train", fake_train)
    job = JobManager(1).submit(tiny_cfg(strategy="scratch", batch_size=16), shapes, tmp_path / "runs")
    job.join(30)
    events = job.events()
    note = next(e.message for e in events if isinstance(e, ev.Note))
    case.observe(f"batch sizes tried {calls}; note: {note}; ended {job.status}")
    assert calls == [16, 8] and "batch size 8" in note and job.status == RunStatus.FAILED
    assert _types(events) == ["Started", "Note", "Started", "Failed"]
    info = runs.read_json(job.run_dir / "run.json")
    assert info["config"]["batch_size"] == 8 and info["oom_retry"] and info["status"] == "Failed"


# ---------------------------------------------------------------- NaN and other failures through a job


def test_nan_in_epoch_two_fails_and_keeps_epoch_one(shapes, tmp_path, monkeypatch, case):
    case("loss becomes NaN in epoch 2", "Failed with 'lower the learning rate'; epoch 1's checkpoint loads")
    cfg = tiny_cfg(strategy="scratch", epochs=3, image_size=32)
    run_dir = _run_dir(tmp_path, cfg, shapes)
    out = []
    for e in runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)):
        out.append(e)
        if isinstance(e, ev.EpochEnd):
            monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", lambda self, x, y: x.sum() * float("nan"))
    case.observe(out[-1].message)
    assert isinstance(out[-1], ev.Failed) and "lower the learning rate" in out[-1].message
    assert runs.read_run(run_dir).error == out[-1].message
    assert_consistent(run_dir, "Failed")


def test_disk_full_while_saving_a_checkpoint(shapes, tmp_path, monkeypatch, case):
    case("disk full (ENOSPC) when the best checkpoint is saved",
         "Failed with the OS reason; no temp file left; run.json readable")
    import tl_core.models.checkpoint as ckpt

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ckpt, "write_bytes_atomic", full)
    cfg = tiny_cfg(strategy="scratch", epochs=2, image_size=32)
    job = JobManager(1).submit(cfg, shapes, tmp_path / "runs")
    job.join(60)
    msg = job.events()[-1].message
    case.observe(msg)
    assert job.status == RunStatus.FAILED and "disk is full" in msg
    assert_consistent(job.run_dir, "Failed")


def test_events_file_unwritable_mid_run_still_ends_failed(shapes, tmp_path, monkeypatch, case):
    case("events.jsonl cannot be appended mid-run", "the job ends Failed (not stuck Running) with the reason")
    real, count = runs.append_event, [0]

    def flaky(run_dir, event):
        count[0] += 1
        if count[0] > 3:
            raise OSError(errno.EIO, "Input/output error")
        real(run_dir, event)
    monkeypatch.setattr(runs, "append_event", flaky)
    job = JobManager(1).submit(tiny_cfg(strategy="scratch", epochs=2, image_size=32), shapes, tmp_path / "runs")
    job.join(60)
    case.observe(f"status {job.status}: {job.events()[-1].message}")
    assert job.done and job.status == RunStatus.FAILED and "could not be recorded" in job.events()[-1].message


def test_a_job_timeout_between_two_events_ends_the_run_folder_failed(shapes, tmp_path, monkeypatch, case):
    case("rq's job timeout (SIGALRM) lands while an event of epoch 2 is being written, outside train()",
         "events.jsonl and run.json both end Failed with the TL_JOB_TIMEOUT_S sentence; epoch 1's checkpoint is kept")
    from rq.timeouts import JobTimeoutException

    real, seen = runs.append_event, []

    def alarm_in_epoch_two(run_dir, event):
        seen.append(event)
        if isinstance(event, ev.Progress) and event.phase == "train" and event.epoch == 2:
            raise JobTimeoutException("Task exceeded maximum timeout value (15 seconds)")
        real(run_dir, event)
    monkeypatch.setattr(runs, "append_event", alarm_in_epoch_two)
    job = JobManager(1).submit(tiny_cfg(strategy="scratch", epochs=3, image_size=32), shapes, tmp_path / "runs")
    job.join(60)
    case.observe(f"status {job.status}: {job.events()[-1].message}")
    last = runs.read_events(job.run_dir)[-1]
    assert job.status == RunStatus.FAILED and isinstance(last, ev.Failed) and "TL_JOB_TIMEOUT_S" in last.message
    assert assert_consistent(job.run_dir, "Failed") and (job.run_dir / "model.safetensors").exists()


def test_failure_before_training_releases_the_slot(shapes, tmp_path, monkeypatch, case):
    case("run.json cannot be updated when the job starts", "that job Failed; the next queued job still runs")
    real = runs.mark_running
    calls = []

    def first_fails(run_dir):
        calls.append(run_dir)
        if len(calls) == 1:
            raise OSError(errno.EROFS, "Read-only file system")
        real(run_dir)
    monkeypatch.setattr(runs, "mark_running", first_fails)
    manager = JobManager(1)
    cfg = tiny_cfg(strategy="scratch", epochs=1, image_size=32)
    a = manager.submit(cfg, shapes, tmp_path / "runs")
    b = manager.submit(cfg, shapes, tmp_path / "runs")
    a.join(30)
    b.join(60)
    case.observe(f"first {a.status} ({a.events()[-1].message}); second {b.status}")
    assert a.status == RunStatus.FAILED and "Read-only file system" in a.events()[-1].message
    assert b.status == RunStatus.FINISHED and manager.running_count() == 0


# ---------------------------------------------------------------- stop in every phase


def _stop_when(cfg, ds, tmp_path, when) -> tuple[list, float, Path]:
    """Run train() recorded into a run folder; set stop at the first event matching `when`."""
    stop = threading.Event()
    run_dir = _run_dir(tmp_path, cfg, ds)
    runs.mark_running(run_dir)
    out, t_stop = [], None
    for e in runs.record(run_dir, train(cfg, ds, stop, run_dir)):
        out.append(e)
        if t_stop is None and when(e):
            stop.set()
            t_stop = time.perf_counter()
    assert t_stop is not None, "the phase to stop in never came"
    return out, time.perf_counter() - t_stop, run_dir


@pytest.mark.parametrize("phase", ["features", "train", "val"])
def test_stop_in_each_phase(shapes, tmp_path, case, phase):
    what = {"features": "feature extraction", "train": "an epoch", "val": "validation"}[phase]
    case(f"stop during {what}",
         f"Stopped within {STOP_WITHIN_S:.0f} s; run folder consistent")
    if phase == "features":  # seed 11: weights no other test embeds with, so the cache misses
        cfg = tiny_cfg(strategy="feature_extraction", epochs=2, batch_size=8, seed=11, image_size=40)
    else:
        cfg = tiny_cfg(strategy="scratch", epochs=3, batch_size=4, image_size=32)
    want_epoch = 1 if phase == "features" else 2  # stop in epoch 2, after a best checkpoint exists
    out, latency, run_dir = _stop_when(cfg, shapes, tmp_path, lambda e: isinstance(e, ev.Progress)
                                       and e.phase == phase and (phase == "features" or e.epoch == 2))
    case.observe(f"{_types(out)[-1]} at epoch {out[-1].epoch}, {latency * 1000:.0f} ms after stop; "
                 f"checkpoint {'kept' if (run_dir / 'model.safetensors').exists() else 'none yet'}")
    assert isinstance(out[-1], ev.Stopped) and latency < STOP_WITHIN_S
    assert out[-1].epoch == (0 if phase == "features" else want_epoch)
    assert sum(isinstance(e, ev.EpochEnd) for e in out) == (0 if phase == "features" else 1)
    assert_consistent(run_dir, "Stopped")


def test_job_stop_while_running_and_while_queued(shapes, tmp_path, case):
    case("Job.stop() while training, and on a job still queued",
         f"both Stopped within {STOP_WITHIN_S:.0f} s; queued one never started")
    manager = JobManager(max_concurrent=1)
    cfg = tiny_cfg(strategy="scratch", epochs=50, batch_size=4, image_size=32)
    first = manager.submit(cfg, shapes, tmp_path / "runs")
    second = manager.submit(cfg, shapes, tmp_path / "runs")
    deadline = time.time() + 60
    while not any(isinstance(e, ev.Progress) for e in first.events()) and time.time() < deadline:
        time.sleep(0.02)
    assert second.queue_position() == 1 and first.queue_position() == 0
    t = time.perf_counter()
    second.stop()
    first.stop()
    first.join(STOP_WITHIN_S + 5)
    second.join(STOP_WITHIN_S + 5)
    took = time.perf_counter() - t
    case.observe(f"running: {first.status}, queued: {second.status} ({second.events()[-1].message}); {took:.2f} s")
    assert first.status == second.status == RunStatus.STOPPED and took < STOP_WITHIN_S
    assert not any(isinstance(e, ev.Started) for e in second.events())
    assert_consistent(first.run_dir, "Stopped")
    assert runs.read_run(second.run_dir).status == "Stopped"


# ---------------------------------------------------------------- a killed process


def test_sigkill_after_first_epoch_is_interrupted_and_keeps_the_checkpoint(shapes_dir, tmp_path, case):
    case("python -m tl_core train killed with SIGKILL after epoch 1",
         "listed as Interrupted (not Running); events and best checkpoint intact")
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "tl_core", "train", str(shapes_dir), "--backbone", "test_resnet", "--pretrained",
           "none", "--strategy", "scratch", "--epochs", "200", "--batch-size", "16", "--image-size", "32",
           "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "cli.log"  # a file, not a pipe: an unread pipe could fill and stall the child
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        events_file = _wait_for_epoch_end(out, proc, log)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)  # reaped: a zombie would still answer kill(pid, 0)
    listed = runs.list_runs(out)
    assert len(listed) == 1
    run = listed[0]
    events = runs.read_events(run.dir)
    n_epochs = sum(isinstance(e, ev.EpochEnd) for e in events)
    case.observe(f"status {run.status}; {n_epochs} epoch(s) in events")
    assert run.status == runs.INTERRUPTED and events_file.exists()
    assert n_epochs >= 1 and not any(isinstance(e, ev.TERMINAL) for e in events)
    runs.append_event(Path(run.dir), ev.Note("after restart"))  # appending after a kill stays readable
    assert isinstance(runs.read_events(run.dir)[-1], ev.Note)
    _best_checkpoint_loads(Path(run.dir), shapes_dir, case)


def _best_checkpoint_loads(run_dir: Path, shapes_dir: Path, case) -> None:
    top = Predictor(run_dir).top_k([next(shapes_dir.rglob("*.jpg"))])[0]
    case.observe(f"best checkpoint loads and predicts '{top[0][0]}'")
    assert len(top) == 3


def _wait_for_epoch_end(out: Path, proc, log: Path, timeout: float = 90) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for f in out.glob("*/events.jsonl"):
            if '"type": "EpochEnd"' in f.read_text():
                return f
        if proc.poll() is not None:
            raise AssertionError(f"the CLI ended early: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("no epoch ended in time")


def test_pid_reused_by_another_process_is_interrupted(tmp_path, shapes, case):
    case("run.json says Running, its pid now belongs to another process (container restart)", "Interrupted")
    run_dir = _run_dir(tmp_path, tiny_cfg(), shapes)
    runs.mark_running(run_dir)
    assert runs.read_run(run_dir).status == "Running"  # this process is alive
    runs.update_run(run_dir, proc_start="1")  # same pid, different start time
    status = runs.read_run(run_dir).status
    case.observe(status)
    assert status == "Interrupted"


# ---------------------------------------------------------------- half-written files


def test_reader_tolerates_partial_and_garbage_lines(tmp_path, case):
    case("events.jsonl with a garbage line and a half-written last line", "complete events read; next append not lost")
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    runs.append_event(run_dir, ev.Note("one"))
    with open(run_dir / "events.jsonl", "a") as f:
        f.write("{not json}\n")
        f.write('{"type": "Note", "mess')  # killed mid-write
    assert [e.message for e in runs.read_events(run_dir)] == ["one"]
    runs.append_event(run_dir, ev.Note("two"))
    got = [e.message for e in runs.read_events(run_dir)]
    case.observe(f"read {got}")
    assert got == ["one", "two"]


def test_long_event_is_one_write(tmp_path, case):
    case("a Failed event with a 100 KB traceback", "written as one line in one write")
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    writes = []
    real = os.write

    def spy(fd, data):
        writes.append(len(data))
        return real(fd, data)
    os.write, saved = spy, os.write
    try:
        runs.append_event(run_dir, ev.Failed("boom", "x" * 100_000))
    finally:
        os.write = saved
    case.observe(f"{len(writes)} write(s) of {writes[0]:,} bytes")
    assert len(writes) == 1 and runs.read_events(run_dir)[0].detail == "x" * 100_000


def test_crash_during_atomic_write_keeps_the_old_run_json(tmp_path, shapes, monkeypatch, case):
    case("process dies while run.json is being replaced",
         "old run.json intact, no temp file; damaged run.json hides only that run")
    run_dir = _run_dir(tmp_path, tiny_cfg(), shapes)
    before = (run_dir / "run.json").read_text()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        runs.mark_running(run_dir)
    monkeypatch.undo()
    assert (run_dir / "run.json").read_text() == before and not list(run_dir.glob(".*.tmp"))
    other = _run_dir(tmp_path, tiny_cfg(), shapes)
    (other / "run.json").write_text('{"status": "Runn')  # written by something not atomic
    listed = [r.name for r in runs.list_runs(tmp_path / "runs")]
    case.observe(f"old run.json kept; list_runs shows {len(listed)} of 2 (the damaged one hidden)")
    assert listed == [run_dir.name]


# ---------------------------------------------------------------- unwritable or full runs folder


def test_unwritable_runs_folder_is_refused_at_submit(tmp_path, shapes, case):
    case("runs folder cannot be created (a file is in the way)", "RunsFolderError sentence at submit; no job started")
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    manager = JobManager(1)
    with pytest.raises(runs.RunsFolderError, match="cannot be written") as e:
        manager.submit(tiny_cfg(), shapes, blocker / "mine")
    case.observe(str(e.value))
    assert manager.jobs() == []


WITHOUT_DAC = "TL_TEST_WITHOUT_DAC_OVERRIDE"


def test_read_only_runs_folder_is_refused(tmp_path, shapes):
    if os.geteuid() == 0 and not os.environ.get(WITHOUT_DAC):
        # root (CI) writes into any folder through CAP_DAC_OVERRIDE: rerun this very test without it
        if not Path("/usr/bin/setpriv").exists():
            pytest.skip("root can write to a read-only folder, and setpriv (util-linux) is missing to drop that")
        r = subprocess.run(["/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                            "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_read_only_runs_folder_is_refused"],
                           env={**os.environ, WITHOUT_DAC: "1"}, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError):  # the premise: this process cannot write there
            (ro / "probe").touch()
        with pytest.raises(runs.RunsFolderError, match="cannot be written"):
            JobManager(1).submit(tiny_cfg(), shapes, ro)
    finally:
        ro.chmod(0o700)


def test_nearly_full_disk_is_refused_at_submit(tmp_path, shapes, monkeypatch, case):
    case("disk with 50 MB free (TL_MIN_FREE_MB=500)", "RunsFolderError sentence at submit, not a crash at epoch 7")
    import shutil as shutil_mod

    real = shutil_mod.disk_usage
    monkeypatch.setattr(shutil_mod, "disk_usage", lambda p: real(p)._replace(free=50_000_000))
    monkeypatch.setenv("TL_MIN_FREE_MB", "500")
    with pytest.raises(runs.RunsFolderError, match="only 50 MB free") as e:
        JobManager(1).submit(tiny_cfg(), shapes, tmp_path / "runs")
    case.observe(str(e.value))
    assert not list((tmp_path / "runs").glob("*/run.json"))

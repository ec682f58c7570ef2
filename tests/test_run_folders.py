"""The run-folder checker (tl_core.jobs.run_check, `python -m tl_core runs ROOT --check`) on real run
folders: a finished run, a run stopped after its first epoch and a `train` process killed with
SIGKILL pass it; each kind of damage, done to a copy of one of them, is found in one sentence.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.base.messages import EN, ES
from tl_core.cli.main import main as cli
from tl_core.data.dataset import load_dataset
from tl_core.jobs import runs
from tl_core.jobs.run_check import check_run, check_runs
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


def _finished(root: Path, ds) -> Path:
    cfg = tiny_cfg(strategy="scratch", epochs=2, image_size=32)
    run_dir = runs.create_run(root, cfg, ds.classes, ds.to_dict())
    runs.mark_running(run_dir)
    events = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))
    assert isinstance(events[-1], ev.Finished), events[-1]
    return run_dir


def _stopped_after_epoch_one(root: Path, ds) -> Path:
    cfg = tiny_cfg(strategy="scratch", epochs=20, image_size=32)
    run_dir = runs.create_run(root, cfg, ds.classes, ds.to_dict())
    runs.mark_running(run_dir)
    stop = threading.Event()
    for e in runs.record(run_dir, train(cfg, ds, stop, run_dir)):
        if isinstance(e, ev.EpochEnd):
            stop.set()
    return run_dir


def _killed_after_epoch_one(root: Path, images: Path) -> Path:
    """`python -m tl_core train` killed with SIGKILL once an epoch ended: run.json still says Running."""
    cmd = [sys.executable, "-m", "tl_core", "train", str(images), "--backbone", "test_resnet", "--pretrained",
           "none", "--strategy", "scratch", "--epochs", "200", "--batch-size", "16", "--image-size", "32",
           "--device", "cpu", "--out", str(root)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "TL_NUM_THREADS": "1"}
    before = set(root.iterdir())
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            new = [d for d in root.iterdir() if d not in before and (d / "events.jsonl").is_file()]
            if new and '"type": "EpochEnd"' in (new[0] / "events.jsonl").read_text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the CLI ended, or no epoch ended within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)  # reaped: a zombie still answers kill(pid, 0)
    return new[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory, shapes_dir):
    """{name: run folder} of real runs under one root, with their own copy of the images."""
    base = tmp_path_factory.mktemp("run_folders")
    images = Path(shutil.copytree(shapes_dir, base / "images"))
    ds = load_dataset(images)
    root = base / "runs"
    root.mkdir()
    return {"root": root, "images": images, "finished": _finished(root, ds),
            "stopped": _stopped_after_epoch_one(root, ds), "killed": _killed_after_epoch_one(root, images)}


def test_real_runs_finished_stopped_and_killed_are_whole(made):
    status = {k: runs.read_run(made[k]).status for k in ("finished", "stopped", "killed")}
    assert status == {"finished": "Finished", "stopped": "Stopped", "killed": "Interrupted"}
    assert runs.read_json(made["killed"] / "run.json")["status"] == "Running"  # its process died mid-run
    assert check_runs(made["root"]) == []


def _copy(made, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made[name], tmp_path / "runs" / made[name].name))


def _set(run_dir: Path, **fields) -> None:
    info = runs.read_json(run_dir / "run.json")
    info.update(fields)
    runs.write_json_atomic(run_dir / "run.json", info)


def _cut_events(run_dir: Path, keep) -> None:
    lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_text("".join(line for line in lines if keep(json.loads(line))))


def _half_model(run_dir: Path) -> None:
    data = (run_dir / "model.safetensors").read_bytes()
    (run_dir / "model.safetensors").write_bytes(data[:len(data) // 2])  # a write cut short, as no atomic write leaves


DAMAGES = {  # name: (run it starts from, what is done to a copy, the kind the checker must report)
    "run.json not JSON": ("finished", lambda d: (d / "run.json").write_text('{"status": "Fini'),
                          "check.unreadable_run_json"),
    "run.json with an unknown status": ("finished", lambda d: _set(d, status="Paused"), "check.unreadable_run_json"),
    "Finished without its event": ("finished", lambda d: _cut_events(d, lambda e: e["type"] != "Finished"),
                                   "check.no_end_event"),
    "Stopped in run.json, Finished in events": ("finished", lambda d: _set(d, status="Stopped"),
                                                "check.status_differs"),
    "ended in events, run.json never closed": (
        "killed", lambda d: runs.append_event(d, ev.Finished({}, 1, 1.0)), "check.not_closed"),
    "a damaged line in events.jsonl": ("stopped", lambda d: (d / "events.jsonl").write_text(
        "{garbage\n" + (d / "events.jsonl").read_text()), "check.damaged_event"),
    "temp file of a killed atomic write": ("killed", lambda d: (d / ".run.json.0a1b2c3d.tmp").write_text("{"),
                                           "check.temp_file"),
    "Finished without model.safetensors": ("finished", lambda d: (d / "model.safetensors").unlink(),
                                           "check.missing_file"),
    "best epoch saved, checkpoint gone": ("killed", lambda d: (d / "model.safetensors").unlink(),
                                          "check.missing_file"),
    "model.safetensors cut in half": ("stopped", _half_model, "check.damaged_file"),
    "config.json not JSON": ("finished", lambda d: (d / "config.json").write_text("{"), "check.damaged_file"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_each_damage_is_found_in_one_sentence(made, tmp_path, damage):
    start, do, kind = DAMAGES[damage]
    run_dir = _copy(made, start, tmp_path)
    assert check_runs(tmp_path / "runs") == []  # the copy is whole before the damage
    do(run_dir)
    problems = check_runs(tmp_path / "runs")
    assert [p.kind for p in problems] == [kind], [str(p) for p in problems]
    text = str(problems[0])
    assert run_dir.name in text and text.endswith(".") and "{" not in text


def test_an_images_folder_deleted_without_a_record_is_found_and_a_recorded_one_is_not(made, tmp_path):
    run_dir = _copy(made, "finished", tmp_path)
    images = Path(shutil.copytree(made["images"], tmp_path / "upload"))
    saved = runs.read_json(run_dir / "dataset.json")
    runs.write_json_atomic(run_dir / "dataset.json", {**saved, "root": str(images)})
    assert check_run(run_dir) == []
    shutil.rmtree(images)
    assert [p.kind for p in check_run(run_dir)] == ["check.images_gone"]
    runs.mark_images_removed(run_dir)  # what sessions.prune_uploads does when the hosted caps delete it
    assert check_run(run_dir) == []


def test_a_queued_run_whose_starting_run_is_gone_is_found(made, tmp_path, shapes):
    parent = _copy(made, "finished", tmp_path)
    child = runs.create_run(tmp_path / "runs", tiny_cfg(pretrained=f"run:{parent}"), shapes.classes, shapes.to_dict())
    assert runs.read_run(child).status == "Queued" and check_run(child) == []  # queued by this live process
    (parent / "model.safetensors").unlink()
    assert [p.kind for p in check_run(child)] == ["check.parent_gone"]


def test_cli_check_says_whole_or_lists_each_problem(made, tmp_path, capsys):
    run_dir = _copy(made, "stopped", tmp_path)
    assert cli(["runs", str(tmp_path / "runs"), "--check"]) == 0
    assert capsys.readouterr().out.strip() == f"1 run folder under {tmp_path / 'runs'} checked: no problems."
    (run_dir / "model.safetensors").unlink()
    assert cli(["runs", str(tmp_path / "runs"), "--check"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{run_dir}: model.safetensors is missing, though epoch 1 was saved as the best")
    assert lines[-1] == f"1 problem in 1 run folder under {tmp_path / 'runs'}."


def test_the_checkers_sentences_exist_in_both_languages():
    kinds = [k for k in EN if k.startswith("check.")]
    assert len(kinds) >= 12 and all(ES[k] != EN[k] for k in kinds)

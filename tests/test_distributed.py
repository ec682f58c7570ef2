"""One run on 2 CPU processes (torchrun --standalone, gloo, DDP) against the same run in 1 process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_cfg, wait_for

from tl_core.base import events as ev
from tl_core.jobs import runs
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


def _ddp_cmd(cfg, data: Path, out: Path) -> list:
    return [sys.executable, "-m", "tl_core", "train", str(data), "--devices", "2", "--device", "cpu", "--out", str(out),
            "--backbone", cfg.backbone, "--pretrained", cfg.pretrained, "--strategy", cfg.strategy,
            "--epochs", str(cfg.epochs), "--image-size", str(cfg.image_size), "--batch-size", str(cfg.batch_size),
            "--lr", str(cfg.lr), "--augment", cfg.augment]


def _env(cache: Path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TL_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **extra}


def _cli_ddp(cfg, data: Path, out: Path, cache: Path) -> dict:
    done = subprocess.run(_ddp_cmd(cfg, data, out), env=_env(cache), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"one final line, from rank 0 only: {lines}"
    return json.loads(lines[0])


def _one_process(cfg, shapes, out: Path):
    run_dir = runs.create_run(out, cfg, shapes.classes, shapes.to_dict())
    last = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))[-1]
    assert isinstance(last, ev.Finished), last
    return run_dir, last


def _check_rank0_alone_wrote(out: Path, reference: Path) -> Path:
    folders = [d for d in out.iterdir() if (d / "run.json").is_file()]
    assert len(folders) == 1, "one run folder, made by rank 0"
    run_dir = folders[0]
    assert {p.name for p in run_dir.iterdir()} == {p.name for p in reference.iterdir()}
    events = runs.read_events(run_dir)
    kinds = [type(e).__name__ for e in events]
    epochs = next(e for e in events if isinstance(e, ev.Started)).epochs  # a solved head has 1, not the config's
    assert kinds.count("Started") == 1 and kinds.count("Finished") == 1 and kinds.count("EpochEnd") == epochs, \
        "each event written once"
    assert any("2 processes" in e.message for e in runs.read_events(run_dir) if isinstance(e, ev.Note))
    return run_dir


def test_ddp_two_cpu_processes_match_one(shapes, shapes_dir, tmp_path):
    # fine-tuning: each rank takes half of every batch; DDP averages gradients. Not bit-equal to one
    # process (a different shuffle; BatchNorm statistics per rank's half-batch), so within tolerance
    cfg = tiny_cfg(strategy="scratch", epochs=4, lr=3e-3, augment="none", device="cpu")
    ref_dir, ref = _one_process(cfg, shapes, tmp_path / "one")
    result = _cli_ddp(cfg, shapes_dir, tmp_path / "two", tmp_path / "cache-two")
    assert result["status"] == "Finished"
    assert abs(result["val/loss"] - ref.metrics["val/loss"]) < 0.15, (result, ref.metrics)
    assert abs(result["val/acc"] - ref.metrics["val/acc"]) <= 0.25, (result, ref.metrics)
    run_dir = _check_rank0_alone_wrote(tmp_path / "two", ref_dir)
    epochs = [e for e in runs.read_events(run_dir) if isinstance(e, ev.EpochEnd)]
    assert epochs[-1].metrics["train/acc"] > 0.6, "both ranks' halves were learned (metrics summed over ranks)"


def test_ddp_cpu_ranks_train_as_rank_0_decided(shapes_dir, tmp_path, monkeypatch):
    # rank 0 reads (or times) the training step and every rank trains as it decided; here a timing
    # stored on this machine says bf16 and channels_last pay, so two ranks train in bf16 as one
    # process would (before, several CPU ranks always trained in fp32, default layout)
    from tl_core.training import precision

    cfg = tiny_cfg(strategy="full", epochs=1, augment="none", device="cpu")
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    precision._store(cfg, cfg.image_size, {"fp32": 2.0, "fp32_cl": 1.0, "bf16_cl": 0.5, "fp32_layers": []})
    result = _cli_ddp(cfg, shapes_dir, tmp_path / "two", tmp_path / "cache")
    assert result["status"] == "Finished"
    run_dir = next(d for d in (tmp_path / "two").iterdir() if (d / "run.json").is_file())
    notes = {e.kind for e in runs.read_events(run_dir) if isinstance(e, ev.Note)}
    assert "precision.bf16_measured" in notes, notes


def test_ddp_feature_extraction_shards_the_embedding_pass(shapes, shapes_dir, tmp_path, monkeypatch):
    # the embedding pass is split between the ranks and gathered: the same features, so the same head
    cfg = tiny_cfg(strategy="feature_extraction", epochs=5, augment="none", device="cpu")
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "cache-one"))
    ref_dir, ref = _one_process(cfg, shapes, tmp_path / "one")
    result = _cli_ddp(cfg, shapes_dir, tmp_path / "two", tmp_path / "cache-two")
    assert abs(result["val/loss"] - ref.metrics["val/loss"]) < 1e-4 and result["val/acc"] == ref.metrics["val/acc"]
    _check_rank0_alone_wrote(tmp_path / "two", ref_dir)
    from tl_core.training.feature_cache import FeatureStore

    sha1s = [it.sha1 for it in shapes.train + shapes.val]
    one, two = ({k: v for k, (v, _) in FeatureStore(tmp_path / c / "features" / "features.sqlite")
                 .get(key, ["torch", "onnx"], sha1s).items()} for c in ("cache-one", "cache-two")
                for key in [_only_model_key(tmp_path / c)])
    assert one.keys() == two.keys() and len(one) == len(set(sha1s))  # rank 0 stored what both ranks computed
    assert max(abs(one[k] - two[k]).max() for k in one) < 1e-4


def _only_model_key(cache: Path) -> str:
    import sqlite3

    db = sqlite3.connect(cache / "features" / "features.sqlite")
    try:
        (key,), = db.execute("SELECT DISTINCT model FROM features").fetchall()
    finally:
        db.close()
    return key


# ------------------------------------------------------------------ a rank that dies or goes silent


@pytest.mark.parametrize("text, says", [
    ("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Timed out waiting 10000ms for recv operation to complete",
     "did not answer for 10 s"),
    ("Application timeout caused pair closure", "did not answer for 10 s"),  # gloo, without its name
    ("[../third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:40211: Connection reset by peer",
     "went away (Read error [127.0.0.1]:40211: Connection reset by peer)"),
    ("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x3)", None),  # the run's own error: not a peer's
])
def test_the_errors_of_a_peer_rank_get_their_sentence(tmp_path, monkeypatch, text, says):
    import torch.distributed as dist

    from tl_core.base.messages import render
    from tl_core.training import distributed

    monkeypatch.setenv("TL_DDP_TIMEOUT_S", "10")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        said = distributed.peer_failure(RuntimeError(text))
    finally:
        dist.destroy_process_group()
    assert (said is None) if says is None else (says in render(said)), said




def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while we looked
    return found


def _training_ranks(out: Path) -> tuple[Path, int, int]:
    """(run folder, rank 0's pid, rank 1's pid) once the run trained an epoch."""
    run_dir = wait_for(lambda: next((d for d in out.glob("*") if (d / "run.json").is_file()), None), 240, "the run")
    wait_for(lambda: any(isinstance(e, ev.EpochEnd) for e in runs.read_events(run_dir)), 240, "the first epoch")
    rank0 = int(runs.read_json(run_dir / "run.json")["pid"])
    rank1, = [p for p in _children_of(_parent_of(rank0)) if p != rank0]  # torchrun's other child
    return run_dir, rank0, rank1


def _ended(run_dir: Path) -> bool:
    return runs.read_json(run_dir / "run.json")["status"] != "Running"


def _check_ended_failed(run_dir: Path, says: str) -> str:
    info = runs.read_json(run_dir / "run.json")
    events = runs.read_events(run_dir)
    assert info["status"] == "Failed" and says in info["error"], info.get("error")
    assert isinstance(events[-1], ev.Failed) and events[-1].message == info["error"], "run.json and events agree"
    assert sum(isinstance(e, ev.TERMINAL) for e in events) == 1, "one end"
    assert (run_dir / "model.safetensors").is_file(), "the best checkpoint is kept"
    return info["error"]


def _run_and_break(cfg, shapes_dir, tmp_path, fault: signal.Signals, victim: int = 1, **env):
    proc = subprocess.Popen(_ddp_cmd(cfg, shapes_dir, tmp_path / "two"), env=_env(tmp_path / "cache", **env),
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_dir, *ranks = _training_ranks(tmp_path / "two")
        os.kill(ranks[victim], fault)
        t0 = time.monotonic()
        wait_for(lambda: _ended(run_dir), 120, "the run to end")
        print(f"\n{fault.name} of rank {victim} -> run ended: {time.monotonic() - t0:.2f} s")
        if fault == signal.SIGSTOP:  # torchrun would SIGKILL it after its 30 s grace: spare the test that wait
            os.kill(ranks[victim], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return run_dir, proc.returncode, out


@pytest.mark.parametrize("victim", [1, 0], ids=["rank1-rank0-says-so", "rank0-the-launcher-says-so"])
def test_a_killed_rank_ends_the_run_failed_with_one_sentence(shapes_dir, tmp_path, victim):
    cfg = tiny_cfg(strategy="scratch", epochs=500, augment="none", device="cpu")
    run_dir, code, out = _run_and_break(cfg, shapes_dir, tmp_path, signal.SIGKILL, victim)
    error = _check_ended_failed(run_dir, "A training process died")
    final = json.loads(out.strip().splitlines()[-1])
    assert code != 0 and final["status"] == "Failed" and final["message"] == error


def test_a_silent_rank_fails_the_run_after_TL_DDP_TIMEOUT_S(shapes_dir, tmp_path):
    # a rank alive but stopped (a frozen machine, a stuck driver) closes nothing: only the timeout ends it.
    # 10 s: above the two ranks' start-up skew on a loaded 2-core machine, so only the fault can trip it
    cfg = tiny_cfg(strategy="scratch", epochs=500, augment="none", device="cpu")
    run_dir, code, out = _run_and_break(cfg, shapes_dir, tmp_path, signal.SIGSTOP, TL_DDP_TIMEOUT_S="10")
    error = _check_ended_failed(run_dir, "did not answer for 10 s (TL_DDP_TIMEOUT_S)")
    assert code != 0 and json.loads(out.strip().splitlines()[-1])["message"] == error

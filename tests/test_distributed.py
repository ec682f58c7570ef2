"""One run on 2 CPU processes (torchrun --standalone, gloo, DDP) against the same run in 1 process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.jobs import runs
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


def _cli_ddp(cfg, data: Path, out: Path, cache: Path) -> dict:
    cmd = [sys.executable, "-m", "tl_core", "train", str(data), "--devices", "2", "--device", "cpu", "--out", str(out),
           "--backbone", cfg.backbone, "--pretrained", cfg.pretrained, "--strategy", cfg.strategy,
           "--epochs", str(cfg.epochs), "--image-size", str(cfg.image_size), "--batch-size", str(cfg.batch_size),
           "--lr", str(cfg.lr), "--augment", cfg.augment]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
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

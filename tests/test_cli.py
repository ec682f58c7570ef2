"""End to end through the CLI, as a user runs it: real processes, real files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tl_core", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=check, timeout=300)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


TINY = ["--backbone", "test_resnet", "--image-size", "48", "--batch-size", "16"]


@pytest.fixture(scope="module")
def scratch_run(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_runs")
    r = cli("train", shapes_dir, *TINY, "--strategy", "scratch", "--pretrained", "none", "--epochs", "5",
            "--lr", "3e-3", "--out", out)
    result = last_json(r.stdout)
    assert "epoch 1:" in r.stderr and "val loss" in r.stderr  # per-epoch progress is shown
    # stderr is a pipe here, not a terminal: one line per epoch, no progress-bar redraws or step rates
    epoch_lines = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 5 and "step/s" not in r.stderr and "\r" not in r.stderr, r.stderr[-2000:]
    return result, out


def test_scratch_learns_from_nothing(scratch_run):
    result, _ = scratch_run
    assert result["status"] == "Finished"
    assert result["val/acc"] >= 0.6  # chance is 1/3
    assert set(result) >= {"run_dir", "val/acc", "val/loss", "train_seconds"}


@pytest.mark.parametrize("strategy", ["feature_extraction", "partial", "full"])
def test_transfer_strategies_from_a_previous_run(scratch_run, shapes_dir, strategy):
    result, out = scratch_run
    r = cli("train", shapes_dir, *TINY, "--strategy", strategy, "--pretrained", f"run:{result['run_dir']}",
            "--epochs", "3", "--lr", "1e-2", "--out", out)
    final = last_json(r.stdout)
    assert final["status"] == "Finished" and final["val/acc"] >= 0.6
    info = json.loads((Path(final["run_dir"]) / "run.json").read_text())
    assert info["parent"] == result["run_dir"] and info["status"] == "Finished"


def test_predict_prints_one_json_line_per_image(scratch_run, shapes_dir):
    result, _ = scratch_run
    images = sorted(shapes_dir.glob("*/*.jpg"))[:3]
    r = cli("predict", result["run_dir"], *images)
    lines = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    assert all(len(line["top_k"]) == 3 and line["top_k"][0][1] >= line["top_k"][1][1] for line in lines)


def test_export_onnx_prints_the_parity(scratch_run, tmp_path):
    result, _ = scratch_run
    r = cli("export", result["run_dir"], "--format", "onnx", "--out", tmp_path)
    final = last_json(r.stdout)
    assert Path(final["path"]).is_file() and final["max_abs_diff"] < 1e-4
    assert "max abs difference" in r.stderr


def test_runs_lists_the_runs(scratch_run):
    _, out = scratch_run
    lines = [json.loads(x) for x in cli("runs", out).stdout.splitlines()]
    assert lines and all(line["status"] == "Finished" for line in lines)


def test_bad_data_is_one_sentence_not_a_traceback(tmp_path):
    (tmp_path / "only").mkdir()
    r = cli("train", tmp_path, "--pretrained", "none", "--out", tmp_path / "runs", check=False)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr

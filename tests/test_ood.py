"""'None of these': a real trained run on generated shapes answers it for a kind of image it never saw."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_core.base.config import RunConfig
from tl_core.data.dataset import load_dataset
from tl_core.data.synthetic import draw_shape, make_shapes_dataset
from tl_core.jobs import runs
from tl_core.serving.predict import NONE_OF_THESE, Predictor
from tl_core.training.train import train
from tl_core.trust import ood

ROOT = Path(__file__).resolve().parent.parent


SIZE = 64


def _write(root: Path, shape: str, n: int, seed: int) -> list[str]:
    """JPEGs like the training images (the same quality: PNGs of the same shapes sit further away)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = root / f"{shape}_{seed}_{i}.jpg"
        draw_shape(shape, SIZE, rng, colour_coded=True).save(p, quality=92)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    """The app's default run (EfficientNet-Lite0 with its packaged ImageNet weights, feature
    extraction) on circles, squares and triangles; its bank is built as the run finishes."""
    data = make_shapes_dataset(tmp_path_factory.mktemp("ood") / "shapes", per_class=60, size=SIZE,
                               colour_coded=True, fmt="jpg")
    ds = load_dataset(data)
    cfg = RunConfig(image_size=SIZE, epochs=3, device="cpu")
    run_dir = runs.create_run(tmp_path_factory.mktemp("runs"), cfg, ds.classes, ds.to_dict())
    events = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))
    assert type(events[-1]).__name__ == "Finished", events[-1]
    assert any(getattr(e, "kind", "") == "ood.built" for e in events)
    return run_dir


def test_knn_score_is_the_distance_to_the_kth_nearest_unit_feature():
    bank = ood.unit_rows(np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], np.float32))
    # (2, 0) points like bank row 0 (distance 0), then row 2 (45 degrees), then row 1 (90 degrees)
    got = ood.knn_scores(bank, np.array([[2.0, 0.0]]), k=2)
    assert got[0] == pytest.approx(np.sqrt(2 - 2 * np.cos(np.pi / 4)), abs=1e-6)
    assert ood.knn_scores(bank, np.array([[2.0, 0.0]]), k=1)[0] == pytest.approx(0.0, abs=1e-6)
    assert ood.knn_scores(bank, np.array([[0.0, -3.0]]), k=1)[0] == pytest.approx(np.sqrt(2), abs=1e-6)


def test_threshold_keeps_the_asked_share_of_in_domain_scores():
    scores = np.arange(100, dtype=float)
    t = ood.threshold_for(scores, 0.95)
    assert (scores <= t).mean() == 0.95 and t not in scores
    assert (np.arange(37) <= ood.threshold_for(np.arange(37))).mean() >= 0.95
    assert ood.auroc([0, 1, 2], [3, 4]) == 1.0 and ood.auroc([3, 4], [0, 1]) == 0.0


def test_a_held_out_kind_is_none_of_these_and_new_in_domain_images_keep_their_answers(feature_run, tmp_path):
    detector = ood.load(feature_run)
    assert detector is not None and (feature_run / ood.BANK_FILE).exists()
    assert ood.load_bank(feature_run).dtype == np.float16
    pred = Predictor(feature_run, engine="torch")  # the engine probe is tested elsewhere
    stars = _write(tmp_path / "stars", "star", 20, seed=7)  # a shape the run never saw
    fresh = [p for shape in ("circle", "square", "triangle") for p in _write(tmp_path / shape, shape, 15, seed=8)]
    away = pred.answers(stars)
    home = pred.answers(fresh)  # images the bank and the threshold never saw
    assert sum(a["answer"] == NONE_OF_THESE for a in away) >= 0.9 * len(away), [a["ood_score"] for a in away]
    assert sum(a["in_domain"] for a in home) >= 0.9 * len(home), [a["ood_score"] for a in home]


def test_cli_predict_json_says_none_of_these_with_its_score(feature_run, tmp_path):
    star = _write(tmp_path, "star", 1, seed=9)[0]
    out = subprocess.run([sys.executable, "-m", "tl_core", "predict", str(feature_run), star,
                          "--ood-threshold", "0", "--engine", "torch"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["answer"] == NONE_OF_THESE and line["ood_score"] > 0 and line["ood_threshold"] == 0


def test_onnx_predict_py_gives_the_runs_none_of_these_decisions(feature_run, tmp_path):
    from tl_core.serving.export import export_run

    images = _write(tmp_path / "stars", "star", 10, seed=11) + [
        p for shape in ("circle", "square", "triangle") for p in _write(tmp_path / shape, shape, 4, seed=12)][:10]
    result = export_run(feature_run, "onnx", tmp_path / "export")
    assert result.ood_agreement == 1.0  # on every validation image, as the parity check runs it
    folder = Path(result.folder)
    assert (folder / ood.BANK_FILE).exists()
    out = subprocess.run([sys.executable, "predict.py", *images], cwd=folder, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    app = Predictor(feature_run, engine="torch").answers(images)
    assert [line["answer"] == NONE_OF_THESE for line in lines] == [a["answer"] == NONE_OF_THESE for a in app]
    assert sum(line["answer"] == NONE_OF_THESE for line in lines) >= 9  # the stars, at least
    assert max(abs(line["ood_score"] - a["ood_score"]) for line, a in zip(lines, app)) < 1e-4


def test_curve_cli_ends_with_one_json_line_and_says_its_reading(feature_run):
    out = subprocess.run([sys.executable, "-m", "tl_core", "curve", str(feature_run)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["n"]) == 5 and result["n"][-1] == len(runs_dataset_train(feature_run))
    assert result["reading"]["kind"] in ("curve.rising", "curve.flat", "curve.too_wide")
    assert result["reading_en"] in out.stderr and len(result["per_class"]) == 3
    assert (feature_run / "curve.json").exists()


def runs_dataset_train(run_dir: Path) -> list:
    from tl_core.trust.embeddings import run_dataset

    return run_dataset(run_dir).train


def test_none_of_these_in_spanish(feature_run):
    from tl_core.base.messages import Message

    detector = ood.load(feature_run)
    es = Message("ood.built", {"n": detector.n_bank, "threshold": detector.threshold, "keep": 0.95}).render("es")
    assert "ninguna de estas" in es and str(detector.n_bank) in es
    assert "none" not in es.lower()

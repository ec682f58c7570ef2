import json
import subprocess
import sys

import numpy as np
import pytest

from tl_core.export import export_run, inference_snippet, zip_folder
from tl_core.predict import Predictor
from tl_core import metrics, runs
from tl_core.train import train

from conftest import tiny_cfg


@pytest.fixture(scope="module")
def vit_run(shapes, tmp_path_factory):
    cfg = tiny_cfg(backbone="test_vit", strategy="scratch", epochs=1, image_size=64)
    run_dir = runs.create_run(tmp_path_factory.mktemp("vit"), cfg, shapes.classes)
    assert type(list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))[-1]).__name__ == "Finished"
    return run_dir


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_export_parity(pretrained_run, tmp_path, fmt):
    result = export_run(pretrained_run, fmt, tmp_path)
    assert result.max_abs_diff < 1e-4
    if fmt == "safetensors":
        names = {p.name for p in (tmp_path / f"{pretrained_run.name}-safetensors").iterdir()}
        assert {"model.safetensors", "config.json", "preprocess.json", "labels.txt", "predict.py"} <= names
        assert zip_folder(result.path)[:2] == b"PK"


def test_onnx_export_of_a_vit_at_another_image_size(vit_run, tmp_path):
    assert export_run(vit_run, "onnx", tmp_path).max_abs_diff < 1e-4
    assert export_run(vit_run, "safetensors", tmp_path).max_abs_diff < 1e-4


def test_inference_snippet_reproduces_the_predictor(pretrained_run, shapes, tmp_path):
    export_run(pretrained_run, "onnx", tmp_path)
    (tmp_path / "predict.py").write_text(inference_snippet(pretrained_run))
    image = shapes.val[0].path
    out = subprocess.run([sys.executable, "predict.py", image], cwd=tmp_path, capture_output=True, text=True, check=True)
    expected = Predictor(pretrained_run).top_k([image], 3)[0]
    assert str([(c, round(p, 4)) for c, p in expected]) in out.stdout


def test_top_k_is_sorted_and_sums_to_one(pretrained_run, shapes):
    pred = Predictor(pretrained_run)
    paths = [it.path for it in shapes.val[:4]]
    for ranking in pred.top_k(paths, k=5):
        probs = [p for _, p in ranking]
        assert len(ranking) == 3 and probs == sorted(probs, reverse=True)
        assert abs(sum(probs) - 1) < 1e-4
    assert pred.top_k([open(paths[0], "rb").read()])[0] == pred.top_k([paths[0]])[0]  # bytes == path


def test_trained_model_is_right_on_validation(pretrained_run, shapes):
    pred = Predictor(pretrained_run)
    rankings = pred.top_k([it.path for it in shapes.val])
    right = sum(r[0][0] == shapes.classes[it.label] for r, it in zip(rankings, shapes.val))
    assert right / len(shapes.val) >= 0.9


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_gradcam_for_cnn_and_vit(pretrained_run, vit_run, shapes, which):
    pred = Predictor(pretrained_run if which == "cnn" else vit_run)
    cam = pred.cam(shapes.val[0].path)
    assert cam.ndim == 2 and cam.max() == pytest.approx(1.0) and cam.min() >= 0
    overlay = pred.gradcam(shapes.val[0].path)
    assert overlay.size == (pred.pp.input_size, pred.pp.input_size)


def test_evaluation_from_saved_predictions(pretrained_run, shapes):
    ev = metrics.evaluation(pretrained_run)
    assert ev.classes == shapes.classes
    assert sum(map(sum, ev.confusion)) == len(shapes.val)
    diag = sum(ev.confusion[i][i] for i in range(3))
    assert ev.accuracy == pytest.approx(diag / len(shapes.val))
    assert len(ev.misclassified) == len(shapes.val) - diag
    assert all(0 <= row["f1"] <= 1 for row in ev.per_class)
    info = json.loads((pretrained_run / "run.json").read_text())
    assert info["metrics"]["val/acc"] == pytest.approx(ev.accuracy, abs=1e-6)

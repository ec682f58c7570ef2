import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_cfg

from tl_core.jobs import runs
from tl_core.serving.export import export_run
from tl_core.serving.predict import Predictor
from tl_core.training.train import train
from tl_core.trust import metrics


@pytest.fixture(scope="module")
def vit_run(shapes, tmp_path_factory):
    cfg = tiny_cfg(backbone="test_vit", strategy="scratch", epochs=1, image_size=64)
    run_dir = runs.create_run(tmp_path_factory.mktemp("vit"), cfg, shapes.classes)
    assert type(list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))[-1]).__name__ == "Finished"
    return run_dir


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_export_parity(pretrained_run, tmp_path, fmt):
    result = export_run(pretrained_run, fmt, tmp_path)
    assert result.max_abs_diff < 1e-4 and result.agreement == 1.0 and result.n_images > 0
    names = {p.name for p in Path(result.folder).iterdir()}
    model = {"onnx": {"model.onnx"}, "safetensors": {"model.safetensors", "config.json"}}[fmt]
    assert model | {"preprocess.json", "labels.txt", "calibration.json", "predict.py", "parity.json"} <= names
    assert Path(result.path).read_bytes()[:2] == b"PK"


def test_two_onnx_exports_at_once_in_one_process_both_succeed(pretrained_run, tmp_path):
    """Two hosted sessions clicking Export in the same second: two task threads of one web server
    (torch.export fails when two exports run at once in one process)."""
    import threading

    results, errors = {}, []

    def one(name):
        try:
            results[name] = export_run(pretrained_run, "onnx", tmp_path / name)
        except Exception as e:  # noqa: BLE001  (the test reports it below)
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(name,)) for name in ("a", "b", "c")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not errors, errors[0][:300]
    assert sorted(results) == ["a", "b", "c"] and all(r.agreement == 1.0 for r in results.values())


def test_onnx_export_of_a_vit_at_another_image_size(vit_run, tmp_path):
    assert export_run(vit_run, "onnx", tmp_path).max_abs_diff < 1e-4
    assert export_run(vit_run, "safetensors", tmp_path).max_abs_diff < 1e-4


def test_safetensors_predict_py_reproduces_the_predictor(pretrained_run, shapes, tmp_path):
    result = export_run(pretrained_run, "safetensors", tmp_path)
    image = shapes.val[0].path
    out = subprocess.run([sys.executable, "predict.py", image], cwd=result.folder, capture_output=True, text=True,
                         check=True)
    expected = Predictor(pretrained_run).answers([image], 3)[0]
    got = json.loads(out.stdout)
    assert [c for c, _ in got["top_k"]] == [c for c, _ in expected["top_k"]]
    assert got["top_k"][0][1] == pytest.approx(expected["top_k"][0][1], abs=1e-3)


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
    assert cam.ndim == 2 and cam.max() == pytest.approx(1.0) and cam.std() > 0  # a map, not a flat field
    # Grad-CAM weighs the activations by the asked class's gradient: each class gets its own map
    maps = [pred.cam(shapes.val[0].path, class_index=k) for k in range(len(shapes.classes))]
    assert all(not np.allclose(maps[0], m) for m in maps[1:])
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

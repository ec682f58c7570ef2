"""One decode for training, the Predict page and the CLI: the page and `python -m tl_core predict`
give identical probabilities for the same JPEG (a large one: JPEG draft decoding is what differed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from streamlit.testing.v1 import AppTest

from conftest import tiny_cfg
from tl_core.jobs import runs
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_root(shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(strategy="scratch", epochs=1)
    run_dir = runs.create_run(root, cfg, shapes.classes, shapes.to_dict())
    assert type(list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))[-1]).__name__ == "Finished"
    return root, run_dir


def big_jpeg(path: Path) -> Path:
    """A 640x480 photo-like JPEG: 10x the run's short side, so Pillow's draft decode (1/8 scale) applies."""
    rng = np.random.default_rng(3)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
    noise = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))
    Image.blend(small, noise, 0.4).save(path, quality=90)
    return path


def test_the_predict_page_and_the_cli_give_identical_probabilities(run_root, tmp_path, monkeypatch):
    root, run_dir = run_root
    photo = big_jpeg(tmp_path / "photo.jpg")
    cli = subprocess.run([sys.executable, "-m", "tl_core", "predict", str(run_dir), str(photo), "--engine", "torch"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    expected = dict(json.loads(cli.stdout.strip().splitlines()[-1])["top_k"])

    monkeypatch.setenv("TL_RUNS", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/predict.py").run()
    at.toggle(key="pr_gradcam").set_value(False).run()
    at.file_uploader(key="pr_files").set_value([("photo.jpg", photo.read_bytes(), "image/jpeg")]).run()
    assert not at.exception, at.exception
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    shown = dict(zip(chart["y"], chart["x"]))  # horizontal bars: classes on y, probabilities on x
    assert shown.keys() == expected.keys()
    assert max(abs(shown[c] - expected[c]) for c in expected) < 1e-5, (shown, expected)  # PyTorch vs ONNX Runtime: ~1e-6


def test_evaluate_try_it_scores_photos_from_outside(run_root, tmp_path, monkeypatch):
    root, run_dir = run_root
    photo = big_jpeg(tmp_path / "outside.jpg").read_bytes()
    monkeypatch.setenv("TL_RUNS", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    at.file_uploader(key="ev_ood_files").set_value([("outside.jpg", photo, "image/jpeg")]).run()
    assert not at.exception, at.exception
    said = "\n".join(str(m.value) for m in at.markdown)
    assert "of 1 of your photos are answered \"none of these\"" in said, said
    assert any(json.loads(c.proto.spec)["data"][0]["type"] == "histogram" for c in at.get("plotly_chart"))

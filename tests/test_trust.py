"""Issue 11: data audit, label errors, calibration and "not sure", embeddings, runnable exports."""
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_cfg
from PIL import Image, ImageFilter

from tl_core.data import audit
from tl_core.data.dataset import load_dataset
from tl_core.jobs import runs
from tl_core.serving.export import export_run
from tl_core.serving.predict import Predictor
from tl_core.training.train import train
from tl_core.trust import calibration

ROOT = Path(__file__).resolve().parent.parent


def photo_like(seed: int, size=(256, 192)) -> Image.Image:
    """A smooth random colour field: photo-like low frequencies, different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    detail = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return Image.blend(img, detail.filter(ImageFilter.GaussianBlur(2)), 0.25)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def leaky_dir(tmp_path_factory) -> Path:
    """train/ and val/ of two classes of distinct images; val holds three altered train copies."""
    root = tmp_path_factory.mktemp("leaky")
    for split, start in (("train", 0), ("val", 100)):
        for c, cls in enumerate(("a", "b")):
            (root / split / cls).mkdir(parents=True)
            for i in range(10):
                photo_like(start + 20 * c + i).save(root / split / cls / f"{i}.jpg", quality=90)
    src = [Image.open(root / "train" / "a" / f"{i}.jpg") for i in range(3)]
    src[0].resize((128, 96), Image.BICUBIC).save(root / "val" / "a" / "resized.png")
    _jpeg(src[1], 40).save(root / "val" / "a" / "reencoded.jpg", quality=35)
    src[2].crop((3, 3, 253, 189)).save(root / "val" / "a" / "cropped.jpg", quality=90)
    shutil.copy(root / "train" / "b" / "5.jpg", root / "train" / "a" / "copy_of_b5.jpg")  # conflicting labels
    return root


def test_near_duplicates_across_train_and_val_are_found_distinct_images_are_not(leaky_dir):
    ds = load_dataset(leaky_dir)
    report = audit.audit(ds)
    found = {(Path(p.a).relative_to(leaky_dir).as_posix(), Path(p.b).relative_to(leaky_dir).as_posix()):
             (p.kind, p.where) for p in report.pairs}
    assert found == {
        ("train/a/0.jpg", "val/a/resized.png"): ("near", "train-val"),
        ("train/a/1.jpg", "val/a/reencoded.jpg"): ("near", "train-val"),
        ("train/a/2.jpg", "val/a/cropped.jpg"): ("near", "train-val"),
        ("train/a/copy_of_b5.jpg", "train/b/5.jpg"): ("exact", "classes"),
    }
    assert report.counts["a"] == {"train": 11, "val": 13}


def test_fixes_change_the_split_never_the_files(leaky_dir):
    ds = load_dataset(leaky_dir)
    before = sorted(p.name for p in leaky_dir.rglob("*.*"))
    leak = next(p for p in audit.audit(ds).pairs if p.where == "train-val")
    moved = audit.move_to_train(ds, leak.b)
    assert leak.b in [it.path for it in moved.train] and leak.b not in [it.path for it in moved.val]
    assert not [p for p in audit.audit(moved).pairs if p.where == "train-val" and leak.b in (p.a, p.b)]
    dropped = audit.drop(ds, leak.b, "duplicate")
    assert len(dropped.train) + len(dropped.val) == len(ds.train) + len(ds.val) - 1
    assert dropped.report.skipped[-1].reason == "duplicate"
    assert sorted(p.name for p in leaky_dir.rglob("*.*")) == before and Path(leak.b).exists()


def test_audit_cli_ends_with_one_json_line(leaky_dir):
    r = subprocess.run([sys.executable, "-m", "tl_core", "audit", str(leaky_dir)], cwd=ROOT, capture_output=True,
                       text=True, check=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {p["where"] for p in out["pairs"]} == {"train-val", "classes"}
    assert {"kind", "where", "a", "b", "similarity"} <= set(out["pairs"][0])
    assert out["counts"]["b"] == {"train": 10, "val": 10}


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_head():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (3000, 4))
    p = calibration.softmax(true_logits)
    labels = np.array([rng.choice(4, p=row) for row in p])
    overconfident = 4.0 * true_logits  # what an overfit head does
    cal = calibration.calibrate(overconfident, labels)
    assert cal.temperature == pytest.approx(4.0, rel=0.15)
    assert cal.ece_before > 0.1 and cal.ece_after < cal.ece_before / 3
    assert (cal.probabilities(overconfident).argmax(1) == overconfident.argmax(1)).all()  # same answers


@pytest.fixture(scope="module")
def feature_run(shapes, pretrained_run, tmp_path_factory):
    """Feature extraction on the shapes from the 'pretrained' run: the app's default kind of run."""
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=15, lr=5e-2)
    run_dir = runs.create_run(tmp_path_factory.mktemp("runs"), cfg, shapes.classes, shapes.to_dict())
    assert type(list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))[-1]).__name__ == "Finished"
    return run_dir


def test_a_noise_image_gets_not_sure(feature_run, shapes, tmp_path):
    pred = Predictor(feature_run)
    cal = pred.calibration()
    assert (feature_run / "calibration.json").exists() and cal.threshold > 1 / len(shapes.classes)
    paths = []
    for seed in range(3):
        noise = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / f"noise{seed}.png")
        paths.append(str(tmp_path / f"noise{seed}.png"))
    answers = pred.answers(paths + [it.path for it in shapes.val])
    assert not any(a["sure"] for a in answers[:3])
    assert sum(a["sure"] for a in answers[3:]) >= 0.75 * len(shapes.val)  # its own kind of image: answered


def test_calibration_is_unchanged_by_an_error_free_validation_split():
    # all right, all confident: no evidence to sharpen further (the prior keeps T near 1)
    logits = np.array([[8.0, 0, 0], [0, 9.0, 0], [0, 0, 7.0]] * 4)
    assert 0.5 < calibration.fit_temperature(logits, np.array([0, 1, 2] * 4)) <= 1.0


@pytest.fixture(scope="module")
def flipped_run(shapes_dir, pretrained_run, tmp_path_factory):
    """Feature extraction on the shapes with one circle planted in the square folder."""
    root = tmp_path_factory.mktemp("flipped") / "shapes"
    shutil.copytree(shapes_dir, root)
    planted = root / "square" / "planted_circle.jpg"
    shutil.move(root / "circle" / "circle_0003.jpg", planted)
    ds = load_dataset(root)
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=15, lr=5e-2)
    run_dir = runs.create_run(tmp_path_factory.mktemp("runs"), cfg, ds.classes, ds.to_dict())
    assert type(list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))[-1]).__name__ == "Finished"
    return run_dir, planted


def test_a_planted_label_flip_is_among_the_label_issues(flipped_run):
    from tl_core.trust.label_issues import label_issues

    run_dir, planted = flipped_run
    result = label_issues(run_dir)
    flagged = {Path(i["path"]).name: i for i in result["issues"]}
    assert planted.name in flagged and flagged[planted.name]["suggested"] == "circle"
    assert len(result["issues"]) <= 5  # a handful to look at, not the whole dataset


def test_sklearn_snippet_on_the_exported_embeddings_reproduces_the_head(flipped_run, tmp_path):
    pytest.importorskip("sklearn")
    from tl_core.trust.embeddings import export_embeddings

    run_dir, _ = flipped_run
    out = export_embeddings(run_dir, tmp_path)
    header = Path(out["csv"]).read_text().splitlines()[0].split(",")
    assert header[:4] == ["file", "split", "label", "f0"]
    r = subprocess.run([sys.executable, "sklearn_check.py"], cwd=tmp_path, capture_output=True, text=True,
                       check=True, timeout=300)
    acc = float(r.stdout.split("val acc ")[1].split()[0])
    assert abs(acc - out["head_val_acc"]) <= 0.01, r.stdout
    assert "5-NN" in r.stdout


def test_the_unpacked_onnx_zip_runs_without_tl_core_and_matches_the_app(pretrained_run, shapes, tmp_path):
    result = export_run(pretrained_run, "onnx", tmp_path / "export")
    assert Path(result.path).name == f"{pretrained_run.name}-onnx.zip"
    unpacked = tmp_path / "user"
    with zipfile.ZipFile(result.path) as zf:
        zf.extractall(unpacked)
    folder = unpacked / f"{pretrained_run.name}-onnx"
    assert {"model.onnx", "labels.txt", "preprocess.json", "calibration.json", "predict.py",
            "parity.json"} <= {p.name for p in folder.iterdir()}
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["n_images"] == len(shapes.val) and parity["top1_agreement"] == 1.0
    assert parity["max_abs_prob_diff"] < 1e-4
    images = [it.path for it in shapes.val[:5]]
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    # -I: no PYTHONPATH, no user site, no current folder: tl_core cannot be imported
    cmd = [sys.executable, "-I", str(folder / "predict.py"), *images]
    r = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, check=True, timeout=300)
    no_lib = subprocess.run([sys.executable, "-I", "-c", "import tl_core"], cwd=elsewhere, capture_output=True)
    assert no_lib.returncode != 0
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    app = Predictor(pretrained_run).answers(images, k=3)
    for line, expected in zip(lines, app, strict=True):
        assert line["answer"] == (expected["top_k"][0][0] if expected["sure"] else "not sure")
        for (c1, p1), (c2, p2) in zip(line["top_k"], expected["top_k"]):
            assert c1 == c2 and p1 == pytest.approx(p2, abs=1e-3)


def test_class_weights_are_on_for_imbalanced_data(shapes):
    from dataclasses import replace

    from tl_core.training.balance import class_weights_for as _class_weights

    lopsided = replace(shapes, train=[it for it in shapes.train if it.label != 0 or it.path.endswith("0.jpg")])
    assert _class_weights(tiny_cfg(), shapes) is None  # balanced: plain loss
    weights = _class_weights(tiny_cfg(), lopsided)
    assert weights[0] > 3 * weights[1]
    assert _class_weights(tiny_cfg(class_weights="off"), lopsided) is None

"""Export a run: a safetensors folder (timm-loadable) or ONNX, each verified against the torch model."""
from __future__ import annotations

import importlib.util
import io
import json
import secrets
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from tl_core.base.atomic import read_json, write_bytes_atomic, write_text_atomic
from tl_core.base.messages import ExportError  # noqa: F401  (public here too: tl_core.serving.export.ExportError)
from tl_core.models.checkpoint import load_model
from tl_core.serving.predict import Predictor
from tl_core.trust.calibration import load as load_calibration


@dataclass(frozen=True)
class ExportResult:
    path: str  # the zip: one download per format, runs as unpacked
    max_abs_diff: float  # max |p_export - p_app| over every validation image (calibrated probabilities)
    agreement: float = 1.0  # share of those images whose top-1 class matches the app's
    n_images: int = 0
    folder: str = ""  # the unpacked export the zip was made from
    images: str = "validation"  # what parity was checked on: "validation", or "noise" when they are gone


PARITY_TOLERANCE = 1e-3  # probability; float32 ONNX vs torch differ by ~1e-6 on real images


def _check_paths(pred: Predictor, workdir: Path) -> list[str]:
    """Every validation image of the run (real pixels), else a few seeded noise images."""
    vp = pred.run_dir / "val_predictions.json"
    paths = []
    if vp.exists():
        paths = [it["path"] for it in json.loads(vp.read_text())["items"] if Path(it["path"]).exists()]
    if paths:
        return paths
    rng = np.random.default_rng(0)
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        noise = rng.integers(0, 256, (pred.pp.scale_size, pred.pp.scale_size, 3), dtype=np.uint8)
        Image.fromarray(noise).save(workdir / f"noise{i}.png")
        paths.append(str(workdir / f"noise{i}.png"))
    return paths


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path) -> ExportResult:
    """Write `<run>-<fmt>/` and `<run>-<fmt>.zip` under out_dir: the model, labels.txt,
    preprocess.json, calibration.json, a predict.py that runs as unpacked, and parity.json.

    Parity: the unpacked predict.py itself (its own preprocessing, the exported model, the
    calibration) is run on every validation image and compared with the app's predictions;
    raises ExportError if a probability differs by more than PARITY_TOLERANCE.
    """
    if fmt not in ("onnx", "safetensors"):
        raise ExportError("export.unknown_format", fmt=fmt)
    pred = Predictor(Path(run_dir))
    out_dir = Path(out_dir)
    folder = out_dir / f"{pred.run_dir.name}-{fmt}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cal = pred.calibration()
    paths = _check_paths(pred, out_dir / ".parity-images")
    (_onnx if fmt == "onnx" else _safetensors)(pred, folder)
    for name in ("preprocess.json", "run.json"):
        shutil.copy2(pred.run_dir / name, folder / name)
    write_text_atomic(folder / "labels.txt", "\n".join(pred.classes) + "\n")
    write_text_atomic(folder / "calibration.json", json.dumps(_portable(cal), indent=1))
    write_text_atomic(folder / "predict.py", inference_snippet(pred.run_dir, fmt))
    parity = _parity(pred, folder, paths, cal)
    write_text_atomic(folder / "parity.json", json.dumps(parity, indent=1))
    if not parity["max_abs_prob_diff"] <= PARITY_TOLERANCE:
        raise ExportError("export.mismatch", fmt=fmt, diff=parity["max_abs_prob_diff"])
    zip_path = out_dir / f"{folder.name}.zip"
    write_bytes_atomic(zip_path, zip_folder(folder))
    return ExportResult(str(zip_path), parity["max_abs_prob_diff"], parity["top1_agreement"], parity["n_images"],
                        str(folder), parity["images"])


def _portable(cal) -> dict:
    """What predict.py needs from the calibration (the reliability bins stay in the run)."""
    d = cal.to_dict()
    return {k: d[k] for k in ("temperature", "threshold", "keep_correct", "ece_before", "ece_after", "n_val")}


def _load_snippet(folder: Path):
    """The exported predict.py as a module, exactly as a user would run it."""
    spec = importlib.util.spec_from_file_location(f"tl_export_{secrets.token_hex(4)}", folder / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parity(pred: Predictor, folder: Path, paths: list[str], cal) -> dict:
    snippet = _load_snippet(folder)
    app, got = [], []
    for start in range(0, len(paths), 32):
        batch = paths[start:start + 32]
        with torch.inference_mode():
            app.append(cal.probabilities(pred.model(pred.tensor(batch)).double().numpy()))
        got.append(snippet.probabilities(batch))
    app, got = np.concatenate(app), np.concatenate(got)
    return {"images": "validation" if not paths[0].startswith(str(folder.parent)) else "noise",
            "n_images": len(paths), "top1_agreement": float((app.argmax(1) == got.argmax(1)).mean()),
            "max_abs_prob_diff": float(np.abs(app - got).max()), "calibrated": True,
            "temperature": cal.temperature}


def _onnx(pred: Predictor, folder: Path) -> None:
    path = folder / "model.onnx"
    x = torch.zeros(2, 3, pred.pp.input_size, pred.pp.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the dynamo exporter: the legacy one cannot export timm ViTs (bicubic upsample)
            prog = torch.onnx.export(pred.model, (x,), input_names=["image"], output_names=["logits"],
                                     dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
            prog.save(str(path), external_data=False)
        except Exception as e:
            raise ExportError("export.onnx_failed", backbone=pred.cfg.backbone, detail=f"{type(e).__name__}: {e}") from e


def _safetensors(pred: Predictor, folder: Path) -> None:
    for name in ("model.safetensors", "config.json"):
        shutil.copy2(pred.run_dir / name, folder / name)


def zip_folder(path: str | Path) -> bytes:
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                zf.write(f, f"{path.name}/{f.relative_to(path).as_posix()}")
    return buf.getvalue()


_SNIPPET = '''"""Classify images with a model exported from TL Studio ({run_name}).

Unzip the download, then:  python predict.py IMAGE [IMAGE ...] [--threshold P]
Needs: {needs}. Prints one JSON line per image: the answer (a class, or "not sure"),
and the top classes with calibrated probabilities.

Preprocessing is TL Studio's own: EXIF orientation, RGB (transparency on white), shorter
side resized to {scale_size} px (bicubic), centre crop {input_size} px, normalised.
Calibration (calibration.json): logits are divided by the temperature {temperature:.4f}, fitted on
the {n_val} validation images; when the top calibrated probability is below {threshold:.4f}, the
answer is "not sure" ({rule}).
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent  # files are found next to this script, wherever it runs from
CLASSES = {classes!r}
SCALE_SIZE, INPUT_SIZE = {scale_size}, {input_size}
MEAN, STD = np.array({mean!r}, np.float32), np.array({std!r}, np.float32)
TEMPERATURE, THRESHOLD = {temperature!r}, {threshold!r}


def load(path):
    img = Image.open(path)
    img.draft("RGB", (SCALE_SIZE, SCALE_SIZE))  # JPEG: decode at reduced scale, as in training
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(a * 255.0 / (65535.0 if a.max() > 255 else 255.0), 0, 255).astype(np.uint8))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    img = img.convert("RGB")
    scale = SCALE_SIZE / min(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if size != img.size:
        img = img.resize(size, Image.BICUBIC)
    left = int(round((img.width - INPUT_SIZE) / 2.0))
    top = int(round((img.height - INPUT_SIZE) / 2.0))
    img = img.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    x = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)
{runner}

def probabilities(paths):
    """Calibrated class probabilities, one row per image."""
    z = run(np.stack([load(p) for p in paths])).astype(np.float64) / TEMPERATURE
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(argv):
    threshold = THRESHOLD
    if "--threshold" in argv:
        i = argv.index("--threshold")
        threshold, argv = float(argv[i + 1]), argv[:i] + argv[i + 2:]
    for path in argv:
        probs = probabilities([path])[0]
        best = probs.argsort()[::-1][:5]
        answer = CLASSES[best[0]] if probs[best[0]] >= threshold else "not sure"
        print(json.dumps({{"image": path, "answer": answer,
                          "top_k": [[CLASSES[i], round(float(probs[i]), 4)] for i in best]}}))


if __name__ == "__main__":
    main(sys.argv[1:])
'''

_ONNX_RUNNER = '''
import onnxruntime as ort

SESSION = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def run(x):
    return SESSION.run(None, {{"image": x}})[0]
'''

_TIMM_RUNNER = '''
import timm
import torch

MODEL = timm.create_model("{backbone}", num_classes=len(CLASSES), pretrained=True,{size_kwargs}
                          pretrained_cfg_overlay=dict(file=str(HERE / "model.safetensors"),
                                                      num_classes=len(CLASSES))).eval()


def run(x):
    with torch.inference_mode():
        return MODEL(torch.from_numpy(x)).numpy()
'''


def inference_snippet(run_dir: str | Path, fmt: str = "onnx") -> str:
    """predict.py for an export: standalone, reads its model next to itself, calibrated, "not sure"."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    pp = read_json(run_dir / "preprocess.json")
    cal = load_calibration(run_dir)
    fixed = read_json(run_dir / "config.json").get("pretrained_cfg", {}).get("fixed_input_size")
    size_kwargs = f" img_size={pp['input_size']}," if fixed else ""
    runner = (_ONNX_RUNNER.format() if fmt == "onnx" else
              _TIMM_RUNNER.format(backbone=info["config"]["backbone"], size_kwargs=size_kwargs))
    needs = "numpy, pillow, onnxruntime" if fmt == "onnx" else "numpy, pillow, torch, timm"
    rule = (f"chosen on validation to keep {cal.keep_correct:.0%} of correct answers"
            if cal.keep_correct == cal.keep_correct else "chosen by hand")
    return _SNIPPET.format(run_name=run_dir.name, classes=info["classes"], scale_size=pp["scale_size"],
                           input_size=pp["input_size"], mean=list(pp["mean"]), std=list(pp["std"]), runner=runner,
                           temperature=float(cal.temperature), threshold=float(cal.threshold), n_val=cal.n_val,
                           rule=rule, needs=needs)

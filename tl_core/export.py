"""Export a run: a safetensors folder (timm-loadable) or ONNX, each verified against the torch model."""
from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch

from .atomic import read_json
from .checkpoint import load_model
from .messages import ExportError  # noqa: F401  (public here too: tl_core.export.ExportError)
from .predict import Predictor


@dataclass(frozen=True)
class ExportResult:
    path: str
    max_abs_diff: float  # max |p_export - p_torch| over verification images (probabilities)


def _check_images(pred: Predictor, n: int = 4) -> torch.Tensor:
    """A few of the run's own validation images (real pixels), else seeded noise."""
    vp = pred.run_dir / "val_predictions.json"
    paths = []
    if vp.exists():
        paths = [it["path"] for it in json.loads(vp.read_text())["items"] if Path(it["path"]).exists()][:n]
    if paths:
        return pred.tensor(paths)
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, pred.pp.input_size, pred.pp.input_size, generator=g)


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path) -> ExportResult:
    """Write the export under out_dir and verify it; raises ExportError if it does not match."""
    pred = Predictor(Path(run_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = _check_images(pred)
    with torch.inference_mode():
        expected = pred.model(x).softmax(1).numpy()
    if fmt == "onnx":
        path, got = _onnx(pred, x, out_dir)
    elif fmt == "safetensors":
        path, got = _safetensors(pred, x, out_dir)
    else:
        raise ExportError(f"unknown export format {fmt!r}; choose safetensors or onnx")
    diff = float(np.abs(got - expected).max())
    if diff > 1e-3:
        raise ExportError(f"the {fmt} export differs from the trained model (max prob. difference {diff:.2e})")
    return ExportResult(str(path), diff)


def _onnx(pred: Predictor, x: torch.Tensor, out_dir: Path):
    import onnxruntime as ort  # deferred: a heavy optional runtime, only for the ONNX format

    path = out_dir / "model.onnx"
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the dynamo exporter: the legacy one cannot export timm ViTs (bicubic upsample)
            prog = torch.onnx.export(pred.model, (x[:2],), input_names=["image"], output_names=["logits"],
                                     dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
            prog.save(str(path), external_data=False)
        except Exception as e:
            raise ExportError(f"ONNX export failed for {pred.cfg.backbone}: {type(e).__name__}: {e}") from e
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return path, torch.from_numpy(logits).softmax(1).numpy()


def _safetensors(pred: Predictor, x: torch.Tensor, out_dir: Path):
    folder = out_dir / f"{pred.run_dir.name}-safetensors"
    folder.mkdir(exist_ok=True)
    for name in ("model.safetensors", "config.json", "preprocess.json", "run.json"):
        shutil.copy2(pred.run_dir / name, folder / name)
    (folder / "labels.txt").write_text("\n".join(pred.classes) + "\n", encoding="utf-8")
    (folder / "predict.py").write_text(inference_snippet(pred.run_dir, "safetensors"), encoding="utf-8")
    model = _timm_reload(folder, pred) if pred.cfg.head == "linear" else load_model(folder)[0]
    with torch.inference_mode():
        return folder, model(x).softmax(1).numpy()


def _timm_reload(folder: Path, pred: Predictor) -> torch.nn.Module:
    """Reload with timm alone, as a user without TL Studio would."""
    n = len(pred.classes)
    # num_classes in the overlay too: otherwise timm treats the classifier as a different head and drops it
    overlay = dict(file=str(folder / "model.safetensors"), num_classes=n)
    return timm.create_model(pred.cfg.backbone, pretrained=True, num_classes=n, pretrained_cfg_overlay=overlay,
                             **_size_kwargs(pred)).eval()


def _size_kwargs(pred: Predictor) -> dict:
    """Fixed-size models (ViT) trained at another size must be created at that size."""
    fixed = pred.model.pretrained_cfg.get("fixed_input_size")
    return {"img_size": pred.pp.input_size} if fixed else {}


def zip_folder(path: str | Path) -> bytes:
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                zf.write(f, f"{path.name}/{f.relative_to(path).as_posix()}")
    return buf.getvalue()


_SNIPPET = '''"""Classify images with a model exported from TL Studio ({run_name}).

Reproduces TL Studio's preprocessing exactly: EXIF orientation, RGB (transparency on white),
shorter side resized to {scale_size} px (bicubic), centre crop {input_size} px, normalised.
Usage: python predict.py IMAGE [IMAGE ...]
"""
import sys

import numpy as np
from PIL import Image, ImageOps

CLASSES = {classes!r}
SCALE_SIZE, INPUT_SIZE = {scale_size}, {input_size}
MEAN, STD = np.array({mean!r}, np.float32), np.array({std!r}, np.float32)


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
    return x.transpose(2, 0, 1)[None]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
{runner}

if __name__ == "__main__":
    for path in sys.argv[1:]:
        probs = softmax(run(load(path)))[0]
        best = probs.argsort()[::-1][:5]
        print(path, [(CLASSES[i], round(float(probs[i]), 4)) for i in best])
'''

_ONNX_RUNNER = '''
import onnxruntime as ort

SESSION = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])


def run(x):
    return SESSION.run(None, {"image": x})[0]
'''

_TIMM_RUNNER = '''
import timm
import torch

MODEL = timm.create_model("{backbone}", num_classes=len(CLASSES), pretrained=True,{size_kwargs}
                          pretrained_cfg_overlay=dict(file="model.safetensors",
                                                              num_classes=len(CLASSES))).eval()


def run(x):
    with torch.inference_mode():
        return MODEL(torch.from_numpy(x)).numpy()
'''


def inference_snippet(run_dir: str | Path, fmt: str = "onnx") -> str:
    """A standalone Python script that classifies images with the exported model."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    pp = read_json(run_dir / "preprocess.json")
    fixed = read_json(run_dir / "config.json").get("pretrained_cfg", {}).get("fixed_input_size")
    size_kwargs = f" img_size={pp['input_size']}," if fixed else ""
    runner = _ONNX_RUNNER if fmt == "onnx" else _TIMM_RUNNER.format(backbone=info["config"]["backbone"],
                                                                     size_kwargs=size_kwargs)
    return _SNIPPET.format(run_name=run_dir.name, classes=info["classes"], scale_size=pp["scale_size"],
                           input_size=pp["input_size"], mean=list(pp["mean"]), std=list(pp["std"]), runner=runner)

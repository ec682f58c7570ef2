"""Export a run: a safetensors folder (timm-loadable) or ONNX, each verified against the torch model."""
from __future__ import annotations

import importlib.util
import io
import json
import re
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
from tl_core.models import engines
from tl_core.models.checkpoint import load_model
from tl_core.models.model import pooled_features
from tl_core.serving.predict import Predictor
from tl_core.trust import ood
from tl_core.trust.calibration import load as load_calibration


@dataclass(frozen=True)
class ExportResult:
    path: str  # the zip: one download per format, runs as unpacked
    max_abs_diff: float  # max |p_export - p_app| over every validation image (calibrated probabilities)
    agreement: float = 1.0  # share of those images whose top-1 class matches the app's
    n_images: int = 0
    folder: str = ""  # the unpacked export the zip was made from
    images: str = "validation"  # what parity was checked on: "validation", or "noise" when they are gone
    ood_agreement: float | None = None  # share of images with the app's "none of these" decision (None: no bank)


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
    if fmt != "onnx":
        return _export_run(run_dir, fmt, out_dir)
    with engines.EXPORT_LOCK:  # one whole ONNX export at a time in this process (engines.EXPORT_LOCK)
        return _export_run(run_dir, fmt, out_dir)


def _export_run(run_dir: str | Path, fmt: str, out_dir: str | Path) -> ExportResult:
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
    if ood.ensure(pred.run_dir) is not None:  # "none of these": the float16 bank travels with the model
        shutil.copy2(pred.run_dir / ood.BANK_FILE, folder / ood.BANK_FILE)
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
                        str(folder), parity["images"], parity.get("ood_agreement"))


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


def app_outputs(pred: Predictor, paths: list[str], cal) -> tuple[np.ndarray, np.ndarray | None]:
    """The run's own calibrated probabilities and out-of-domain scores (PyTorch fp32), the reference."""
    found = pred.out_of_domain()
    probs, scores = [], []
    for start in range(0, len(paths), 32):
        with torch.inference_mode():
            feats = pooled_features(pred.model, pred.tensor(paths[start:start + 32]))
            probs.append(cal.probabilities(pred.model.get_classifier()(feats).double().numpy()))
        if found is not None:
            scores.append(ood.knn_scores(found[1], feats.numpy(), found[0].k))
    return np.concatenate(probs), (np.concatenate(scores) if found is not None else None)


def _parity(pred: Predictor, folder: Path, paths: list[str], cal) -> dict:
    snippet = _load_snippet(folder)
    app, app_scores = app_outputs(pred, paths, cal)
    got, got_scores = zip(*(snippet.predict(paths[s:s + 32]) for s in range(0, len(paths), 32)))
    got = np.concatenate(got)
    out = {"images": "validation" if not paths[0].startswith(str(folder.parent)) else "noise",
           "n_images": len(paths), "top1_agreement": float((app.argmax(1) == got.argmax(1)).mean()),
           "max_abs_prob_diff": float(np.abs(app - got).max()), "calibrated": True,
           "temperature": cal.temperature}
    if app_scores is not None:
        got_scores, t = np.concatenate(got_scores), snippet.OOD_THRESHOLD
        out.update(ood_max_abs_diff=float(np.abs(app_scores - got_scores).max()), ood_threshold=t,
                   ood_agreement=float(((app_scores <= t) == (got_scores <= t)).mean()))
    return out


def _onnx(pred: Predictor, folder: Path) -> None:
    path = folder / "model.onnx"
    x = torch.zeros(2, 3, pred.pp.input_size, pred.pp.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the dynamo exporter: the legacy one cannot export timm ViTs (bicubic upsample)
            with engines.EXPORT_LOCK:
                prog = torch.onnx.export(LogitsAndFeatures(pred.model), (x,), input_names=["image"],
                                         output_names=["logits", "features"],
                                         dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
                prog.save(str(path), external_data=False)
        except Exception as e:
            detail = f"{type(e).__name__}: {re.sub(engines.ANSI, '', str(e))}"  # the exporter colours its text
            raise ExportError("export.onnx_failed", backbone=pred.cfg.backbone, detail=detail) from e


class LogitsAndFeatures(torch.nn.Module):
    """The exported graph: the logits and the pooled features ("none of these" measures the latter)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        feats = pooled_features(self.model, x)
        return self.model.get_classifier()(feats), feats


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


_SNIPPET = '''\"\"\"Classify images with a model exported from TL Studio ({run_name}).

Unzip the download, then:  python predict.py IMAGE [IMAGE ...] [--threshold P] [--ood-threshold D]
Needs: {needs}. Prints one JSON line per image: the answer (a class, "not sure" or "none of
these"), the top classes with calibrated probabilities, and the out-of-domain score.

Preprocessing is TL Studio's own: EXIF orientation, RGB (transparency on white), shorter
side resized to {scale_size} px (bicubic), centre crop {input_size} px, normalised.
Calibration (calibration.json): logits are divided by the temperature {temperature:.4f}, fitted on
the {n_val} validation images; when the top calibrated probability is below {threshold:.4f}, the
answer is "not sure" ({rule}).
"None of these" (ood_bank.npy): the image's features are compared with the {n_bank} training
images' (unit length, float16); when the distance to the {k}th nearest is above {ood_text}
({ood_rule}), the image is from none of the classes.
\"\"\"
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent  # files are found next to this script, wherever it runs from
CLASSES = {classes!r}
SCALE_SIZE, INPUT_SIZE = {scale_size}, {input_size}
MEAN, STD = np.array({mean!r}, np.float32), np.array({std!r}, np.float32)
TEMPERATURE, THRESHOLD = {temperature!r}, {threshold!r}
K, OOD_THRESHOLD = {k!r}, {ood_threshold!r}
BANK = np.load(HERE / "ood_bank.npy", allow_pickle=False) if (HERE / "ood_bank.npy").exists() else None


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

def ood_scores(features):
    \"\"\"Distance from each image's unit-length features to the K-th nearest training image's.\"\"\"
    if BANK is None:
        return None
    f = np.asarray(features, np.float32)
    q = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    sims = q @ np.asarray(BANK, np.float32).T
    kth = -np.partition(-sims, K - 1, axis=1)[:, K - 1]
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * kth)).astype(np.float64)


def predict(paths):
    \"\"\"(calibrated class probabilities, out-of-domain scores or None), one row per image.\"\"\"
    logits, features = run(np.stack([load(p) for p in paths]))
    z = logits.astype(np.float64) / TEMPERATURE
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), ood_scores(features)


def probabilities(paths):
    \"\"\"Calibrated class probabilities, one row per image.\"\"\"
    return predict(paths)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify images with a model exported from TL Studio.")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help='answer "not sure" below this calibrated probability (default: %(default).4f)')
    parser.add_argument("--ood-threshold", type=float, default=OOD_THRESHOLD,
                        help='answer "none of these" above this distance to the training images')
    a = parser.parse_args(argv)
    for path in a.images:
        probs, scores = predict([path])
        probs, score = probs[0], None if scores is None else float(scores[0])
        best = probs.argsort()[::-1][:5]
        if score is not None and a.ood_threshold is not None and score > a.ood_threshold:
            answer = "none of these"
        else:
            answer = CLASSES[best[0]] if probs[best[0]] >= a.threshold else "not sure"
        print(json.dumps({{"image": path, "answer": answer, "ood_score": None if score is None else round(score, 6),
                          "top_k": [[CLASSES[i], round(float(probs[i]), 4)] for i in best]}}))


if __name__ == "__main__":
    main()
'''

_ONNX_RUNNER = '''
import onnxruntime as ort

SESSION = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def run(x):
    \"\"\"(logits, pooled features) of a batch.\"\"\"
    logits, features = SESSION.run(["logits", "features"], {{"image": x}})
    return logits, features
'''

_TIMM_RUNNER = '''
import timm
import torch

MODEL = timm.create_model("{backbone}", num_classes=len(CLASSES), pretrained=True,{size_kwargs}
                          pretrained_cfg_overlay=dict(file=str(HERE / "model.safetensors"),
                                                      num_classes=len(CLASSES))).eval()


def run(x):
    \"\"\"(logits, pooled features) of a batch.\"\"\"
    with torch.inference_mode():
        features = MODEL.forward_head(MODEL.forward_features(torch.from_numpy(x)), pre_logits=True)
        return MODEL.get_classifier()(features).numpy(), features.numpy()
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
    detector = ood.ensure(run_dir) or ood.OutOfDomain()
    finite = detector.threshold != float("inf")
    ood_rule = (f"the distance that keeps {detector.keep:.0%} of the validation images" if detector.keep
                else "chosen by hand")
    return _SNIPPET.format(run_name=run_dir.name, classes=info["classes"], scale_size=pp["scale_size"],
                           input_size=pp["input_size"], mean=list(pp["mean"]), std=list(pp["std"]), runner=runner,
                           temperature=float(cal.temperature), threshold=float(cal.threshold), n_val=cal.n_val,
                           rule=rule, needs=needs, k=detector.k, n_bank=detector.n_bank,
                           ood_threshold=float(detector.threshold) if finite else None,
                           ood_text=f"{detector.threshold:.4f}" if finite else "(none)",
                           ood_rule=ood_rule if finite else "this run has no bank: never")

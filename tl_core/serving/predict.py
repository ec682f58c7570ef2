"""Predictor: a run's best model with the exact preprocessing used in training; Grad-CAM."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tl_core.data.decode import _to_rgb, load_rgb, resize_short_side
from tl_core.data.transforms import eval_transform
from tl_core.models import engines
from tl_core.models.checkpoint import load_model
from tl_core.trust import calibration, ood

NONE_OF_THESE, NOT_SURE = "none of these", "not sure"  # the CLI's and predict.py's answers besides a class


class Predictor:
    """A run's model for new images. `engine`: auto (the fastest exact engine measured here, see
    tl_core/engines.py), torch, onnx or bf16; Grad-CAM always runs the torch model (it needs gradients)."""

    def __init__(self, run_dir: Path, engine: str = "auto"):
        self.run_dir = Path(run_dir)
        self.model, self.cfg, self.classes, self.pp = load_model(self.run_dir)
        self.transform = eval_transform(self.pp)
        self.engine_name, self._engine, self.choice = engine, None, None
        self._ood = None  # (OutOfDomain, bank) or False when the run has none; loaded on first use

    def engine(self):
        """The backbone's pooled features (the head's input: the out-of-domain score needs them),
        chosen and built on first use (an ONNX export the first time a run is used here: seconds,
        then cached). The head runs in PyTorch on the features: a matrix product."""
        if self._engine is None:
            key = engines.file_key(self.run_dir / "model.safetensors", "pooled")
            self._engine, self.choice = engines.for_inference(engines.Pooled(self.model), self.cfg.backbone,
                                                              self.pp.input_size, key, self.engine_name,
                                                              self.cfg.cpu_bf16)
        return self._engine

    def features_and_logits(self, images: list) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.engine()(self.tensor(images)).float()
        with torch.inference_mode():
            return feats, self.model.get_classifier()(feats).float()

    def out_of_domain(self):
        """(OutOfDomain, float16 bank) of the run, built on first use; None for a run without one."""
        if self._ood is None:
            found = ood.ensure(self.run_dir)
            self._ood = (found, ood.load_bank(self.run_dir)) if found is not None else False
            self._ood_mtime = ood.mtime(self.run_dir)
        elif self._ood and ood.mtime(self.run_dir) != self._ood_mtime:  # a threshold saved since (Evaluate)
            self._ood, self._ood_mtime = (ood.load(self.run_dir), self._ood[1]), ood.mtime(self.run_dir)
        return self._ood or None

    def prepare(self, image) -> Image.Image:
        """Path, bytes or file object: decoded exactly as in training. A PIL image: resized likewise."""
        if isinstance(image, Image.Image):
            return resize_short_side(_to_rgb(image), self.pp.scale_size)
        if hasattr(image, "read"):
            image = image.read()
        return load_rgb(image if isinstance(image, (bytes, bytearray)) else str(image), self.pp.scale_size)

    def tensor(self, images: list) -> torch.Tensor:
        return torch.stack([self.transform(self.prepare(im)) for im in images])

    def probabilities(self, images: list) -> torch.Tensor:
        return self.features_and_logits(images)[1].softmax(1)

    def top_k(self, images: list, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, the k most likely classes with their probabilities, best first."""
        probs = self.probabilities(images)
        k = min(k, len(self.classes))
        values, idx = probs.topk(k, dim=1)
        return [[(self.classes[i], round(float(v), 6)) for v, i in zip(vs, ids)]
                for vs, ids in zip(values.tolist(), idx.tolist())]

    def calibration(self) -> "calibration.Calibration":
        """Temperature and "not sure" threshold fitted on this run's validation predictions."""
        return calibration.load(self.run_dir)

    def answers(self, images: list, k: int = 5, threshold: float | None = None,
                ood_threshold: float | None = None) -> list[dict]:
        """Calibrated top-k per image, whether the model is sure enough to answer, and whether the
        image is from its classes at all.

        -> [{"top_k": [(class, p), ...], "sure": bool, "threshold": t, "in_domain": bool,
             "ood_score": float | None, "ood_threshold": float | None, "answer": str}];
        `threshold` and `ood_threshold` override the run's own (chosen on validation).
        """
        cal = self.calibration()
        t = cal.threshold if threshold is None else threshold
        # no inference_mode here: building the engine converts the model (channels_last), and
        # parameters made inside inference_mode could no longer give Grad-CAM its gradients
        feats, logits = self.features_and_logits(images)
        probs = cal.probabilities(logits.detach().double().numpy())
        scores, t_ood = self._ood_scores(feats.numpy(), ood_threshold)
        k = min(k, len(self.classes))
        out = []
        for row, score in zip(probs, scores):
            best = np.argsort(-row)[:k]
            ans = {"top_k": [(self.classes[i], round(float(row[i]), 6)) for i in best],
                   "sure": bool(row[best[0]] >= t), "threshold": t,
                   "in_domain": score is None or bool(score <= t_ood),
                   "ood_score": None if score is None else round(float(score), 6), "ood_threshold": t_ood}
            out.append({**ans, "answer": answer_of(ans)})
        return out

    def _ood_scores(self, feats: np.ndarray, threshold: float | None) -> tuple[list, float | None]:
        found = self.out_of_domain()
        if found is None:
            return [None] * len(feats), None
        detector, bank = found
        return list(ood.knn_scores(bank, feats, detector.k)), (detector.threshold if threshold is None else threshold)

    def gradcam(self, image, class_index: int | None = None) -> Image.Image:
        """The image (as the model saw it) with a heat map of where the evidence for the class was."""
        img = self.transform.transforms[0](self.prepare(image))  # centre crop, as the model saw it
        cam = self.cam(image, class_index)
        heat = Image.fromarray(_colormap(cam)).resize(img.size, Image.BILINEAR)
        return Image.blend(img, heat, 0.45)

    def cam(self, image, class_index: int | None = None) -> np.ndarray:
        """Grad-CAM: gradient-weighted activations of the last feature map, normalised to 0..1.

        CNNs use the backbone's output map. Token models (ViT) pool the class token, so their
        final patch tokens get no gradient: they use the tokens entering the last block instead.
        """
        captured = {}
        blocks = getattr(self.model, "blocks", None)
        hook = None
        if isinstance(blocks, torch.nn.Sequential) and getattr(self.model, "num_prefix_tokens", 0):
            hook = blocks[-1].register_forward_pre_hook(lambda m, args: captured.setdefault("a", args[0]))
        try:
            with torch.enable_grad():
                x = self.tensor([image]).requires_grad_(True)  # gradients flow even if weights are frozen
                feats = self.model.forward_features(x)
                act = captured.get("a", feats)
                logits = self.model.forward_head(feats)
                idx = int(logits.argmax(1)) if class_index is None else class_index
                grad = torch.autograd.grad(logits[0, idx], act)[0]
        finally:
            if hook is not None:
                hook.remove()
        a, g = self._as_map(act[0].detach()), self._as_map(grad[0])
        cam = torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0))
        cam = cam / cam.max() if cam.max() > 0 else cam
        return cam.numpy()

    def _as_map(self, t: torch.Tensor) -> torch.Tensor:
        """-> (C, H, W): CNNs give that already; ViTs give tokens (N, C) with prefix tokens first."""
        if t.ndim == 3:
            nf = getattr(self.model, "num_features", None)
            return t.permute(2, 0, 1) if t.shape[-1] == nf and t.shape[0] != nf else t  # NHWC models
        t = t[getattr(self.model, "num_prefix_tokens", 0):]
        side = int(math.isqrt(t.shape[0]))
        return t[: side * side].T.reshape(t.shape[1], side, side)


def answer_of(ans: dict) -> str:
    """The one-word answer: "none of these" first (the image is from none of the classes), then
    "not sure" (between classes), else the top class."""
    if not ans.get("in_domain", True):
        return NONE_OF_THESE
    return ans["top_k"][0][0] if ans["sure"] else NOT_SURE


def _colormap(cam: np.ndarray) -> np.ndarray:
    """A 'jet'-like colour map (blue -> green -> red) without matplotlib."""
    c = np.clip(cam, 0, 1)
    r = np.clip(1.5 - np.abs(4 * c - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * c - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * c - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)

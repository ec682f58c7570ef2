"""The classifier head: which part of a timm model is replaced for the user's classes.

One definition for the whole package: timm's `pretrained_cfg["classifier"]` names the head
module(s); models with two heads (e.g. DeiT distilled: head and head_dist) list both, and both
are "the head" for checking weights files, trainable parameters and the feature cache key.
"""
from __future__ import annotations

from torch import nn

from tl_core.base.config import RunConfig


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Dotted module names of the classifier(s), the first being the one a new head replaces."""
    names = model.pretrained_cfg.get("classifier") or "fc"
    return (names,) if isinstance(names, str) else tuple(names)


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict key prefixes of the classifier(s): the part that is replaced for the user's classes."""
    return tuple(n + "." for n in head_names(model))


def classifier_params(model: nn.Module) -> set[str]:
    """Names of the head's parameters (all heads of a two-head model)."""
    prefixes = head_prefixes(model)
    return {n for n, _ in model.named_parameters() if n.startswith(prefixes)}


def head_module(model: nn.Module) -> nn.Module:
    """The (first) head module: what feature extraction trains on cached features."""
    return model.get_submodule(head_names(model)[0])


def mlp_head(in_features: int, cfg: RunConfig, num_classes: int) -> nn.Module:
    # seed 000's head: pooled features -> Dense(hidden) -> dropout -> classes
    return nn.Sequential(
        nn.Linear(in_features, cfg.head_hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(cfg.head_dropout),
        nn.Linear(cfg.head_hidden, num_classes),
    )


def _set_submodule(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def install_head(model: nn.Module, cfg: RunConfig, num_classes: int) -> nn.Module:
    """Replace timm's linear classifier by the configured head (linear stays timm's own)."""
    if cfg.head == "mlp":
        name = head_names(model)[0]
        clf = model.get_submodule(name)
        in_features = getattr(clf, "in_features", None) or model.num_features
        _set_submodule(model, name, mlp_head(in_features, cfg, num_classes))
    return model

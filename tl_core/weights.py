"""Where a backbone's starting weights come from: the hub, a local file, a previous run, or none."""
from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

from .config import RunConfig


class WeightsError(RuntimeError):
    """Starting weights that cannot be loaded; the message says what to do."""


def create_backbone(cfg: RunConfig, num_classes: int) -> nn.Module:
    """timm model for cfg.backbone with a fresh linear classifier of `num_classes` outputs."""
    source = cfg.pretrained if cfg.uses_pretrained else "none"
    if source == "none":
        return timm.create_model(cfg.backbone, pretrained=False, num_classes=num_classes)
    if source == "hub":
        return _from_hub(cfg.backbone, num_classes)
    if source.startswith("run:"):
        return _from_run(cfg.backbone, Path(source[4:]), num_classes)
    return _from_file(cfg.backbone, Path(source), num_classes)


def _from_hub(backbone: str, num_classes: int) -> nn.Module:
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=num_classes)
    except Exception as e:  # network, missing weights, hub errors: one sentence for the user
        raise WeightsError(
            f"could not get pretrained weights for {backbone} ({type(e).__name__}: {e}). "
            "Connect to the internet, load a weights file, or train from scratch."
        ) from e


def _from_file(backbone: str, path: Path, num_classes: int) -> nn.Module:
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    except Exception as e:
        raise WeightsError(f"could not load {path.name} into {backbone}: {e}") from e


def _from_run(backbone: str, run_dir: Path, num_classes: int) -> nn.Module:
    from safetensors.torch import load_file

    from .model import classifier_name

    file = run_dir / "model.safetensors"
    if not file.is_file():
        raise WeightsError(f"run {run_dir.name} has no saved model to start from")
    model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    head = classifier_name(model) + "."
    state = {k: v for k, v in load_file(str(file)).items() if not k.startswith(head)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head)]
    if missing or unexpected:
        raise WeightsError(f"run {run_dir.name} does not match {backbone}: "
                           f"{len(missing)} missing and {len(unexpected)} unexpected keys")
    return model

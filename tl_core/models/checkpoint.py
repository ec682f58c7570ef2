"""Save and load a run's model: model.safetensors + timm-style config.json + preprocess.json.

With a linear head the folder is a plain timm checkpoint:
    timm.create_model(arch, num_classes=n, pretrained=True,
                      pretrained_cfg_overlay=dict(file="model.safetensors", num_classes=n))
(num_classes in the overlay too: otherwise timm drops the classifier as a different head)
"""
from __future__ import annotations

import json
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save

from tl_core.base.atomic import read_json, write_bytes_atomic, write_json_atomic
from tl_core.base.config import RunConfig
from tl_core.data.transforms import Preprocess
from tl_core.models.heads import install_head
from tl_core.models.model import fit_input_size


def _jsonable(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}


def save_model(run_dir: Path, model: torch.nn.Module, cfg: RunConfig, classes: list) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(run_dir / "model.safetensors", save(state))
    config = {
        "architecture": cfg.backbone,
        "num_classes": len(classes),
        "num_features": int(getattr(model, "num_features", 0)),
        "label_names": classes,
        "head": cfg.head,
        "pretrained_cfg": _jsonable(dict(model.pretrained_cfg)),
    }
    if not (run_dir / "config.json").exists():
        write_json_atomic(run_dir / "config.json", config)


def save_preprocess(run_dir: Path, pp: Preprocess) -> None:
    write_json_atomic(run_dir / "preprocess.json", pp.to_dict())


def load_model(run_dir: Path) -> tuple[torch.nn.Module, RunConfig, list, Preprocess]:
    """The run's best checkpoint as an eval-mode CPU model, with its config, classes, preprocessing."""
    info = read_json(run_dir / "run.json")
    cfg = RunConfig.from_dict(info["config"])
    classes = info["classes"]
    model = timm.create_model(cfg.backbone, pretrained=False, num_classes=len(classes))
    fit_input_size(model, cfg.image_size)
    install_head(model, cfg, len(classes))
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    pp = Preprocess.from_dict(json.loads((run_dir / "preprocess.json").read_text()))
    return model.eval(), cfg, classes, pp

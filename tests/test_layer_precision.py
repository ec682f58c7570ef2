"""Layers kept in fp32 inside a bf16 training step (tl_core/training/layer_precision.py)."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_cfg

from tl_core.base.events import Finished, Note
from tl_core.models.model import build_model
from tl_core.training import layer_precision, precision
from tl_core.training.train import train


def _model():
    return build_model(tiny_cfg(strategy="full", backbone="test_efficientnet"), 3)


def _dtypes_under_bf16(model) -> dict[str, torch.dtype]:
    """The output dtype of each depthwise conv in one forward pass under CPU bf16 autocast."""
    seen = {}
    convs = layer_precision.depthwise_convs(model)
    hooks = [m.register_forward_hook(lambda m, a, out, n=n: seen.__setitem__(n, out.dtype) and None)
             for n, m in convs.items()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(2, 3, 48, 48)).sum().backward()
    for h in hooks:
        h.remove()
    return seen


def test_a_pinned_layer_computes_in_fp32_and_the_rest_in_bf16():
    model = _model()
    names = sorted(layer_precision.depthwise_convs(model))
    assert len(names) >= 2
    keys = list(model.state_dict())
    handles = layer_precision.keep_fp32(model, names[:1])
    dtypes = _dtypes_under_bf16(model)
    assert dtypes[names[0]] == torch.float32 and {dtypes[n] for n in names[1:]} == {torch.bfloat16}
    assert list(model.state_dict()) == keys  # checkpoints and exports see the same model
    for h in handles:
        h.remove()
    assert set(_dtypes_under_bf16(model).values()) == {torch.bfloat16}


def test_the_layers_pinned_are_those_measured_slower_in_bf16(monkeypatch):
    # the timer is replaced by fixed seconds here (real timings differ by CPU, see
    # test_precision::test_timing_a_step_leaves_the_model_as_it_was for the real one): every layer
    # of one shape is pinned together, and only where fp32 is at least LAYER_GAIN faster
    model = _model()
    names = sorted(layer_precision.depthwise_convs(model))

    def seconds(bf16_over_fp32):
        return lambda conv, x, pinned, layout: 1.0 if pinned else bf16_over_fp32
    monkeypatch.setattr(layer_precision, "_layer_seconds", seconds(layer_precision.LAYER_GAIN * 1.01))
    assert layer_precision.slow_in_bf16(model, 48, 2) == names
    monkeypatch.setattr(layer_precision, "_layer_seconds", seconds(layer_precision.LAYER_GAIN * 0.99))
    assert layer_precision.slow_in_bf16(model, 48, 2) == []


def test_a_timing_from_before_the_pins_is_timed_again(monkeypatch, tmp_path):
    monkeypatch.setenv("TL_CACHE", str(tmp_path))
    cfg = tiny_cfg(strategy="full")
    precision._store(cfg, 48, {"fp32": 2.0, "bf16": 1.0})  # bf16 timed with its slow layers in bf16
    assert precision.cached_timing(cfg, 48) is None
    precision._store(cfg, 48, {"fp32": 2.0, "fp32_cl": 2.5})  # no bf16 timed: nothing to pin
    assert precision.cached_timing(cfg, 48) == {"fp32": 2.0, "fp32_cl": 2.5}


def test_a_bf16_run_trains_with_the_measured_layers_in_fp32(shapes, monkeypatch, tmp_path):
    monkeypatch.setenv("TL_CACHE", str(tmp_path))
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    cfg = tiny_cfg(strategy="full", epochs=1, backbone="test_efficientnet")
    pinned = sorted(layer_precision.depthwise_convs(_model()))[:1]
    precision._store(cfg, 48, {"fp32": 2.0, "bf16": 1.0, "fp32_layers": pinned})
    seen = {}  # depthwise conv -> the dtypes it computed in during the run
    conv_forward = torch.nn.Conv2d.forward

    def recording(conv, x):
        out = conv_forward(conv, x)
        if conv.groups > 1:
            seen.setdefault(conv, set()).add(out.dtype)
        return out
    monkeypatch.setattr(torch.nn.Conv2d, "forward", recording)
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], Finished), events[-1]
    notes = [e for e in events if isinstance(e, Note) and e.kind == "precision.layers_fp32"]
    assert len(notes) == 1 and notes[0].params["n"] == 1
    in_fp32 = [conv for conv, dtypes in seen.items() if torch.float32 in dtypes]
    assert len(in_fp32) == 1 and seen[in_fp32[0]] == {torch.float32}  # the pinned one, every time
    assert all(dtypes == {torch.bfloat16} for conv, dtypes in seen.items() if conv is not in_fp32[0])
    assert precision.describe_layers(cfg, 48).kind == "precision.layers_fp32"  # the Model page says it too

"""Which precision trains on the CPU (tl_core/training/precision.py): bf16 where it pays."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_cfg

from tl_core.base.events import Finished, Note
from tl_core.models.model import build_model
from tl_core.models.strategies import apply_strategy
from tl_core.training import precision
from tl_core.training.train import train


@pytest.mark.parametrize("asked, native, timing, cuda, bf16, kind", [
    (None, True, None, True, False, None),  # a GPU: AMP is its own setting
    (True, False, None, False, False, "train.no_native_bf16"),
    (True, True, None, False, True, "precision.bf16_asked"),
    (False, True, {"fp32": 2.0, "bf16": 1.0}, False, False, "precision.fp32_asked"),
    (None, False, {"fp32": 2.0, "bf16": 1.0}, False, False, "precision.fp32_not_native"),
    (None, True, None, False, False, "precision.not_measured"),
    (None, True, {"fp32": 1.25, "bf16": 1.0}, False, True, "precision.bf16_measured"),
    (None, True, {"fp32": 1.15, "bf16": 1.0}, False, False, "precision.fp32_measured"),
])
def test_bf16_trains_only_where_native_and_measured_faster(asked, native, timing, cuda, bf16, kind):
    on, why = precision.decide(tiny_cfg(strategy="full", cpu_bf16=asked), cuda, timing, native)
    assert on is bf16 and (why.kind if why else None) == kind


def test_timing_a_step_leaves_the_model_as_it_was():
    cfg = tiny_cfg(strategy="partial", unfreeze=1)
    model = build_model(cfg, 3)
    apply_strategy(model, cfg)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    timing = precision.measure_step(model, 48, 3)
    assert timing["fp32"] > 0 and timing["bf16"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats too
    assert [p.requires_grad for p in model.parameters()] == flags and not model.training


def test_automatic_measures_once_then_reads_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")  # the decision path of a CPU with native bf16 (timing is real)
    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # an empty cache: no other test's timing in it
    cfg = tiny_cfg(strategy="full")
    assert precision.cached_timing(cfg.backbone, 48) is None
    on, why = precision.choose(cfg, build_model(cfg, 3), 48, 3, cuda=False)
    stored = precision.cached_timing(cfg.backbone, 48)
    assert stored and why.kind in ("precision.bf16_measured", "precision.fp32_measured")
    assert on is (stored["fp32"] / stored["bf16"] >= precision.SPEEDUP)
    assert precision.describe(cfg, 48) == why  # the Model page says the same before the next run


def test_a_run_trains_in_bf16_when_the_stored_step_timing_says_it_pays(shapes, monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    cfg = tiny_cfg(strategy="full", epochs=1, backbone="test_efficientnet")
    precision._store(cfg.backbone, 48, {"fp32": 2.0, "bf16": 1.0})  # as measured on a CPU where it pays
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], Finished), events[-1]
    assert "precision.bf16_measured" in {e.kind for e in events if isinstance(e, Note)}
    fp32 = list(train(cfg.replace(cpu_bf16=False), shapes))
    assert not [e for e in fp32 if isinstance(e, Note)]  # fp32 as chosen: the Model page says so, no note

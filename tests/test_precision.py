"""Which precision trains on the CPU (tl_core/training/precision.py): bf16 where it pays."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_cfg

from tl_core.base.events import Finished, Note
from tl_core.models.model import build_model
from tl_core.models.strategies import apply_strategy
from tl_core.training import layer_precision, precision
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
    rng = torch.get_rng_state()
    timing = precision.measure_step(model, 48, 3, images=4)
    # the run's random numbers too: it ends the same whether its step was timed now or read from the cache
    assert torch.equal(torch.get_rng_state(), rng)
    seconds = {k: v for k, v in timing.items() if k != precision.LAYERS}
    assert len(seconds) == 3 and {"fp32", "fp32_cl"} < set(seconds) and min(seconds.values()) > 0
    assert isinstance(timing[precision.LAYERS], list)  # the layers pinned to fp32 for the bf16 step
    assert ("bf16_cl" in timing) is (timing["fp32"] / timing["fp32_cl"] >= precision.LAYOUT_GAIN)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats too
    assert all(p.is_contiguous() for p in model.parameters())  # the default layout again
    assert [p.requires_grad for p in model.parameters()] == flags and not model.training
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())  # the fp32 pins are gone


def test_automatic_measures_once_then_reads_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")  # the decision path of a CPU with native bf16 (timing is real)
    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # an empty cache: no other test's timing in it
    cfg = tiny_cfg(strategy="full")
    assert precision.cached_timing(cfg, 48) is None
    plan = precision.choose(cfg, build_model(cfg, 3), 48, 3, cuda=False)
    stored = precision.cached_timing(cfg, 48)
    assert stored and plan.note.kind in ("precision.bf16_measured", "precision.fp32_measured")
    assert plan.channels_last is (stored["fp32"] / stored["fp32_cl"] >= precision.LAYOUT_GAIN)
    bf16 = stored["bf16_cl" if plan.channels_last else "bf16"]
    assert plan.bf16 is (min(stored["fp32"], stored["fp32_cl"]) / bf16 >= precision.SPEEDUP)
    assert precision.describe(cfg, 48) == plan.note  # the Model page says the same before the next run
    assert precision.describe_layout(cfg, 48).kind == ("layout.channels_last" if plan.channels_last else "layout.default")
    again = precision.choose(cfg, build_model(cfg, 3), 48, 3, cuda=False)
    assert again == plan and precision.cached_timing(cfg, 48) == stored  # read, not timed again
    assert precision.cached_timing(cfg.replace(batch_size=cfg.batch_size + 1), 48) is None  # per batch size


def test_a_partial_run_times_only_the_stages_it_trains(monkeypatch, tmp_path):
    """Partial fine-tuning's step runs the frozen stages forward only: that step is timed, not one
    through every parameter (on the EPYC 2-5 s instead of 15 s for Lite0), and kept under its own key."""
    monkeypatch.setenv("TL_NATIVE_BF16", "1")  # so the bf16 step and its depthwise layers are timed too
    monkeypatch.setenv("TL_CACHE", str(tmp_path))
    cfg = tiny_cfg(strategy="partial", unfreeze=1, backbone="test_efficientnet")
    model = build_model(cfg, 3)
    apply_strategy(model, cfg)
    stem_trained = []  # during each timed forward: did the first (frozen) layer's weight need a gradient?
    model.conv_stem.register_forward_pre_hook(lambda m, args: stem_trained.append(m.weight.requires_grad))
    timed_layers = []
    time_layer = layer_precision._layer_seconds
    monkeypatch.setattr(layer_precision, "_layer_seconds",
                        lambda conv, *a: timed_layers.append(conv) or time_layer(conv, *a))
    precision.choose(cfg, model, 48, 3, cuda=False)
    assert stem_trained and not any(stem_trained)
    trained_convs = [m for m in layer_precision.depthwise_convs(model).values() if m.weight.requires_grad]
    assert timed_layers and all(any(c is t for t in trained_convs) for c in timed_layers)
    assert precision.cached_timing(cfg, 48) is not None
    assert precision.cached_timing(cfg.replace(strategy="full"), 48) is None  # every parameter: timed apart
    assert precision.cached_timing(cfg.replace(unfreeze=2), 48) is None  # another cut: another step
    ahead = build_model(cfg, 3)  # timed ahead (the warm-up): as the run will freeze it, flags put back
    ahead.conv_stem.register_forward_pre_hook(lambda m, args: stem_trained.append(m.weight.requires_grad))
    stem_trained.clear()
    assert precision.time_ahead(cfg.replace(unfreeze=2), ahead, 48)
    assert stem_trained and not any(stem_trained) and all(p.requires_grad for p in ahead.parameters())


def test_a_run_trains_in_bf16_when_the_stored_step_timing_says_it_pays(shapes, monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    cfg = tiny_cfg(strategy="full", epochs=1, backbone="test_efficientnet")
    precision._store(cfg, 48, {"fp32": 2.0, "bf16": 1.0, "fp32_layers": []})  # as measured on a CPU where it pays
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], Finished), events[-1]
    assert "precision.bf16_measured" in {e.kind for e in events if isinstance(e, Note)}
    fp32 = list(train(cfg.replace(cpu_bf16=False), shapes))
    assert not [e for e in fp32 if isinstance(e, Note)]  # fp32 as chosen: the Model page says so, no note


@pytest.mark.parametrize("timing, cuda, wanted, expected", [
    (None, False, True, False),  # never measured: the default layout
    ({"fp32": 1.3, "fp32_cl": 1.0}, False, True, True),
    ({"fp32": 1.3, "fp32_cl": 1.0, "bf16_cl": 0.5}, False, True, True),
    ({"fp32": 1.02, "fp32_cl": 1.0}, False, True, False),  # within one step's noise
    ({"fp32": 1.3, "fp32_cl": 1.0}, False, False, False),  # RunConfig.channels_last=False
    ({"fp32": 1.0, "fp32_cl": 2.0, "bf16": 0.5}, False, True, False),
    (None, True, True, True),  # a GPU: as configured
])
def test_channels_last_trains_only_where_it_measured_faster(timing, cuda, wanted, expected):
    cfg = tiny_cfg(strategy="full", channels_last=wanted)
    assert precision.channels_last(cfg, cuda, timing) is expected


@pytest.mark.parametrize("strategy", ["full", "partial"])
def test_channels_last_trains_the_same_numbers(shapes, monkeypatch, tmp_path, strategy):
    """The layout changes where the numbers sit in memory, not what is learned: one epoch in each
    (the model and its batches really in channels_last) ends at the same loss and weights."""
    monkeypatch.setenv("TL_CACHE", str(tmp_path))
    cfg = tiny_cfg(strategy=strategy, unfreeze=1, epochs=1, backbone="test_resnet")
    finals, layouts = {}, {}
    for name, timing in (("default", {"fp32": 1.0, "fp32_cl": 2.0}), ("channels_last", {"fp32": 2.0, "fp32_cl": 1.0})):
        precision._store(cfg, 48, timing)
        seen = []
        with monkeypatch.context() as patch:
            patch.setattr(torch.nn.Conv2d, "forward", _recording(torch.nn.Conv2d.forward, seen))
            events = list(train(cfg, shapes))
        assert isinstance(events[-1], Finished), events[-1]
        finals[name] = events[-1].metrics
        layouts[name] = {x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in seen}
    assert layouts == {"default": {False}, "channels_last": {True}}
    for key in ("train/loss", "val/loss", "val/acc"):
        assert finals["default"][key] == pytest.approx(finals["channels_last"][key], rel=1e-3, abs=1e-4)


def _recording(forward, seen: list):
    """Conv2d.forward that keeps each training input it is given (the first conv sees the batch)."""
    def record(self, x):
        if torch.is_grad_enabled() and self.training:
            seen.append(x)
        return forward(self, x)
    return record

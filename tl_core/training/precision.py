"""Which precision trains on the CPU: bfloat16 where it pays, fp32 elsewhere (issue 21 part 3).

bfloat16 autocast speeds a CPU training step only where the CPU computes bf16 natively (AVX-512
BF16 or AMX); elsewhere PyTorch emulates it and it is slower than fp32. Even natively the gain
depends on the backbone: on the project's AMX Xeon one training step of resnet18 ran 2.7x faster
in bf16, tf_efficientnet_lite0 only 1.16x (issue 21). So with RunConfig.cpu_bf16 left automatic
(None), one training step of the backbone is timed in fp32 and in bf16 on this CPU, once per
(machine, backbone, input size, batch), cached next to the engine probe (TL_CACHE), and bf16 trains
when it is at least SPEEDUP times faster. cpu_bf16=True or False (the Model page, `train --bf16` /
`--no-bf16`) decides instead.

Memory layout, measured the same way: the same step is timed with the model and its input in
channels_last. On the project's AMD EPYC (AVX-512 BF16) one step of batch 32 at 224 px ran 1.27x
(resnet18) and 1.50x (tf_efficientnet_lite0) faster in fp32 and 1.31x / 1.52x in bf16; the numbers
are the same, only the order in memory differs. channels_last trains where it measured at least
LAYOUT_GAIN faster; RunConfig.channels_last=False keeps the default layout everywhere.

Layers: inside a bf16 step some layers are slower than in fp32 (5x5 depthwise convolutions on
the EPYC, 4-14x); layer_precision finds them as part of the timing, pins them to fp32, and the bf16
step is timed with them pinned.

Accuracy: issue 21 asks to keep bf16 off where it costs more than 1 point of validation accuracy;
BENCHMARKS.md holds what was measured (and on which CPU).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch
from torch import nn

from tl_core.base.atomic import write_json_atomic
from tl_core.base.config import RunConfig
from tl_core.base.messages import Message
from tl_core.models.engines import cache_dir, machine_key, native_bf16
from tl_core.models.strategies import apply_strategy, set_train_mode
from tl_core.training import layer_precision

SPEEDUP = 1.2  # bf16 must make a training step at least this much faster (issue 21)
# what a run's notes repeat: bf16 in use, or why not on a CPU that has it; plain fp32 on a CPU
# without native bf16 (most) or as chosen is the Model page's sentence only, not a note per run
QUIET = ("precision.fp32_not_native", "precision.fp32_asked")
# per timed step: the run's own batch (the bf16 gain grows with it: Lite0 on the EPYC, in
# channels_last, 1.11x at 8 images, 1.23x at 16, 1.40x at 32), at most this many
MAX_STEP_IMAGES = 32
# channels_last must be this much faster: a margin over one timed step's noise (the layouts
# measured 1.27-1.52x apart where it pays, see the top)
LAYOUT_GAIN = 1.05
CL = "_cl"  # the timing key's suffix for a step in channels_last: "fp32_cl", "bf16_cl"
LAYERS = "fp32_layers"  # the timing key of the layers pinned to fp32 in the bf16 step (layer_precision)


@dataclass(frozen=True)
class StepPlan:
    """How a CPU (or GPU) training step runs: bf16 autocast?, channels_last?, and the sentence why."""
    bf16: bool
    channels_last: bool
    note: Message | None
    fp32_layers: tuple[str, ...] = ()  # inside bf16 autocast, these modules run in fp32

    def layers_note(self) -> Message | None:
        """The sentence on the layers kept in fp32, where there are any."""
        if not (self.bf16 and self.fp32_layers):
            return None
        return Message("precision.layers_fp32", {"n": len(self.fp32_layers), "gain": layer_precision.LAYER_GAIN})


def _path():
    return cache_dir() / "train_step.json"  # train_precision.json before layouts were timed too


def step_images(cfg: RunConfig) -> int:
    return max(2, min(cfg.batch_size, MAX_STEP_IMAGES))


def every_parameter(cfg: RunConfig) -> bool:
    """Does cfg's training step reach every parameter? Not under partial fine-tuning: its step runs
    the frozen stages forward only and trains the last `unfreeze` stages, so that step is the one
    timed (Lite0, last 2 stages, batch 32, on the EPYC: 3.1-5.3 s to time instead of 14.7 s for every
    parameter)."""
    return cfg.strategy != "partial"


def _key(cfg: RunConfig, input_size: int) -> str:
    part = "" if every_parameter(cfg) else f"/partial{cfg.unfreeze}"
    return f"{machine_key()}/{cfg.backbone}/{input_size}/{step_images(cfg)}{part}"


def cached_timing(cfg: RunConfig, input_size: int) -> dict | None:
    """Seconds per training step of cfg's backbone and batch, measured earlier on this machine
    (measure_step's keys); None if never, or if bf16 was timed before its slow layers were pinned
    (that bf16 time is too slow: time it again)."""
    try:
        timing = json.loads(_path().read_text()).get(_key(cfg, input_size))
    except (OSError, ValueError):
        return None
    if timing and {"bf16", "bf16" + CL} & set(timing) and LAYERS not in timing:
        return None
    return timing


def _store(cfg: RunConfig, input_size: int, timing: dict) -> None:
    try:
        table = json.loads(_path().read_text())
    except (OSError, ValueError):
        table = {}
    table[_key(cfg, input_size)] = timing
    _path().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(_path(), table)


def _step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    """One timed training step (forward, backward), after one untimed step of the same shape (the
    first builds oneDNN's kernels for it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(2):  # the time of the second
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, params)  # no optimizer step: the weights stay as they are
        del grads
    return time.perf_counter() - t


def measure_step(model: nn.Module, input_size: int, num_classes: int, bf16: bool = True,
                 images: int = MAX_STEP_IMAGES, between=None, every: bool = True) -> dict:
    """_measure_step, its random batches drawn aside: the run's random numbers stay as they were,
    so a run gives the same result whether its step was timed now or read from the cache."""
    with torch.random.fork_rng(devices=[]):
        return _measure_step(model, input_size, num_classes, bf16, images, between, every)


def _measure_step(model: nn.Module, input_size: int, num_classes: int, bf16: bool,
                  images: int, between, every: bool) -> dict:
    """One training step of `model` timed on this CPU: of every parameter, or (`every` False) of
    those that train as the strategy left them, the frozen BatchNorm in eval mode as in the run
    (strategies.set_train_mode). Seconds each: fp32 in
    the default layout ("fp32") and in channels_last ("fp32_cl"); then, when `bf16`, bf16 in the
    faster of the two ("bf16" or "bf16_cl"; three timed steps, not four: the layouts ranked the
    same in both precisions for resnet18 and Lite0 on the EPYC), with the layers that measured
    slower in bf16 pinned to fp32 (their names under "fp32_layers").
    BatchNorm statistics and the layout are put back: timing must not change the model.
    `between`, if given, is called before each timed step (a background helper waits there while a run trains)."""
    was_training, flags = model.training, {n: p.requires_grad for n, p in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.state_dict().items() if k in dict(model.named_buffers())}
    if every:
        model.train()
        model.requires_grad_(True)
    else:
        set_train_mode(model)
    x = torch.randn(images, 3, input_size, input_size)
    y = torch.randint(num_classes, (images,))

    def timed(bf16_on: bool, layout) -> float:
        if between is not None:
            between()
        model.to(memory_format=layout)
        return _step_seconds(model, x.contiguous(memory_format=layout), y, bf16_on)

    try:
        timing = {"fp32": timed(False, torch.contiguous_format), "fp32" + CL: timed(False, torch.channels_last)}
        if bf16:
            cl = timing["fp32"] / timing["fp32" + CL] >= LAYOUT_GAIN
            layout = torch.channels_last if cl else torch.contiguous_format
            model.to(memory_format=layout)
            timing[LAYERS] = layer_precision.slow_in_bf16(model, input_size, images, layout, between,
                                                          trained_only=not every)
            handles = layer_precision.keep_fp32(model, timing[LAYERS])
            try:
                timing["bf16" + (CL if cl else "")] = timed(True, layout)
            finally:
                for h in handles:
                    h.remove()
        return timing
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
        model.load_state_dict(buffers, strict=False)
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


def _best(timing: dict, name: str) -> float:
    """The faster layout's seconds for precision `name`."""
    return min(timing[k] for k in (name, name + CL) if k in timing)


def decide(cfg: RunConfig, cuda: bool, timing: dict | None, native: bool | None = None) -> tuple[bool, Message | None]:
    """(train in bf16?, the sentence saying why); no sentence on a GPU (AMP is its own setting)."""
    if cuda:
        return False, None
    native = native_bf16() if native is None else native
    if cfg.cpu_bf16 is not None:
        on = bool(cfg.cpu_bf16) and native
        if cfg.cpu_bf16 and not native:
            return False, Message("train.no_native_bf16")
        return on, Message("precision.bf16_asked" if on else "precision.fp32_asked")
    if not native:
        return False, Message("precision.fp32_not_native")
    if not timing or not {"bf16", "bf16" + CL} & set(timing):  # bf16 never timed here
        return False, Message("precision.not_measured", {"min": SPEEDUP})
    speedup = _best(timing, "fp32") / _best(timing, "bf16")
    kind = "precision.bf16_measured" if speedup >= SPEEDUP else "precision.fp32_measured"
    return speedup >= SPEEDUP, Message(kind, {"backbone": cfg.backbone, "speedup": speedup, "min": SPEEDUP})


def channels_last(cfg: RunConfig, cuda: bool, timing: dict | None) -> bool:
    """Train in channels_last? On a GPU as configured; on the CPU where one fp32 step measured at
    least LAYOUT_GAIN faster in it (never where it was not measured; bf16 is timed in that layout)."""
    if cuda or not cfg.channels_last:
        return cfg.channels_last and cuda
    if not timing or not {"fp32", "fp32" + CL} <= set(timing):
        return False
    return timing["fp32"] / timing["fp32" + CL] >= LAYOUT_GAIN


def _needs_timing(cfg: RunConfig, cuda: bool) -> bool:
    """Does a CPU choice depend on the timed step: the layout (channels_last allowed) or bf16 (automatic, native)?"""
    # bf16 asked for is timed too: the timing finds the layers to keep in fp32
    return not cuda and (cfg.channels_last or (cfg.cpu_bf16 is not False and native_bf16()))


def choose(cfg: RunConfig, model: nn.Module, input_size: int, num_classes: int, cuda: bool) -> StepPlan:
    """decide() and channels_last(), timing the training step first where a choice needs it and it
    was never timed on this machine."""
    timing = None
    if _needs_timing(cfg, cuda):
        timing = cached_timing(cfg, input_size)
        if timing is None:
            timing = measure_step(model, input_size, num_classes, bf16=native_bf16(), images=step_images(cfg),
                                  every=every_parameter(cfg))
            _store(cfg, input_size, timing)
    return _plan(cfg, cuda, timing)


def _plan(cfg: RunConfig, cuda: bool, timing: dict | None) -> StepPlan:
    bf16, note = decide(cfg, cuda, timing)
    layers = tuple(timing.get(LAYERS, ())) if bf16 and timing else ()
    return StepPlan(bf16, channels_last(cfg, cuda, timing), note, layers)


def time_ahead(cfg: RunConfig, model: nn.Module, input_size: int, between=None) -> bool:
    """Time and keep the training step of cfg's backbone and batch where choose() would time it at
    the start of the first fine-tuning run (9-17 s for Lite0 at batch 32 on the 2-core EPYC); the
    app's launch warm-up does it for the default model, so that run starts at once (issue 21: never
    block a run on a probe). -> True when it timed (False: kept already, or no timing needed here)."""
    if not _needs_timing(cfg, cuda=False) or cached_timing(cfg, input_size) is not None:
        return False
    flags = [p.requires_grad for p in model.parameters()]
    if not every_parameter(cfg):
        apply_strategy(model, cfg)  # the stages that train, frozen as the run will freeze them
    try:
        _store(cfg, input_size, measure_step(model, input_size, 2, bf16=native_bf16(), images=step_images(cfg),
                                             between=between, every=every_parameter(cfg)))
    finally:
        for p, trains in zip(model.parameters(), flags):
            p.requires_grad_(trains)
    return True


def frozen_pass_bf16(cfg: RunConfig) -> bool:
    """May the frozen pass (feature extraction's features, a fine-tuning run's starting head) run in
    bf16? As chosen (cpu_bf16 True / False); automatic: where the CPU computes it natively, and
    then only where it measures faster (features._ColdSwitch, engines.plan). Measured on the EPYC
    (AVX-512 BF16), Lite0, defaults: TrashNet 887 photos 9.8 s instead of 16.6 s, validation 82.5%
    against 81.9% in fp32; hymenoptera 4.2 s instead of 8.7 s, 94.8% both (BENCHMARKS.md)."""
    return native_bf16() if cfg.cpu_bf16 is None else bool(cfg.cpu_bf16)


def describe(cfg: RunConfig, input_size: int, cuda: bool = False) -> Message | None:
    """What the Model page says before the run: decide() on what was measured so far (no timing)."""
    return decide(cfg, cuda, cached_timing(cfg, input_size))[1]


def describe_layers(cfg: RunConfig, input_size: int) -> Message | None:
    """The Model page's sentence on the layers kept in fp32 in a bf16 step, where any were measured."""
    return _plan(cfg, False, cached_timing(cfg, input_size)).layers_note()


def describe_layout(cfg: RunConfig, input_size: int) -> Message | None:
    """The Model page's sentence on the memory layout, where a step was timed on this CPU."""
    timing = cached_timing(cfg, input_size)
    if not cfg.channels_last or not timing or "fp32" + CL not in timing:
        return None
    gain = timing["fp32"] / timing["fp32" + CL]
    return Message("layout.channels_last" if gain >= LAYOUT_GAIN else "layout.default",
                   {"backbone": cfg.backbone, "gain": gain, "min": LAYOUT_GAIN})

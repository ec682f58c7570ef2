"""Which precision trains on the CPU: bfloat16 where it pays, fp32 elsewhere (issue 21 part 3).

bfloat16 autocast speeds a CPU training step only where the CPU computes bf16 natively (AVX-512
BF16 or AMX); elsewhere PyTorch emulates it and it is slower than fp32. Even natively the gain
depends on the backbone: on the project's AMX Xeon one training step of resnet18 ran 2.7x faster
in bf16, tf_efficientnet_lite0 only 1.16x (issue 21). So with RunConfig.cpu_bf16 left automatic
(None), one training step of the backbone is timed in fp32 and in bf16 on this CPU, once per
(machine, backbone, input size), cached next to the engine probe (TL_CACHE), and bf16 trains when
it is at least SPEEDUP times faster. cpu_bf16=True or False (the Model page, `train --bf16` /
`--no-bf16`) decides instead.

Accuracy: issue 21 asks to keep bf16 off where it costs more than 1 point of validation accuracy;
BENCHMARKS.md holds what was measured (and on which CPU).
"""
from __future__ import annotations

import json
import time

import torch
from torch import nn

from tl_core.base.atomic import write_json_atomic
from tl_core.base.config import RunConfig
from tl_core.base.messages import Message
from tl_core.models.engines import cache_dir, machine_key, native_bf16

SPEEDUP = 1.2  # bf16 must make a training step at least this much faster (issue 21)
# what a run's notes repeat: bf16 in use, or why not on a CPU that has it; plain fp32 on a CPU
# without native bf16 (most) or as chosen is the Model page's sentence only, not a note per run
QUIET = ("precision.fp32_not_native", "precision.fp32_asked")
STEP_IMAGES = 8  # per timed step: a real batch's shape, seconds at most even for a large backbone


def _path():
    return cache_dir() / "train_precision.json"


def _key(backbone: str, input_size: int) -> str:
    return f"{machine_key()}/{backbone}/{input_size}"


def cached_timing(backbone: str, input_size: int) -> dict | None:
    """{"fp32": s, "bf16": s} per training step, measured earlier on this machine; None if never."""
    try:
        return json.loads(_path().read_text()).get(_key(backbone, input_size))
    except (OSError, ValueError):
        return None


def _store(backbone: str, input_size: int, timing: dict) -> None:
    try:
        table = json.loads(_path().read_text())
    except (OSError, ValueError):
        table = {}
    table[_key(backbone, input_size)] = timing
    _path().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(_path(), table)


def _step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, repeats: int = 1) -> float:
    """The best of `repeats` timed training steps (forward, backward), after one untimed step."""
    params = [p for p in model.parameters() if p.requires_grad]
    best = float("inf")
    for i in range(repeats + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, params)  # no optimizer step: the weights stay as they are
        del grads
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def measure_step(model: nn.Module, input_size: int, num_classes: int) -> dict:
    """One full training step of `model` (every parameter) timed in fp32 and in bf16 on this CPU,
    seconds each. BatchNorm statistics are put back: the timing must not change the model."""
    was_training, flags = model.training, {n: p.requires_grad for n, p in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.state_dict().items() if k in dict(model.named_buffers())}
    model.train()
    model.requires_grad_(True)
    x = torch.randn(STEP_IMAGES, 3, input_size, input_size)
    y = torch.randint(num_classes, (STEP_IMAGES,))
    try:
        return {"fp32": _step_seconds(model, x, y, False), "bf16": _step_seconds(model, x, y, True)}
    finally:
        model.train(was_training)
        model.load_state_dict(buffers, strict=False)
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


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
    if timing is None:
        return False, Message("precision.not_measured", {"min": SPEEDUP})
    speedup = timing["fp32"] / timing["bf16"]
    kind = "precision.bf16_measured" if speedup >= SPEEDUP else "precision.fp32_measured"
    return speedup >= SPEEDUP, Message(kind, {"backbone": cfg.backbone, "speedup": speedup, "min": SPEEDUP})


def choose(cfg: RunConfig, model: nn.Module, input_size: int, num_classes: int, cuda: bool) -> tuple[bool, Message | None]:
    """decide(), timing the training step first where the choice needs it and it was never timed."""
    timing = None
    if not cuda and cfg.cpu_bf16 is None and native_bf16():
        timing = cached_timing(cfg.backbone, input_size)
        if timing is None:
            timing = measure_step(model, input_size, num_classes)
            _store(cfg.backbone, input_size, timing)
    return decide(cfg, cuda, timing)


def describe(cfg: RunConfig, input_size: int, cuda: bool = False) -> Message | None:
    """What the Model page says before the run: decide() on what was measured so far (no timing)."""
    return decide(cfg, cuda, cached_timing(cfg.backbone, input_size))[1]

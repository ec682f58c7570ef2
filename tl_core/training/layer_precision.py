"""Layers that train faster in fp32 inside a bfloat16 step.

bf16 autocast speeds most of a CPU training step, but not every layer: on the project's AMD EPYC
(AVX-512 BF16), batch 32, channels_last, the backward of a 5x5 depthwise convolution took 96.5 ms
in bf16 against 6.9 ms in fp32 (672 channels at 14 px, stride 2) and 37.5 against 9.2 ms (1152 at
7 px), while the 3x3 ones and the pointwise convolutions ran faster in bf16. One bf16 training step
of tf_efficientnet_lite0's last two stages spent 79% of its time in convolution_backward.

So when a run trains in bf16, each depthwise convolution is timed once, at its own input shape and
the run's batch, forward and backward, in bf16 and as it runs when pinned to fp32 (the casts
included); those where fp32 measured at least LAYER_GAIN faster run in fp32: a forward pre-hook
switches autocast off around that layer only. The list is kept with the step timing
(precision.measure_step), and the bf16 step is timed with it applied, so the bf16-or-fp32 decision
sees the step as it will train.
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

# fp32 must be this much faster for a layer to leave bf16. The slow cases measured 4-14x; layers
# measured 1.2-1.3x faster in fp32 lost it again to the casts around them (pinning every depthwise
# conv of Lite0 made its full step 34 img/s instead of 43 with only the slow ones pinned)
LAYER_GAIN = 1.5


def depthwise_convs(model: nn.Module, trained_only: bool = False) -> dict[str, nn.Conv2d]:
    """The model's depthwise convolutions (one filter per channel) by module name; `trained_only`:
    those whose weights train (a frozen one runs forward only, where bf16 was not the slow part)."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            and (m.weight.requires_grad or not trained_only)}


def _input_shapes(model: nn.Module, names: list[str], input_size: int) -> dict[str, tuple]:
    """Each named layer's input shape (batch 1) from one forward pass in eval mode (no statistics change)."""
    modules, shapes = dict(model.named_modules()), {}

    def record(name):
        def hook(module, args, out):  # returns None: the output stays as it is
            shapes.setdefault(name, tuple(args[0].shape))
        return hook
    hooks = [modules[n].register_forward_hook(record(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, input_size, input_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes


def _layer_seconds(conv: nn.Module, x: torch.Tensor, pinned: bool, layout) -> float:
    """Forward and backward of a copy of one layer (in `layout`) under bf16 autocast, pinned to fp32
    or not; the faster of two timed passes after one untimed (which builds oneDNN's kernels for the
    shape)."""
    layer = copy.deepcopy(conv).to(memory_format=layout)
    handles = keep_fp32(layer, [""]) if pinned else []
    best = float("inf")
    try:
        for i in range(3):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = layer(x)
            out.float().sum().backward()
            if i:
                best = min(best, time.perf_counter() - t)
    finally:
        for h in handles:
            h.remove()
    return best


def slow_in_bf16(model: nn.Module, input_size: int, images: int, layout=torch.contiguous_format,
                 between=None, trained_only: bool = False) -> list[str]:
    """The names of the depthwise convolutions that measured at least LAYER_GAIN faster pinned to
    fp32 than in bf16, at `images` per batch and in `layout`. Layers of one shape are timed once.
    `between`, if given, is called before each layer's timing (a background helper waits there);
    `trained_only`: only the layers whose weights train are timed (and can be pinned)."""
    convs = depthwise_convs(model, trained_only)
    shapes = _input_shapes(model, list(convs), input_size)
    by_shape: dict[tuple, list[str]] = {}
    for name, conv in convs.items():
        if name in shapes:
            sig = (shapes[name], conv.kernel_size, conv.stride, conv.padding, conv.dilation, type(conv))
            by_shape.setdefault(sig, []).append(name)
    slow = []
    for names in by_shape.values():
        if between is not None:
            between()
        conv = convs[names[0]]
        # what the layer receives inside a bf16 step: a bf16 activation that needs its gradient
        x = torch.randn((images,) + shapes[names[0]][1:], dtype=torch.bfloat16).contiguous(memory_format=layout)
        x.requires_grad_(True)
        if _layer_seconds(conv, x, False, layout) >= LAYER_GAIN * _layer_seconds(conv, x, True, layout):
            slow.extend(names)
    return sorted(slow)


def _autocast_off(module: nn.Module, args):
    module._tl_autocast_was = torch.is_autocast_enabled("cpu")
    torch.set_autocast_enabled("cpu", False)
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _autocast_back(module: nn.Module, args, out):
    torch.set_autocast_enabled("cpu", module._tl_autocast_was)


def keep_fp32(model: nn.Module, names) -> list:
    """Run the named submodules ("" is the model itself) in fp32 inside CPU bf16 autocast; the
    hook handles, to remove them. Parameters and state_dict are untouched: checkpoints and exports
    see the same model."""
    modules, handles = dict(model.named_modules()), []
    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_pre_hook(_autocast_off))
            handles.append(modules[name].register_forward_hook(_autocast_back))
    return handles

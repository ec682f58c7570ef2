"""Weights from other libraries: match tensors to a timm architecture by position and shape.

Libraries that re-implement an architecture (efficientnet_pytorch, Keras ports, ...) register
the same tensors in the same order under their own names. timm's `remap_state_dict` zips the
two lists and reshapes on a size match; we require identical shapes, ignore BatchNorm's step
counters (absent from many files, never used for inference) and set the classifier aside, so a
file that only looks alike is refused instead of loading garbage.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_HEAD_TENSORS = 2  # a linear classifier: weight and bias


@dataclass(frozen=True)
class PositionalMatch:
    state: dict  # the file's tensors under the model's names (head excluded)
    matched: int  # tensors matched by position and shape
    head: int  # trailing tensors of the file taken as its classifier and not loaded


def _counters(name: str) -> bool:
    return name.endswith("num_batches_tracked")


def remap_by_position(model_state: dict, file_state: dict, head_prefixes: tuple[str, ...]) -> PositionalMatch | None:
    """The file's tensors renamed to the model's by order, or None when shapes do not line up.

    `model_state` is the target model's state_dict (any device, meta included); its classifier
    keys (`head_prefixes`) are left out, and up to MAX_HEAD_TENSORS trailing tensors of the file
    are taken as the file's own classifier.
    """
    body = [(k, tuple(v.shape)) for k, v in model_state.items()
            if not k.startswith(head_prefixes) and not _counters(k)]
    given = [(k, v) for k, v in file_state.items() if isinstance(v, torch.Tensor) and not _counters(k)]
    extra = len(given) - len(body)
    if not body or not 0 <= extra <= MAX_HEAD_TENSORS:
        return None
    if any(tuple(v.shape) != shape for (_, shape), (_, v) in zip(body, given)):
        return None
    state = {name: v for (name, _), (_, v) in zip(body, given)}
    return PositionalMatch(state, len(state), extra)

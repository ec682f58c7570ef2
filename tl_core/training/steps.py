"""Pieces both training loops share (train.ImageLoop and features.FeatureLoop): the learning-rate
schedule, the optimizer, DataLoader workers and the validation metrics."""
from __future__ import annotations

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn

from tl_core.base.config import RunConfig


MIN_LR_FRACTION = 0.01  # the cosine decays to 1% of the peak


class StepSchedule:
    """Linear warm-up from 0, then cosine decay to 1% of the peak: timm's CosineLRScheduler, stepped
    once per optimizer step. Step k uses the schedule's value at k + 1, so no step has lr 0.

    Against the hand-written LambdaLR curve this replaced, the warm-up is identical and the cosine
    runs one step earlier (it has no second step at the peak): at most pi/2 / (decay steps) of
    the peak apart, 0.7% for 220 steps (tests/test_measures.py checks the bound)."""

    def __init__(self, cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        total = max(1, cfg.epochs * steps_per_epoch)
        for group in optimizer.param_groups:  # timm schedules one value; each group keeps its ratio to the peak
            group["lr_scale"], group["initial_lr"] = group["lr"] / cfg.lr, cfg.lr
        self.timm = CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=MIN_LR_FRACTION * cfg.lr,
                                      warmup_t=warmup, warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False)
        self.done = 0
        self.timm.step_update(1)

    def step(self) -> None:
        self.done += 1
        self.timm.step_update(self.done + 1)


def make_optimizer(cfg: RunConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """cfg.optimizer over the strategy's parameter groups."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def loader_kwargs(run) -> dict:
    """DataLoader arguments for a train.Run (its device and thread count)."""
    # On CPU the decoded-image cache (transforms.DecodedCache) makes loading cheap after epoch 1,
    # and worker processes would compete with the model for the same cores: no workers.
    # On CUDA, forked workers keep the GPU fed; fork (not spawn) so Streamlit's page script is
    # not re-run in each worker.
    if not run.cuda:
        return {"num_workers": 0}
    workers = max(1, min(8, run.threads - 1))
    return {"num_workers": workers, "pin_memory": True, "persistent_workers": True,
            "multiprocessing_context": "fork"}


def val_metrics(run, outputs: list) -> tuple[dict, list]:
    """(val loss and accuracy, per-image probabilities) from [(logits, labels)] batches."""
    logits = torch.cat([o[0] for o in outputs])
    y = torch.cat([o[1] for o in outputs])
    loss = nn.functional.cross_entropy(logits, y).item()
    acc = (logits.argmax(1) == y).float().mean().item()
    probs = logits.softmax(1)
    # logits too: temperature scaling (calibration.py) needs them unrounded by softmax
    items = [{"path": it.path, "true": it.label, "probs": [round(p, 5) for p in row],
              "logits": [round(z, 5) for z in zrow]}
             for it, row, zrow in zip(run.dataset.val, probs.tolist(), logits.tolist())]
    return {"val/loss": loss, "val/acc": acc}, items

"""Pieces the training loops share (train.ImageLoop, activations.ActivationLoop, features.FeatureLoop):
the learning-rate schedule, the optimizer, one training step, DataLoader workers and the metrics."""
from __future__ import annotations

import time

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn

from tl_core.base.config import RunConfig
from tl_core.base.messages import LossError


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


def train_step(loop, forward, x, y: torch.Tensor, epoch: int, step: int) -> tuple[float, int]:
    """One optimizer step of `loop` (its run, optimizer and scheduler) on the batch (x, y): the
    logits forward(x) under the run's autocast, the loss (a sentence if it is not a number), the
    backward pass, the optimizer and the schedule. -> (the batch's loss, how many it got right)."""
    run = loop.run
    with run.autocast():
        logits = forward(x)
        loss = run.loss_fn(logits.float(), y)
    if not torch.isfinite(loss):
        raise LossError("train.loss_not_finite_step", loss=loss.item(), epoch=epoch, step=step)
    loop.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    loop.optimizer.step()
    loop.scheduler.step()
    return loss.item(), (logits.argmax(1) == y).sum().item()


def epoch_metrics(loop, loss_sum: float, correct: int, seen: int, t_epoch: float) -> dict:
    """The training metrics of an epoch that started at perf_counter() `t_epoch`."""
    return {"train/loss": loss_sum / max(1, seen), "train/acc": correct / max(1, seen),
            "images_per_s": seen / (time.perf_counter() - t_epoch), "lr": loop.optimizer.param_groups[0]["lr"]}


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

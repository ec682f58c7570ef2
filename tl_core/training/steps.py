"""Pieces both training loops share (train.ImageLoop and features.FeatureLoop): the learning-rate
schedule, the optimizer, DataLoader workers and the validation metrics."""
from __future__ import annotations

import math

import torch
from torch import nn

from tl_core.base.config import RunConfig


def lr_lambda(cfg: RunConfig, steps_per_epoch: int):
    """Linear warm-up, then cosine decay to 1% of the peak, per optimizer step."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = max(1, cfg.epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


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

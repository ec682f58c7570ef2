"""Partial fine-tuning from cached activations (issue 21 part 4).

Under partial fine-tuning the early stages are frozen, BatchNorm included (strategies.set_train_mode
keeps it in eval mode): they map an image to the same activation every time. So they run once,
on V augmented views of every training image (the augmentation is applied to the image, before
the frozen stages) and on every validation image, and the activations at the freeze boundary are
kept in memory as float16 (bfloat16 where a value would overflow float16). Each epoch then trains
only the tail: every image draws one of its V views at random. The plain loop (train.ImageLoop)
ran the frozen stages forward on every image in every epoch although they never change.

It applies when the backbone's forward_features is its children applied in order (ResNets,
EfficientNets, MobileNets, ConvNeXts...; checked numerically on a random batch, else the plain
loop runs: a ViT adds its position embedding between children) and when the cache fits under
TL_ACTIVATION_CACHE_MB (default 1024); otherwise the plain loop runs, with a note saying why.
RunConfig.activation_cache=False (`train --no-activation-cache`) always runs the plain loop.
The activations are also kept on disk for the next run on the same photos (activation_store).
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from tl_core.base.config import megabytes
from tl_core.base.events import Note, Progress
from tl_core.base.messages import Message
from tl_core.data.transforms import BatchNormalize, ImageDataset, eval_transform, train_transform
from tl_core.models.fold import fold_batchnorm
from tl_core.models.strategies import set_train_mode
from tl_core.training import activation_store, distributed
from tl_core.training.features import model_key
from tl_core.training.steps import StepSchedule, epoch_metrics, loader_kwargs, make_optimizer, train_step, val_metrics

VIEWS = 4  # augmented views cached per training image (issue 21: V = 4)
# children that belong to timm's forward_head, not forward_features
_HEAD_CHILDREN = {"global_pool", "head", "fc", "classifier", "head_drop", "fc_norm", "head_dist", "flatten"}
FP16_MAX = 60_000.0  # float16's largest finite value is 65504: keep a margin


def cap_mb() -> int:
    return int(megabytes("TL_ACTIVATION_CACHE_MB", 1024))


def feature_parts(model: nn.Module) -> list[nn.Module]:
    """The modules of forward_features in order: top-level children up to the head, each
    nn.Sequential child opened one level (EfficientNet's blocks -> its stages)."""
    parts = []
    for name, child in model.named_children():
        if name in _HEAD_CHILDREN:
            break
        parts.extend(child.children() if isinstance(child, nn.Sequential) else [child])
    return parts


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def split_at_freeze(model: nn.Module, example: torch.Tensor) -> tuple[list, list] | None:
    """(frozen prefix, trainable tail) of forward_features, or None where the model cannot be split
    there: nothing frozen at the front, or its forward_features is not its children in order."""
    parts = feature_parts(model)
    first = next((i for i, m in enumerate(parts) if _trains(m)), None)
    if not first or any(_trains(m) for m in parts[:first]):
        return None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = example
            for m in parts:
                x = m(x)
            same = x.shape == (ref := model.forward_features(example)).shape and torch.allclose(x, ref, 1e-4, 1e-4)
    except Exception:  # a child that needs what forward_features adds between children (a ViT)
        same = False
    finally:
        model.train(was_training)
    return (parts[:first], parts[first:]) if same else None


def run_parts(parts: list, x: torch.Tensor) -> torch.Tensor:
    for m in parts:
        x = m(x)
    return x


class Plan:
    """Whether and how a run trains from cached activations: the split, the size, or why not."""

    def __init__(self, prefix, tail, views: int, mb: float):
        self.prefix, self.tail, self.views, self.mb = prefix, tail, views, mb


def plan(run) -> tuple[Plan | None, Message | None]:
    """(a Plan, None), or (None, a note saying why the plain loop runs), or (None, None) when the
    cache does not apply to this run at all (not partial, switched off, several ranks)."""
    cfg = run.cfg
    if cfg.strategy != "partial" or not cfg.activation_cache or distributed.active():
        return None, None
    example = torch.randn(2, 3, run.pp.input_size, run.pp.input_size, device=run.device)
    split = split_at_freeze(run.model, example)
    if split is None:
        return None, Message("train.activations_unsupported", {"backbone": cfg.backbone})
    run.model.eval()  # set_train_mode puts it back at each epoch
    with torch.no_grad():
        per_image = run_parts(split[0], example[:1]).numel() * 2  # 2 bytes: float16/bfloat16
    views = VIEWS if cfg.augment != "none" else 1  # without augmentation every view is the same
    mb = per_image * (views * len(run.dataset.train) + len(run.dataset.val)) / 1024**2
    if mb > cap_mb():
        return None, Message("train.activations_too_big", {"mb": mb, "cap": cap_mb()})
    return Plan(split[0], split[1], views, mb), None


class SeededViews(ImageDataset):
    """One augmented view of each image, drawn from a seed of its own (run seed, view, image): the
    same photos give the same views in every run with that seed, whatever else used the random
    generator before, so activations kept on disk are exactly what this run would compute."""

    def __init__(self, items, pp, transform, seed: int, view: int):
        super().__init__(items, pp, transform)
        self.base = (seed * 1_000_003 + view) * 1_000_003

    def __getitem__(self, i):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.base + i)
            return super().__getitem__(i)


class ActivationLoop:
    """Epochs over cached activations at the freeze boundary: only the tail runs (see the top)."""

    def __init__(self, run, p: Plan):
        self.run, self.plan = run, p
        cfg, n = run.cfg, len(run.dataset.train)
        self.batch = cfg.batch_size
        # as ImageLoop: a final batch of 1 breaks BatchNorm in train mode; drop it only then
        self.n_used = n - 1 if n % self.batch == 1 and n > 1 else n
        self.steps_per_epoch = math.ceil(self.n_used / self.batch)
        self.optimizer = make_optimizer(cfg, run.groups)
        self.scheduler = StepSchedule(cfg, self.optimizer, self.steps_per_epoch)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.y_train = torch.tensor([it.label for it in run.dataset.train])
        self.y_val = torch.tensor([it.label for it in run.dataset.val])
        self.train_acts = self.val_acts = None

    def prepare(self):
        """Run the frozen stages once: V augmented views of each training image, then validation;
        or read them back from an earlier run on the same photos (activation_store)."""
        run, p = self.run, self.plan
        items, val, pp = run.dataset.train, run.dataset.val, run.pp
        key = activation_store.key(model_key(run.model, pp), len(p.prefix), bool(run.cpu_bf16), run.fp32_layers,
                                   run.cfg.augment, run.cfg.seed, p.views, items, val)
        kept = activation_store.load(key, p.views, len(items), len(val))
        if kept is not None:
            self.train_acts, self.val_acts = kept
            yield Note.of(Message("train.activations_kept", {"views": p.views, "n": len(items) + len(val)}))
            return
        total, done, t0 = p.views * len(items) + len(val), 0, time.perf_counter()
        self.frozen = self._frozen_stages()
        views = []
        for v in range(p.views):
            transform = train_transform(pp, run.cfg.augment, normalize=False)
            acts = yield from self._pass(SeededViews(items, pp, transform, run.cfg.seed, v), done, total, t0)
            views.append(acts)
            done += len(items)
        self.train_acts = torch.stack(views)  # (V, n, C, H, W)
        self.val_acts = yield from self._pass(ImageDataset(val, pp, eval_transform(pp, normalize=False)),
                                              done, total, t0)
        activation_store.save(key, self.train_acts, self.val_acts)

    def _frozen_stages(self) -> nn.Module:
        """The frozen stages as one module, their BatchNorm folded into the convolutions (models.fold:
        the same activations to float rounding, computed faster), in the run's memory layout."""
        run = self.run
        run.model.eval()
        stages = nn.Sequential(*self.plan.prefix)
        example = torch.randn(2, 3, run.pp.input_size, run.pp.input_size, device=run.device)
        return fold_batchnorm(stages, run.in_layout(example)).to(
            memory_format=torch.channels_last if run.channels_last else torch.contiguous_format)

    def _pass(self, dataset, done: int, total: int, t0: float):
        """The prefix's output for every image of `dataset`, in order, as one float16 tensor."""
        run = self.run
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch, **loader_kwargs(run))
        normalize, out = BatchNormalize(run.pp), []
        run.model.eval()  # the frozen stages: BatchNorm with its running statistics, no dropout
        for x, _ in loader:
            run.check_stop()
            with torch.inference_mode(), run.autocast():
                a = self.frozen(run.in_layout(normalize(x.to(run.device)))).float()
            out.append(a.to(torch.float16 if a.abs().max() < FP16_MAX else torch.bfloat16).cpu())
            done += len(x)
            rate = done / (time.perf_counter() - t0)
            yield Progress("activations", 0, done, total, None, rate, (total - done) / rate)
        dtype = torch.float16 if all(o.dtype == torch.float16 for o in out) else torch.bfloat16
        return torch.cat([o.to(dtype) for o in out])

    def _forward(self, acts: torch.Tensor) -> torch.Tensor:
        x = run_parts(self.plan.tail, self.run.in_layout(acts.to(self.run.device, torch.float32)))
        return self.run.model.forward_head(x)

    def train_epoch(self, epoch: int):
        run = self.run
        set_train_mode(run.model)
        order = torch.randperm(len(self.y_train), generator=self.gen)[:self.n_used]
        view = torch.randint(self.plan.views, (len(self.y_train),), generator=self.gen)
        loss_sum, correct, seen, t_epoch = 0.0, 0, 0, time.perf_counter()
        for step, start in enumerate(range(0, self.n_used, self.batch), 1):
            run.check_stop()
            idx = order[start:start + self.batch]
            loss, right = train_step(self, self._forward, self.train_acts[view[idx], idx],
                                     self.y_train[idx].to(run.device), epoch, step)
            loss_sum += loss * len(idx)
            correct += right
            seen += len(idx)
            rate = seen / (time.perf_counter() - t_epoch)
            left = (self.n_used - seen + (run.cfg.epochs - epoch) * self.n_used) / rate
            yield Progress("train", epoch, step, self.steps_per_epoch, loss, rate, left)
        return epoch_metrics(self, loss_sum, correct, seen, t_epoch)

    def validate(self, epoch: int):
        run = self.run
        run.model.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(self.y_val), self.batch):
                run.check_stop()
                with run.autocast():
                    logits = self._forward(self.val_acts[start:start + self.batch]).float()
                outputs.append((logits.cpu(), self.y_val[start:start + self.batch]))
        yield Progress("val", epoch, 1, 1)
        return val_metrics(run, outputs)

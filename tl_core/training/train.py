"""train(cfg, dataset, stop) -> Iterator[Event]: the one training loop. No threads, no UI."""
from __future__ import annotations

import contextlib
import errno
import math
import os
import random
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tl_core.base import background
from tl_core.base.atomic import write_json_atomic
from tl_core.base.config import RunConfig
from tl_core.base.events import EpochEnd, Failed, Finished, Note, Progress, Started, Stopped
from tl_core.base.messages import (
    OUT_OF_MEMORY,
    ConfigError,
    DataError,
    Message,
    UserError,
    mentions_out_of_memory,
)
from tl_core.data.dataset import Dataset
from tl_core.data.transforms import (
    DECODED,
    BatchNormalize,
    ImageDataset,
    eval_transform,
    preprocess_for,
    train_transform,
)
from tl_core.models import engines
from tl_core.models.checkpoint import save_model, save_preprocess
from tl_core.models.model import build_model, count_params, source_sentence
from tl_core.models.strategies import apply_strategy, set_train_mode
from tl_core.training import activations, distributed, features, layer_precision, precision
from tl_core.training.activations import ActivationLoop
from tl_core.training.balance import class_weights_for
from tl_core.training.device import configure_threads, cpu_sample, pick_device, usable_cores  # noqa: F401
from tl_core.training.features import FeatureLoop
from tl_core.training.solved_head import SolvedHeadLoop, init_head_from_probe
from tl_core.training.steps import (  # noqa: F401  (public here too)
    StepSchedule,
    epoch_metrics,
    loader_kwargs,
    make_optimizer,
    train_step,
    val_metrics,
)


class StopRequested(Exception):
    """Raised inside the loop when the stop flag is set; train() turns it into Stopped."""


def user_message(e: BaseException) -> Message:
    """One sentence for the user; the traceback goes to Failed.detail."""
    peer = distributed.peer_failure(e)  # --devices N: another rank died or went silent
    if peer is not None:
        return peer
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or mentions_out_of_memory(str(e)):
        return OUT_OF_MEMORY
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return Message("train.disk_full")
    if isinstance(e, UserError):
        return e.message
    return Message("train.failed", {"detail": f"{type(e).__name__}: {e}"})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# A best checkpoint is written when it improves, but at most once per SAVE_EVERY_S: a cached
# feature-extraction epoch takes milliseconds, and each resnet18 save is 45 MB + fsync (3 saves
# were 0.65 s of a 1.15 s cached 20-epoch run on hymenoptera). Meanwhile the best epoch's
# changing tensors wait in memory; flush_best() writes them at the end, on stop and on failure.
# Epochs longer than this (every image loop in practice) still save each improvement at once.
SAVE_EVERY_S = 5.0


class Run:
    """What one training run holds: model, optimizer, best checkpoint, timings."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, run_dir: Path | None, stop):
        if not dataset.val:
            raise DataError("data.no_val_images")
        self.cfg, self.dataset, self.run_dir, self.stop = cfg, dataset, run_dir, stop
        self.classes = list(dataset.classes)
        sample = cpu_sample()
        self.device = pick_device(cfg)
        seed_everything(cfg.seed)
        self.model = build_model(cfg, len(self.classes))
        # on CUDA the CPU threads only feed the GPU: no load-based reduction there
        self.threads = configure_threads(None if self.cuda else sample)
        self.pp = preprocess_for(self.model, cfg.image_size)
        self.groups = apply_strategy(self.model, cfg)
        # bf16 autocast and channels_last for the training steps where they pay (a solved or SGD
        # head on cached features has no training step through the backbone: nothing to decide).
        # Several ranks train as rank 0 decided: each rank's own timing could disagree, and DDP
        # needs the same layout everywhere (a CI run failed when one rank chose channels_last and
        # the other did not)
        step = precision.StepPlan(False, False, None) if cfg.strategy == "feature_extraction" else \
            distributed.main_decides(lambda: precision.choose(cfg, self.model, self.pp.input_size, len(self.classes),
                                                              self.device.type == "cuda"))
        self.cpu_bf16, self.channels_last, self.precision_note = step.bf16, step.channels_last, step.note
        self.layers_note = step.layers_note()
        self.fp32_layers = step.fp32_layers if self.cpu_bf16 else ()
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.cpu_bf16:  # the layers measured slower in bf16 than in fp32 on this CPU (layer_precision)
            layer_precision.keep_fp32(self.model, step.fp32_layers)
        self.class_weights = class_weights_for(cfg, dataset)
        weight = torch.tensor(self.class_weights, device=self.device) if self.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        self.epoch, self.best_epoch, self.best_metrics = 0, 0, {}
        self.best_key = (-1.0, math.inf)
        self.keep_last = False  # True: the last epoch is the model (a solved head), not the best by val acc
        self.stale_epochs, self.best_val_loss = 0, math.inf
        self.t0 = time.perf_counter()
        # -inf: the first best is written at once, so a run killed early still has a checkpoint
        self._saved_at = -math.inf
        self._pending = None  # (state, val_items) of a best epoch not written yet
        if run_dir is not None:
            save_preprocess(run_dir, self.pp)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def in_layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the memory layout the model trains in (precision.StepPlan)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        if self.cuda and self.cfg.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        if self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def check_stop(self) -> None:
        # several ranks: all stop at the same step (a rank that stopped alone would hang the others)
        if distributed.any_rank(self.stop.is_set()):
            raise StopRequested()

    def started(self, loop) -> Started:
        trainable, total = count_params(self.model)
        source = source_sentence(self.cfg)
        return Started(str(self.device), self.classes, len(self.dataset.train), len(self.dataset.val),
                       trainable, total, epochs_of(loop, self.cfg), loop.steps_per_epoch, self.cfg.strategy,
                       self.cfg.backbone, str(source), source.to_dict(), solved_head=hasattr(loop, "epochs"))

    def end_epoch(self, metrics: dict, val_items: list, seconds: float) -> EpochEnd:
        """Track the best epoch (val accuracy, then val loss) and save its checkpoint."""
        key = (metrics["val/acc"], -metrics["val/loss"])
        is_best = self.keep_last or key > (self.best_key[0], -self.best_key[1])
        if is_best:
            self.best_key = (metrics["val/acc"], metrics["val/loss"])
            self.best_epoch, self.best_metrics = self.epoch, dict(metrics)
            self._save_best(val_items)
        if metrics["val/loss"] < self.best_val_loss - 1e-4:
            self.best_val_loss, self.stale_epochs = metrics["val/loss"], 0
        else:
            self.stale_epochs += 1
        return EpochEnd(self.epoch, metrics, is_best, seconds)

    def _save_best(self, val_items: list) -> None:
        if self.run_dir is None:
            return
        if time.perf_counter() - self._saved_at >= SAVE_EVERY_S:
            self._pending = None
            self._write_best(val_items)
        else:
            self._pending = (self._changing_state(), val_items)

    def _changing_state(self) -> dict:
        """Copies of what training can change: trainable parameters and buffers (BatchNorm stats)."""
        keep = {n for n, p in self.model.named_parameters() if p.requires_grad}
        keep |= {n for n, _ in self.model.named_buffers()}
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k in keep}

    def flush_best(self) -> None:
        """Write a best checkpoint that SAVE_EVERY_S held back (the model itself is left as it was)."""
        if self._pending is None:
            return
        state, val_items = self._pending
        self._pending = None
        current = self._changing_state()
        self.model.load_state_dict(state, strict=False)
        try:
            self._write_best(val_items)
        finally:
            self.model.load_state_dict(current, strict=False)

    def _write_best(self, val_items: list) -> None:
        save_model(self.run_dir, self.model, self.cfg, self.classes)
        write_json_atomic(self.run_dir / "val_predictions.json", {"classes": self.classes, "items": val_items})
        self._saved_at = time.perf_counter()

    def should_stop_early(self) -> bool:
        p = self.cfg.early_stop_patience
        return p > 0 and self.stale_epochs >= p

    def finished(self) -> Finished:
        return Finished(self.best_metrics, self.best_epoch, round(time.perf_counter() - self.t0, 3))


class ImageLoop:
    """Epochs over image batches: partial, full, scratch, and feature extraction without cache."""

    def __init__(self, run: Run):
        self.run = run
        cfg, ds, pp = run.cfg, run.dataset, run.pp
        # a final batch of 1 breaks BatchNorm in train mode; drop it only then
        drop_last = len(ds.train) % cfg.batch_size == 1
        gen = torch.Generator().manual_seed(cfg.seed)
        kw = loader_kwargs(run)
        train_set = ImageDataset(ds.train, pp, train_transform(pp, cfg.augment, normalize=False))
        val_set = ImageDataset(ds.val, pp, eval_transform(pp, normalize=False))
        # --devices N: each rank takes 1/N of the batch, so the global batch and schedule are the same
        batch = max(1, cfg.batch_size // distributed.world())
        self.sampler = distributed.train_sampler(train_set, cfg.seed)
        if self.sampler is not None:
            drop_last = len(self.sampler) % batch == 1
        self.train_loader = torch.utils.data.DataLoader(
            train_set, batch_size=batch, shuffle=self.sampler is None, sampler=self.sampler, drop_last=drop_last,
            generator=gen, **kw)
        self.val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch,
                                                      sampler=distributed.eval_sampler(val_set), **kw)
        self.net = distributed.wrap(run.model, run.device)  # DDP averages gradients over ranks
        # uint8 batches, normalised here in one go (see transforms._to_tensor; on CUDA this also
        # moves 4x fewer bytes to the GPU)
        self.normalize = BatchNormalize(pp)
        self.steps_per_epoch = len(self.train_loader)
        self.optimizer = make_optimizer(cfg, run.groups)
        self.scheduler = StepSchedule(cfg, self.optimizer, self.steps_per_epoch)
        self.step_seconds: list[float] = []

    def prepare(self):
        return
        yield  # nothing to precompute

    def _eta(self, epoch: int, step: int) -> float | None:
        if not self.step_seconds:
            return None
        per_step = sum(self.step_seconds[-50:]) / len(self.step_seconds[-50:])
        val_steps = len(self.val_loader)
        left = (self.run.cfg.epochs - epoch) * (self.steps_per_epoch + val_steps) + (self.steps_per_epoch - step) + val_steps
        return per_step * left

    def _to_device(self, x, y):
        run = self.run
        x = self.normalize(x.to(run.device, non_blocking=True))
        return run.in_layout(x), y.to(run.device, non_blocking=True)

    def train_epoch(self, epoch: int):
        run = self.run
        set_train_mode(run.model)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        loss_sum, correct, seen, t_epoch = 0.0, 0, 0, time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader, 1):
            run.check_stop()
            t = time.perf_counter()
            x, y = self._to_device(x, y)
            loss, right = train_step(self, self.net, x, y, epoch, step)
            n = y.numel()
            loss_sum += loss * n
            correct += right
            seen += n
            self.step_seconds.append(time.perf_counter() - t)
            yield Progress("train", epoch, step, self.steps_per_epoch, loss,
                           seen / (time.perf_counter() - t_epoch), self._eta(epoch, step))
        loss_sum, correct, seen = distributed.sum_over_ranks(loss_sum, correct, seen)  # the whole epoch's
        return epoch_metrics(self, loss_sum, correct, seen, t_epoch)

    def validate(self, epoch: int):
        run = self.run
        run.model.eval()
        outputs = []
        with torch.inference_mode():
            for step, (x, y) in enumerate(self.val_loader, 1):
                run.check_stop()
                x, y = self._to_device(x, y)
                with run.autocast():
                    logits = run.model(x).float()
                outputs.append((logits.cpu(), y.cpu()))
                yield Progress("val", epoch, step, len(self.val_loader))
        if distributed.active():  # every rank gets every validation image's logits, in order
            n = len(run.dataset.val)
            outputs = [(distributed.gather_rows(torch.cat([o[0] for o in outputs]), n),
                        distributed.gather_rows(torch.cat([o[1] for o in outputs]), n))]
        return val_metrics(run, outputs)


def epochs_of(loop, cfg: RunConfig) -> int:
    """The loop's own count (a solved head: 1) or the configured epochs."""
    return getattr(loop, "epochs", cfg.epochs)


def _epochs(run: Run, loop):
    yield from loop.prepare()
    for epoch in range(1, epochs_of(loop, run.cfg) + 1):
        run.epoch = epoch
        t = time.perf_counter()
        train_m = yield from loop.train_epoch(epoch)
        val_m, val_items = yield from loop.validate(epoch)
        yield run.end_epoch({**train_m, **val_m}, val_items, round(time.perf_counter() - t, 3))
        if run.should_stop_early():
            yield Note.of(Message("train.early_stop", {"patience": run.cfg.early_stop_patience,
                                                       "best": run.best_epoch}))
            break
    run.flush_best()
    yield run.finished()


# How often a CPU run re-decides its thread count from what other processes used meanwhile.
THREADS_EVERY_S = 10.0


def _threads_kept_fitting(run: Run, events):
    """`events`, re-deciding the run's threads every THREADS_EVERY_S (configure_threads). The first
    decision sees only the model's build, a fraction of a second: in the app that is when the page
    that started the run redraws, and a full fine-tuning of the sample then kept 1 thread for the
    whole run, 5 images/s against 10 from the CLI (issue 21, with the spare child)."""
    since, last = cpu_sample(), time.monotonic()
    for event in events:
        yield event
        if not run.cuda and time.monotonic() - last >= THREADS_EVERY_S:
            run.threads = configure_threads(since)
            since, last = cpu_sample(), time.monotonic()


def _make_loop(run: Run):
    """-> (loop, note or None): a solved head or an SGD head on cached features, the tail on cached
    activations (partial), or epochs over images; the note says why activations are not cached."""
    if run.cfg.solves_head:
        return SolvedHeadLoop(run), None
    if run.cfg.strategy == "feature_extraction" and run.cfg.feature_cache:
        return FeatureLoop(run), None
    p, why = activations.plan(run)
    if p is not None:
        return ActivationLoop(run, p), Message("train.activations", {"views": p.views, "mb": p.mb})
    return ImageLoop(run), why


def train(cfg: RunConfig, dataset: Dataset, stop: threading.Event | None = None, run_dir: Path | None = None):
    """Train `cfg` on `dataset`, yielding plain events; ends with Finished, Stopped or Failed.

    With `run_dir`, the best checkpoint (by val accuracy) and its validation predictions are
    written there as soon as they improve (at most every SAVE_EVERY_S seconds, and always before
    the last event), so a run that stops or fails keeps its best model.
    """
    stop = stop or threading.Event()
    with background.run_active(engines.cache_dir()):  # helpers wait between their steps meanwhile
        yield from _train(cfg, dataset, stop, run_dir)


def _train(cfg: RunConfig, dataset: Dataset, stop: threading.Event, run_dir: Path | None):
    run = None
    DECODED.run_started()
    try:
        run = Run(cfg, dataset, Path(run_dir) if run_dir else None, stop)
        loop, how = _make_loop(run)
        yield run.started(loop)
        if how is not None:
            yield Note.of(how)
        if isinstance(loop, FeatureLoop) and cfg.augment != "none":
            # cached features are computed from the plain image: say so rather than pretend
            yield Note.of(Message("train.augment_unused", {"augment": Message(f"train.augment_{cfg.augment}")}))
        if run.class_weights:
            weights = ", ".join(f"{c} {w:.2f}" for c, w in zip(run.classes, run.class_weights))
            yield Note.of(Message("train.class_weights", {"mode": cfg.class_weights, "weights": weights}))
        if distributed.active():
            yield Note.of(Message("train.distributed", {"n": distributed.world(), "device": run.device.type}))
        if run.precision_note is not None and run.precision_note.kind not in precision.QUIET:
            yield Note.of(run.precision_note)
        if run.layers_note is not None:
            yield Note.of(run.layers_note)
        if cfg.starts_from_probe:
            yield from init_head_from_probe(run)
            distributed.same_weights(run.model)
        yield from _threads_kept_fitting(run, _epochs(run, loop))
    except StopRequested:
        if run:
            run.flush_best()
        yield Stopped.of(Message("train.stopped_by_user"), epoch=run.epoch if run else 0)
    except Exception as e:  # every failure becomes an event with a sentence; nothing dies silently
        message, detail = user_message(e), traceback.format_exc()
        if run:
            try:
                run.flush_best()
            except Exception as save_error:  # e.g. the disk is full: say so too
                message = Message("train.also_not_saved", {"message": message, "detail": str(save_error)})
        yield Failed.of(message, detail=detail)
    finally:  # the consumer closed the generator early: keep the best epoch anyway
        DECODED.run_ended()
        features.start_wanted_probes()  # after the run: a probe during it slows the run itself
        if run and run._pending is not None:
            run.flush_best()

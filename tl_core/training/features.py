"""One way to embed images with a backbone, and the feature-extraction loop built on it.

embed() / embed_events() compute the pooled backbone features (the classifier's input) of a list
of images: cached per (backbone weights + preprocessing, engine, image) in feature_cache.py,
on the engine with the least expected time for this pass (engines.plan), with progress.
Feature extraction, the audit, the embeddings export, the similarity advisor and the
out-of-domain bank all call it, so a second caller on the same images reads the cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tl_core.base import background
from tl_core.base.config import RunConfig
from tl_core.base.events import Note, Progress
from tl_core.base.messages import LossError, Message
from tl_core.data.dataset import Item
from tl_core.data.transforms import BatchNormalize, ImageDataset, eval_transform, preprocess_for
from tl_core.models import engines
from tl_core.models.heads import classifier_params, head_module
from tl_core.models.model import build_model
from tl_core.training import distributed, precision
from tl_core.training.device import pick_device
from tl_core.training.feature_cache import CacheWriteError, FeatureStore, cache_root  # noqa: F401  (public)
from tl_core.training.steps import StepSchedule, loader_kwargs, make_optimizer, val_metrics

EXACT = ("torch", "onnx")  # fp32 engines computing the same function (max relative error ~1e-6)
BATCH = 32


def model_key(model: torch.nn.Module, pp) -> str:
    """Hash of the backbone's weights and the preprocessing: same key <=> same features."""
    h = hashlib.sha1(repr(sorted(pp.to_dict().items())).encode())
    head = classifier_params(model)
    for name, t in model.state_dict(keep_vars=True).items():
        if name in head:
            continue  # the head is not part of the features
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def as_items(images) -> list[Item]:
    """Dataset Items as they are; paths as Items keyed by their bytes' SHA-1 (label 0)."""
    out = []
    for im in images:
        if isinstance(im, Item):
            out.append(im)
        else:
            with open(im, "rb") as f:
                out.append(Item(str(im), 0, hashlib.file_digest(f, "sha1").hexdigest()))
    return out


@dataclass
class Embedded:
    """What one embedding pass returns."""

    features: torch.Tensor  # [N, D] float32 on the CPU, in the order asked
    choice: engines.Choice  # the engine that computed the missing ones (and why)
    rate: float  # images/s of what was computed (0: everything came from the cache)
    computed: int
    cached: int


@dataclass
class _Pass:
    """The settings of one pass (a training run's, or plain CPU ones)."""

    backbone: str
    device: torch.device
    batch_size: int = BATCH
    allow_bf16: bool = False
    amp: bool = False
    channels_last: bool = False
    check_stop: object = None
    loader_kw: dict | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def engines_read(self) -> list[str]:
        if self.cuda:
            return [self.cuda_tag]
        return [*EXACT, "bf16"] if self.allow_bf16 else list(EXACT)

    @property
    def cuda_tag(self) -> str:
        return f"cuda-{'amp' if self.amp else 'fp32'}"


def embed(source, images, progress=None, *, pp=None) -> np.ndarray:
    """float32 [N, D]: the backbone features (the classifier's input) of `images`, in order.

    source: a RunConfig (its backbone with its starting weights) or a model (with `pp`, its
    preprocessing; default: the model's own). images: file paths or dataset Items. Cached: a
    second call on the same images and weights reads them back. progress(done, total) after
    each batch (done counts images read from the cache too).
    """
    model, pp, backbone, device = _resolve(source, pp)
    gen = embed_events(model, pp, as_items(images), _Pass(backbone, device))
    with background.run_active(background.cache_dir()):  # someone waits for it, as for a run
        while True:
            try:
                event = next(gen)
            except StopIteration as end:
                embedded = end.value
                break
            if progress is not None and isinstance(event, Progress):
                progress(event.step, event.total)
    start_wanted_probes()  # the pass is over: a probe no longer competes with it
    return embedded.features.numpy()


def _resolve(source, pp):
    """(model, preprocessing, backbone name, device) for a RunConfig or a model."""
    if isinstance(source, torch.nn.Module):
        model = source
        backbone = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        device = next(model.parameters()).device
    else:
        device = pick_device(source)
        model = build_model(source, 2).to(device)  # the head is not part of the features: any class count
        backbone = source.backbone
        pp = pp or preprocess_for(model, source.image_size)
    return model, pp or preprocess_for(model), backbone, device


def embed_events(model: torch.nn.Module, pp, items: list[Item], opts: _Pass):
    """The one embedding pass: yields Progress("features", ...) and Notes, returns Embedded.

    Reads the cache first (any exact fp32 engine's features serve, see EXACT); plans an engine
    only for what is missing; stores each computed batch at once (a stopped run keeps them).
    """
    model.eval()
    key = model_key(model, pp)
    store = FeatureStore()
    try:
        hits = store.get(key, opts.engines_read(), [it.sha1 for it in items])
        found = {s: v for s, (v, _) in hits.items()}
        cached_by = Counter(engine for _, engine in hits.values())  # what computed the cached features
        missing = list({it.sha1: it for it in items if it.sha1 not in found}.values())
        cached = len({it.sha1 for it in items}) - len(missing)
        choice, rate = engines.Choice("torch", {}), 0.0
        if missing:
            choice = _plan(model, pp, key, len(missing), opts)
            engine, choice = _engine(choice, model, pp, key, opts)
            writer = _Writer(store, key, opts.cuda_tag if opts.cuda else choice.engine)  # after any fallback
            switch = _ColdSwitch(model, pp, key, choice, writer, opts.allow_bf16)
            rate = yield from _compute(distributed.shard(missing), engine, pp, opts, found, writer, cached, switch)
            choice = switch.choice
            if distributed.active():  # --devices N: each rank computed 1/N
                mine = {it.sha1: torch.from_numpy(found[it.sha1]) for it in distributed.shard(missing)}
                every = distributed.gather_features(mine, [it.sha1 for it in missing])
                found.update({k: v.numpy() for k, v in every.items()})
                if distributed.is_main():
                    writer.put({it.sha1: found[it.sha1] for it in missing})
            if writer.failed:
                yield Note.of(writer.failed)
            if choice.reason is not None and choice.reason.kind in _UNMEASURED and distributed.is_main():
                probe_after_this_run(opts.backbone, pp.input_size)  # for the next pass
        yield Note.of(engine_note(choice, rate, len(missing), cached, cached_by))
        rows = [found[it.sha1] for it in items]
        features = torch.from_numpy(np.stack(rows).astype(np.float32, copy=False)) if rows else torch.empty(0, 0)
        return Embedded(features, choice, rate, len(missing), cached)
    finally:
        store.close()


# Probes wanted by a pass that had no measured rates, started only when the run (or embed()) ends:
# started at once, the probe's export and timing took cores from the same run's head search, which
# then took 26 s instead of 6 on the 200-photo sample (2-core Xeon: a nice-19 process still stalls
# PyTorch's OpenMP threads, see device.configure_threads). Process-wide: two runs in one web
# process (the thread runner) share it, and the first to end starts both probes.
_PROBES_WANTED: set[tuple[str, int]] = set()
_PROBES_LOCK = threading.Lock()


def probe_after_this_run(backbone: str, size: int) -> None:
    with _PROBES_LOCK:
        _PROBES_WANTED.add((backbone, size))


def start_wanted_probes() -> None:
    """Start the background probes the passes of the run that just ended asked for."""
    with _PROBES_LOCK:
        wanted = list(_PROBES_WANTED)
        _PROBES_WANTED.clear()
    for backbone, size in wanted:
        engines.probe_in_background(backbone, size)


def _plan(model, pp, key: str, n: int, opts: _Pass) -> engines.Choice:
    if opts.cuda:
        return engines.Choice("cuda", {}, reason=Message("engine.cuda"))
    if distributed.active():  # every rank the same engine (rates could differ per rank)
        return engines.Choice("torch", {}, reason=Message("engine.distributed"))
    return engines.plan(n, opts.backbone, pp.input_size, engines.onnx_path(key), opts.allow_bf16)


def _engine(choice: engines.Choice, model, pp, key: str, opts: _Pass):
    """(callable, choice): the planned engine, or PyTorch fp32 where it cannot run this model."""
    module = engines.Pooled(model)
    if opts.cuda:
        return _cuda_engine(module, opts), choice
    example = engines.example_batch(pp.input_size, 2)
    try:
        return engines.build(choice.engine, module, example, engines.onnx_path(key)), choice
    except engines.EngineError as e:
        return engines.TorchEngine(module), engines.Choice("torch", choice.rates, choice.bf16_error,
                                                           Message("engine.fallback", {"detail": str(e)[:200]}))


def _cuda_engine(module, opts: _Pass):
    if opts.channels_last:
        module.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def engine(x):
        if opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast("cuda", dtype=dtype) if opts.amp else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            return module(x).float()
    return engine


class _Writer:
    """Stores computed batches; the first failure (disk full...) turns caching off for the pass."""

    def __init__(self, store: FeatureStore, key: str, engine: str):
        self.store, self.key, self.engine, self.failed = store, key, engine, None

    def put(self, rows: dict) -> None:
        if self.failed is not None or not rows:
            return
        try:
            self.store.put(self.key, self.engine, {k: np.asarray(v, np.float32) for k, v in rows.items()})
        except CacheWriteError as e:
            self.failed = Message("features.cache_write_failed", {"detail": str(e)[:200]})


# ---- a first pass with nothing measured: PyTorch at once, ONNX Runtime when the rest is long ----

# When what is left of a first pass would take this long on PyTorch fp32, the pass exports the ONNX
# file and times ONNX Runtime on the batch it just computed. At twice the export guess, ONNX Runtime
# must run more than twice as fast to win, and a switch that does not pay loses at most about half the
# time left. Measured here: ONNX Runtime 148 against PyTorch's 37 images/s (Xeon), 30 against 4 (EPYC),
# so TrashNet's 887 photos (24 s on PyTorch) switch and the 200-photo sample (5 s) does not.
SWITCH_WHEN_LEFT_S = 2 * engines.EXPORT_GUESS_S
SWITCH_MIN_GAIN = 1.0  # ONNX Runtime's images/s over PyTorch's on the same batch, to switch
SWITCH_MAX_ERROR = 1e-3  # max relative difference of the two engines' features on that batch
# bf16 (where allowed, see precision.frozen_pass_bf16) has no export to pay for: worth trying when
# the rest takes longer than the try (two batches). Its features differ from fp32: the largest
# difference over a batch, relative to the largest feature, was 2.9% on the probe's random images,
# 5.1% on hymenoptera's and 12.4% on TrashNet's second batch (Lite0, the EPYC), with validation
# accuracy equal or better (BENCHMARKS.md); beyond this bound something is wrong (overflow, NaN)
SWITCH_BF16_WHEN_LEFT_S = 2.0
SWITCH_BF16_MIN_GAIN = precision.SPEEDUP  # as for training: less exact only where clearly faster
SWITCH_BF16_MAX_ERROR = 0.25
_UNMEASURED = ("engine.not_measured", "engine.switched", "engine.switched_bf16")  # a probe is wanted after these


def _relative_difference(theirs: np.ndarray, ours: np.ndarray) -> float:
    """The largest difference of two engines' features, relative to the largest feature."""
    return float(np.abs(theirs - ours).max() / max(float(np.abs(ours).max()), 1e-12))


class _ColdSwitch:
    """Decides once, after the second batch (the first one pays one-time set-up costs), whether the
    rest of an unmeasured CPU pass runs on ONNX Runtime. `choice` is what computed the pass."""

    def __init__(self, model, pp, key: str, choice: engines.Choice, writer: _Writer, allow_bf16: bool = False):
        self.model, self.pp, self.key, self.choice, self.writer = model, pp, key, choice, writer
        unmeasured = choice.reason is not None and choice.reason.kind == "engine.not_measured"
        self.try_onnx = unmeasured and "onnx" in engines.candidates(False)
        self.try_bf16 = unmeasured and allow_bf16 and "bf16" in engines.candidates(True)
        self.batches = 0

    def next_engine(self, engine, x: torch.Tensor, out: np.ndarray, batch_s: float, done: int, left: int):
        """The engine for the next batches: `engine`, or PyTorch bf16 (where allowed: no export to pay
        for, tried first) or ONNX Runtime when it computed `x` faster and alike."""
        self.batches += 1
        if self.batches != 2:
            return engine
        torch_rate = len(x) / max(batch_s, 1e-9)
        if self.try_bf16 and left / torch_rate >= SWITCH_BF16_WHEN_LEFT_S:
            bf16 = self._bf16(x, out, torch_rate, done)
            if bf16 is not None:
                return bf16
        if not self.try_onnx or left / torch_rate < SWITCH_WHEN_LEFT_S:
            return engine
        try:
            t0 = time.perf_counter()
            onnx = engines.build("onnx", engines.Pooled(self.model), engines.example_batch(self.pp.input_size, 2),
                                 engines.onnx_path(self.key))
            onnx(x[:2])  # its first call allocates
            export_s, t1 = time.perf_counter() - t0, time.perf_counter()
            theirs = onnx(x).float().numpy()
            onnx_rate = len(x) / max(time.perf_counter() - t1, 1e-9)
        except engines.EngineError:
            return engine  # the background probe after the run records why; this pass stays on PyTorch
        error = _relative_difference(theirs, out)
        if error > SWITCH_MAX_ERROR or onnx_rate <= SWITCH_MIN_GAIN * torch_rate:
            return engine
        self.writer.engine = "onnx"
        self.choice = engines.Choice("onnx", {"torch": round(torch_rate, 1), "onnx": round(onnx_rate, 1)}, None,
                                     Message("engine.switched", {"done": done, "torch_rate": torch_rate,
                                                                 "left_s": left / torch_rate, "export_s": export_s,
                                                                 "onnx_rate": onnx_rate}))
        return onnx

    def _bf16(self, x: torch.Tensor, out: np.ndarray, torch_rate: float, done: int):
        """PyTorch bf16 for the rest, when its second call on `x` (the first builds its kernels) was
        SWITCH_BF16_MIN_GAIN faster than fp32 with features alike; else None."""
        bf16 = engines.build("bf16", engines.Pooled(self.model), engines.example_batch(self.pp.input_size, 2),
                             engines.onnx_path(self.key))
        bf16(x)
        t = time.perf_counter()
        theirs = bf16(x).float().numpy()
        bf16_rate = len(x) / max(time.perf_counter() - t, 1e-9)
        error = _relative_difference(theirs, out)
        if error > SWITCH_BF16_MAX_ERROR or bf16_rate < SWITCH_BF16_MIN_GAIN * torch_rate:
            return None
        self.writer.engine = "bf16"
        self.choice = engines.Choice("bf16", {"torch": round(torch_rate, 1), "bf16": round(bf16_rate, 1)}, error,
                                     Message("engine.switched_bf16", {"done": done, "torch_rate": torch_rate,
                                                                      "bf16_rate": bf16_rate, "error": error}))
        return bf16


def _compute(items: list[Item], engine, pp, opts: _Pass, found: dict, writer: _Writer, cached: int,
             switch: _ColdSwitch):
    """Features of `items` into `found` (and the cache, batch by batch); returns images/s."""
    if not items:
        return 0.0
    loader = torch.utils.data.DataLoader(ImageDataset(items, pp, eval_transform(pp, normalize=False)),
                                         batch_size=opts.batch_size, **(opts.loader_kw or {"num_workers": 0}))
    normalize = BatchNormalize(pp)  # per batch, not per image: see transforms._to_tensor
    done, t0, rate, total = 0, time.perf_counter(), 0.0, cached + len(items)
    for x, _ in loader:
        if opts.check_stop is not None:
            opts.check_stop()
        with torch.inference_mode():
            x = normalize(x.to(opts.device))
        t_batch = time.perf_counter()
        f = engine(x).float().cpu().numpy()
        batch_s = time.perf_counter() - t_batch
        batch = {items[done + i].sha1: row.copy() for i, row in enumerate(f)}
        found.update(batch)
        if not distributed.active():
            writer.put(batch)
        done += len(f)
        engine = switch.next_engine(engine, x, f, batch_s, done, len(items) - done)
        rate = done / max(time.perf_counter() - t0, 1e-9)
        yield Progress("features", 0, cached + done, total, None, rate, (len(items) - done) / rate)
    return rate


class FeatureLoop:
    """Same interface as train.ImageLoop, on cached feature tensors."""

    def __init__(self, run):
        self.run = run
        self.head = head_module(run.model)
        cfg = run.cfg
        self.steps_per_epoch = max(1, -(-len(run.dataset.train) // cfg.batch_size))
        self.optimizer = make_optimizer(cfg, run.groups)
        self.scheduler = StepSchedule(cfg, self.optimizer, self.steps_per_epoch)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def prepare(self):
        """Embed the train and validation images (embed_events: cached, engine planned, progress)."""
        run = self.run
        opts = _Pass(run.cfg.backbone, run.device, run.cfg.batch_size, precision.frozen_pass_bf16(run.cfg), run.cfg.amp,
                     run.cfg.channels_last, run.check_stop, loader_kwargs(run))
        done = yield from embed_events(run.model, run.pp, run.dataset.train + run.dataset.val, opts)
        self.choice = done.choice
        n_train = len(run.dataset.train)
        x = done.features.to(run.device)
        self.x_train, self.x_val = x[:n_train], x[n_train:]
        self.y_train = torch.tensor([it.label for it in run.dataset.train], device=run.device)
        self.y_val = torch.tensor([it.label for it in run.dataset.val], device=run.device)

    def train_epoch(self, epoch: int):
        run, head = self.run, self.head
        head.train()
        order = torch.randperm(len(self.y_train), generator=self.gen).to(run.device)
        loss_sum, correct, t = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), run.cfg.batch_size):
            run.check_stop()
            idx = order[start:start + run.cfg.batch_size]
            logits = head(self.x_train[idx])
            loss = run.loss_fn(logits, self.y_train[idx])
            if not torch.isfinite(loss):
                raise LossError("train.loss_not_finite", loss=loss.item(), epoch=epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == self.y_train[idx]).sum().item()
        n = len(order)
        seconds = time.perf_counter() - t
        yield Progress("train", epoch, self.steps_per_epoch, self.steps_per_epoch, loss_sum / n, n / seconds,
                       seconds * (run.cfg.epochs - epoch))
        return {"train/loss": loss_sum / n, "train/acc": correct / n, "images_per_s": n / seconds,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self, epoch: int):
        self.head.eval()
        with torch.inference_mode():
            logits = self.head(self.x_val).float().cpu()
        yield Progress("val", epoch, 1, 1)
        return val_metrics(self.run, [(logits, self.y_val.cpu())])


def engine_note(choice: engines.Choice, rate: float, computed: int, cached: int,
                cached_by: Counter | None = None) -> Message:
    """What the Train page and the CLI show about the feature pass: the engine and why, in one line.
    Features read from the cache name the engines that computed them, most images first (a first
    pass that switched to bf16 after two batches stored both)."""
    if computed:
        return Message("features.computed", {"n": computed, "engine": choice.label, "rate": rate, "cached": cached,
                                             "reason": choice.reason or ""})
    label = " + ".join(engines.LABELS.get(e, e) for e, _ in (cached_by or Counter()).most_common()) or choice.label
    return Message("features.from_cache", {"engine": label, "cached": cached})


# ---- the warm-up: a model's engines measured and its ONNX file exported before the first click ----

def warm_up_model(cfg: RunConfig) -> torch.nn.Module:
    """The model the warm-up measures, built once for both of its steps (seeded as train() seeds:
    a randomly initialised backbone gets the same feature key)."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg, 2)


def prepare_engine(cfg: RunConfig, model: torch.nn.Module, between_steps=None) -> engines.Choice:
    """Measure this machine's engines on `cfg`'s backbone weights and keep the exported ONNX file
    where the next feature pass with these weights looks for it (engines.onnx_path(model_key)).

    Why ahead of time: a first pass never waits for a probe (engines.plan picks PyTorch fp32 when
    nothing was measured), yet on the 2-core Xeon tf_efficientnet_lite0 ran 37 images/s in PyTorch
    fp32 and 148 in ONNX Runtime after a 15.5 s export (issue 21). The app starts this at launch
    (ui.state.warm_up_default_engine), so a newcomer's first click finds the fast engine ready.
    """
    model.eval()
    pp = preprocess_for(model, cfg.image_size)
    module, onnx_file = engines.Pooled(model), engines.onnx_path(model_key(model, pp))
    choice = engines.probe(module, cfg.backbone, pp.input_size, onnx_file, allow_bf16=False,
                           between_steps=between_steps)
    if choice.engine == "onnx":  # a probe cached from another model measured, but exported nothing here
        engines.export_onnx(module, engines.example_batch(pp.input_size, 2), onnx_file)
    return choice


def warm_up_lock(cfg: RunConfig) -> Path:
    return engines.cache_dir() / f"warm_up.{hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]}.lock"


def prepare_training_step(cfg: RunConfig, model: torch.nn.Module, between_steps=None) -> bool:
    """Time cfg's training step ahead (precision.time_ahead) on the CPU: the first fine-tuning run
    of this backbone then starts training at once. Nothing on a GPU (its precision is AMP's setting;
    not pick_device, which refuses a missing GPU with an error a background helper has no one to show)."""
    if torch.cuda.is_available() and cfg.device != "cpu":
        return False
    return precision.time_ahead(cfg, model, preprocess_for(model, cfg.image_size).input_size, between_steps)


def _warm_up_main(cfg_json: str) -> None:
    cfg = RunConfig.from_dict(json.loads(cfg_json))
    with background.low_priority_alone(warm_up_lock(cfg)) as mine:
        if mine:
            model = warm_up_model(cfg)
            prepare_engine(cfg, model, between_steps=engines.yield_to_runs)
            prepare_training_step(cfg, model, between_steps=engines.yield_to_runs)  # measure_step puts it back
            # partial fine-tuning times its own step (precision.every_parameter): the Model page's default cut
            prepare_training_step(cfg.replace(strategy="partial"), model, between_steps=engines.yield_to_runs)


if __name__ == "__main__":  # python -m tl_core.training.features CONFIG_JSON: the warm-up (background.start)
    _warm_up_main(sys.argv[1])

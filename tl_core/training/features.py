"""Feature-extraction fast path: run the frozen backbone once per image, train the head on tensors.

Pooled features are cached on disk per (backbone weights, preprocessing, engine, precision) and
image content hash, so a second run on the same data and backbone skips the backbone entirely.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from tl_core.base.atomic import write_bytes_atomic
from tl_core.base.events import Note, Progress
from tl_core.base.messages import LossError, Message
from tl_core.data.transforms import BatchNormalize, ImageDataset, eval_transform
from tl_core.models import engines
from tl_core.models.heads import classifier_params, head_module
from tl_core.training import distributed
from tl_core.training.steps import StepSchedule, loader_kwargs, make_optimizer, val_metrics


def cache_root() -> Path:
    return Path(os.environ.get("TL_CACHE", Path.home() / ".cache" / "tl_studio")) / "features"


def feature_key(weights: str, engine: str, precision: str) -> str:
    """Cache key of a feature file: the backbone's weights and preprocessing, the engine, its precision."""
    return f"{weights}-{engine}-{precision}"


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


class FeatureCache:
    def __init__(self, key: str):
        self.path = cache_root() / f"{key}.safetensors"
        self.features: dict[str, torch.Tensor] = {}
        if self.path.exists():
            try:
                self.features = load_file(str(self.path))
            except Exception:
                self.features = {}  # a damaged cache is just a miss

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, save({k: v.contiguous() for k, v in self.features.items()}))


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
        """Embed every image not yet in the cache; yields Progress("features", ...) and a Note
        that says which engine computed the features and how fast."""
        run = self.run
        run.model.eval()
        weights = model_key(run.model, run.pp)
        choice = self._choose(weights)
        cache, missing = self._cache(weights, choice)
        engine = None
        if missing:
            engine, choice = self._engine(choice, weights)
            cache, missing = self._cache(weights, choice)  # another key only if it fell back to torch
        self.choice = choice
        rate = yield from self._embed(distributed.shard(missing), cache, engine)  # --devices N: 1/N each
        if distributed.active():
            cache.features.update(distributed.gather_features(cache.features, [it.sha1 for it in missing]))
        if missing and distributed.is_main():
            cache.save()
        yield Note.of(engine_note(choice, rate))
        self.x_train = torch.stack([cache.features[it.sha1] for it in run.dataset.train]).to(run.device)
        self.y_train = torch.tensor([it.label for it in run.dataset.train], device=run.device)
        self.x_val = torch.stack([cache.features[it.sha1] for it in run.dataset.val]).to(run.device)
        self.y_val = torch.tensor([it.label for it in run.dataset.val], device=run.device)

    def _choose(self, weights: str) -> engines.Choice:
        run = self.run
        if run.cuda:
            return engines.Choice("cuda", {})
        if distributed.active():  # every rank the same engine (a probe could pick differently per rank)
            return engines.Choice("torch", {})
        return engines.probe(engines.Pooled(run.model), run.cfg.backbone, run.pp.input_size,
                             engines.onnx_path(weights), run.cfg.cpu_bf16)

    def _cache(self, weights: str, choice: engines.Choice):
        run = self.run
        precision = ("amp" if run.cfg.amp else "fp32") if choice.engine == "cuda" else choice.precision
        cache = FeatureCache(feature_key(weights, choice.engine, precision))
        items = run.dataset.train + run.dataset.val
        return cache, list({it.sha1: it for it in items if it.sha1 not in cache.features}.values())

    def _engine(self, choice: engines.Choice, weights: str):
        """The chosen engine, or PyTorch fp32 where it cannot run this model (e.g. no ONNX export)."""
        run = self.run
        module = engines.Pooled(run.model)
        if choice.engine == "cuda":
            return self._cuda_engine(module), choice
        example = engines.example_batch(run.pp.input_size, 2)
        try:
            return engines.build(choice.engine, module, example, engines.onnx_path(weights)), choice
        except engines.EngineError:
            return engines.TorchEngine(module), engines.Choice("torch", choice.rates, choice.bf16_error)

    def _cuda_engine(self, module):
        run = self.run
        if run.cfg.channels_last:
            module.to(memory_format=torch.channels_last)

        def engine(x):
            if run.cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), run.autocast():
                return module(x).float()
        return engine

    def _embed(self, items, cache: FeatureCache, engine) -> float:
        """Features of `items` into `cache`; returns images/s (0 when nothing was computed)."""
        run = self.run
        if not items:
            return 0.0
        loader = torch.utils.data.DataLoader(ImageDataset(items, run.pp, eval_transform(run.pp, normalize=False)),
                                             batch_size=run.cfg.batch_size, **loader_kwargs(run))
        normalize = BatchNormalize(run.pp)  # per batch, not per image: see transforms._to_tensor
        done, t0, i, rate = 0, time.perf_counter(), 0, 0.0
        for x, _ in loader:
            run.check_stop()
            with torch.inference_mode():
                x = normalize(x.to(run.device))
            f = engine(x).float().cpu()
            for row in f:
                cache.features[items[i].sha1] = row.clone()
                i += 1
            done += len(x)
            rate = done / (time.perf_counter() - t0)
            yield Progress("features", 0, done, len(items), None, rate, (len(items) - done) / rate)
        return rate

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


def engine_note(choice: engines.Choice, rate: float) -> Message:
    """What the Train page and the CLI show about the feature pass."""
    rates = ", ".join(f"{engines.LABELS[e]} {r:.0f}" for e, r in choice.rates.items() if r)
    probe = Message("features.probe", {"rates": rates}) if rates else ""
    if rate:
        return Message("features.computed", {"engine": choice.label, "rate": rate, "probe": probe})
    return Message("features.from_cache", {"engine": choice.label, "probe": probe})

"""RunConfig: everything that defines a training run, as plain JSON-able values."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from tl_core.base.messages import ConfigError  # noqa: F401  (public here too: tl_core.base.config.ConfigError)


def megabytes(name: str, default: float) -> float:
    """A size setting from the environment, in MB: `default` when unset or not a number, never below 0
    (a typo in TL_..._MB must not fail a run)."""
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default

STRATEGIES = ("feature_extraction", "partial", "full", "scratch")
OPTIMIZERS = ("adamw", "sgd", "rmsprop")
HEADS = ("linear", "mlp")
# feature extraction with a linear head: solve it exactly (tl_core/solved_head.py) or train it by SGD
HEAD_FITS = ("solve", "sgd")
# fine-tuning from pretrained weights: start from the solved linear head, or a random one
HEAD_INITS = ("probe", "random")
AUGMENTATIONS = ("none", "light", "strong")
CLASS_WEIGHTS = ("auto", "on", "off")  # auto: on above audit.IMBALANCE_RATIO (largest/smallest class)
# Head learning rate by strategy. Feature extraction trains a linear head on cached features,
# a few cheap steps per epoch: at 1e-3 it had barely moved after 10 epochs on the sample
# dataset (46% val), at 1e-2..5e-2 it reached 58-71% in under a second (measured, CPU).
DEFAULT_LR = {"feature_extraction": 1e-2, "partial": 1e-3, "full": 1e-3, "scratch": 3e-3}
# Augmentation by strategy: feature extraction caches each image's features once, so an augmented
# copy would never be seen (train() says so in a note); gentle augmentation for everything else.
DEFAULT_AUGMENT = {"feature_extraction": "none", "partial": "light", "full": "light", "scratch": "light"}




@dataclass(frozen=True)
class RunConfig:
    """One training run. Frozen, JSON round-trip via to_dict/from_dict."""

    # EfficientNet-Lite0: its ImageNet weights ship in a pip package (requirements.txt), so the
    # default is real transfer learning on every install, offline too (tl_core/packages.py)
    backbone: str = "tf_efficientnet_lite0"
    # auto (best source ready here: package, hub cache, download) | package | hub | none |
    # a path to .safetensors/.pth | run:<run folder>
    pretrained: str = "auto"
    strategy: str = "feature_extraction"
    unfreeze: int = 1  # stages unfrozen by the partial strategy, counted from the top
    head: str = "linear"
    head_hidden: int = 1024  # seed 000: GAP -> Dense(1024) -> softmax
    head_dropout: float = 0.2
    head_fit: str = "solve"  # feature extraction + linear head: solved exactly, no learning rate
    head_init: str = "probe"  # partial/full from pretrained: start from the solved head
    optimizer: str = "adamw"
    lr: float = 1e-3  # head learning rate; the backbone gets lr * backbone_lr_mult
    backbone_lr_mult: float = 0.1
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    epochs: int = 10
    batch_size: int = 32
    image_size: int = 0  # 0: the backbone's own input size
    augment: str = "light"
    label_smoothing: float = 0.0
    early_stop_patience: int = 0  # epochs without val-loss improvement; 0 = off
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # only used on CUDA
    # CUDA: always; CPU: where one training step measured faster in it (training/precision.py)
    channels_last: bool = True
    feature_cache: bool = True  # feature_extraction: embed once, train the head on tensors
    # partial: the frozen stages run once on a few augmented views per image and only the tail
    # trains on their cached output (tl_core/training/activations.py); False: the plain loop
    activation_cache: bool = True
    class_weights: str = "auto"  # loss weighted by 1/class share: auto | on | off
    devices: int = 1  # GPUs for this one run (torchrun + DDP, a process per GPU); 1: one process
    # bfloat16 on a CPU that computes it natively (AVX-512 BF16 or AMX): a candidate engine for the
    # frozen pass and autocast for training. Faster, slightly less exact (tl_core/engines.py).
    # None: automatic, training in bf16 where one step measured >= 1.2x faster (training/precision.py)
    cpu_bf16: bool | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for name, choices in (("strategy", STRATEGIES), ("optimizer", OPTIMIZERS), ("head", HEADS),
                              ("head_fit", HEAD_FITS), ("head_init", HEAD_INITS), ("augment", AUGMENTATIONS),
                              ("class_weights", CLASS_WEIGHTS)):
            if getattr(self, name) not in choices:
                raise ConfigError("config.bad_choice", field=name, choices=", ".join(choices))
        checks = [
            (self.epochs >= 1, "config.epochs_min"),
            (self.batch_size >= 1, "config.batch_min"),
            (self.lr > 0, "config.lr_positive"),
            (self.unfreeze >= 0, "config.unfreeze_min"),
            (0 < self.val_fraction < 1, "config.val_fraction"),
            (self.image_size == 0 or 32 <= self.image_size <= 1024, "config.image_size"),
            (self.device in ("auto", "cpu", "cuda"), "config.device"),
            (bool(self.backbone), "config.no_backbone"),
            (1 <= self.devices <= 64, "config.devices"),
            (self.cpu_bf16 in (None, True, False), "config.cpu_bf16"),
        ]
        for ok, kind in checks:
            if not ok:
                raise ConfigError(kind)

    @property
    def uses_pretrained(self) -> bool:
        return self.strategy != "scratch" and self.pretrained != "none"

    @property
    def solves_head(self) -> bool:
        """Feature extraction's linear head on cached features is solved, not trained (no lr)."""
        return (self.strategy == "feature_extraction" and self.feature_cache and self.head == "linear"
                and self.head_fit == "solve")

    @property
    def starts_from_probe(self) -> bool:
        """Fine-tuning from pretrained weights starts from a head solved on the frozen features."""
        return (self.strategy in ("partial", "full") and self.uses_pretrained and self.head == "linear"
                and self.head_init == "probe")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError("config.unknown_keys", keys=", ".join(unknown))
        d = dict(d)
        return cls(**d)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

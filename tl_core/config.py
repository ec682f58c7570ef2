"""RunConfig: everything that defines a training run, as plain JSON-able values."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .messages import ConfigError  # noqa: F401  (public here too: tl_core.config.ConfigError)

STRATEGIES = ("feature_extraction", "partial", "full", "scratch")
OPTIMIZERS = ("adamw", "sgd", "rmsprop")
HEADS = ("linear", "mlp")
# feature extraction with a linear head: solve it exactly (tl_core/solved_head.py) or train it by SGD
HEAD_FITS = ("solve", "sgd")
# fine-tuning from pretrained weights: start from the solved linear head, or a random one
HEAD_INITS = ("probe", "random")
AUGMENTATIONS = ("none", "light", "strong")
# Head learning rate by strategy. Feature extraction trains a linear head on cached features,
# a few cheap steps per epoch: at 1e-3 it had barely moved after 10 epochs on the sample
# dataset (46% val), at 1e-2..5e-2 it reached 58-71% in under a second (measured, CPU).
DEFAULT_LR = {"feature_extraction": 1e-2, "partial": 1e-3, "full": 1e-3, "scratch": 3e-3}




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
    channels_last: bool = True  # only used on CUDA
    feature_cache: bool = True  # feature_extraction: embed once, train the head on tensors
    devices: int = 1  # GPUs for this one run (torchrun + DDP, a process per GPU); 1: one process
    # bfloat16 on a CPU that computes it natively (AVX-512 BF16 or AMX): a candidate engine for the
    # frozen pass and autocast for training. Faster, slightly less exact (tl_core/engines.py).
    cpu_bf16: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.head in HEADS, f"head must be one of {', '.join(HEADS)}"),
            (self.head_fit in HEAD_FITS, f"head_fit must be one of {', '.join(HEAD_FITS)}"),
            (self.head_init in HEAD_INITS, f"head_init must be one of {', '.join(HEAD_INITS)}"),
            (self.augment in AUGMENTATIONS, f"augment must be one of {', '.join(AUGMENTATIONS)}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0, "learning rate must be positive"),
            (self.unfreeze >= 0, "unfreeze must be 0 or more stages"),
            (0 < self.val_fraction < 1, "val_fraction must be between 0 and 1"),
            (self.image_size == 0 or 32 <= self.image_size <= 1024, "image size must be 32..1024 (or 0 for the model's own)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
            (bool(self.backbone), "choose a backbone"),
            (1 <= self.devices <= 64, "devices must be 1..64 (GPUs for one run)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

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
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        d = dict(d)
        return cls(**d)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

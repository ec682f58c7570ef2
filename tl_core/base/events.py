"""Plain-data events yielded by train(): no tensors, JSON round-trip."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tl_core.base.messages import Message


class _Says:
    """An event with a sentence: `message` is the English (logs, CLI, run.json), `kind` and
    `params` the same sentence as a tl_core.base.messages kind, which the UI renders in its language."""

    @classmethod
    def of(cls, msg: Message, **fields):
        """The event saying `msg`, with its other fields."""
        return cls(message=str(msg), kind=msg.kind, params=msg.to_dict()["params"], **fields)

    def says(self) -> Message:
        """The sentence as a Message (plain text for events written before kinds existed)."""
        return Message.from_dict({"kind": self.kind, "params": self.params}) if self.kind else \
            Message("text", {"text": self.message})


@dataclass(frozen=True)
class Started:
    device: str
    classes: list
    n_train: int
    n_val: int
    trainable_params: int
    total_params: int
    epochs: int
    steps_per_epoch: int
    strategy: str
    backbone: str
    weights: str = ""  # one sentence: where the starting weights came from
    weights_says: dict = field(default_factory=dict)  # the same sentence as a Message dict (kind, params)
    solved_head: bool = False  # feature extraction's head is solved: no epochs to show (epochs is 1)


@dataclass(frozen=True)
class Progress:
    phase: str  # weights | features | train | val
    epoch: int
    step: int
    total: int
    loss: float | None = None
    images_per_s: float = 0.0
    eta_s: float | None = None  # seconds left in the whole run, when known


@dataclass(frozen=True)
class HeadSearch:
    """The solved head's cross-validation so far: held-out accuracy per L2 strength tried."""

    l2: list  # strengths tried so far, strong to weak
    cv_acc: list  # the mean held-out accuracy of each, over `folds` folds of the training images
    total: int  # strengths to try
    folds: int
    chosen: float | None = None  # the strength kept, once every one was tried


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    metrics: dict  # flat: {"train/loss":..., "train/acc":..., "val/loss":..., "val/acc":..., "lr":...}
    is_best: bool
    seconds: float


@dataclass(frozen=True)
class Note(_Says):
    message: str  # something the user should know that is not an error (e.g. early stop)
    kind: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    metrics: dict  # the best epoch's metrics
    best_epoch: int
    train_seconds: float


@dataclass(frozen=True)
class Stopped(_Says):
    epoch: int
    message: str = "Stopped by the user."
    kind: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(_Says):
    message: str
    detail: str = ""  # the traceback, for the log; the UI shows `message`
    kind: str = ""
    params: dict = field(default_factory=dict)


Event = Started | Progress | HeadSearch | EpochEnd | Note | Finished | Stopped | Failed
TERMINAL = (Finished, Stopped, Failed)
_TYPES = {cls.__name__: cls for cls in (Started, Progress, HeadSearch, EpochEnd, Note, Finished, Stopped, Failed)}


def to_dict(event) -> dict:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def from_dict(d: dict):
    d = dict(d)
    cls = _TYPES[d.pop("type")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})

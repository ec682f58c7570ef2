"""What every CLI command shares: the dataset report, progress bars, the final JSON line, downloads."""
from __future__ import annotations

import json
import sys

from tqdm import tqdm

from tl_core.base.config import DEFAULT_AUGMENT
from tl_core.base.events import EpochEnd, Failed, Finished, HeadSearch, Note, Progress, Started, Stopped
from tl_core.base.messages import Message

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def default_augment(strategy: str) -> str:
    return DEFAULT_AUGMENT[strategy]


def print_report(ds) -> None:
    counts = ", ".join(f"{c} ({n['train']} train + {n['val']} val)" for c, n in ds.counts().items())
    print(f"classes: {counts}", file=sys.stderr)
    for s in ds.report.skipped:
        print(f"skipped {s.name}: {s.reason}", file=sys.stderr)
    for w in ds.report.warnings:
        print(f"warning: {w}", file=sys.stderr)


class Bars:
    """tqdm bars on a terminal: one for feature extraction, one per epoch. Into a file or a pipe
    (a log, CI) a bar would print a line per update, with rates like "1342177 step/s" from
    steps microseconds apart: there only one line per phase (features, the head's L2 search,
    each epoch) and the notes are printed. A solved head has no epochs: its one line says so."""

    def __init__(self, live: bool | None = None):
        self.live = sys.stderr.isatty() if live is None else live
        self.tqdm, self.bar, self.key = tqdm, None, None
        self.solved, self.features = False, None  # the last features Progress not yet printed

    def show(self, e) -> None:
        if not (isinstance(e, Progress) and e.phase == "features"):
            self._features_line()
        if isinstance(e, Started):
            self.solved = e.solved_head
        elif isinstance(e, Progress) and e.phase in ("features", "activations", "train"):
            if self.live:
                self._draw(e)
            elif e.phase == "features":
                self.features = e
        elif isinstance(e, HeadSearch):
            self._head(e)
        elif isinstance(e, EpochEnd):
            self.close()
            m = e.metrics
            what = "head solved" if self.solved else f"epoch {e.epoch}"
            print(f"{what}: train loss {m['train/loss']:.4f} acc {m['train/acc']:.3f} | "
                  f"val loss {m['val/loss']:.4f} acc {m['val/acc']:.3f}{' *' if e.is_best and not self.solved else ''}",
                  file=sys.stderr)
        elif isinstance(e, Note):
            self.close()
            print(e.message, file=sys.stderr)

    def _features_line(self) -> None:
        e, self.features = self.features, None
        if e is not None:
            print(f"features: {e.step} / {e.total}, {e.images_per_s:.0f} img/s", file=sys.stderr)

    def _head(self, e: HeadSearch) -> None:
        if self.live and e.chosen is None:
            key = ("head", 0)
            if key != self.key:
                self.close()
                self.bar, self.key = self.tqdm(total=e.total, desc="head L2", unit="L2", file=sys.stderr), key
            self.bar.n = len(e.l2)
            self.bar.set_postfix_str(f"{e.l2[-1]:g}: {e.cv_acc[-1]:.1%}", refresh=True)
        elif e.chosen is not None:
            self.close()
            acc = e.cv_acc[e.l2.index(e.chosen)]
            tried = ", ".join(f"{l2:g} {a:.1%}" for l2, a in zip(e.l2, e.cv_acc))
            print(f"head: L2 {e.chosen:g} chosen, {e.folds}-fold CV accuracy {acc:.1%} (tried {tried})",
                  file=sys.stderr)

    def _draw(self, e) -> None:
        key = (e.phase, e.epoch)
        if key != self.key:
            self.close()
            desc = e.phase if e.phase in ("features", "activations") else f"epoch {e.epoch}"
            self.bar, self.key = self.tqdm(total=e.total, desc=desc, unit="step" if e.phase == "train" else "img",
                                           file=sys.stderr, leave=True), key
        self.bar.n = e.step
        self.bar.set_postfix_str(f"loss {e.loss:.4f}" if e.loss is not None else "", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.key = None, None


def final_line(run_dir, last, why=None) -> int:
    """The last line of `train`: one JSON object with the outcome (the same for --queue --wait);
    `why`: the sentence for a run that ended without an end of its own (a lost worker)."""
    result = {"run_dir": str(run_dir), "status": type(last).__name__ if last is not None else "Interrupted"}
    if isinstance(last, Finished):
        result.update({"val/acc": last.metrics.get("val/acc"), "val/loss": last.metrics.get("val/loss"),
                       "best_epoch": last.best_epoch, "train_seconds": last.train_seconds})
    elif isinstance(last, (Failed, Stopped)):
        result["message"] = last.message
    elif last is None:
        result["message"] = str(why or Message("pool.worker_lost", {"why": Message("pool.worker_lost_unknown")}))
    print(json.dumps(result))
    return 0 if isinstance(last, Finished) else 1


def fetch_with_bar(backbone: str) -> str:
    """fetch() with a tqdm bar on stderr (the CLI's download progress); raises WeightsError."""
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    bar = _CliBar(backbone)
    try:
        return hub.fetch(backbone, bar.progress)
    finally:
        bar.close()


class _CliBar:
    """A tqdm bar that appears with the first byte, so a refusal prints no empty bar."""

    def __init__(self, name: str):
        self.name, self.bar = name, None

    def progress(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = tqdm(desc=self.name, total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

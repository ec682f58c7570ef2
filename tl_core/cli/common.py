"""What every CLI command shares: the dataset report, progress bars, the final JSON line, downloads."""
from __future__ import annotations

import json
import sys

from tqdm import tqdm

from tl_core.base.events import EpochEnd, Failed, Finished, Note, Progress, Stopped

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def default_augment(strategy: str) -> str:
    return "none" if strategy == "feature_extraction" else "light"


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
    steps microseconds apart: there only the one line per epoch (and the notes) are printed."""

    def __init__(self, live: bool | None = None):
        self.live = sys.stderr.isatty() if live is None else live
        self.tqdm, self.bar, self.key = tqdm, None, None

    def show(self, e) -> None:
        if isinstance(e, Progress) and e.phase in ("features", "activations", "train"):
            if self.live:
                self._draw(e)
        elif isinstance(e, EpochEnd):
            self.close()
            m = e.metrics
            print(f"epoch {e.epoch}: train loss {m['train/loss']:.4f} acc {m['train/acc']:.3f} | "
                  f"val loss {m['val/loss']:.4f} acc {m['val/acc']:.3f}{' *' if e.is_best else ''}", file=sys.stderr)
        elif isinstance(e, Note):
            print(e.message, file=sys.stderr)

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


def final_line(run_dir, last) -> int:
    """The last line of `train`: one JSON object with the outcome (the same for --queue --wait)."""
    result = {"run_dir": str(run_dir), "status": type(last).__name__ if last is not None else "Interrupted"}
    if isinstance(last, Finished):
        result.update({"val/acc": last.metrics.get("val/acc"), "val/loss": last.metrics.get("val/loss"),
                       "best_epoch": last.best_epoch, "train_seconds": last.train_seconds})
    elif isinstance(last, (Failed, Stopped)):
        result["message"] = last.message
    elif last is None:
        result["message"] = "The worker training this run ended without finishing it; the best checkpoint is kept."
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

"""CLI: python -m tl_core train|predict|export|audit|runs|weights ..."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

from tl_core.base.config import DEFAULT_LR, STRATEGIES, RunConfig
from tl_core.base.events import TERMINAL, EpochEnd, Failed, Finished, Note, Progress, Stopped
from tl_core.base.formatting import duration
from tl_core.base.messages import UserError, WeightsError
from tl_core.base.status import RunStatus
from tl_core.cli import curve as cli_curve
from tl_core.cli import predict as cli_predict
from tl_core.data.audit import audit
from tl_core.data.dataset import load_dataset
from tl_core.jobs import runs
from tl_core.jobs.energy import describe
from tl_core.jobs.job import JobManager
from tl_core.jobs.process import run_here, run_here_other_rank
from tl_core.jobs.settings import load_settings
from tl_core.trust.verdict import wilson

# Modules that load torch (train, predict, export, hub, weights) are imported inside the commands
# that use them: `python -m tl_core runs` or `--help` answers in a fraction of a second without them.


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a folder (or zip) of class folders")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default=RunConfig.backbone)
    p.add_argument("--strategy", choices=STRATEGIES, default="feature_extraction")
    p.add_argument("--unfreeze", type=int, default=1, help="stages unfrozen by --strategy partial")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=0, help="0: the backbone's own size")
    p.add_argument("--lr", type=float, default=None, help="head learning rate (default: by strategy)")
    p.add_argument("--pretrained", default="auto",
                   help="auto (default: an installed weights package, else the hub cache, else a download) | "
                        "package | hub | none | FILE | run:RUN_DIR")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear")
    p.add_argument("--optimizer", choices=["adamw", "sgd", "rmsprop"], default="adamw")
    p.add_argument("--augment", choices=["none", "light", "strong"], default=None,
                   help="default: light when fine-tuning, none for feature extraction (cached features never "
                        "see an augmented image)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--early-stop", type=int, default=0, help="patience in epochs; 0 = off")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    bf16 = p.add_mutually_exclusive_group()
    bf16.add_argument("--bf16", dest="bf16", action="store_const", const=True, default=None,
                      help="train in bfloat16 on a CPU with native bf16 (AVX-512 BF16/AMX): faster, slightly less "
                           "exact (default: automatic, bf16 where one training step measured >= 1.2x faster)")
    bf16.add_argument("--no-bf16", dest="bf16", action="store_const", const=False, help="train in fp32")
    p.add_argument("--no-activation-cache", dest="activation_cache", action="store_false",
                   help="partial: run every image through the frozen stages every epoch (the plain loop) instead "
                        "of training the last stages on their cached output")
    p.add_argument("--out", default="runs", help="the folder that holds run folders")
    p.add_argument("--queue", metavar="redis://HOST:PORT", default=None,
                   help="enqueue the run for `python -m tl_core worker` processes (whose TL_RUNS is --out, "
                        "on storage they share) and print its run id, instead of training here")
    p.add_argument("--wait", action="store_true", help="with --queue: follow the run and end as a local run does")
    p.add_argument("--devices", type=int, default=1,
                   help="train one run on N GPUs (or N CPU processes with --device cpu): torchrun + DDP")


def _config(a) -> RunConfig:
    return RunConfig(backbone=a.backbone, pretrained=a.pretrained, strategy=a.strategy, unfreeze=a.unfreeze,
                     epochs=a.epochs, batch_size=a.batch_size, image_size=a.image_size,
                     lr=a.lr or DEFAULT_LR[a.strategy], head=a.head,
                     optimizer=a.optimizer, augment=a.augment or _default_augment(a.strategy),
                     label_smoothing=a.label_smoothing,
                     early_stop_patience=a.early_stop, val_fraction=a.val_fraction, seed=a.seed, device=a.device,
                     cpu_bf16=a.bf16, activation_cache=a.activation_cache, devices=max(1, getattr(a, "devices", 1)))


def _default_augment(strategy: str) -> str:
    return "none" if strategy == "feature_extraction" else "light"


def _print_report(ds) -> None:
    counts = ", ".join(f"{c} ({n['train']} train + {n['val']} val)" for c, n in ds.counts().items())
    print(f"classes: {counts}", file=sys.stderr)
    for s in ds.report.skipped:
        print(f"skipped {s.name}: {s.reason}", file=sys.stderr)
    for w in ds.report.warnings:
        print(f"warning: {w}", file=sys.stderr)


class _Bars:
    """tqdm bars on a terminal: one for feature extraction, one per epoch. Into a file or a pipe
    (a log, CI) a bar would print a line per update, with rates like "1342177 step/s" from
    steps microseconds apart: there only the one line per epoch (and the notes) are printed."""

    def __init__(self, live: bool | None = None):
        self.live = sys.stderr.isatty() if live is None else live
        self.tqdm, self.bar, self.key = tqdm, None, None

    def show(self, e) -> None:
        if isinstance(e, Progress) and e.phase in ("features", "train"):
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
            desc = "features" if e.phase == "features" else f"epoch {e.epoch}"
            self.bar, self.key = self.tqdm(total=e.total, desc=desc, unit="img" if e.phase == "features" else "step",
                                           file=sys.stderr, leave=True), key
        self.bar.n = e.step
        self.bar.set_postfix_str(f"loss {e.loss:.4f}" if e.loss is not None else "", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.key = None, None


def _train_other_rank(cfg, ds) -> int:
    """A rank other than 0 of a --devices N run: trains its share, writes nothing, prints nothing."""
    from tl_core.training import distributed  # deferred: torch (see the note at the top)
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    for _ in train(cfg, ds):
        pass
    distributed.finish()
    return 0


def cmd_train(a) -> int:
    from tl_core.training import distributed  # deferred: torch (see the note at the top)

    if a.devices > 1 and not distributed.under_torchrun() and not a.queue:
        return distributed.launch(a.argv, a.devices)  # with --queue the worker launches torchrun
    from tl_core.training.train import train  # deferred: torch (see the note at the top)

    cfg = _config(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=".upload-", dir=out)  # a zip is extracted here, nowhere else
    ds = load_dataset(a.data, workdir=workdir, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if os.environ.get("RANK", "0") == "0":  # one report, not one per rank
        _print_report(ds)
    if a.queue:
        return cmd_enqueue(a, cfg, ds, out)
    from tl_core.models.model import resolve_source  # deferred: torch (see the note at the top)

    if resolve_source(cfg) == "hub":
        fetch_with_bar(cfg.backbone)  # a download bar now, not a silent wait inside model building
    if os.environ.get("RANK", "0") != "0":
        return _train_other_rank(cfg, ds)
    run_dir = runs.create_run(out, cfg, ds.classes, ds.to_dict())
    runs.mark_running(run_dir)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: end as Stopped, keep the best model
    bars, last = _Bars(), None
    for e in runs.record(run_dir, train(cfg, ds, stop, run_dir)):
        bars.show(e)
        last = e
    bars.close()
    distributed.finish()
    return _final_line(run_dir, last)


def _final_line(run_dir, last) -> int:
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


def cmd_enqueue(a, cfg, ds, out: Path) -> int:
    """--queue: hand the run to the worker pool; with --wait follow it through its run folder."""
    from tl_core.jobs.pool import PoolRunner  # deferred: rq and redis are needed only with --queue

    job = PoolRunner(a.queue, out).submit(cfg, ds, out)
    print(json.dumps({"run_id": job.run_dir.name, "run_dir": str(job.run_dir), "job": job.id, "status": "Queued"}),
          flush=True)
    if not a.wait:
        return 0
    signal.signal(signal.SIGINT, lambda *_: job.stop())  # Ctrl-C stops the run on its worker
    bars, cursor, last = _Bars(), 0, None
    while True:
        new = job.events(cursor)
        cursor += len(new)
        for e in new:
            bars.show(e)
            last = e
        if isinstance(last, TERMINAL) or (not new and job.done):
            break
        time.sleep(0.5)
    bars.close()
    if not isinstance(last, TERMINAL):
        from tl_core.cli.train import say_if_queue_down  # the one copy (this file duplicates tl_core.cli)

        say_if_queue_down(a.queue)  # ended without an end: the queue going away is the usual reason
    return _final_line(job.run_dir, last if isinstance(last, TERMINAL) else None)


def cmd_worker(a) -> int:
    from tl_core.jobs.pool import serve  # deferred: rq and redis are needed only by a worker

    if a.runs:
        os.environ["TL_RUNS"] = a.runs  # the job function reads it in the work horse
    serve(a.queue or load_settings().redis_url, gpu=a.gpu, burst=a.burst, devices=a.devices)
    return 0


def cmd_export(a) -> int:
    from tl_core.serving.export import export_run  # deferred: torch (see the note at the top)

    if a.format == "embeddings":
        from tl_core.trust.embeddings import export_embeddings  # deferred: torch (see the note at the top)

        out = export_embeddings(a.run_dir, a.out)
        print(f"backbone features of every image: {out['npz']}, {out['csv']}; check: python {out['snippet']}",
              file=sys.stderr)
        print(json.dumps({**out, "format": "embeddings"}))
        return 0
    result = export_run(a.run_dir, a.format, a.out)
    print(f"verified on {result.n_images} validation images: top-1 agreement with the app "
          f"{result.agreement:.1%}, max abs difference of probabilities = {result.max_abs_diff:.2e}",
          file=sys.stderr)
    print(f"unzip {Path(result.path).name} and run: python predict.py IMAGE...", file=sys.stderr)
    print(json.dumps({"path": result.path, "format": a.format, "max_abs_diff": result.max_abs_diff,
                      "top1_agreement": result.agreement, "n_images": result.n_images}))
    return 0


def cmd_audit(a) -> int:
    workdir = tempfile.mkdtemp(prefix="tl-audit-")  # a zip is extracted here, nowhere else
    ds = load_dataset(a.data, workdir=workdir, val_fraction=a.val_fraction, seed=a.seed)
    _print_report(ds)
    features = None
    if a.backbone:
        from tl_core.training.features import embed  # deferred: torch (see the note at the top)

        cfg = RunConfig(backbone=a.backbone, pretrained=a.pretrained)
        print(f"computing {a.backbone} features of {len(ds.train) + len(ds.val)} images...", file=sys.stderr)
        features = embed(cfg, ds.train + ds.val)
    report = audit(ds, features)
    for p in report.pairs:
        print(f"{p.kind} ({p.where}, {p.method} {p.similarity:.3f}): {p.a} <-> {p.b}", file=sys.stderr)
    if report.class_weights_on:
        print(f"classes imbalanced {report.imbalance:.2f}:1: training weighs the loss by class "
              "(RunConfig.class_weights=auto)", file=sys.stderr)
    print(json.dumps(report.to_dict()))
    return 0


def cmd_runs(a) -> int:
    for r in runs.list_runs(a.root):
        print(json.dumps({"run_dir": r.dir, "status": r.status, "backbone": r.config.backbone,
                          "strategy": r.config.strategy, "val/acc": r.metrics.get("val/acc"), "parent": r.parent}))
    return 0


def cmd_run_job(a) -> int:
    from tl_core.training import distributed  # deferred: torch (see the note at the top)

    if a.devices > 1 and not distributed.under_torchrun():
        return distributed.launch(a.argv, a.devices)
    if os.environ.get("RANK", "0") != "0":
        run_here_other_rank(a.run_dir)
        distributed.finish()
        return 0
    last = run_here(a.run_dir)
    distributed.finish()
    return 0 if last is None or isinstance(last, Finished) else 1


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="scratch vs feature extraction vs partial vs full fine-tuning, with a verdict")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default=RunConfig.backbone)
    p.add_argument("--pretrained", default="auto",
                   help="the pretrained members' weights: auto | package | hub | FILE | run:RUN_DIR")
    p.add_argument("--strategies", default=",".join(STRATEGIES_ORDER), help="comma-separated, of: "
                   + ", ".join(STRATEGIES_ORDER))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="shorten: the most epochs whose measured estimate fits in this many minutes")
    p.add_argument("--estimate-only", action="store_true", help="measure and print the estimate, train nothing")
    for flag, kind, default in (("--unfreeze", int, 1), ("--batch-size", int, 32), ("--image-size", int, 0),
                                ("--seed", int, 0), ("--val-fraction", float, 0.2)):
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--augment", choices=["none", "light", "strong"], default="light")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", default="runs", help="the folder that holds run folders")


STRATEGIES_ORDER = ("scratch", "feature_extraction", "partial", "full")


def _member_line(r: dict) -> str:
    if r.get("acc") is None:
        return f"{r['strategy']}: {r.get('status')}"
    lo, hi = wilson(r["correct"], r["n_val"])
    energy = describe(r.get("energy"))
    return (f"{r['strategy']}: {r['acc']:.1%} (95% interval {lo:.1%}-{hi:.1%}, {r['n_val']} validation images) "
            f"in {duration(r['wall_s'] or 0)}, {energy}")


def cmd_compare(a) -> int:
    from tl_core.jobs import compare  # deferred: torch (see the note at the top)
    from tl_core.models.model import resolve_source  # deferred: torch (see the note at the top)
    from tl_core.training import estimate as timing  # deferred: torch (see the note at the top)

    base = RunConfig(backbone=a.backbone, pretrained=a.pretrained, epochs=a.epochs, unfreeze=a.unfreeze,
                     batch_size=a.batch_size, image_size=a.image_size, seed=a.seed, val_fraction=a.val_fraction,
                     augment=a.augment, device=a.device)
    members = compare.member_configs(base, tuple(s.strip() for s in a.strategies.split(",") if s.strip()))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(a.data, workdir=tempfile.mkdtemp(prefix=".upload-", dir=out), val_fraction=a.val_fraction,
                      seed=a.seed)
    _print_report(ds)
    if resolve_source(base) == "hub":
        fetch_with_bar(base.backbone)
    speed = timing.measure_speed(base, ds)
    if a.budget_minutes:
        epochs = timing.epochs_for_budget(members, ds, speed, a.budget_minutes * 60)
        members = [m.replace(epochs=epochs) for m in members]
    estimate = timing.estimate_total(members, ds, speed)
    rates = ", ".join(f"{k} {v:.1f} img/s" for k, v in speed.train_ips.items())
    print(f"about {duration(estimate)} here for {len(members)} runs of {members[0].epochs} epochs "
          f"(measured on {speed.device}: {rates})", file=sys.stderr)
    if a.estimate_only:
        print(json.dumps({"estimate_s": estimate, "epochs": members[0].epochs, "speed": speed.to_dict()}))
        return 0
    group = compare.CompareGroup(JobManager(1), members, ds, out, estimate_s=estimate).start()
    signal.signal(signal.SIGINT, lambda *_: group.stop())  # Ctrl-C: stop; finished members are kept
    _follow(group, compare)
    summary = compare.summary(compare.read_group(group.path))
    for sentence in summary["sentences"]:
        print(sentence, file=sys.stderr)
    print(json.dumps(summary))
    return 0 if summary["verdict"] is not None else 1


def _follow(group, compare) -> None:
    """Print each member's line as it ends (the group runs on its own thread)."""
    shown = set()
    while True:
        done = group.done
        for r in compare.results(compare.read_group(group.path)):
            if r["strategy"] not in shown and r.get("status") in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED):
                shown.add(r["strategy"])
                print(_member_line(r), file=sys.stderr)
        if done:
            return
        time.sleep(0.5)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tl_core", description="TL Studio: transfer learning for images")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    cli_predict.add_parser(sub)  # tl_core/cli/predict.py: "none of these", --ood-threshold
    p = sub.add_parser("export", help="export a run as safetensors (timm) or ONNX, verified")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["safetensors", "onnx", "embeddings"], default="onnx",
                   help="a zip that runs as unpacked (predict.py), or the backbone features as .npz/.csv")
    p.add_argument("--out", required=True)
    p = sub.add_parser("audit", help="duplicates, train/val leakage, conflicting labels, class counts")
    p.add_argument("data", help="folder of class sub-folders, a folder with train/ and val/, or a .zip")
    p.add_argument("--backbone", default="", help="also compare backbone features (e.g. tf_efficientnet_lite0)")
    p.add_argument("--pretrained", default="auto",
                   help="auto | package | hub | none | FILE | run:RUN_DIR (with --backbone)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("run-job", help="train a queued run folder in this process (the process runner's child)")
    p.add_argument("run_dir")
    p.add_argument("--devices", type=int, default=1, help="on N GPUs (torchrun + DDP)")
    p = sub.add_parser("worker", help="serve the job queue: train queued runs, one at a time (TL_RUNNER=rq)")
    p.add_argument("--queue", metavar="redis://HOST:PORT", default=None, help="default: TL_REDIS_URL")
    p.add_argument("--gpu", default=None, help="bind this worker to one GPU (0, 1, ...) or to the cpu")
    p.add_argument("--runs", default=None, help="the shared folder of run folders (default: TL_RUNS)")
    p.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    p.add_argument("--devices", type=int, default=1, help="train each job on N GPUs at once (torchrun + DDP)")
    _compare_parser(sub)
    cli_curve.add_parser(sub)  # tl_core/cli/curve.py: would more images help?
    p = sub.add_parser("runs", help="list the runs in a folder")
    p.add_argument("root", nargs="?", default="runs")
    _weights_parser(sub)
    return parser


def _weights_parser(subparsers) -> None:
    """Register `weights status|fetch|inspect` on the CLI's sub-command parsers."""
    p = subparsers.add_parser("weights", help="pretrained weights: cache status, download, check a file")
    sub = p.add_subparsers(dest="weights_command", required=True)
    s = sub.add_parser("status", help="are the hub weights cached? size, cache folder")
    s.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    f = sub.add_parser("fetch", help="download hub weights into the cache, with a progress bar")
    f.add_argument("names", nargs="+", metavar="NAME", help="timm backbone name(s)")
    i = sub.add_parser("inspect", help="check that a weights file fits a backbone")
    i.add_argument("name", metavar="NAME", help="timm backbone name")
    i.add_argument("file", help=".safetensors / .pth / .pt file")
    p.set_defaults(handler=cmd_weights)


def cmd_weights(args) -> int:
    """Run a parsed `weights` sub-command; returns the exit status (0 when everything worked)."""
    commands = {"status": _cli_status, "fetch": _cli_fetch, "inspect": _cli_inspect}
    return commands[args.weights_command](args)


def _for_each(names: list[str], action) -> int:
    """Print action(name) for each name; a WeightsError is printed and makes the exit status 1."""
    rc = 0
    for name in names:
        try:
            print(f"{name}: {action(name)}")
        except WeightsError as e:
            print(f"{name}: {e}", file=sys.stderr)
            rc = 1
    return rc


def _status_line(name: str) -> str:
    from tl_core.models.model import readiness  # deferred: torch (see the note at the top)
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    ready = readiness(name)
    if ready.kind in ("package", "pip"):
        return ready.text
    st = hub.cache_status(name)
    return f"{'cached' if st.cached else 'not cached'}, {hub.mb(st.size_bytes)}, {st.repo_id} -- {st.message}"


def _cli_status(args) -> int:
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    rc = _for_each(args.names, _status_line)
    print(f"cache: {hub.cache_dir()}")
    return rc


def fetch_with_bar(backbone: str) -> str:
    """fetch() with a tqdm bar on stderr (the CLI's download progress); raises WeightsError."""
    from tl_core.models.sources import hub  # deferred: timm and torch (see the note at the top)

    bar = _CliBar(backbone)
    try:
        return hub.fetch(backbone, bar.progress)
    finally:
        bar.close()


def _cli_fetch(args) -> int:
    return _for_each(args.names, fetch_with_bar)


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


def _cli_inspect(args) -> int:
    from tl_core.models.sources.weights import (  # deferred: timm and torch (see the note at the top)
        inspect_weights_file,
        shape_text,
    )

    try:
        report = inspect_weights_file(args.name, args.file)
    except WeightsError as e:
        print(e, file=sys.stderr)
        return 1
    print(report.message)
    for key, got, want in report.mismatched[:20]:
        print(f"  shape  {key}: file {shape_text(got)}, model {shape_text(want)}")
    for key in report.missing[:20]:
        print(f"  missing     {key}")
    for key in report.unexpected[:20]:
        print(f"  unexpected  {key}")
    return 0 if report.ok else 1


COMMANDS = {"train": cmd_train, "export": cmd_export, "runs": cmd_runs,
            "run-job": cmd_run_job, "worker": cmd_worker, "compare": cmd_compare, "audit": cmd_audit}


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # --devices re-runs the same command under torchrun
    handler = COMMANDS.get(a.command) or getattr(a, "handler", None)
    try:
        return handler(a)
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

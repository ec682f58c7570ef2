"""E: the CPU's fast paths (issue 14), on the default backbone with its packaged ImageNet weights.

E1 cold feature extraction (20 head epochs, the engine tl_core picks) vs one plain torch fp32
   forward pass over the same images; validation accuracy of the picked engine, torch fp32, bf16.
E2 fine-tuning (strategy full) in bf16 autocast vs fp32, through train(), and a plain fp32 loop:
   train images/s and final validation accuracy per seed.
E3 prediction latency, one image at a time through Predictor.top_k: p50/p95 per engine.
E4 a local folder read in place (the Data page's path) vs load_dataset on the same folder.
Ours and the references alternate in one process; medians; the machine is shared.
"""
from __future__ import annotations

import os
import shutil
import statistics
from pathlib import Path

from . import reference
from .common import Row, clock, fresh_dir, median, threads_like_ours


def _cfg(args, **kw):
    from tl_core.base.config import RunConfig

    base = dict(strategy="feature_extraction", epochs=20, batch_size=args.batch_size, image_size=0, seed=0)
    if args.backbone != "resnet18":  # bench's old default: E measures the app's default unless told
        base["backbone"] = args.backbone
    return RunConfig(**{**base, **kw})


def _run(cfg, ds, env: dict | None = None):
    """train() with TL_ENGINE etc. set for this run only -> (seconds, final events)."""
    from tl_core.base.events import EpochEnd, Finished, Note
    from tl_core.training.train import train

    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        t = clock()
        events = list(train(cfg, ds))
        seconds = clock() - t
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    if not isinstance(events[-1], Finished):
        raise RuntimeError(f"run did not finish: {events[-1]}")
    ends = [e for e in events if isinstance(e, EpochEnd)]
    notes = [e.message for e in events if isinstance(e, Note)]
    return seconds, ends, events[-1], notes


def _ref_pass(cfg, ds, threads: int) -> float:
    import timm
    import torch

    from tl_core.data.transforms import preprocess_for

    model = timm.create_model(cfg.backbone, pretrained=False)
    pp = preprocess_for(model, cfg.image_size)
    torch.set_num_threads(threads)
    t = clock()
    reference.embed(model, ds.train + ds.val, pp, cfg.batch_size)
    return clock() - t


def e1(args, ds, workdir: Path) -> list[Row]:
    import torch

    from tl_core.data.transforms import DECODED
    from tl_core.training.features import cache_root

    cfg = _cfg(args)
    cache = fresh_dir(workdir, "tl_cache_")
    os.environ["TL_CACHE"] = str(cache)
    first, _, fin_first, notes = _run(cfg, ds)  # first ever: probe + ONNX export + features
    acc = {"auto": fin_first.metrics["val/acc"]}
    cold, ref, picked = [], [], notes[0] if notes else ""
    for r in range(args.repeats):
        for who in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
            if who == "ref":
                ref.append(_ref_pass(cfg, ds, torch.get_num_threads()))
            else:
                shutil.rmtree(cache_root(), ignore_errors=True)  # cold features; probe and export kept
                DECODED.clear()
                threads_like_ours()
                cold.append(_run(cfg, ds)[0])
    for name, env, extra in (("torch fp32", {"TL_ENGINE": "torch"}, {}),
                             ("bf16", {"TL_ENGINE": "bf16"}, {"cpu_bf16": True})):
        acc[name] = _run(cfg.replace(**extra), ds, env)[2].metrics["val/acc"]
    n = len(ds.train) + len(ds.val)
    gap = abs(acc["auto"] - acc["torch fp32"]) * 100
    return [
        Row(f"E1 cold feature extraction, 20 head epochs, {cfg.backbone} ({n} images) vs one plain torch fp32 "
            "forward pass", median(cold), median(ref), "s", "<= 0.5", cold, ref,
            note=f"engine probe and ONNX export cached from an earlier run; {picked}"),
        Row("E1 first run ever (engine probe + ONNX export + features) vs one plain fp32 pass", first,
            median(ref), "s", "", [first], ref),
        Row("E1 val accuracy, picked engine minus torch fp32 (points)", gap, None, "", "<= 0.5",
            note="val accuracy " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items())),
    ]


def _step_rates(args, ds) -> dict:
    """Images/s of one AdamW training step (forward, backward, update) on the same real batch: fp32 as a
    plain loop does it, and under the bf16 autocast that Run.autocast() enables; alternated."""
    import contextlib

    import timm
    import torch

    from tl_core.data.transforms import preprocess_for

    cfg = _cfg(args, strategy="full")
    model = timm.create_model(cfg.backbone, pretrained=False, num_classes=len(ds.classes)).train()
    pp = preprocess_for(model, 0)
    tf = reference.eval_tf(pp)
    batch = reference.Files(ds.train[:cfg.batch_size], tf)
    x = torch.stack([batch[i][0] for i in range(len(batch))])
    y = torch.tensor([batch[i][1] for i in range(len(batch))])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rates = {"fp32": [], "bf16": []}
    for rep in range(1 + args.steps):
        for name in (("fp32", "bf16") if rep % 2 == 0 else ("bf16", "fp32")):
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if name == "bf16" else contextlib.nullcontext()
            t = clock()
            with ctx:
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rep:  # rep 0 warms both up
                rates[name].append(len(x) / (clock() - t))
    return rates


def e2(args, ds, workdir: Path) -> list[Row]:
    """Fine-tuning in bf16: training-step images/s vs fp32; with --seeds, whole runs and accuracy too."""
    rates = _step_rates(args, ds)
    rows = [Row(f"E2 fine-tune training step images/s, bf16 autocast vs plain fp32 (batch {args.batch_size}, "
                "native size)", median(rates["bf16"]), median(rates["fp32"]), "img/s", ">= 1.4",
                rates["bf16"], rates["fp32"])]
    return rows + (_e2_runs(args, ds) if args.seeds else [])


def _e2_runs(args, ds) -> list[Row]:
    """Whole fine-tuning runs through train(), bf16 vs fp32 per seed, and a plain fp32 loop."""
    import timm
    import torch

    from tl_core.data.transforms import preprocess_for

    epochs = 1 + args.epochs
    rates = {"fp32": [], "bf16": [], "plain": []}
    accs = {"fp32": [], "bf16": []}
    for seed in args.seeds:
        for bf16 in ((False, True) if seed % 2 == 0 else (True, False)):
            cfg = _cfg(args, strategy="full", epochs=epochs, lr=1e-3, seed=seed, cpu_bf16=bf16, augment="light")
            _, ends, _, _ = _run(cfg, ds)
            key = "bf16" if bf16 else "fp32"
            rates[key] += [e.metrics["images_per_s"] for e in ends[1:]]  # epoch 1: warm-up
            accs[key].append(ends[-1].metrics["val/acc"])
        torch.manual_seed(seed)
        model = timm.create_model(cfg.backbone, pretrained=False, num_classes=len(ds.classes))
        loop = reference.PlainFineTune(model, ds, preprocess_for(model, 0), cfg.batch_size, 1e-3, 0.01, seed)
        for i in range(2):
            n, s = loop.train_epoch()
            if i:
                rates["plain"].append(n / s)

    def spread(xs):
        return f"{100 * statistics.mean(xs):.1f}% +- {100 * statistics.pstdev(xs):.1f}"

    note = (f"seeds {list(args.seeds)}, {epochs} epochs each; final val acc fp32 "
            f"{[round(100 * a, 1) for a in accs['fp32']]}, bf16 {[round(100 * a, 1) for a in accs['bf16']]}")
    return [
        Row("E2 fine-tune (full) train images/s: ours bf16 vs plain fp32 loop", median(rates["bf16"]),
            median(rates["plain"]), "img/s", ">= 1.4", rates["bf16"], rates["plain"]),
        Row("E2 fine-tune train images/s: ours bf16 vs ours fp32", median(rates["bf16"]), median(rates["fp32"]),
            "img/s", "", rates["bf16"], rates["fp32"]),
        Row(f"E2 final val accuracy bf16 {spread(accs['bf16'])} vs fp32 {spread(accs['fp32'])}",
            100 * statistics.mean(accs["bf16"]), 100 * statistics.mean(accs["fp32"]), "%", "", note=note),
    ]


def _percentile(xs, q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def e3(args, ds, workdir: Path) -> list[Row]:
    """One image at a time (decode + preprocess + forward + top-k), engines interleaved per image."""
    from tl_core.jobs import runs
    from tl_core.models.engines import native_bf16
    from tl_core.serving.predict import Predictor
    from tl_core.training.train import train

    os.environ.setdefault("TL_CACHE", str(fresh_dir(workdir, "tl_cache_")))
    cfg = _cfg(args, epochs=1)
    run_dir = runs.create_run(workdir / "runs", cfg, ds.classes, ds.to_dict())
    list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))
    names = ["torch", "onnx"] + (["bf16"] if native_bf16() else []) + ["auto"]
    preds = {n: Predictor(run_dir, engine=n) for n in names}
    paths = [it.path for it in ds.val][:args.latency_images]
    for p in preds.values():  # first use: engine choice, ONNX export (cached), warm-up
        p.top_k([paths[0]])
    times = {n: [] for n in names}
    for path in paths:
        for n in names:
            t = clock()
            preds[n].top_k([path])
            times[n].append(1000 * (clock() - t))
    ref = times["torch"]
    rows = []
    for n in names:
        label = f"{n} -> {preds[n].choice.label}" if n == "auto" else preds[n].choice.label
        rows.append(Row(f"E3 predict one image, p50 ms, {label} vs PyTorch fp32", median(times[n]), median(ref),
                        "ms", "", times[n], ref,
                        note=f"p95 {_percentile(times[n], 0.95):.1f} ms vs {_percentile(ref, 0.95):.1f} ms"))
    return rows


def e4(args, ds, workdir: Path) -> list[Row]:
    """The Data page's local-folder path (AppTest, the whole page run) vs load_dataset, alternated."""
    from streamlit.testing.v1 import AppTest

    from tl_core.data.dataset import load_dataset
    from tl_core.data.transforms import DECODED

    from .common import ROOT

    folder = str(ds.root)
    ours, ref = [], []
    for r in range(max(3, args.repeats)):
        for who in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
            DECODED.clear()
            if who == "ref":
                t = clock()
                load_dataset(folder)
                ref.append(clock() - t)
            else:
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
                at.run()
                at.switch_page("app_pages/data.py").run()
                at.text_input(key="local_path").input(folder)
                t = clock()
                at.button(key="local_use").click().run()
                ours.append(clock() - t)
                if at.exception or "dataset" not in at.session_state:
                    raise RuntimeError(f"the Data page did not load {folder}: {at.exception}")
    return [Row(f"E4 local folder on the Data page (whole page run) vs load_dataset ({folder})", median(ours),
                median(ref), "s", "<= 2", ours, ref)]

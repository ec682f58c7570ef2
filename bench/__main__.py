"""python -m bench: TL Studio's performance benchmarks, ours vs a hand-written reference.

    python -m bench                                   # hymenoptera (if present), resnet18, all parts
    python -m bench --only P1,P3 --repeats 3
    python -m bench --generate 200 --size 256 --image-size 128
    python -m bench --write                           # also append the table to BENCHMARKS.md

Parts E1-E4 (the CPU's fast paths, default backbone with its packaged weights) are in bench/engines.py.
Parts: P1 feature extraction (cold/warm cache) vs one forward pass; P2 full fine-tune through a
Job vs a plain loop; P3 loader alone vs the training epoch; P5 peak RSS on many large photos;
T threads (torch threads 1 vs all cores; DataLoader workers 0 vs 1). Other people's processes on
the same cores make absolute times noisy: ours and the reference run in one process, alternated,
after a warm-up; the table shows medians and ratios.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported; benchmarks never download

from .common import HYMENOPTERA, ROOT, dataset_for, machine, table  # noqa: E402

PARTS = ("P1", "P2", "P3", "P5", "T", "E1", "E2", "E3", "E4")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", default=str(HYMENOPTERA), help="dataset folder (class folders or train/ + val/)")
    src.add_argument("--generate", type=int, default=0, metavar="N", help="use N generated JPEGs instead")
    p.add_argument("--size", type=int, default=256, help="pixels of generated images")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=160,
                   help="model input px (default 160: 224 takes ~2x longer; resnet18's own is 224)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1, help="alternated ours/reference repetitions per part")
    p.add_argument("--epochs", type=int, default=1, help="P2/T: measured epochs after the warm-up epoch")
    p.add_argument("--steps", type=int, default=3, help="T: measured training steps per thread setting")
    p.add_argument("--subset", type=int, default=64, help="T: training images for the workers comparison")
    p.add_argument("--p5-images", type=int, default=300, help="P5: generated 1-4 MP photos")
    p.add_argument("--latency-images", type=int, default=40, help="E3: images predicted one at a time")
    p.add_argument("--seeds", default="", help="E2: also whole fine-tuning runs for these seeds (e.g. 0,1,2), "
                                               "each in fp32 and in bf16, with final accuracy (slow)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    p.add_argument("--write", action="store_true", help="append the results to BENCHMARKS.md")
    args = p.parse_args(argv)
    args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    args.only = [s.strip().upper() for s in args.only.split(",") if s.strip()]
    bad = set(args.only) - set(PARTS)
    if bad:
        p.error(f"unknown part(s) {', '.join(sorted(bad))}; choose from {', '.join(PARTS)}")
    if not args.generate and not Path(args.data).is_dir():
        p.error(f"{args.data} is not a folder; pass --data PATH or --generate N")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tl_core.training.device import configure_threads

    from . import engines, p1_features, p2_finetune, p3_pipeline, p5_memory, threads

    configure_threads()  # what tl_core uses; the references run under the same setting
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tl_bench_"))
    rows, results, t0 = [], {}, time.perf_counter()
    try:
        ds = dataset_for(args, workdir)
        print(f"dataset: {len(ds.train)} train + {len(ds.val)} val images, {len(ds.classes)} classes", flush=True)
        plan = {"P1": lambda: p1_features.run(args, ds, workdir),
                "P2": lambda: p2_finetune.run(args, ds, workdir, results),
                "P3": lambda: p3_pipeline.run(args, ds, workdir, results),
                "P5": lambda: p5_memory.run(args, ds, workdir, results),
                "T": lambda: threads.run(args, ds, workdir, results),
                "E1": lambda: engines.e1(args, ds, workdir), "E2": lambda: engines.e2(args, ds, workdir),
                "E3": lambda: engines.e3(args, ds, workdir), "E4": lambda: engines.e4(args, ds, workdir)}
        for part in PARTS:
            if part in args.only:
                t = time.perf_counter()
                new = plan[part]()
                rows += new
                print(f"\n[{part} done in {time.perf_counter() - t:.0f} s]\n{table(new)}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - t0
    out = table(rows)
    print(f"\n== results (medians; ratio = ours / reference; {total:.0f} s in all) ==\n{out}")
    if args.write:
        write(args, info, out, total)
    return 0


def write(args, info: dict, out: str, total: float) -> None:
    cmd = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if os.environ.get("TL_NUM_THREADS"):
        cmd = f"TL_NUM_THREADS={os.environ['TL_NUM_THREADS']} {cmd}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data = f"--generate {args.generate} --size {args.size}" if args.generate else args.data
    text = (f"\n## {when}: `{cmd}`\n\n"
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['threads']} threads), "
            f"timm {info['timm']}, python {info['python']}, GPU {info['gpu']}; load average at start "
            f"{info['load_avg_at_start']} (other processes share these cores). Data: {data}; backbone "
            f"{args.backbone}, image size {args.image_size}, batch {args.batch_size}, pretrained none, "
            f"repeats {args.repeats}. Took {total:.0f} s.\n\n{out}\n")
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# TL Studio benchmarks\n\nAppended by `python -m bench --write` (see bench/).\n")
    with open(path, "a") as f:
        f.write(text)
    print(f"appended to {path}")


if __name__ == "__main__":
    sys.exit(main())

"""python -m bench.gpu_check [--data FOLDER]: the CUDA path, checked in under 5 minutes on one GPU.

1. Training throughput with AMP + channels_last (resnet50, efficientnet_b0; random init,
   synthetic 224 px batches, timm's own batch sizes) beside timm's published RTX 3090 figures
   (../shared/data/timm_results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv).
2. The out-of-memory retry: a Job whose batch cannot fit; the Note and the second attempt at
   half the batch are reported as they happen (no outcome is assumed).
3. Feature extraction on the GPU through tl_core.training.train, images/s of the embedding pass, and the
   validation accuracy beside the same run on the CPU (same split, same solved head).
Prints one JSON line per check; nothing is asserted, everything measured.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import torch  # noqa: E402

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.base.events import Finished, Note, Progress  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.training.train import train  # noqa: E402

from .common import ROOT  # noqa: E402

TIMM_3090 = ROOT.parent / "shared" / "data" / "timm_results" / "benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv"


def published(name: str) -> dict | None:
    if not TIMM_3090.is_file():
        return None
    with open(TIMM_3090) as f:
        return next((r for r in csv.DictReader(f) if r["model"] == name), None)


def train_throughput(name: str, seconds: float = 20.0) -> dict:
    ref = published(name)
    batch = int(ref["train_batch_size"]) if ref else 256
    model = timm.create_model(name).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def step():
        with torch.autocast("cuda", dtype=dtype):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up: cuDNN autotuning, allocator
        step()
    torch.cuda.synchronize()
    steps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        steps += 1
    torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - t)
    return {"check": "train_throughput", "model": name, "batch": batch, "dtype": str(dtype), "img_per_s": round(rate),
            "timm_rtx3090_img_per_s": float(ref["train_samples_per_sec"]) if ref else None,
            "gpu": torch.cuda.get_device_name(0)}


def oom_retry(ds) -> dict:
    from tl_core.jobs.job import JobManager

    cfg = RunConfig(backbone="resnet50", pretrained="none", strategy="full", epochs=1, image_size=1024,
                    batch_size=4096)
    job = JobManager().submit(cfg, ds, Path("/tmp/gpu_check_runs"))
    job.join(timeout=180)
    events = job.events()
    return {"check": "oom_retry", "notes": [e.message for e in events if isinstance(e, Note)],
            "outcome": type(events[-1]).__name__ if events else None,
            "final_batch": job.cfg.batch_size}


def feature_extraction(ds, device: str) -> dict:
    cfg = RunConfig(device=device)
    rates, last, t = [], None, time.perf_counter()
    for e in train(cfg, ds, threading.Event()):
        if isinstance(e, Progress) and e.phase == "features" and e.images_per_s:
            rates.append(e.images_per_s)
        last = e
    return {"check": "feature_extraction", "device": device, "seconds": round(time.perf_counter() - t, 1),
            "embed_img_per_s": round(rates[-1], 1) if rates else None,
            "val_acc": last.metrics.get("val/acc") if isinstance(last, Finished) else repr(last)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "trashnet"))
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"check": "cuda", "available": False}))
        return 1
    os.environ["TL_CACHE"] = "/tmp/gpu_check_cache"  # cold feature cache: the GPU pass is measured
    ds = load_dataset(a.data if Path(a.data).is_dir() else ROOT / "assets" / "samples" / "recycling")
    for check in (lambda: train_throughput("resnet50"), lambda: train_throughput("efficientnet_b0"),
                  lambda: oom_retry(ds), lambda: feature_extraction(ds, "cuda")):
        print(json.dumps(check()), flush=True)
    os.environ["TL_CACHE"] = "/tmp/gpu_check_cache_cpu"
    print(json.dumps(feature_extraction(ds, "cpu")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 21 part 1: a cold feature-extraction run against one plain torch fp32 pass, side by side.

Cold = a fresh TL_CACHE (no engine probe, no ONNX export, no cached features) and nothing decoded:
a new user's first click. Ours is the whole train() of the default feature-extraction run (model
building, features, the head's cross-validated solve); the reference is one plain timm forward
pass (bench/reference.py: PIL decode, torchvision transforms), model creation not counted.
Then the background probe that the cold run started is waited for, and a second run on another
fresh feature cache (probe kept) shows which engine the next run picks and what it costs.

    nice .venv/bin/python -m bench.cold_features /work/shared/data/trashnet --repeats 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def timed_run(cfg, ds) -> tuple[float, dict]:
    """Seconds of one run through train(), with its validation accuracy and its feature note."""
    from tl_core.base.events import Finished, Note
    from tl_core.data.transforms import DECODED
    from tl_core.training.train import train

    DECODED.clear()
    t = time.perf_counter()
    events = list(train(cfg, ds))
    seconds = time.perf_counter() - t
    if not isinstance(events[-1], Finished):
        raise RuntimeError(f"run did not finish: {events[-1]}")
    note = next(e for e in events if isinstance(e, Note) and e.kind.startswith("features."))
    return seconds, {"val_acc": events[-1].metrics["val/acc"], "engine_note": note.message}


def _reference(cfg, ds) -> float:
    import timm
    import torch

    from bench import reference
    from tl_core.data.transforms import preprocess_for

    model = timm.create_model(cfg.backbone, pretrained=False)
    pp = preprocess_for(model, cfg.image_size)
    threads = torch.get_num_threads()
    t = time.perf_counter()
    reference.embed(model, ds.train + ds.val, pp, cfg.batch_size)
    torch.set_num_threads(threads)
    return time.perf_counter() - t


def _wait_for_probe(backbone: str, size: int, deadline_s: float) -> float | None:
    from tl_core.models import engines

    t = time.perf_counter()
    while time.perf_counter() - t < deadline_s:
        if engines.cached_probe(backbone, size) is not None:
            return time.perf_counter() - t
        time.sleep(0.5)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="a folder of class folders, e.g. /work/shared/data/trashnet")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench/out/cold_features.json")
    a = ap.parse_args()
    from tl_core.base.atomic import write_json_atomic
    from tl_core.base.config import RunConfig
    from tl_core.data.dataset import load_dataset
    from tl_core.training.feature_cache import cache_root

    cfg = RunConfig(strategy="feature_extraction")  # the defaults: the app's first click
    ds = load_dataset(a.data)
    for it in ds.train + ds.val:  # the page cache warm for both sides: the files are read once first
        Path(it.path).read_bytes()
    cold, ref, info = [], [], []
    for r in range(a.repeats):
        for who in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
            if who == "ref":
                ref.append(_reference(cfg, ds))
                continue
            os.environ["TL_CACHE"] = tempfile.mkdtemp(prefix="tl_cold_")
            seconds, what = timed_run(cfg, ds)
            cold.append(seconds)
            what["probe_wait_s"] = _wait_for_probe(cfg.backbone, _input_size(cfg), 300)
            shutil.rmtree(cache_root(), ignore_errors=True)  # features cold again; probe (and no export) kept
            what["next_run_s"], nxt = timed_run(cfg, ds)
            what["next_run_note"] = nxt["engine_note"]
            info.append(what)
            shutil.rmtree(os.environ["TL_CACHE"], ignore_errors=True)
    result = {"images": len(ds.train) + len(ds.val), "cold_s": cold, "plain_torch_s": ref,
              "ratio_cold": statistics.median(cold) / statistics.median(ref),
              "ratio_next": statistics.median(i["next_run_s"] for i in info) / statistics.median(ref),
              "runs": info, "load_average": os.getloadavg()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(a.out, result)
    print(json.dumps(result, indent=1))


def _input_size(cfg) -> int:
    from tl_core.data.transforms import preprocess_for
    from tl_core.models.model import build_model

    return preprocess_for(build_model(cfg.replace(pretrained="none"), 2), cfg.image_size).input_size


if __name__ == "__main__":
    main()

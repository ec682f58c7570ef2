"""Engines for inference-only passes on the CPU: PyTorch fp32, PyTorch bfloat16, ONNX Runtime fp32.

Which is fastest depends on the backbone and the CPU. Measured on the project's 2-core Xeon (AMX,
AVX-512 BF16), batch 32, 224 px, images/s: tf_efficientnet_lite0 torch fp32 53, bf16 autocast 144,
ONNX Runtime 125-220; resnet18 46 / 88 / 61 (issue 14). So a short probe measures the candidates
once per (machine, backbone, input size) and caches the figures with the machine's description.

ONNX Runtime computes the same function as PyTorch fp32 (max relative error ~1e-6), so the
automatic choice is between those two. bfloat16 keeps 8 bits of mantissa (features differ by up to
~2e-2 relative): it is a candidate only when asked for, and only where the CPU computes bf16 natively
(elsewhere PyTorch emulates it and it is slower than fp32).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from tl_core.base import background
from tl_core.base.atomic import write_bytes_atomic
from tl_core.base.messages import Message
from tl_core.models.fold import fold_batchnorm
from tl_core.models.model import create_for_preview, pooled_features

ENGINES = ("torch", "onnx", "bf16")
LABELS = {"torch": "PyTorch fp32", "onnx": "ONNX Runtime fp32", "bf16": "PyTorch bfloat16", "cuda": "PyTorch CUDA"}
PRECISION = {"torch": "fp32", "onnx": "fp32", "bf16": "bf16", "cuda": "amp"}
ANSI = r"\x1b\[[0-9;]*m"  # colour codes in the exporter's messages
PROBE_IMAGES = 16  # per timed batch: long enough to time (0.1-0.5 s), short enough to repeat
# ONNX export seconds assumed before one was timed here: tf_efficientnet_lite0 took 6.3 s with the
# dynamo exporter on the project's 2-core Xeon (issue 21); probes store the measured figure
EXPORT_GUESS_S = 8.0
# torch.export is not thread-safe: two exports at once in one process fail ("Trying to pop empty mode
# stack"), as when two hosted sessions click Export in the same second (two task threads of one web
# server). Every ONNX export of the project holds this lock. Reentrant: a whole ONNX export_run holds
# it too, its predictor's build and parity check included (CPython 3.11's ast.parse is not
# thread-safe either: "AST constructor recursion depth mismatch" in one of three concurrent exports
# in CI, 2026-12-01), and the export itself takes it again.
EXPORT_LOCK = threading.RLock()


class EngineError(RuntimeError):
    """An engine that cannot run this model here (e.g. the ONNX export failed); callers fall back."""


def cache_dir() -> Path:
    return background.cache_dir()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """True where the CPU has bf16 arithmetic (AVX-512 BF16 or AMX). TL_NATIVE_BF16=0/1 overrides."""
    env = os.environ.get("TL_NATIVE_BF16", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime  # optional: without it the ONNX engine is simply not a candidate
    except ImportError:
        return None
    return onnxruntime.__version__


def machine() -> dict:
    """What the probe's figures depend on: CPU, vector extensions, cores, library versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo_lines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = sorted({"avx2", "avx512f", "avx512_bf16", "amx_bf16"} & cpu_flags())
    return {"cpu": model, "flags": flags, "cores": cores, "torch": torch.__version__,
            "onnxruntime": onnxruntime_version()}


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def machine_key(desc: dict | None = None) -> str:
    return hashlib.sha1(json.dumps(desc or machine(), sort_keys=True).encode()).hexdigest()[:16]


def candidates(allow_bf16: bool) -> list[str]:
    """Engines worth probing here: torch always; ONNX Runtime if installed; bf16 if asked and native."""
    out = ["torch"]
    if onnxruntime_version():
        out.append("onnx")
    if allow_bf16 and native_bf16():
        out.append("bf16")
    return out


def choose(rates: dict, allowed: list[str]) -> str:
    """The fastest allowed engine with a measured rate; torch when nothing else was measured."""
    measured = {e: r for e, r in rates.items() if e in allowed and r}
    return max(measured, key=measured.get) if measured else "torch"


class Pooled(nn.Module):
    """The backbone up to the classifier's input: what feature extraction caches."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return pooled_features(self.model, x)


class TorchEngine:
    def __init__(self, module: nn.Module, bf16: bool = False):
        self.name = "bf16" if bf16 else "torch"
        # channels_last for this inference-only pass: resnet18 at 160 px, 1 thread, 2.65 s vs 4.35 s
        # per 128 images (1.6x; 2 threads: 1.4x). Outputs differ from NCHW by float rounding (~1e-6).
        self.module = module.eval().to(memory_format=torch.channels_last)
        self.bf16 = bf16
        self.folded = False  # BatchNorm folded into the convolutions on the first batch (models.fold)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if not self.folded:
            self.module = fold_batchnorm(self.module, x[:2]).to(memory_format=torch.channels_last)
            self.folded = True
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            return self.module(x).float()


class OnnxEngine:
    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort  # optional dependency, only loaded when this engine is used

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()  # the same load-aware count as torch
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise EngineError(f"ONNX Runtime could not load {path.name}: {e}") from e
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: x.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)


def onnx_path(key: str) -> Path:
    return cache_dir() / "onnx" / f"{key}.onnx"


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """The module as ONNX (dynamic batch) at `path`, unless already there; raises EngineError."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the exporter prints graphs and hints on failure: keep them out of the app's and the CLI's output
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp, \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            # the dynamo exporter: 6.3 s vs 1.9 s for the legacy one on tf_efficientnet_lite0, but its
            # graph ran 221 vs 149 images/s in ONNX Runtime (interleaved medians of 8, 2 threads)
            with EXPORT_LOCK:
                prog = torch.onnx.export(module.eval(), (example[:2],), input_names=["image"], output_names=["out"],
                                         dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
                prog.save(str(Path(tmp) / "m.onnx"), external_data=False)
            data = (Path(tmp) / "m.onnx").read_bytes()
        except Exception as e:
            raise EngineError(f"ONNX export failed: {type(e).__name__}: {re.sub(ANSI, '', str(e))[:200]}") from e
    write_bytes_atomic(path, data)
    return path


def build(engine: str, module: nn.Module, example: torch.Tensor, onnx_file: Path) -> TorchEngine | OnnxEngine:
    """An engine running `module` (ONNX: exported to `onnx_file` once); raises EngineError."""
    if engine == "onnx":
        return OnnxEngine(export_onnx(module, example, onnx_file))
    return TorchEngine(module, bf16=engine == "bf16")


@dataclass(frozen=True)
class Choice:
    """The engine a pass ran on, with the probe's figures (images/s per engine, bf16's error)."""

    engine: str
    rates: dict
    bf16_error: float | None = None
    reason: Message | None = None  # why this engine, for this run (see plan())

    @property
    def label(self) -> str:
        return LABELS.get(self.engine, self.engine)

    @property
    def precision(self) -> str:
        return PRECISION.get(self.engine, "fp32")


# ---- the probe: images/s of each candidate, cached per machine, backbone and input size ----

def probe_file() -> Path:
    return cache_dir() / "engine_probe.json"


def _read_probes() -> dict:
    try:
        return json.loads(probe_file().read_text())
    except (OSError, ValueError):
        return {}  # no probe yet, or a damaged file: measure again


def cached_probe(backbone: str, size: int) -> dict | None:
    """{"rates": {engine: images/s or None}, "errors": {engine: max rel. error}} measured here, or None."""
    return _read_probes().get(machine_key(), {}).get("probes", {}).get(f"{backbone}@{size}")


def save_probe(backbone: str, size: int, entry: dict) -> None:
    probes = _read_probes()
    desc = machine()
    mine = probes.setdefault(machine_key(desc), {"machine": desc, "probes": {}})
    mine["probes"][f"{backbone}@{size}"] = entry
    probe_file().parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(probe_file(), json.dumps(probes, indent=1, sort_keys=True).encode())


def example_batch(size: int, n: int = PROBE_IMAGES) -> torch.Tensor:
    # seeded noise: speed does not depend on the pixels; errors are compared on the same input
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def measure(module: nn.Module, example: torch.Tensor, engines: list[str], onnx_file: Path,
            between_steps=None) -> dict:
    """Images/s of each engine on `example` (best of 3 after a warm-up: the least disturbed by other
    processes) and each one's max relative error against torch fp32; None where it cannot run.
    `between_steps()` is called before each export and timing (a background helper waits there
    while a training run is on)."""
    between_steps = between_steps or (lambda: None)
    rates, errors, ref, export_s = {}, {}, None, None
    for name in sorted(engines, key=lambda e: e != "torch"):  # torch first: the reference output
        try:
            between_steps()
            t_build = time.perf_counter()
            exporting = name == "onnx" and not onnx_file.exists()
            engine = build(name, module, example, onnx_file)
            if exporting:
                export_s = round(time.perf_counter() - t_build, 2)
            engine(example[:2])
            times = []
            for _ in range(3):
                between_steps()
                t = time.perf_counter()
                out = engine(example)
                times.append(time.perf_counter() - t)
        except EngineError:
            rates[name] = None
            continue
        rates[name] = round(len(example) / min(times), 1)
        if ref is None:
            ref = out
        else:
            errors[name] = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    return {"rates": rates, "errors": errors, "images": len(example), "export_s": export_s,
            "when": time.strftime("%Y-%m-%d %H:%M")}


def probe(module: nn.Module, backbone: str, size: int, onnx_file: Path, allow_bf16: bool,
          between_steps=None) -> Choice:
    """The engine to run `module` on, from the cached probe (measured now if missing; see measure
    for `between_steps`)."""
    forced = os.environ.get("TL_ENGINE", "").strip()  # TL_ENGINE=torch|onnx|bf16: for comparisons
    engines = candidates(allow_bf16 or forced == "bf16")
    entry = cached_probe(backbone, size)
    if entry is None or any(e not in entry["rates"] for e in engines):
        entry = measure(module, example_batch(size), engines, onnx_file, between_steps)
        save_probe(backbone, size, entry)
    if forced in engines:
        engines = [forced]
    elif not allow_bf16 and "bf16" in engines:
        engines.remove("bf16")
    return Choice(choose(entry["rates"], engines), entry["rates"], entry["errors"].get("bf16"))


# ---- the engine for one pass: by its expected total time, never waiting for a probe ----

def expected_seconds(engine: str, n_images: int, entry: dict, onnx_file: Path) -> float | None:
    """Seconds `engine` is expected to take for `n_images` here: its export (ONNX, once per
    weights) + n / its remembered rate; None when its rate was never measured here."""
    rate = entry.get("rates", {}).get(engine)
    if not rate:
        return None
    export = 0.0
    if engine == "onnx" and not onnx_file.exists():
        export = entry.get("export_s") or EXPORT_GUESS_S
    return export + n_images / rate


def plan(n_images: int, backbone: str, size: int, onnx_file: Path, allow_bf16: bool) -> Choice:
    """The engine with the least expected total time for this pass (issue 21: the first run is
    never slower than plain torch). With nothing measured here yet: PyTorch fp32 at once, and
    `Choice.reason` asks for a probe in the background (probe_in_background) for the next pass."""
    forced = os.environ.get("TL_ENGINE", "").strip()  # TL_ENGINE=torch|onnx|bf16: for comparisons
    allowed = candidates(allow_bf16 or forced == "bf16")
    entry = cached_probe(backbone, size) or {}
    if forced in allowed:
        return Choice(forced, entry.get("rates", {}), entry.get("errors", {}).get("bf16"),
                      Message("engine.forced", {"engine": LABELS[forced]}))
    if not allow_bf16 and "bf16" in allowed:
        allowed.remove("bf16")
    times = {e: expected_seconds(e, n_images, entry, onnx_file) for e in allowed}
    if times.get("torch") is None:
        return Choice("torch", entry.get("rates", {}), None, Message("engine.not_measured", {"n": n_images}))
    best = min((e for e in allowed if times[e] is not None), key=times.get)
    params = {"engine": LABELS[best], "n": n_images, "seconds": times[best], "torch_seconds": times["torch"]}
    others = [t for e, t in times.items() if e != "torch" and t is not None]
    if best == "torch":
        kind = "engine.torch_fastest" if others else "engine.torch_only"
        params["other_seconds"] = min(others) if others else 0.0
    else:
        kind = "engine.faster_with_export" if best == "onnx" and not onnx_file.exists() else "engine.faster"
        params["export"] = entry.get("export_s") or EXPORT_GUESS_S
    return Choice(best, entry["rates"], entry.get("errors", {}).get("bf16"), Message(kind, params))


def needs_probe(backbone: str, size: int, allow_bf16: bool = False) -> bool:
    entry = cached_probe(backbone, size)
    return entry is None or any(e not in entry["rates"] for e in candidates(allow_bf16))


def probe_in_background(backbone: str, size: int) -> subprocess.Popen | None:
    """Measure `backbone`'s engines here in a separate low-priority process (export and timing:
    about 25 s for tf_efficientnet_lite0 on 2 cores), so the next pass can choose by measured rates.
    None when not needed or switched off (TL_BACKGROUND_PROBE=0, as the tests do)."""
    if not background.enabled() or not needs_probe(backbone, size, True):
        return None
    return background.start("tl_core.models.engines", backbone, str(size))


def probe_lock(backbone: str, size: int) -> Path:
    return cache_dir() / f"engine_probe.{re.sub(r'[^A-Za-z0-9_.-]', '_', backbone)}@{size}.lock"


def _probe_main(backbone: str, size: int) -> None:
    """The background probe: lowest priority, one at a time per backbone (a lock file)."""
    with background.low_priority_alone(probe_lock(backbone, size)) as mine:
        if mine and needs_probe(backbone, size, True):
            probe_backbone(backbone, size, between_steps=yield_to_runs)


def yield_to_runs() -> None:
    """A background helper's pause between two steps: wait while a run trains on this cache."""
    background.yield_to_runs(cache_dir())


def probe_backbone(backbone: str, size: int = 0, between_steps=None) -> dict:
    """Measure (or read) a backbone's images/s per engine here, with random weights: speed does not
    depend on the weights. For the gallery; the ONNX file goes to a temporary folder."""
    if not size:
        # meta device: no memory, no download
        size = create_for_preview(backbone).pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    cached = cached_probe(backbone, size)
    if cached is not None and all(e in cached["rates"] for e in candidates(True)):
        return cached
    model = timm.create_model(backbone, pretrained=False).eval()
    with tempfile.TemporaryDirectory() as tmp:
        entry = measure(Pooled(model), example_batch(size), candidates(True), Path(tmp) / "probe.onnx",
                        between_steps)
    save_probe(backbone, size, entry)
    return entry


def for_inference(model: nn.Module, backbone: str, size: int, key: str, engine: str = "auto",
                  allow_bf16: bool = False):
    """(engine, Choice) to run `model` on: the probe's pick for "auto", else the one named; PyTorch
    fp32 where the chosen one cannot run this model. `key` names the model's ONNX file."""
    if engine == "auto":
        choice = probe(model, backbone, size, onnx_path(key), allow_bf16)
    elif engine in ENGINES:
        choice = Choice(engine, {})
    else:
        raise ValueError(f"unknown engine {engine!r}; choose auto or one of {', '.join(ENGINES)}")
    try:
        return build(choice.engine, model, example_batch(size, 2), onnx_path(key)), choice
    except EngineError:
        return TorchEngine(model), Choice("torch", choice.rates, choice.bf16_error)


def file_key(path: Path, suffix: str) -> str:
    """A cache key from a file's bytes (e.g. a run's model.safetensors)."""
    with open(path, "rb") as f:
        return f"{hashlib.file_digest(f, 'sha1').hexdigest()[:24]}-{suffix}"


if __name__ == "__main__":  # python -m tl_core.models.engines BACKBONE SIZE: the background probe
    _probe_main(sys.argv[1], int(sys.argv[2]))

"""Partial fine-tuning from cached activations (tl_core/training/activations.py), on tiny timm models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import tiny_cfg
from safetensors.torch import load_file

from tl_core.base.events import Finished, Note, Progress
from tl_core.jobs import runs
from tl_core.models.model import build_model
from tl_core.models.strategies import apply_strategy, trainable_names
from tl_core.training import activation_store
from tl_core.training.activations import split_at_freeze
from tl_core.training.train import seed_everything, train


def _trained(cfg, shapes, tmp_path, name):
    run_dir = runs.create_run(tmp_path / name, cfg, shapes.classes, shapes.to_dict())
    events = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    assert isinstance(events[-1], Finished), events[-1]
    return events, load_file(run_dir / "model.safetensors")


def _notes(events) -> set[str]:
    return {e.kind for e in events if isinstance(e, Note)}


def _start(cfg, n_classes):
    seed_everything(cfg.seed)  # train() builds the same model from the same seed
    model = build_model(cfg, n_classes)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def _changed(start: dict, end: dict, names) -> set[str]:
    return {n for n in names if not torch.equal(start[n], end[n])}


def test_cached_path_trains_the_same_parameters_as_the_plain_loop(shapes, pretrained_run, tmp_path):
    cfg = tiny_cfg(strategy="partial", unfreeze=2, epochs=2, pretrained=f"run:{pretrained_run}", head_init="random", lr=1e-2)
    model, start = _start(cfg, len(shapes.classes))
    params = [n for n, _ in model.named_parameters()]
    cached_events, cached = _trained(cfg, shapes, tmp_path, "cached")
    plain_events, plain = _trained(cfg.replace(activation_cache=False), shapes, tmp_path, "plain")
    assert "train.activations" in _notes(cached_events)
    assert "train.activations" not in _notes(plain_events)  # --no-activation-cache: the plain loop
    expected = trainable_names(model, cfg)
    assert _changed(start, cached, params) == _changed(start, plain, params) == expected
    # the frozen stages' BatchNorm statistics stay as they were on both paths
    frozen_buffers = [n for n in start if n.endswith("running_mean") and n.rsplit(".", 1)[0] + ".weight" not in expected]
    assert frozen_buffers and not _changed(start, cached, frozen_buffers)
    # both learned alike (chance is 1/3; the starting run alone is well above it)
    accs = [e[-1].metrics["val/acc"] for e in (cached_events, plain_events)]
    assert min(accs) > 0.6 and abs(accs[0] - accs[1]) <= 0.15, accs


def test_the_cut_reproduces_forward_features_and_refuses_a_vit():
    example = torch.randn(2, 3, 64, 64)
    for arch in ("test_resnet", "test_efficientnet"):
        cfg = tiny_cfg(backbone=arch, strategy="partial", unfreeze=2)
        model = build_model(cfg, 3)
        apply_strategy(model, cfg)
        prefix, tail = split_at_freeze(model, example)
        model.eval()
        with torch.no_grad():
            x = example
            for m in prefix + tail:
                x = m(x)
            assert torch.allclose(x, model.forward_features(example), atol=1e-5)
            assert not any(p.requires_grad for m in prefix for p in m.parameters())
    vit_cfg = tiny_cfg(backbone="test_vit", strategy="partial", unfreeze=2)
    vit = build_model(vit_cfg, 3)
    apply_strategy(vit, vit_cfg)
    assert split_at_freeze(vit, example) is None  # its position embedding sits between children


def test_over_the_cap_falls_back_to_the_plain_loop(shapes, tmp_path, monkeypatch):
    monkeypatch.setenv("TL_ACTIVATION_CACHE_MB", "0")
    events, _ = _trained(tiny_cfg(strategy="partial", unfreeze=1, epochs=1), shapes, tmp_path, "capped")
    assert "train.activations_too_big" in _notes(events) and "train.activations" not in _notes(events)
    assert not any(getattr(e, "phase", "") == "activations" for e in events)


def _phases(events) -> set[str]:
    return {e.phase for e in events if isinstance(e, Progress)}


def test_a_second_run_reads_the_kept_activations_and_trains_the_same(shapes, pretrained_run, tmp_path, monkeypatch):
    # another learning rate or more epochs on the same photos: the frozen stages do not run again,
    # and what is read back is exactly what the run would have computed (same weights at the end)
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "cache"))
    cfg = tiny_cfg(strategy="partial", unfreeze=2, epochs=2, pretrained=f"run:{pretrained_run}", head_init="random")
    first, first_weights = _trained(cfg, shapes, tmp_path, "first")
    assert "train.activations" in _notes(first) and "activations" in _phases(first)
    assert len(list((tmp_path / "cache" / "activations").glob("*.pt"))) == 1
    second, second_weights = _trained(cfg, shapes, tmp_path, "second")
    assert "train.activations_kept" in _notes(second) and "activations" not in _phases(second)
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    # another seed draws other views: computed, not read
    third, _ = _trained(cfg.replace(seed=cfg.seed + 1), shapes, tmp_path, "third")
    assert "train.activations_kept" not in _notes(third) and "activations" in _phases(third)


def test_kept_activations_are_evicted_oldest_first_and_a_damaged_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_CACHE", str(tmp_path))
    monkeypatch.setenv("TL_ACTIVATION_STORE_MB", "1")
    block = torch.zeros(2, 40, 16, 16, 16, dtype=torch.float16)  # 0.62 MB: one fits under 1 MB, two do not
    val = torch.zeros(5, 16, 16, 16, dtype=torch.float16)
    assert activation_store.save("old", block, val)
    assert activation_store.load("old", 2, 40, 5) is not None
    assert activation_store.save("new", block, val)
    assert activation_store.load("old", 2, 40, 5) is None and activation_store.load("new", 2, 40, 5) is not None
    assert activation_store.load("new", 3, 40, 5) is None  # not the shape the run needs
    (activation_store.root() / "new.pt").write_bytes(b"not a tensor file")
    assert activation_store.load("new", 2, 40, 5) is None and not (activation_store.root() / "new.pt").exists()


def test_a_view_depends_on_its_seed_not_on_what_drew_random_numbers_before(shapes):
    from tl_core.data.transforms import preprocess_for, train_transform
    from tl_core.training.activations import SeededViews

    cfg = tiny_cfg(strategy="partial")
    pp = preprocess_for(build_model(cfg, 3), cfg.image_size)
    view = SeededViews(shapes.train, pp, train_transform(pp, "strong", normalize=False), seed=0, view=1)
    torch.manual_seed(1)
    first = view[3][0]
    torch.rand(1000)  # another thread or step drew random numbers meanwhile
    assert torch.equal(view[3][0], first)
    other = SeededViews(shapes.train, pp, train_transform(pp, "strong", normalize=False), seed=0, view=2)
    assert not torch.equal(other[3][0], first)


_FULL_DISK = r"""
import json, os, resource, signal, sys
sys.path.insert(0, sys.argv[1])
import torch
from tl_core.training import activation_store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
block = torch.zeros(2, 40, 16, 16, 16, dtype=torch.float16)  # 0.62 MB: more than the disk takes
kept = activation_store.save("full", block, block[0])
print(json.dumps({"kept": kept, "files": os.listdir(activation_store.root())}))
"""


def test_a_full_disk_when_activations_are_kept_loses_nothing(tmp_path):
    # torch.save reports the failed write as a RuntimeError, not an OSError: the run must go on
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(Path(__file__).resolve().parents[1])],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "TL_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"kept": False, "files": []}  # no half file left


def test_the_frozen_pass_runs_with_batchnorm_folded_and_computes_the_same(shapes, monkeypatch, tmp_path):
    """The frozen stages run once per view as a copy with each BatchNorm folded into its convolution
    (models.fold): no BatchNorm runs in that pass, and its activations are the stages' own."""
    import threading

    from torch import nn

    from tl_core.training import activations
    from tl_core.training.train import Run

    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # computed here, not read back from an earlier test
    cfg = tiny_cfg(strategy="partial", unfreeze=1, epochs=1, backbone="test_efficientnet", cpu_bf16=False)
    run = Run(cfg, shapes, None, threading.Event())
    p, _ = activations.plan(run)
    loop = activations.ActivationLoop(run, p)
    used = []
    make_frozen = activations.ActivationLoop._frozen_stages

    def spy(self):
        frozen = make_frozen(self)
        frozen.register_forward_hook(lambda m, args, out: used.append(m) and None)
        return frozen
    monkeypatch.setattr(activations.ActivationLoop, "_frozen_stages", spy)
    list(loop.prepare())
    assert used and all(m is used[0] for m in used)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in used[0].modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in p.prefix[-1].modules())  # the model keeps its own
    x = run.in_layout(torch.randn(3, 3, run.pp.input_size, run.pp.input_size))
    run.model.eval()
    with torch.inference_mode():
        ours, theirs = activations.run_parts(p.prefix, x), used[0](x)
    assert (ours - theirs).abs().max() <= 1e-4 * ours.abs().max()

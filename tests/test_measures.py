"""Small pieces now done by libraries: evaluation metrics (sklearn.metrics), the CPU sampler behind
the thread policy (psutil), file keys (hashlib.file_digest), hub ids, the learning-rate schedule
(timm.scheduler), the PCA map (sklearn.decomposition)."""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tl_core.base.config import RunConfig
from tl_core.models.engines import file_key
from tl_core.models.sources.hub import hf_split
from tl_core.training import device
from tl_core.training.steps import StepSchedule
from tl_core.trust.embeddings import project
from tl_core.trust.metrics import evaluation_from_predictions


def _item(path, true, probs):
    return {"path": path, "true": true, "probs": probs}


def test_evaluation_counts_by_hand():
    preds = {"classes": ["cat", "dog", "owl"], "items": [
        _item("a", 0, [0.9, 0.1, 0.0]), _item("b", 0, [0.2, 0.7, 0.1]), _item("c", 1, [0.1, 0.8, 0.1]),
        _item("d", 1, [0.1, 0.8, 0.1]), _item("e", 2, [0.6, 0.3, 0.1])]}
    ev = evaluation_from_predictions(preds)
    assert ev.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert ev.accuracy == pytest.approx(3 / 5)
    cat, dog, owl = ev.per_class
    assert (cat["precision"], cat["recall"], cat["support"]) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert dog["precision"] == pytest.approx(2 / 3) and dog["recall"] == 1.0 and dog["f1"] == pytest.approx(0.8)
    assert owl == {"class": "owl", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert [w["path"] for w in ev.misclassified] == ["b", "e"]  # most confident mistake first


def test_evaluation_of_no_validation_images_is_empty_not_an_error():
    ev = evaluation_from_predictions({"classes": ["a", "b"], "items": []})
    assert ev.accuracy == 0.0 and ev.confusion == [[0, 0], [0, 0]] and ev.misclassified == []


def test_cpu_sampler_sees_another_process_keep_a_core_busy():
    since = device.cpu_sample()
    assert since is not None and 0 <= since[1] <= since[2] and since[3] == device.usable_cores()
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    # the child spun for 1.5 s of wall time; even sharing 2 cores with a load of 8 it got 0.2 of one
    assert device.others_busy_cores(since) > 0.2


def test_cpu_sampler_leaves_out_a_niced_process_which_gives_its_core_back():
    # what the rest of the machine keeps busy anyway (a benchmark, another test run), over the same time
    since = device.cpu_sample()
    time.sleep(1.5)
    background = device.others_busy_cores(since)
    since = device.cpu_sample()
    spin = "import os, time\nos.nice(19)\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    # a background helper leaves a run all its threads
    assert device.others_busy_cores(since) - background < 0.5, background


def test_cpu_sampler_leaves_out_a_niced_process_busy_in_the_kernel():
    # the kernel books a niced process's system time as anyone's (an engine probe's: half a core)
    since = device.cpu_sample()
    time.sleep(1.5)
    background = device.others_busy_cores(since)
    copy = ("import os, time\nos.nice(19)\nend = time.time() + 4\n"
            "with open('/dev/zero', 'rb', buffering=0) as f:\n    while time.time() < end: f.read(1 << 22)")
    child = subprocess.Popen([sys.executable, "-c", copy])
    try:
        time.sleep(0.5)  # its start-up, at normal priority
        since = device.cpu_sample()
        time.sleep(1.5)
        busy = device.others_busy_cores(since)  # while it runs, as a helper does beside a run
    finally:
        child.wait(timeout=30)
    assert busy - background < 0.5, (busy, background)


def test_file_key_is_the_sha1_of_the_bytes(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x" * (3 << 20))  # several of file_digest's internal blocks
    assert file_key(f, "logits") == hashlib.sha1(f.read_bytes()).hexdigest()[:24] + "-logits"


def test_hub_ids_split_at_the_revision():
    assert hf_split("timm/resnet18.a1_in1k") == ("timm/resnet18.a1_in1k", None)
    assert hf_split("timm/resnet18.a1_in1k@main") == ("timm/resnet18.a1_in1k", "main")


def _replaced_lambda(step: int, warmup: int, total: int) -> float:
    """The hand-written LambdaLR factor that timm's scheduler replaced (kept here as the reference)."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@pytest.mark.parametrize("warmup_epochs", [0, 1, 2])
def test_learning_rate_curve_is_the_replaced_one_within_a_step(warmup_epochs):
    cfg = RunConfig(lr=1e-2, epochs=10, warmup_epochs=warmup_epochs)
    steps_per_epoch = 22
    warmup, total = warmup_epochs * steps_per_epoch, 10 * steps_per_epoch
    head, body = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": head.parameters(), "lr": 1e-2}, {"params": body.parameters(), "lr": 1e-3}])
    schedule = StepSchedule(cfg, opt, steps_per_epoch)
    used = []
    for _ in range(total):
        used.append([g["lr"] for g in opt.param_groups])
        opt.step()
        schedule.step()
    ours = [1e-2 * _replaced_lambda(k, warmup, total) for k in range(total)]
    head_lr = [u[0] for u in used]
    assert head_lr[:warmup] == pytest.approx(ours[:warmup], rel=1e-9)  # the warm-up is the same
    assert all(lr > 0 for lr in head_lr)  # no wasted step at lr 0
    # the cosine is one step earlier: never more than pi/2 per decay step of the peak apart (0.7% here)
    assert max(abs(a - b) for a, b in zip(head_lr, ours)) <= 1e-2 * math.pi / 2 / (total - warmup) + 1e-12
    assert all(b == pytest.approx(a / 10) for a, b in used)  # the backbone group keeps its 1/10
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)  # the end: 1% of the peak
    after = head_lr[warmup:]
    assert all(x >= y for x, y in zip(after, after[1:]))  # decays monotonically after the warm-up


def test_pca_map_is_the_replaced_svd_projection_up_to_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 40)) * 3 + rng.normal(size=(60, 40))
    xy = project(x, "pca")
    centred = x - x.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)  # what the map computed by hand before
    assert np.allclose(np.abs(xy), np.abs(u[:, :2] * s[:2]), atol=1e-8)
    assert xy[:, 0].var() >= xy[:, 1].var()
    assert project(x[:1], "pca").shape == (1, 2) and project(x[:, :1], "pca").shape == (60, 2)

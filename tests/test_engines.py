"""Engine choice for the frozen pass: candidates, the cached probe, cache keys, fallbacks."""
import json

import pytest
import torch
from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.data.transforms import preprocess_for
from tl_core.models import engines
from tl_core.models.model import build_model
from tl_core.training.features import FeatureStore, model_key
from tl_core.training.train import seed_everything, train


def test_choose_takes_the_fastest_allowed_measured_engine():
    rates = {"torch": 50.0, "onnx": 120.0, "bf16": 140.0}
    assert engines.choose(rates, ["torch", "onnx", "bf16"]) == "bf16"
    assert engines.choose(rates, ["torch", "onnx"]) == "onnx"  # bf16 not asked for
    assert engines.choose({"torch": 50.0, "onnx": None}, ["torch", "onnx"]) == "torch"  # onnx could not run
    assert engines.choose({}, ["torch", "onnx"]) == "torch"


def test_bf16_is_a_candidate_only_when_asked_and_native(monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "0")
    assert "bf16" not in engines.candidates(allow_bf16=True)
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    assert "bf16" in engines.candidates(allow_bf16=True)
    assert "bf16" not in engines.candidates(allow_bf16=False)
    assert engines.candidates(False)[0] == "torch"


def test_probe_is_measured_once_and_cached_with_the_machine(monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    entry = engines.probe_backbone("test_resnet", 48)
    assert set(entry["rates"]) == {"torch", "onnx", "bf16"}
    assert all(r > 0 for r in entry["rates"].values())
    assert entry["errors"]["onnx"] < 1e-4 < entry["errors"]["bf16"]  # ORT is exact; bf16 is not
    stored = json.loads(engines.probe_file().read_text())[engines.machine_key()]
    assert stored["machine"]["cpu"] and stored["probes"]["test_resnet@48"] == entry
    assert engines.probe_backbone("test_resnet", 48) == entry  # read back, not measured again


def test_unexportable_module_raises_engine_error(tmp_path):
    class Host(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x[:, 0])[1]  # ONNX has no SVD operator

    with pytest.raises(engines.EngineError):
        engines.build("onnx", Host(), torch.zeros(2, 3, 8, 8), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _weights_key(cfg):
    seed_everything(cfg.seed)  # as train() does: the same random init, the same key
    model = build_model(cfg, 3)
    return model_key(model, preprocess_for(model, cfg.image_size))


def _feature_note(events) -> str:
    return next(e.message for e in events if isinstance(e, ev.Note) and e.message.startswith("Features"))


def _cached(key: str, engine: str, sha1: str):
    store = FeatureStore()
    try:
        found = store.get(key, [engine], [sha1])
    finally:
        store.close()
    return torch.from_numpy(found[sha1][0].copy()) if sha1 in found else None


def test_feature_cache_key_holds_engine_and_precision(shapes, monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    cfg = tiny_cfg(strategy="feature_extraction", epochs=1, seed=7)
    # a probe that found bf16 fastest here: it is used only where the run allows it (asked, or
    # automatic on a CPU with native bf16; precision.frozen_pass_bf16), never when fp32 is chosen
    engines.save_probe(cfg.backbone, 48, {"rates": {"torch": 10.0, "onnx": 20.0, "bf16": 30.0}, "errors": {},
                                          "export_s": 0.1})
    bf16 = list(train(cfg.replace(cpu_bf16=True), shapes))
    fp32 = list(train(cfg.replace(cpu_bf16=False), shapes))  # bf16 features never serve an fp32 run: computed again
    assert isinstance(fp32[-1], ev.Finished) and isinstance(bf16[-1], ev.Finished)
    assert "ONNX Runtime fp32" in _feature_note(fp32) and "PyTorch bfloat16" in _feature_note(bf16)
    key, sha = _weights_key(cfg), shapes.val[0].sha1
    a, b = _cached(key, "onnx", sha), _cached(key, "bf16", sha)
    assert not torch.equal(a, b)  # different numbers: they must never share a cache entry
    torch.testing.assert_close(a, b, atol=0.1, rtol=0.05)


def test_damaged_onnx_file_falls_back_to_torch(shapes):
    cfg = tiny_cfg(strategy="feature_extraction", epochs=1, seed=8)
    engines.save_probe(cfg.backbone, 48, {"rates": {"torch": 10.0, "onnx": 20.0}, "errors": {}})
    key = _weights_key(cfg)
    path = engines.onnx_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx model")
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], ev.Finished)
    assert "PyTorch fp32" in _feature_note(events) and "cannot run this model" in _feature_note(events)
    sha = shapes.val[0].sha1
    assert _cached(key, "torch", sha) is not None and _cached(key, "onnx", sha) is None


@pytest.mark.parametrize("engine", ["torch", "onnx", "bf16", "auto"])
def test_predictor_engines_agree_with_the_torch_model(pretrained_run, shapes, engine, monkeypatch):
    from tl_core.serving.predict import Predictor

    monkeypatch.setenv("TL_NATIVE_BF16", "1")  # bf16 named explicitly runs wherever torch has it
    pred = Predictor(pretrained_run, engine=engine)
    paths = [it.path for it in shapes.val[:4]]
    with torch.inference_mode():
        expected = pred.model(pred.tensor(paths)).softmax(1)
    got = pred.probabilities(paths)
    assert pred.choice.engine == engine if engine != "auto" else pred.choice.engine in ("torch", "onnx")
    tol = 0.05 if engine == "bf16" else 1e-5
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)
    assert [p[0][0] for p in pred.top_k(paths, k=1)] == [pred.classes[i] for i in expected.argmax(1).tolist()] \
        or engine == "bf16"


def test_cli_predict_says_which_engine_ran(pretrained_run, shapes):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tl_core", "predict", str(pretrained_run), shapes.val[0].path,
                          "--engine", "onnx"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["top_k"]
    assert "engine: ONNX Runtime fp32" in out.stderr


def test_warm_up_leaves_the_next_run_its_measured_engine_with_no_export(shapes, pretrained_run, monkeypatch,
                                                                         tmp_path):
    """The app's warm-up (python -m tl_core.training.features CONFIG, started at launch) measures the
    engines on the run's own weights and keeps the ONNX file: the first run then plans ONNX with no
    export cost, instead of PyTorch fp32 "not measured yet"."""
    from tl_core.base import background

    monkeypatch.setenv("TL_BACKGROUND_PROBE", "1")  # conftest switches helpers off; this test is about one
    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # nothing measured yet (other tests probe test_resnet too)
    # starting weights, as the app's default (packaged ImageNet weights): the backbone's key does not
    # depend on the class count, as a random initialisation's does
    cfg = tiny_cfg(strategy="feature_extraction", epochs=1, image_size=64, pretrained=f"run:{pretrained_run}")
    key = _weights_key(cfg)
    assert engines.cached_probe(cfg.backbone, 64) is None and not engines.onnx_path(key).exists()
    proc = background.start("tl_core.training.features", json.dumps(cfg.to_dict()))
    assert proc is not None and proc.wait(timeout=300) == 0  # a deadline: a stuck helper fails the test
    assert engines.onnx_path(key).exists()
    entry = engines.cached_probe(cfg.backbone, 64)
    assert entry["rates"]["torch"] > 0 and entry["rates"]["onnx"] > 0
    plan = engines.plan(len(shapes.train), cfg.backbone, 64, engines.onnx_path(key), allow_bf16=False)
    assert plan.reason.kind in ("engine.faster", "engine.torch_fastest"), plan.reason  # measured, no export due
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], ev.Finished) and "not been measured" not in _feature_note(events)
    # ... and timed the training step: the first fine-tuning run starts training without a probe
    from tl_core.training import precision

    assert precision.cached_timing(cfg, 64) is not None
    assert precision.cached_timing(cfg.replace(strategy="partial"), 64) is not None  # its own step, the default cut
    monkeypatch.setattr(precision, "measure_step", lambda *a, **k: pytest.fail("timed again at the run's start"))
    assert isinstance(list(train(cfg.replace(strategy="full"), shapes))[-1], ev.Finished)
    assert isinstance(list(train(cfg.replace(strategy="partial"), shapes))[-1], ev.Finished)
    # a second helper for the same config finds the lock held or the work done: it changes nothing
    before = engines.onnx_path(key).stat().st_mtime_ns
    assert background.start("tl_core.training.features", json.dumps(cfg.to_dict())).wait(timeout=300) == 0
    assert engines.onnx_path(key).stat().st_mtime_ns == before


def test_the_probe_a_pass_asks_for_starts_after_the_run_not_during_it(shapes, monkeypatch, tmp_path):
    """Started during the run, the probe's export took the cores the run's own head search needed
    (26 s instead of 6 s on the sample): it waits for the run's last event."""
    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # nothing measured here: the pass plans PyTorch "at once"
    seen, calls = [], []
    monkeypatch.setattr(engines, "probe_in_background", lambda backbone, size: calls.append((backbone, len(seen))))
    cfg = tiny_cfg(strategy="feature_extraction", epochs=1, seed=12)
    for event in train(cfg, shapes):
        seen.append(event)
    assert isinstance(seen[-1], ev.Finished) and "not been measured" in _feature_note(seen)
    assert calls == [(cfg.backbone, len(seen))]  # once, after the last event

"""The one embedding function (features.embed / embed_events), its LRU feature cache, and the
engine chosen by the expected time of the pass (issues 17, 20, 21). Real tiny timm models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.models import engines
from tl_core.models.model import build_model
from tl_core.training import features
from tl_core.training.feature_cache import FeatureStore, cap_bytes
from tl_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _pass(model, pp, items, allow_bf16: bool = False):
    """(events, Embedded) of one embed_events pass on the CPU (bf16 allowed as
    precision.frozen_pass_bf16 allows it: automatic on a CPU with native bf16, or asked)."""
    gen = features.embed_events(model, pp, items, features._Pass("test_resnet", torch.device("cpu"), 16,
                                                                 allow_bf16=allow_bf16))
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration as end:
            return out, end.value


def _model(pretrained_run):
    from tl_core.data.transforms import preprocess_for

    model = build_model(tiny_cfg(pretrained=f"run:{pretrained_run}"), 3).eval()
    return model, preprocess_for(model, 48)


def test_embed_paths_and_items_alike_and_the_second_call_reads_the_cache(shapes, pretrained_run, fresh_cache):
    model, pp = _model(pretrained_run)
    items = shapes.train[:20]
    calls = []
    by_path = features.embed(model, [it.path for it in items], lambda d, n: calls.append((d, n)), pp=pp)
    assert by_path.dtype == np.float32 and by_path.shape == (20, model.num_features)
    assert calls[-1] == (20, 20)
    events, again = _pass(model, pp, items)
    assert again.computed == 0 and again.cached == 20  # every row came from the cache
    np.testing.assert_array_equal(again.features.numpy(), by_path)
    note = [e for e in events if isinstance(e, ev.Note)][-1]
    assert note.kind == "features.from_cache"


def test_training_audit_and_export_share_one_cache(shapes, pretrained_run, fresh_cache):
    """A feature-extraction run embeds every image; embed(cfg) for the audit then computes none."""
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=1)
    assert isinstance(list(train(cfg, shapes))[-1], ev.Finished)
    store = FeatureStore()
    before = store.count()
    store.close()
    x = features.embed(cfg, shapes.train + shapes.val)
    store = FeatureStore()
    assert store.count() == before == len({it.sha1 for it in shapes.train + shapes.val})
    store.close()
    assert x.shape[0] == len(shapes.train) + len(shapes.val)


def _rows(n: int, dim: int = 256, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"img{seed}-{i}": rng.standard_normal(dim).astype(np.float32) for i in range(n)}


def _held(store, seed: int) -> int:
    """Entries of _rows(..., seed) still in the store (counted without touching them)."""
    return store.db.execute("SELECT COUNT(*) FROM features WHERE image LIKE ?", (f"img{seed}-%",)).fetchone()[0]


def test_lru_cap_evicts_the_least_recently_used_entries(fresh_cache, monkeypatch):
    store = FeatureStore()
    store.put("m", "torch", _rows(100, seed=1))  # a
    store.put("m", "torch", _rows(100, seed=2))  # b
    two_hundred = store.used_bytes()
    monkeypatch.setenv("TL_FEATURE_CACHE_MB", str(2 * two_hundred / 1e6))  # room for about 400 entries
    time.sleep(0.01)
    assert len(store.get("m", ["torch"], list(_rows(100, seed=1)))) == 100  # reading a: now b is the oldest
    for seed in range(3, 7):  # 400 more entries: over the cap
        time.sleep(0.01)
        store.put("m", "torch", _rows(100, seed=seed))
        assert store.used_bytes() <= cap_bytes()
        assert _held(store, 1) == 100 or _held(store, 2) == 0  # b goes before a loses anything
    assert _held(store, 2) == 0  # least recently used: evicted
    assert store.count() < 600 and _held(store, 6) == 100  # the newest are all there
    newest = _rows(100, seed=6)
    got = store.get("m", ["torch"], list(newest))
    assert all(np.array_equal(got[k][0], v) for k, v in newest.items())
    store.close()
    assert os.path.getsize(store.path) <= cap_bytes() + 64 * 1024  # the file shrank with it (WAL checkpointed)


def test_entries_survive_below_the_cap_and_a_reopen(fresh_cache):
    store = FeatureStore()
    for seed in range(5):
        store.put("m", "onnx", _rows(100, seed=seed))
    store.close()
    store = FeatureStore()
    assert store.count("m") == 500
    assert len(store.get("m", ["onnx"], list(_rows(100, seed=0)))) == 100
    assert store.get("m", ["torch"], list(_rows(100, seed=0))) == {}  # another engine: another entry
    store.close()


_FULL_DISK = r"""
import json, resource, signal, sys
sys.path.insert(0, sys.argv[1])
from tl_core.data.dataset import load_dataset
from tl_core.training import features
from tl_core.models.model import build_model
from tl_core.base.config import RunConfig
from tl_core.data.transforms import preprocess_for
import torch
ds = load_dataset(sys.argv[2])
model = build_model(RunConfig(backbone="test_resnet", pretrained="run:" + sys.argv[3], image_size=48), 3).eval()
pp = preprocess_for(model, 48)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), int(sys.argv[4])))
gen = features.embed_events(model, pp, ds.train + ds.val, features._Pass("test_resnet", torch.device("cpu"), 16))
notes = []
while True:
    try:
        e = next(gen)
    except StopIteration as end:
        done = end.value
        break
    if type(e).__name__ == "Note":
        notes.append(e.kind)
print(json.dumps({"notes": notes, "computed": done.computed, "first": done.features[0].tolist()}))
"""


def test_a_full_disk_during_a_cache_write_loses_nothing_and_the_pass_goes_on(shapes, pretrained_run, fresh_cache):
    model, pp = _model(pretrained_run)
    kept = shapes.train[:16]
    _, first = _pass(model, pp, kept)  # these entries are on disk before the disk fills up
    db = fresh_cache / "features" / "features.sqlite"
    limit = os.path.getsize(db) + 8 * 1024  # room for the WAL's header and a page or two, not a batch
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(ROOT), shapes.root, str(pretrained_run), str(limit)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "TL_CACHE": str(fresh_cache)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["notes"].count("features.cache_write_failed") == 1  # one note, not one per batch
    assert result["computed"] == len({it.sha1 for it in shapes.train + shapes.val}) - 16
    np.testing.assert_allclose(result["first"], first.features[0].numpy(), rtol=1e-5, atol=1e-6)
    events, again = _pass(model, pp, kept)  # the earlier entries are intact and still read
    assert again.computed == 0
    np.testing.assert_array_equal(again.features.numpy(), first.features.numpy())


def test_plan_never_waits_for_a_probe_and_then_weighs_export_against_rate(fresh_cache, tmp_path):
    onnx_file = tmp_path / "m.onnx"
    first = engines.plan(887, "test_resnet", 48, onnx_file, allow_bf16=False)
    assert first.engine == "torch" and first.reason.kind == "engine.not_measured"
    assert engines.cached_probe("test_resnet", 48) is None  # nothing was measured on the way
    engines.save_probe("test_resnet", 48, {"rates": {"torch": 50.0, "onnx": 150.0}, "errors": {}, "export_s": 6.0})
    big = engines.plan(887, "test_resnet", 48, onnx_file, allow_bf16=False)
    assert big.engine == "onnx" and big.reason.kind == "engine.faster_with_export"  # 6 + 5.9 s < 17.7 s
    assert big.reason.params["seconds"] == pytest.approx(6.0 + 887 / 150)
    small = engines.plan(200, "test_resnet", 48, onnx_file, allow_bf16=False)
    assert small.engine == "torch" and small.reason.kind == "engine.torch_fastest"  # 4 s < 6 + 1.3 s
    onnx_file.write_bytes(b"exported before")  # the export is paid once per weights
    assert engines.plan(200, "test_resnet", 48, onnx_file, allow_bf16=False).engine == "onnx"
    assert "887" in str(big.reason) and "PyTorch fp32" in str(big.reason)


def test_first_run_uses_torch_at_once_and_probes_in_the_background(shapes, fresh_cache, monkeypatch):
    cfg = tiny_cfg(strategy="feature_extraction", epochs=1, seed=3)
    events = list(train(cfg, shapes))
    assert isinstance(events[-1], ev.Finished)
    note = next(e for e in events if isinstance(e, ev.Note) and e.kind == "features.computed")
    assert note.params["reason"]["kind"] == "engine.not_measured" and note.params["engine"] == "PyTorch fp32"
    assert engines.cached_probe("test_resnet", 48) is None  # TL_BACKGROUND_PROBE=0 in the suite
    monkeypatch.setenv("TL_BACKGROUND_PROBE", "1")
    proc = engines.probe_in_background("test_resnet", 48)
    assert proc is not None
    assert proc.wait(timeout=300) == 0
    entry = engines.cached_probe("test_resnet", 48)
    assert entry["rates"]["torch"] > 0 and "export_s" in entry
    assert engines.probe_in_background("test_resnet", 48) is None  # measured: nothing more to do


def test_cli_prints_one_line_per_phase_when_not_a_tty(capsys):
    from tl_core.cli.common import Bars

    bars = Bars(live=False)
    started = ev.Started("cpu", ["a", "b"], 8, 2, 10, 100, 1, 1, "feature_extraction", "test_resnet",
                         solved_head=True)
    stream = [started, *[ev.Progress("features", 0, n, 10, None, 200.0 + n, 0.1) for n in (4, 8, 10)],
              ev.HeadSearch([1.0], [0.5], 2, 5), ev.HeadSearch([1.0, 0.3], [0.5, 0.75], 2, 5),
              ev.HeadSearch([1.0, 0.3], [0.5, 0.75], 2, 5, chosen=0.3),
              ev.EpochEnd(1, {"train/loss": 0.1, "train/acc": 1.0, "val/loss": 0.2, "val/acc": 0.9}, True, 0.1)]
    for e in stream:
        bars.show(e)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["features: 10 / 10, 210 img/s",
                     "head: L2 0.3 chosen, 5-fold CV accuracy 75.0% (tried 1 50.0%, 0.3 75.0%)",
                     "head solved: train loss 0.1000 acc 1.000 | val loss 0.2000 acc 0.900"]


def test_train_page_shows_the_l2_search_and_no_epochs_for_a_solved_head(tmp_path, monkeypatch, request):
    from streamlit.testing.v1 import AppTest

    from tl_core.base.config import RunConfig

    import streamlit as st

    monkeypatch.setenv("TL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TL_WORKSPACE", str(tmp_path / "workspace"))
    st.cache_resource.clear()  # the server settings are cached per process: read this test's folders
    request.addfinalizer(st.cache_resource.clear)  # and leave none of them to the next test
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/data.py").run()
    at.button(key="use_shapes").click().run()
    cfg = RunConfig(backbone="test_resnet", pretrained="none", strategy="feature_extraction", epochs=7,
                    batch_size=16, image_size=48, device="cpu")
    at.session_state["config"] = cfg
    at.switch_page("app_pages/model.py").run()
    assert not at.exception, at.exception
    assert not [w for w in at.number_input if w.key == "m_epochs"]  # not asked for
    at.session_state["config"] = cfg  # what the Model page made of it (epochs kept, unused)
    at.switch_page("app_pages/train.py").run()
    at.button(key="train_start").click().run()
    deadline = time.time() + 240
    while not any("head solved" in str(s.value) for s in at.success) and time.time() < deadline:
        time.sleep(0.5)
        at.run()  # AppTest does not fire run_every: poll by hand
        assert not at.exception, at.exception
    assert any("head solved" in str(s.value) for s in at.success), [s.value for s in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # the L2 search; no epoch curves, no step loss
    figure = json.loads(charts[0].proto.spec)
    assert any(tr.get("marker", {}).get("symbol") == "star" for tr in figure["data"])  # the chosen one marked
    assert len(figure["data"][0]["x"]) == 9  # every strength tried


def test_a_training_run_is_marked_active_for_the_background_helpers(shapes, fresh_cache):
    from tl_core.base import background

    run = train(tiny_cfg(strategy="feature_extraction", epochs=1, seed=4), shapes)
    assert isinstance(next(run), ev.Started)
    assert background.runs_active(engines.cache_dir())  # a helper waits between its steps now
    assert isinstance(list(run)[-1], ev.Finished)
    assert not background.runs_active(engines.cache_dir())


def test_a_helper_waits_while_a_run_is_on_and_ignores_runs_whose_process_is_gone(fresh_cache):
    import threading

    from tl_core.base import background

    with background.run_active(fresh_cache):
        helper = threading.Thread(target=background.yield_to_runs, args=(fresh_cache, 300, 0.05))
        helper.start()
        helper.join(2)
        assert helper.is_alive()  # still waiting: the run is on
    helper.join(30)
    assert not helper.is_alive()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    mark = fresh_cache / background.RUNS_FOLDER / f"{gone.pid}-killedrun"
    mark.touch()
    assert not background.runs_active(fresh_cache) and not mark.exists()


def test_the_engine_timings_pause_before_each_export_and_each_timed_batch(tmp_path):
    steps = []
    model = build_model(tiny_cfg(), 3).eval()
    entry = engines.measure(engines.Pooled(model), engines.example_batch(48, 4), ["torch", "onnx"],
                            tmp_path / "m.onnx", between_steps=lambda: steps.append(1))
    assert entry["rates"]["torch"] > 0
    assert len(steps) == 2 * (1 + 3)  # per engine: before building (the export) and before each timing


def _state(pid: int, wanted: str) -> str:
    """The process's state letter (R, S, T for stopped...) once it is one of `wanted` (signals are
    delivered asynchronously), or after a deadline of 10 s."""
    end = time.monotonic() + 10
    while True:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in wanted or time.monotonic() > end:
            return state
        time.sleep(0.02)


def test_a_helper_is_paused_while_a_run_trains_and_resumed_after(fresh_cache):
    from tl_core.base import background

    code = ("import sys, time\nfrom pathlib import Path\nfrom tl_core.base import background\n"
            "with background.low_priority_alone(Path(sys.argv[1])) as mine:\n"
            "    print(mine, flush=True)\n    time.sleep(120)\n")
    helper = subprocess.Popen([sys.executable, "-c", code, str(fresh_cache / "h.lock")], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert helper.stdout.readline().strip() == "True"  # listed in the cache folder, at work
        with background.run_active(fresh_cache):
            assert _state(helper.pid, "T") == "T"
        assert _state(helper.pid, "RS") in "RS"
    finally:
        helper.kill()
        helper.wait()
    assert not background.runs_active(fresh_cache)
    background.resume_helpers(fresh_cache)  # its listing outlived it: dropped, nobody signalled
    assert not list((fresh_cache / background.HELPERS_FOLDER).iterdir())


def test_a_helper_is_at_the_lowest_priority_before_its_own_imports(fresh_cache, monkeypatch):
    """background.start's helper imports torch for seconds: at normal priority meanwhile, a run
    starting then counted that core busy and trained on one thread. The module started here never
    lowers its own priority, so only the launch can have done it."""
    from tl_core.base import background

    monkeypatch.setenv("TL_BACKGROUND_PROBE", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    helper = background.start("http.server", "--bind", "127.0.0.1", "0")
    try:
        stat = _wait_for(lambda: _nice_and_policy(helper.pid), lambda v: v[0] == 19, 10)
        assert stat == (19, os.SCHED_IDLE)
    finally:
        helper.kill()
        helper.wait()


def test_a_helper_waits_for_the_run_before_its_own_imports(fresh_cache, monkeypatch, tmp_path):
    """A helper started by one run's end imported torch and timm (seconds of CPU) beside the next
    run, unpaused: it was listed for pausing only once imported. It now waits first."""
    from tl_core.base import background

    (tmp_path / "importing_helper.py").write_text(  # stands in for a helper's heavy imports
        "import os, sys\nopen(os.path.join(sys.argv[1], 'imported'), 'w').close()\n")
    monkeypatch.setenv("TL_BACKGROUND_PROBE", "1")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{tmp_path}")
    with background.run_active(fresh_cache):
        helper = background.start("importing_helper", str(tmp_path))
        time.sleep(2.0)
        assert not (tmp_path / "imported").exists()  # not imported while the run trains
    assert helper.wait(timeout=30) == 0 and (tmp_path / "imported").exists()
    assert not list((fresh_cache / background.HELPERS_FOLDER).glob("*"))  # its early listing went with it


def _nice_and_policy(pid: int) -> tuple[int, int]:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16]), os.sched_getscheduler(pid)


def _wait_for(read, done, seconds: float):
    end = time.monotonic() + seconds
    while True:
        value = read()
        if done(value) or time.monotonic() > end:
            return value
        time.sleep(0.02)


def _switching(monkeypatch, min_gain: float) -> None:
    """Every first pass long enough to weigh a switch; ONNX Runtime wins when `min_gain` lets it."""
    monkeypatch.setattr(features, "SWITCH_WHEN_LEFT_S", 0.0)
    monkeypatch.setattr(features, "SWITCH_MIN_GAIN", min_gain)


def test_an_unmeasured_long_pass_goes_on_with_onnx_runtime_after_two_batches(shapes, pretrained_run, fresh_cache,
                                                                              monkeypatch):
    model, pp = _model(pretrained_run)
    items = (shapes.train + shapes.val)[:64]  # four batches of 16
    _switching(monkeypatch, min_gain=0.0)  # whatever the two engines' speeds on this machine
    events, switched = _pass(model, pp, items)
    assert switched.choice.engine == "onnx" and switched.choice.reason.kind == "engine.switched"
    assert switched.choice.reason.params["done"] == 32
    assert engines.onnx_path(features.model_key(model, pp)).exists()  # kept for the next pass and the probe
    store = FeatureStore()  # PyTorch's two batches and ONNX Runtime's two, each under its own engine
    key = features.model_key(model, pp)
    assert len(store.get(key, ["torch"], [it.sha1 for it in items])) == 32
    assert len(store.get(key, ["onnx"], [it.sha1 for it in items])) == 32
    store.close()
    monkeypatch.setenv("TL_CACHE", str(fresh_cache.parent / "plain"))  # the same images, PyTorch only
    _switching(monkeypatch, min_gain=float("inf"))
    _, plain = _pass(model, pp, items)
    assert plain.choice.engine == "torch" and plain.choice.reason.kind == "engine.not_measured"
    np.testing.assert_allclose(switched.features.numpy(), plain.features.numpy(), rtol=1e-4, atol=1e-5)


def test_an_unmeasured_pass_goes_on_in_bf16_where_allowed_and_faster_without_exporting(
        shapes, pretrained_run, fresh_cache, monkeypatch):
    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    model, pp = _model(pretrained_run)
    items = (shapes.train + shapes.val)[:64]  # four batches of 16
    monkeypatch.setattr(features, "SWITCH_BF16_WHEN_LEFT_S", 0.0)
    monkeypatch.setattr(features, "SWITCH_BF16_MIN_GAIN", 0.0)  # whatever bf16's speed on this CPU
    _, switched = _pass(model, pp, items, allow_bf16=True)
    assert switched.choice.engine == "bf16" and switched.choice.reason.kind == "engine.switched_bf16"
    assert switched.choice.reason.params["done"] == 32
    assert not engines.onnx_path(features.model_key(model, pp)).exists()  # nothing exported
    store = FeatureStore()
    key = features.model_key(model, pp)
    assert len(store.get(key, ["bf16"], [it.sha1 for it in items])) == 32  # stored as bf16's, not as exact
    store.close()
    again, _ = _pass(model, pp, items, allow_bf16=True)  # all from the cache: its note names what computed them
    note = [e for e in again if isinstance(e, ev.Note) and e.kind == "features.from_cache"][0]
    assert note.params["engine"] in ("PyTorch fp32 + PyTorch bfloat16", "PyTorch bfloat16 + PyTorch fp32")
    monkeypatch.setenv("TL_CACHE", str(fresh_cache.parent / "fp32"))
    monkeypatch.setattr(features, "SWITCH_BF16_MIN_GAIN", float("inf"))  # bf16 never fast enough
    _, plain = _pass(model, pp, items, allow_bf16=True)
    assert plain.choice.engine == "torch"
    np.testing.assert_allclose(switched.features.numpy()[:32], plain.features.numpy()[:32], rtol=1e-5, atol=1e-6)
    error = np.abs(switched.features.numpy() - plain.features.numpy()).max() / np.abs(plain.features.numpy()).max()
    assert 0 < error <= features.SWITCH_BF16_MAX_ERROR  # the last two batches really are bf16's


@pytest.mark.parametrize("asked, native, allowed", [
    (None, True, True), (None, False, False), (True, False, True), (False, True, False)])
def test_the_frozen_pass_may_use_bf16_when_automatic_on_native_bf16_or_asked(monkeypatch, asked, native, allowed):
    from tl_core.training import precision

    monkeypatch.setenv("TL_NATIVE_BF16", "1" if native else "0")
    assert precision.frozen_pass_bf16(tiny_cfg(cpu_bf16=asked)) is allowed


def test_a_short_unmeasured_pass_stays_on_pytorch_and_exports_nothing(shapes, pretrained_run, fresh_cache):
    model, pp = _model(pretrained_run)
    _, embedded = _pass(model, pp, (shapes.train + shapes.val)[:64])  # a second of work, not SWITCH_WHEN_LEFT_S
    assert embedded.choice.engine == "torch" and embedded.choice.reason.kind == "engine.not_measured"
    assert not engines.onnx_path(features.model_key(model, pp)).exists()

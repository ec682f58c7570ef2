import json
import threading

import torch
from conftest import tiny_cfg

from tl_core.base import events as ev
from tl_core.data.transforms import DECODED, eval_transform
from tl_core.jobs import runs
from tl_core.serving.predict import Predictor
from tl_core.training.train import train


def _types(events):
    return [type(e).__name__ for e in events]


def test_event_order_and_plain_data(shapes):
    events = list(train(tiny_cfg(strategy="scratch", epochs=2), shapes))
    names = [n for n in _types(events) if n != "Progress"]
    assert names == ["Started", "EpochEnd", "EpochEnd", "Finished"]
    assert _types(events).index("Progress") == 1
    for e in events:
        json.dumps(ev.to_dict(e))  # plain data only: no tensors
    metrics = events[-2].metrics
    assert set(metrics) >= {"train/loss", "train/acc", "val/loss", "val/acc", "lr"}


def test_stop_mid_epoch_keeps_a_loadable_best_checkpoint(shapes, tmp_path):
    stop = threading.Event()
    seen = []
    for e in train(tiny_cfg(strategy="scratch", epochs=5), shapes, stop, run_dir=tmp_path):
        seen.append(e)
        if isinstance(e, ev.Progress) and e.phase == "train" and e.epoch == 2 and e.step == 1:
            stop.set()
    assert isinstance(seen[-1], ev.Stopped) and seen[-1].epoch == 2
    assert sum(isinstance(e, ev.EpochEnd) for e in seen) == 1
    (tmp_path / "run.json").write_text(json.dumps({"config": tiny_cfg(strategy="scratch").to_dict(),
                                                   "classes": shapes.classes}))
    assert len(Predictor(tmp_path).top_k([shapes.val[0].path])[0]) == 3


def test_exception_inside_the_loop_fails_with_the_message_and_keeps_the_best(shapes_dir, tmp_path):
    """A training image corrupted after epoch 1 (e.g. a disk error) ends the run as Failed."""
    import shutil

    from tl_core.data.dataset import load_dataset

    shutil.copytree(shapes_dir, tmp_path / "data")
    ds = load_dataset(tmp_path / "data")
    cfg = tiny_cfg(strategy="scratch", epochs=3)
    run_dir = runs.create_run(tmp_path / "runs", cfg, ds.classes)
    out = []
    for e in runs.record(run_dir, train(cfg, ds, run_dir=run_dir)):
        out.append(e)
        if isinstance(e, ev.EpochEnd):
            for item in ds.train:
                open(item.path, "wb").write(b"garbage")
            DECODED._items.clear()
            DECODED.used = 0
    failed = out[-1]
    assert isinstance(failed, ev.Failed), failed
    assert "cannot identify image file" in failed.message and "Traceback" in failed.detail
    assert runs.read_run(run_dir).status == "Failed"
    assert len(Predictor(run_dir).top_k([tmp_path / "data" / "circle" / "circle_0000.jpg"])[0]) == 3


def test_nan_loss_fails_with_a_sentence(shapes):
    events = list(train(tiny_cfg(strategy="scratch", epochs=1, lr=1e30, optimizer="sgd"), shapes))
    assert isinstance(events[-1], ev.Failed) and "lower the learning rate" in events[-1].message


def test_feature_cache_second_run_skips_the_backbone(shapes, pretrained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("TL_CACHE", str(tmp_path / "cache"))  # cold: other tests embed the same run
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=3, lr=1e-2)
    first = list(train(cfg, shapes))
    second = list(train(cfg, shapes))
    assert any(isinstance(e, ev.Progress) and e.phase == "features" for e in first)
    assert not any(isinstance(e, ev.Progress) and e.phase == "features" for e in second)
    assert first[-1].metrics["val/acc"] == second[-1].metrics["val/acc"] >= 0.9
    other = list(train(cfg.replace(pretrained="none"), shapes))  # different weights: a cache miss
    assert any(isinstance(e, ev.Progress) and e.phase == "features" for e in other)


def test_cached_features_equal_the_backbone_output(shapes, pretrained_run):
    from tl_core.data.transforms import eval_transform, load_rgb, preprocess_for
    from tl_core.models.model import build_model, pooled_features
    from tl_core.training.features import EXACT, FeatureStore, model_key

    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=1)
    list(train(cfg, shapes))
    model = build_model(cfg, 3).eval()
    pp = preprocess_for(model, cfg.image_size)
    item = shapes.val[0]
    with torch.inference_mode():
        direct = pooled_features(model, eval_transform(pp)(load_rgb(item.path, pp.scale_size))[None])[0]
    # whichever exact engine computed it (torch or ONNX Runtime, both fp32): the same features.
    # Earlier tests in the session may have cached this model under the other engine, so every
    # fp32 entry of this image is checked.
    store = FeatureStore()
    entries = [store.get(model_key(model, pp), [engine], [item.sha1]) for engine in EXACT]
    store.close()
    assert any(entries)
    for found in entries:
        for vec, _ in found.values():
            torch.testing.assert_close(torch.from_numpy(vec.copy()), direct, atol=1e-5, rtol=1e-4)


def test_save_load_gives_identical_logits(shapes, tmp_path):
    from tl_core.models.checkpoint import load_model, save_model
    from tl_core.models.model import build_model

    cfg = tiny_cfg(strategy="scratch", head="mlp", head_hidden=16)
    model = build_model(cfg, 3).eval()
    save_model(tmp_path, model, cfg, shapes.classes)
    (tmp_path / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "classes": shapes.classes}))
    (tmp_path / "preprocess.json").write_text(json.dumps(
        {"input_size": 48, "scale_size": 50, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"}))
    loaded = load_model(tmp_path)[0]
    x = torch.randn(4, 3, 48, 48)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_batch_normalize_equals_per_image_normalisation(shapes, pretrained_run):
    """The training loops normalise uint8 batches; prediction normalises per image: same numbers."""
    from tl_core.data.transforms import BatchNormalize, Preprocess

    pp = Preprocess.from_dict(json.loads((pretrained_run / "preprocess.json").read_text()))
    images = [load_rgb_for(pp, it.path) for it in shapes.val[:4]]
    per_image = torch.stack([eval_transform(pp)(im) for im in images])
    batched = BatchNormalize(pp)(torch.stack([eval_transform(pp, normalize=False)(im) for im in images]))
    torch.testing.assert_close(batched, per_image, atol=1e-6, rtol=0)


def load_rgb_for(pp, path):
    from tl_core.data.decode import load_rgb

    return load_rgb(path, pp.scale_size)


def test_saved_checkpoint_is_the_best_epoch(shapes, pretrained_run, tmp_path):
    """Fast epochs hold checkpoints back (SAVE_EVERY_S): the file must still be the best epoch's."""
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=12, lr=5e-2)
    events = list(train(cfg, shapes, run_dir=tmp_path))
    finished = events[-1]
    assert isinstance(finished, ev.Finished)
    saved = json.loads((tmp_path / "val_predictions.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "classes": shapes.classes}))
    probs = Predictor(tmp_path).probabilities([it["path"] for it in saved["items"]])
    expected = torch.tensor([it["probs"] for it in saved["items"]])
    torch.testing.assert_close(probs, expected, atol=1e-4, rtol=0)


def test_user_messages_for_memory_and_disk():
    import errno

    from tl_core.training.train import user_message

    assert "smaller batch size" in str(user_message(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried")))
    assert "smaller batch size" in str(user_message(MemoryError()))
    assert "disk is full" in str(user_message(OSError(errno.ENOSPC, "No space left on device")))
    assert str(user_message(ValueError("x"))) == "Training failed: ValueError: x"


def test_decoded_images_are_released_when_the_run_ends(shapes):
    """The decoded-image cache serves epochs 2+ of a run, then is emptied (an app server must not
    hold a finished run's images)."""
    seen = []
    for e in train(tiny_cfg(strategy="scratch", epochs=2), shapes):
        if isinstance(e, ev.EpochEnd):
            seen.append(DECODED.used)
    assert seen[0] > 0 and seen[1] == seen[0]  # epoch 2 decoded nothing new
    assert DECODED.used == 0 and DECODED.users == 0


def test_decoded_cache_keeps_its_budget(shapes):
    from tl_core.data.transforms import DecodedCache

    one = 48 * 48 * 3
    cache = DecodedCache(budget_bytes=2 * one)
    for it in shapes.train[:5]:
        cache.get(it.path, 48)
    assert cache.used == 2 * one and len(cache._items) == 2  # full: later images are not cached


def test_a_cpu_run_re_decides_its_threads_while_it_trains(shapes, monkeypatch):
    from tl_core.training import train as train_module

    monkeypatch.setattr(train_module, "THREADS_EVERY_S", 0.0)  # at every event
    monkeypatch.setenv("TL_NUM_THREADS", "2")  # what configure_threads decides, whatever the load
    before = torch.get_num_threads()
    try:
        run = train(tiny_cfg(strategy="scratch", epochs=1), shapes)
        assert isinstance(next(run), ev.Started)
        torch.set_num_threads(1)  # as if the first decision saw the page redraw
        assert isinstance(list(run)[-1], ev.Finished)
        assert torch.get_num_threads() == 2  # re-decided while training
    finally:
        torch.set_num_threads(before)

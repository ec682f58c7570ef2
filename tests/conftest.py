"""Shared fixtures: generated images only (no downloads, no ../shared)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# Tests never touch the network; must be set before timm/huggingface_hub are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the Model page lists timm's tiny test_* models only for developers and tests (users never see them)
os.environ.setdefault("TL_TEST_MODELS", "1")
# no engine probes in background processes during the suite (test_features.py turns one on)
os.environ.setdefault("TL_BACKGROUND_PROBE", "0")
# no spare training process kept by each app server and job of the suite (test_app_speed.py tests it)
os.environ.setdefault("TL_SPARE_CHILD", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest  # noqa: E402
from app_server import running_app  # noqa: E402

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.data.synthetic import make_shapes_dataset  # noqa: E402

TINY = dict(backbone="test_resnet", pretrained="none", image_size=48, batch_size=16)


@pytest.fixture(autouse=True)
def _feature_cache(tmp_path_factory, monkeypatch):
    # each test session gets its own feature cache, so cache hits are the test's own doing
    monkeypatch.setenv("TL_CACHE", str(tmp_path_factory.getbasetemp() / "tl_cache"))


@pytest.fixture(autouse=True)
def _no_native_bf16(monkeypatch):
    # CI's CPU changes from run to run: on one with native bf16 an automatic run times a training
    # step and says which precision it chose (a Note). Every test sees a CPU without it, except
    # those that set TL_NATIVE_BF16=1 to test that path on purpose.
    monkeypatch.setenv("TL_NATIVE_BF16", "0")


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """3 learnable classes (shape + colour), 24 images each, 48 px."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "shapes", per_class=24, size=48,
                               colour_coded=True, fmt="jpg")


@pytest.fixture(scope="session")
def shapes(shapes_dir):
    from tl_core.data.dataset import load_dataset

    return load_dataset(shapes_dir)


@pytest.fixture(scope="session")
def pretrained_run(shapes, tmp_path_factory) -> Path:
    """A test_resnet trained from scratch: the 'pretrained' starting point of transfer tests."""
    from tl_core.jobs import runs
    from tl_core.training.train import train

    cfg = RunConfig(strategy="scratch", epochs=5, lr=3e-3, **TINY)
    root = tmp_path_factory.mktemp("runs")
    run_dir = runs.create_run(root, cfg, shapes.classes, shapes.to_dict())
    events = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    assert type(events[-1]).__name__ == "Finished", events[-1]
    return run_dir


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app (`streamlit run app.py`) for one browser test module -> (url, its folder: runs/, workspace/,
    streamlit.log). Module-scoped: a module's autouse fixtures set the environment before it starts."""
    tmp = tmp_path_factory.mktemp("app")
    with running_app(tmp) as url:
        yield url, tmp


def tiny_cfg(**kw) -> RunConfig:
    return RunConfig(**{**TINY, **kw})


def wait_for(check, seconds: float, what: str):
    """check()'s first truthy value within `seconds`, else an AssertionError naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")

"""The pages' heavy work as tasks in the job slots (issue 20), under AppTest: on a hosted server
with one slot, a second session's audit waits in line behind the first session's training and
says so; the Export and Evaluate pages hand their features work to a task and show its result.

AppTest does not fire run_every: the tests re-run the script as the browser's poll would.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tl_core.base.config import RunConfig  # noqa: E402
from test_app_compare import server, session  # noqa: E402,F401  (server: fixture)

APP = str(ROOT / "app.py")
TIMEOUT = 120
TINY = RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=30, batch_size=16,
                 image_size=48, augment="none", device="cpu")
WAITING = "Waiting for a free slot on this server: position 1 in line."


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "success", "info", "warning", "error", "caption", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)




def rerun_until(at: AppTest, done, seconds: float = 600) -> AppTest:
    deadline = time.time() + seconds
    while not done(at) and time.time() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    assert done(at), texts(at)
    return at


def is_a_task(at: AppTest, kind: str) -> bool:
    """The click came back at once with the task's Stop button: the work runs on a task, not in the script."""
    return any(b.key == f"task_stop_{kind}" for b in at.button)


def audit_shown(at: AppTest) -> bool:
    return any(m.label == "Train/validation copies" for m in at.metric)


def test_hosted_audit_features_wait_in_line_behind_a_training(server):
    server.setenv("TL_MODE", "hosted")
    server.setenv("TL_MAX_JOBS", "1")
    server.setenv("TL_RUNNER", "thread")
    ana = session("app_pages/data.py")
    ana.button(key="use_shapes").click().run()
    ana.session_state["config"] = TINY
    ana.switch_page("app_pages/train.py").run()
    ana.button(key="train_start").click().run()  # ana's training takes the only slot
    assert not ana.exception, ana.exception

    ben = session("app_pages/data.py")
    ben.button(key="use_shapes").click().run()
    ben.session_state["config"] = TINY
    assert audit_shown(ben), "the audit by file hashes alone runs on the page, as before"
    ben.toggle(key="au_features").set_value(True).run()
    assert WAITING in texts(ben) and not audit_shown(ben), texts(ben)
    time.sleep(1.0)
    ben.run()
    assert WAITING in texts(ben) and not audit_shown(ben), "it waits while the training holds the slot"

    ana.button(key="train_stop").click().run()
    rerun_until(ben, audit_shown)
    assert "Waiting for a free slot" not in texts(ben)


@pytest.fixture
def finished_run(server, shapes):
    """A tiny run trained by tl_core in the server's runs folder (the Export and Evaluate pages list it)."""
    import os

    from tl_core.jobs import runs
    from tl_core.training.train import train

    cfg = TINY.replace(strategy="feature_extraction", epochs=1)
    run_dir = runs.create_run(Path(os.environ["TL_RUNS"]), cfg, shapes.classes, shapes.to_dict())
    events = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    assert type(events[-1]).__name__ == "Finished", events[-1]
    return run_dir


def test_export_embeddings_run_as_a_task(finished_run):
    at = session("app_pages/export.py")
    at.button(key="ex_emb_make").click().run()
    assert not at.exception, at.exception
    assert is_a_task(at, "embeddings")
    rerun_until(at, lambda a: "sklearn_check.py reproduces" in texts(a))
    assert not [b for b in at.button if b.key == "ex_emb_make"], "the button gave way to the download"


def test_evaluate_map_runs_as_a_task(finished_run):
    at = session("app_pages/evaluate.py")
    at.toggle(key="ev_map_show").set_value(True).run()
    assert not at.exception, at.exception
    assert is_a_task(at, "map")
    rerun_until(at, lambda a: bool(a.get("iframe")))
    assert "PCA (instant)" in str(at.get("iframe")[0].proto)


def test_evaluate_data_curve_runs_as_a_task(finished_run):
    at = session("app_pages/evaluate.py")
    at.button(key="ev_curve").click().run()
    assert not at.exception, at.exception
    assert is_a_task(at, "curve")
    readings = ("Still rising", "Flat:", "Too uncertain to tell", "Too few training images")
    rerun_until(at, lambda a: any(r in texts(a) for r in readings))
    assert (finished_run / "curve.json").is_file() and not [b for b in at.button if b.key == "ev_curve"]

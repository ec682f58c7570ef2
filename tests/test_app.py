"""Headless page tests with streamlit.testing.v1.AppTest: every page renders, the Data page takes
a folder upload, a tiny run trains to Finished, and the result pages work on that run.

AppTest has no browser and does not fire run_every, so the Train test re-runs the script until
the job is done. Everything runs on timm's tiny test_resnet with random init: CPU, offline.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tl_core and ui import from the repo root however pytest is started

from tl_core.base.config import RunConfig
from tl_core.data.synthetic import make_shapes_dataset

APP = str(ROOT / "app.py")
PAGES = [f"app_pages/{name}.py" for name in ("data", "model", "train", "evaluate", "predict", "export")]
TINY = RunConfig(backbone="test_resnet", pretrained="none", strategy="full", epochs=2, batch_size=16,
                 image_size=64, augment="none", device="cpu")
TIMEOUT = 120  # seconds for one script run; model building on a cold CPU can take a while


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_RUNS", str(tmp / "runs"))
        mp.setenv("TL_WORKSPACE", str(tmp / "workspace"))
        yield tmp


def rerun_until(at: AppTest, text: str, seconds: float = 600) -> AppTest:
    """Re-run the page until `text` shows: heavy work is a task in the job slots, and AppTest does
    not fire the polling fragment's run_every."""
    deadline = time.time() + seconds
    while text not in texts(at) and time.time() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    return at


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "success", "info", "warning", "error", "caption", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


# ------------------------------------------------------------------ static checks


def test_text_tables_complete():
    from ui.text import EN, ES

    assert EN.keys() == ES.keys()
    used = set()
    for f in [ROOT / "app.py", *ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py")]:
        if f.name == "text.py":
            continue
        used |= set(re.findall(r"\bt\(\s*[\"']([a-z0-9_]+)[\"']\s*[,)]", f.read_text()))
    assert used - EN.keys() == set()


def test_ui_never_imports_torch():
    for f in [ROOT / "app.py", *ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py")]:
        assert not re.search(r"^\s*(import torch|from torch)", f.read_text(), re.M), f


def test_advisor_four_scenarios():
    from ui.advisor import recommend

    assert recommend(40, True)[0] == "feature_extraction"
    assert recommend(500, True)[0] == "full"
    assert recommend(40, False)[0] == "partial"
    assert recommend(500, False)[0] == "full"


# ------------------------------------------------------------------ pages


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(env, page):
    at = app(page)
    assert at.title, "every page has a title"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_spanish(env, page):
    from ui.text import ES

    at = app(page, lang="es")
    assert at.title[0].value in ES.values()


def test_data_directory_upload(env, tmp_path):
    src = make_shapes_dataset(tmp_path / "shapes", per_class=6, size=32)
    files = [(f"shapes/{p.parent.name}/{p.name}", p.read_bytes(), "image/png") for p in sorted(src.rglob("*.png"))]
    files.append(("shapes/.DS_Store", b"junk", "application/octet-stream"))
    at = app("app_pages/data.py")
    at.file_uploader(key="upload_dir").set_value(files)
    at.run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert ds.classes == ["circle", "square", "triangle"]
    assert at.metric[0].value == "3"  # classes
    assert len(at.get("plotly_chart")) == 1  # class counts
    assert "Ready: 18 images in 3 classes" in texts(at)
    assert any(".DS_Store" in str(df.value) for df in at.dataframe), "skipped-files report lists the junk"


def test_data_zip_upload(env, tmp_path):
    import io
    import zipfile

    src = make_shapes_dataset(tmp_path / "shapes", per_class=5, size=32, classes=("circle", "star"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(src.rglob("*.png")):
            zf.write(p, f"shapes/{p.parent.name}/{p.name}")
    at = app("app_pages/data.py")
    at.file_uploader(key="upload_zip").set_value(("shapes.zip", buf.getvalue(), "application/zip"))
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["dataset"].classes == ["circle", "star"]


def test_data_error_is_a_sentence(env, tmp_path):
    src = make_shapes_dataset(tmp_path / "one", per_class=3, size=32, classes=("circle",))
    files = [(f"one/circle/{p.name}", p.read_bytes(), "image/png") for p in sorted(src.rglob("*.png"))]
    at = app("app_pages/data.py")
    at.file_uploader(key="upload_dir").set_value(files)
    at.run()
    assert not at.exception, at.exception
    assert at.error and "at least 2" in at.error[0].value
    assert "dataset" not in at.session_state


def _snapshot(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_data_local_folder_is_read_in_place(env, tmp_path):
    src = make_shapes_dataset(tmp_path / "mine", per_class=5, size=32, classes=("circle", "star"))
    before = _snapshot(src)
    at = app("app_pages/data.py")
    at.text_input(key="local_path").input(str(src))
    at.button(key="local_use").click().run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert ds.classes == ["circle", "star"] and len(ds.train) + len(ds.val) == 10
    assert all(Path(it.path).parent.parent == src for it in ds.train + ds.val), "paths point into the folder"
    assert _snapshot(src) == before, "nothing written into the user's folder"


def test_data_local_folder_that_is_not_a_folder_is_a_sentence(env, tmp_path):
    at = app("app_pages/data.py")
    at.text_input(key="local_path").input(str(tmp_path / "nope"))
    at.button(key="local_use").click().run()
    assert not at.exception, at.exception
    assert at.error and "is not a folder on this computer" in at.error[0].value
    assert "dataset" not in at.session_state


def test_sample_dataset_button(env):
    at = app("app_pages/data.py")
    at.button(key="use_sample").click().run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert ds.classes == ["cardboard", "glass", "metal", "plastic"] and len(ds.train) + len(ds.val) == 200
    at.button(key="use_shapes").click().run()
    assert not at.exception, at.exception
    assert at.session_state["dataset"].classes == ["circle", "square", "triangle"]


def test_gallery_shows_speed_measured_here(env):
    from tl_core.models import engines

    def speed(at):
        table = at.dataframe[0].value.set_index("Model")
        return table.loc["mobilenetv3_large_100", "Images/s here"]

    engines.probe_file().unlink(missing_ok=True)
    assert speed(app("app_pages/model.py")) == "not measured yet"
    engines.save_probe("mobilenetv3_large_100", 224, {"rates": {"torch": 812.0, "onnx": 1234.0}, "errors": {}})
    assert speed(app("app_pages/model.py")) == "1234 (ONNX Runtime fp32)"


@pytest.mark.parametrize("native", ["0", "1"])
def test_bf16_is_offered_only_on_a_cpu_with_native_bf16(env, monkeypatch, native):
    monkeypatch.setenv("TL_NATIVE_BF16", native)
    at = app("app_pages/model.py")
    boxes = [c for c in at.radio if c.key == "m_bf16"]
    assert len(boxes) == int(native)
    if boxes:
        assert at.session_state["config"].cpu_bf16 is None  # automatic by default
        boxes[0].set_value("on").run()
        assert not at.exception, at.exception
        assert at.session_state["config"].cpu_bf16 is True
    else:  # no choice here, but the page says which precision will train and why
        at.radio(key="m_strategy").set_value("full").run()
        assert any("Training in fp32: this CPU has no native bfloat16" in c.value for c in at.caption)


def test_model_page_says_which_layers_stay_in_fp32(env, monkeypatch, tmp_path):
    from tl_core.models import catalog
    from tl_core.training import precision

    monkeypatch.setenv("TL_NATIVE_BF16", "1")
    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # this made-up timing stays out of other tests' cache
    at = app("app_pages/model.py")
    at.radio(key="m_strategy").set_value("full").run()
    cfg = at.session_state["config"]
    # as the step timing stores it on a CPU where bf16 pays and two layers were slower in it
    precision._store(cfg, catalog.input_size(cfg.backbone),
                     {"fp32": 2.0, "fp32_cl": 1.5, "bf16_cl": 0.5,
                      "fp32_layers": ["blocks.5.0.conv_dw", "blocks.5.1.conv_dw"]})
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Training in bfloat16") for c in captions), captions
    assert any(c.startswith("2 depthwise convolutions stay in fp32") for c in captions), captions


def test_model_page_builds_config(env):
    at = app("app_pages/model.py")
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_weights").set_value("none").run()
    at.radio(key="m_strategy").set_value("partial").run()
    assert not at.exception, at.exception
    cfg = at.session_state["config"]
    assert (cfg.backbone, cfg.pretrained, cfg.strategy) == ("test_resnet", "none", "partial")
    assert at.slider(key="m_unfreeze").max >= 1
    assert at.metric, "trainable-parameter count is shown"


@pytest.fixture(scope="module")
def finished_run(env):
    """Train TINY on the generated shapes through the Train page; -> the AppTest after Finished."""
    at = app("app_pages/data.py")
    at.button(key="use_shapes").click().run()
    at.session_state["config"] = TINY
    at.switch_page("app_pages/train.py").run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    deadline = time.time() + 180
    while "Finished" not in texts(at) and time.time() < deadline:
        time.sleep(0.5)
        at.run()  # AppTest does not fire run_every: poll by hand
        assert not at.exception, at.exception
    return at


def test_train_tiny_run(finished_run):
    at = finished_run
    assert "Finished" in texts(at), texts(at)
    assert at.query_params.get("job"), "the job id is in the URL for a refresh to reattach"
    assert len(at.get("plotly_chart")) >= 1


def test_train_page_reattaches_after_refresh(finished_run):
    # a fresh session with only the URL: what a browser refresh gives the server
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(finished_run.query_params)
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert "Finished" in texts(at)


def test_refresh_keeps_the_dataset_and_the_settings(env, tmp_path):
    """A fresh session with only the URL (a refresh, or the link opened later) has the dataset,
    the settings and the session's workspace back; a link to nothing saved starts clean."""
    src = make_shapes_dataset(tmp_path / "shapes", per_class=4, size=32, classes=("circle", "star"))
    files = [(f"shapes/{p.parent.name}/{p.name}", p.read_bytes(), "image/png") for p in sorted(src.rglob("*.png"))]
    at = app("app_pages/data.py")
    at.file_uploader(key="upload_dir").set_value(files).run()
    at.switch_page("app_pages/model.py").run()
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_strategy").set_value("partial").run()
    assert not at.exception, at.exception
    url = dict(at.query_params)
    assert {"s", "data", "cfg"} <= url.keys()

    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.query_params.update(url)
    again.run()
    again.switch_page("app_pages/model.py").run()
    assert not again.exception, again.exception
    ds, cfg = again.session_state["dataset"], again.session_state["config"]
    assert ds.classes == ["circle", "star"] and len(ds.train) + len(ds.val) == 8
    assert (cfg.backbone, cfg.strategy) == ("test_resnet", "partial")
    assert again.session_state["sid"] == at.session_state["sid"]

    stranger = AppTest.from_file(APP, default_timeout=TIMEOUT)
    stranger.query_params.update({"data": url["data"], "cfg": "../../etc/passwd"})  # no session of its own
    stranger.run()
    assert not stranger.exception and "dataset" not in stranger.session_state


def test_evaluate_page(finished_run):
    at = app("app_pages/evaluate.py")
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "confusion matrix"
    at.toggle(key="ev_norm").set_value(True).run()
    assert not at.exception, at.exception


def test_predict_page(finished_run):
    image = next((ROOT / "assets" / "samples" / "shapes" / "circle").glob("*.png")).read_bytes()
    at = app("app_pages/predict.py")
    at.file_uploader(key="pr_files").set_value([("circle.png", image, "image/png")])
    at.run()
    assert not at.exception, at.exception
    assert "circle.png" in texts(at)
    assert at.get("plotly_chart"), "top-k chart"


def test_export_page(finished_run):
    at = app("app_pages/export.py")
    assert not at.exception, at.exception
    at.button(key="ex_onnx_make").click().run()
    assert not at.exception, at.exception
    rerun_until(at, "largest probability difference")
    assert "largest probability difference" in texts(at) and "validation images" in texts(at)
    made = list(Path(os.environ["TL_WORKSPACE"]).rglob("exports/*/onnx/*.zip"))
    assert len(made) == 1, made
    made[0].unlink()  # a hosted session's workspace cleared while the page was open
    at.run()
    assert "no longer on the server" in texts(at) and at.button(key="ex_onnx_make")


def test_a_run_finishing_meanwhile_does_not_move_the_chosen_run(finished_run):
    """Export (as Evaluate and Predict) keeps the run the user picked when a newer one finishes
    (a comparison's members finish one by one while its first member is exported)."""
    import json
    import shutil

    from ui.state import runs_root

    src = runs_root() / finished_run.session_state["job_run"]

    def copy(name: str, created_offset: float) -> str:
        shutil.copytree(src, runs_root() / name)
        meta = json.loads((runs_root() / name / "run.json").read_text())
        meta["created"] += created_offset
        (runs_root() / name / "run.json").write_text(json.dumps(meta))
        return name

    older = copy(src.name + "-older", -3600)
    at = app("app_pages/export.py")
    box = at.selectbox(key="ex_run")
    box.select_index(next(i for i, label in enumerate(box.options) if older in label)).run()
    copy(src.name + "-newer", 3600)  # finishes meanwhile: first in the newest-first list
    at.run()
    assert not at.exception, at.exception
    box = at.selectbox(key="ex_run")
    assert older in box.options[box.index], box.options[box.index]


def test_stop_a_run(finished_run):
    at = app("app_pages/train.py", config=TINY.replace(epochs=50), dataset=finished_run.session_state["dataset"])
    at.button(key="train_start").click().run()
    at.button(key="train_stop").click().run()
    deadline = time.time() + 120
    while "Stopped" not in texts(at) and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception, at.exception
    assert "Stopped" in texts(at), texts(at)


def test_advisor_button_sets_strategy(env):
    # without a dataset the advisor's table can be explored by hand (with one, it is measured:
    # tests/test_app_compare.py)
    at = app("app_pages/model.py")
    at.number_input(key="adv_n").set_value(40).run()  # "small"
    at.radio(key="adv_similar").set_value(False).run()
    at.button(key="adv_apply").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="m_strategy").value == "partial"
    assert at.session_state["config"].strategy == "partial"


def test_augmentation_preview(env):
    at = app("app_pages/data.py")
    at.button(key="use_sample").click().run()
    at.switch_page("app_pages/model.py").run()
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_strategy").set_value("partial").run()  # augmentation acts on images the model sees
    at.button(key="m_preview").click().run()
    assert not at.exception, at.exception
    assert len(at.get("image")) >= 8, "augmented samples are shown"


def test_augmentation_is_off_for_feature_extraction(env):
    """Cached features never see an augmented image: the control is off, the reason is shown,
    and the config asks for no augmentation."""
    at = app("app_pages/model.py")
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_strategy").set_value("feature_extraction").run()
    assert not at.exception, at.exception
    assert at.session_state["config"].augment == "none"
    assert not any(b.key == "m_preview" for b in at.button)
    assert "computed once and cached" in texts(at)
    at.radio(key="m_strategy").set_value("full").run()
    assert any(b.key == "m_preview" for b in at.button) and at.session_state["config"].augment != "none"


def test_queue_position_is_shown(finished_run):
    ds = finished_run.session_state["dataset"]
    first = app("app_pages/train.py", config=TINY.replace(epochs=50), dataset=ds)
    first.button(key="train_start").click().run()
    second = app("app_pages/train.py", config=TINY, dataset=ds)
    second.button(key="train_start").click().run()
    try:
        assert "position 1 in line" in texts(second), texts(second)
    finally:
        second.button(key="train_stop").click().run()
        first.button(key="train_stop").click().run()
    deadline = time.time() + 60
    while "Stopped" not in texts(first) and time.time() < deadline:
        time.sleep(0.5)
        first.run()


def test_compare_runs(finished_run):
    from tl_core.jobs.job import JobManager
    from ui.state import runs_root

    job = JobManager().submit(TINY.replace(epochs=1), finished_run.session_state["dataset"], runs_root())
    job.join(120)
    at = app("app_pages/evaluate.py")
    assert not at.exception, at.exception
    assert len(at.multiselect(key="ev_compare").value) == 2
    assert len(at.get("plotly_chart")) >= 3  # confusion + two comparison charts


def test_interrupted_run_replays(finished_run, tmp_path):
    """A run folder whose job is gone (server restart) replays its events from events.jsonl."""
    import shutil

    from ui.state import runs_root

    src = runs_root() / finished_run.session_state["job_run"]
    copy = runs_root() / (src.name + "-copy")
    shutil.copytree(src, copy)
    lines = (copy / "events.jsonl").read_text().splitlines()
    (copy / "events.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # no Finished: killed mid-run
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"job": "gone-after-restart", "run": copy.name})
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert "interrupted" in texts(at)
    assert at.get("plotly_chart"), "the curves are replayed"


def test_weights_file_upload(env, tmp_path):
    import numpy as np
    from safetensors.numpy import save

    blob = save({"w": np.zeros(3, dtype=np.float32)})
    at = app("app_pages/model.py")
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_weights").set_value("file").run()
    if any(r.key == "m_weights_pick" for r in at.radio):  # bundled weights exist: choose "upload my own"
        at.radio(key="m_weights_pick").set_value("upload").run()
    at.file_uploader(key="m_weights_file").set_value(("../../evil name.safetensors", blob, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    path = Path(at.session_state["config"].pretrained)
    assert path.name == "evil_name.safetensors" and path.is_file()
    assert Path(at.session_state["config"].pretrained).parent.parent.parent == Path(env / "workspace")


def test_hosted_mode_isolates_sessions(tmp_path):
    """TL_MODE=hosted: a second session sees neither the first one's runs nor its job."""
    import streamlit as st

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_MODE", "hosted")
        mp.setenv("TL_RUNS", str(tmp_path / "runs"))
        mp.setenv("TL_WORKSPACE", str(tmp_path / "workspace"))
        st.cache_resource.clear()  # server_settings() and the job registry are per process
        try:
            a = app("app_pages/data.py")
            assert not [w for w in a.text_input if w.key == "local_path"], "no server paths for strangers"
            a.button(key="use_sample").click().run()
            a.session_state["config"] = TINY.replace(epochs=1)
            a.switch_page("app_pages/train.py").run()
            a.button(key="train_start").click().run()
            deadline = time.time() + 120
            while "Finished" not in texts(a) and time.time() < deadline:
                time.sleep(0.5)
                a.run()
            assert "Finished" in texts(a) and a.query_params.get("s"), "the session token is in the URL"
            sid_a = a.session_state["sid"]
            assert (tmp_path / "runs" / sid_a).is_dir() and len(sid_a) >= 32

            b = app("app_pages/evaluate.py")
            assert b.session_state["sid"] != sid_a
            assert "No finished training run yet" in texts(b)
            # B pasting A's job id into its URL does not reattach to A's job
            b = AppTest.from_file(APP, default_timeout=TIMEOUT)
            b.query_params["job"] = a.query_params["job"]
            b.run()
            b.switch_page("app_pages/train.py").run()
            assert not b.exception and "Finished" not in texts(b)
        finally:
            st.cache_resource.clear()


def test_classroom_predownload_offline_is_a_sentence(env):
    """Offline, 'download them' gives the weights sentence (connect / file / scratch), not a trace."""
    at = app("app_pages/model.py")
    at.multiselect(key="m_prep_names").set_value(["resnet18"]).run()
    at.button(key="m_prep_go").click().run()
    assert not at.exception, at.exception
    assert any("train from scratch" in e.value for e in at.error), [e.value for e in at.error]


def test_data_audit_shows_a_leak_and_fixes_the_split(env, tmp_path):
    from PIL import Image

    src = make_shapes_dataset(tmp_path / "shapes", per_class=6, size=48, classes=("circle", "star"))
    files = [(f"shapes/{p.parent.name}/{p.name}", p.read_bytes(), "image/png") for p in sorted(src.rglob("*.png"))]
    copy = Image.open(src / "circle" / "circle_0000.png").resize((40, 40))  # a resized copy, in another class
    import io

    buf = io.BytesIO()
    copy.save(buf, "PNG")
    files.append(("shapes/star/looks_like_a_circle.png", buf.getvalue(), "image/png"))
    at = app("app_pages/data.py")
    at.file_uploader(key="upload_dir").set_value(files)
    at.run()
    assert not at.exception, at.exception
    assert "Conflict" in texts(at)
    before = len(at.session_state["dataset"].train) + len(at.session_state["dataset"].val)
    at.button(key="au_drop_0_1").click().run()  # leave out the second copy
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert len(ds.train) + len(ds.val) == before - 1 and (src / "circle" / "circle_0000.png").exists()
    assert "is left out" in texts(at)
    # the reason is kept as a sentence kind: read later in Spanish, it is Spanish
    at.session_state["lang"] = "es"
    at.run()
    reasons = " ".join(str(df.value) for df in at.dataframe)
    assert "dejada fuera por la auditoría" in reasons and "left out by the audit" not in reasons, reasons


def test_evaluate_page_calibration_label_issues_and_map(finished_run):
    at = app("app_pages/evaluate.py")
    assert not at.exception, at.exception
    assert "Calibration error (calibrated)" in [m.label for m in at.metric]
    at.button(key="ev_issues").click().run()
    assert not at.exception, at.exception
    found = r"None of the \d+ images looks like|\d+ of \d+ images may be"
    deadline = time.time() + 600
    while not re.search(found, texts(at)) and time.time() < deadline:
        time.sleep(0.3)  # the search is a task in the job slots: poll as the browser would
        at.run()
    # the result of the check, not the section's title (which says "wrong folder" before any click)
    assert re.search(r"None of the \d+ images looks like|\d+ of \d+ images may be in the wrong folder", texts(at))
    at.toggle(key="ev_map_show").set_value(True).run()
    assert not at.exception, at.exception
    deadline = time.time() + 600
    while not at.get("iframe") and time.time() < deadline:  # the map is a task: poll as the browser would
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    assert at.get("iframe"), "the feature map is drawn"


def test_a_run_whose_images_were_removed_says_so_on_evaluate_predict_and_export(finished_run, tmp_path):
    """Hosted caps deleted a finished run's upload: one sentence on each page, no traceback, and
    the export's check is never called a check on validation images."""
    import json
    import shutil

    import streamlit as st

    from tl_core.jobs import runs

    source = runs.list_runs(Path(os.environ["TL_RUNS"]))[0]
    run_dir = tmp_path / "runs" / source.name
    shutil.copytree(source.dir, run_dir)
    preds = json.loads((run_dir / "val_predictions.json").read_text())
    for item in preds["items"]:
        item["path"] = str(tmp_path / "deleted-upload" / Path(item["path"]).name)
    runs.write_json_atomic(run_dir / "val_predictions.json", preds)
    runs.mark_images_removed(run_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_RUNS", str(tmp_path / "runs"))
        st.cache_resource.clear()  # server_settings() is read once per process
        try:
            for page in ("app_pages/evaluate.py", "app_pages/predict.py", "app_pages/export.py"):
                at = app(page)
                assert "images were deleted with an old upload" in texts(at), page
            at.button(key="ex_onnx_make").click().run()
            assert not at.exception, at.exception
            rerun_until(at, "random-noise images only")
            assert "random-noise images only" in texts(at) and "validation images:" not in texts(at)
        finally:
            st.cache_resource.clear()

"""The Data page's "Make classes here" tab under AppTest: buckets, uploads, names, refresh, hosted isolation, Spanish."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = str(ROOT / "app.py")
TIMEOUT = 120


@pytest.fixture
def env(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TL_WORKSPACE", str(tmp_path / "workspace"))
    st.cache_resource.clear()  # server_settings() is read once per process
    yield tmp_path
    st.cache_resource.clear()


def data_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, at.exception
    return at


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def texts(at: AppTest) -> str:
    kinds = ("markdown", "success", "info", "warning", "error", "caption")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def uploader(at: AppTest, class_id: str):
    return next(u for u in at.get("file_uploader") if u.key.startswith(f"bk_up_{class_id}_"))


def upload(at: AppTest, class_id: str, files) -> None:
    uploader(at, class_id).set_value([(name, data, "image/jpeg") for name, data in files])
    at.run()
    assert not at.exception, at.exception


def make_two_classes(at: AppTest) -> str:
    """-> the page's texts right after the first upload."""
    at.button(key="bk_add").click().run()
    at.button(key="bk_add").click().run()
    upload(at, "c1", [(f"a{i}.jpg", jpeg(i)) for i in range(6)] + [("notes.jpg", b"not an image")])
    after_first = texts(at)
    upload(at, "c2", [(f"b{i}.jpg", jpeg(100 + i)) for i in range(5)])
    return after_first


def counts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if str(m.value).startswith("**") and "images" in str(m.value)]


def test_make_classes_upload_rename_delete_and_use(env):
    at = data_page()
    assert "No class yet" in texts(at)
    first = make_two_classes(at)
    assert counts(at) == ["**6 images**", "**5 images**"]
    assert "notes.jpg: not an image Pillow can read" in first  # one sentence for the bad file, the rest kept
    assert "Add at least 10 images" in texts(at)
    at.text_input(key="bk_name_c1").set_value("Cans").run()
    at.text_input(key="bk_name_c2").set_value("../x").run()
    assert "remove /" in texts(at) and at.text_input(key="bk_name_c2").value == "Class 2"
    first = next(b for b in at.button if b.key.startswith("bk_del_c1_"))
    first.click().run()
    assert counts(at) == ["**5 images**", "**5 images**"]
    assert not any(b.key == first.key for b in at.button), "the deleted image is gone"
    at.button(key="bk_use").click().run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert ds.classes == ["Cans", "Class 2"]
    assert {c: v["train"] + v["val"] for c, v in ds.counts().items()} == {"Cans": 5, "Class 2": 5}
    assert "Using these classes: 10 images in 2 classes" in texts(at)

    # a refresh (the same ?s= in a new browser session) finds the buckets as they were
    again = data_page(s=at.session_state["sid"])
    assert counts(again) == ["**5 images**", "**5 images**"]
    assert again.text_input(key="bk_name_c1").value == "Cans"


def test_hosted_second_session_sees_none_of_the_first_ones_buckets(env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TL_MODE", "hosted")
    st.cache_resource.clear()
    a = data_page()
    make_two_classes(a)
    assert counts(a) == ["**6 images**", "**5 images**"]
    b = data_page()
    assert b.session_state["sid"] != a.session_state["sid"]
    assert counts(b) == [] and "No class yet" in texts(b)
    # a forged token that is not a session's own finds an empty workspace, never A's
    c = data_page(s="x" * 40)
    assert counts(c) == []


def test_hosted_image_cap_is_one_sentence(env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TL_MODE", "hosted")
    monkeypatch.setenv("TL_MAX_IMAGES", "4")
    st.cache_resource.clear()
    at = data_page()
    at.button(key="bk_add").click().run()
    upload(at, "c1", [(f"a{i}.jpg", jpeg(i)) for i in range(6)])
    assert counts(at) == ["**4 images**"]
    assert "at most 4 images per session" in texts(at)


def test_open_the_loaded_sample_in_buckets_and_extend_it(env):
    at = data_page()
    at.button(key="use_sample").click().run()
    at.button(key="bk_open_loaded").click().run()
    assert counts(at) == ["**50 images**"] * 4
    at.button(key="bk_add").click().run()
    upload(at, "c5", [(f"o{i}.jpg", jpeg(i)) for i in range(5)])
    at.text_input(key="bk_name_c5").set_value("Other").run()
    at.button(key="bk_use").click().run()
    ds = at.session_state["dataset"]
    assert ds.classes == ["Other", "cardboard", "glass", "metal", "plastic"]
    assert len(ds.train) + len(ds.val) == 205


def test_the_tab_in_spanish(env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["lang"] = "es"
    at.run()
    at.switch_page("app_pages/data.py").run()
    assert at.tabs[0].label == "Crear clases aquí"
    at.button(key="bk_add").click().run()
    at.button(key="bk_add").click().run()
    upload(at, "c1", [("a.jpg", jpeg(1)), ("vacio.jpg", b"")])
    shown = texts(at)
    assert "Añade al menos 10 imágenes" in shown and "vacio.jpg: archivo vacío (0 bytes)" in shown
    assert at.button(key="bk_use").label == "Usar estas clases"
    assert at.button(key="bk_add").label == "Añadir una clase"
    at.button(key="bk_use").click().run()
    assert "sin imágenes" in texts(at) or "ninguna imagen" in texts(at)  # one class is empty: a Spanish sentence
    for english in ("Make classes here", "Upload images", "Delete class", "Remove all images", "images**"):
        assert english not in shown

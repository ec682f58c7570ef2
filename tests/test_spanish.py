"""Every page in Spanish, through errors, skipped files and warnings: no English shows, no raw token.

Two nets. The English tables (tl_core.base.messages.EN and ui.text.EN) are cut into their fixed
fragments (the text between {placeholders}), and into their words: a fragment or a word that also
occurs in a Spanish sentence (a file type, a model name, "no") is not evidence of English and is
left out. The walk then collects every sentence the pages show and looks for the remaining
fragments and words (the dataset's own class names excepted: they are the user's words). Raw
tokens of tl_core ("auto", "cpu", "rapl", ...) must not show in either language.
"""
from __future__ import annotations

import io
import re
import time
import zipfile

import pytest
from streamlit.testing.v1 import AppTest
from language_check import ENGLISH, ENGLISH_WORDS, english_in
from test_app import APP, TIMEOUT, TINY, app, env  # noqa: F401  (env: fixture)

from tl_core.base import messages
from tl_core.data.synthetic import make_shapes_dataset

SAMPLE_CLASSES = ("cardboard", "glass", "metal", "plastic")  # assets/samples/recycling


@pytest.fixture(autouse=True, scope="module")
def _own_server_state(env):
    """server_settings() and the job registry are cached per process (st.cache_resource): read
    them again for this module's folders, and leave none of ours to the modules after it."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def shown(at: AppTest) -> str:
    """Every sentence the page shows: text elements, tables, labels and options of widgets."""
    parts = []
    for kind in ("markdown", "success", "info", "warning", "error", "caption", "title", "header", "subheader",
                 "exception", "toast"):
        parts += [str(e.value) for e in getattr(at, kind, [])]
    for df in at.dataframe:
        parts.append(df.value.to_string() if hasattr(df.value, "to_string") else str(df.value))
        parts += [str(c) for c in getattr(df.value, "columns", [])]
    for kind in ("button", "radio", "selectbox", "multiselect", "number_input", "slider", "select_slider",
                 "toggle", "checkbox", "text_input", "expander", "metric"):
        for w in getattr(at, kind, []):
            parts.append(str(getattr(w, "label", "")))
            parts += [str(o) for o in getattr(w, "options", [])]
    return "\n".join(parts)


def test_the_check_can_fail():
    assert len(ENGLISH) > 150 and len(ENGLISH_WORDS) > 500
    assert "not an image Pillow can read" in english_in(str(messages.Message("data.not_an_image")))
    assert english_in(messages.Message("data.not_an_image").render("es")) == []
    # short English tokens the fragment net lets through, and raw tokens
    assert english_in("Estado: failed") == ["failed"] and english_in("Época 3 · epochs") == ["epochs"]
    assert english_in("Dispositivo: cpu") == ["cpu"] and english_in("medido (rapl)") == ["rapl"]
    assert english_in("pesos: auto") == ["auto"] and english_in("Dispositivo: CPU") == []
    assert english_in("clase glass", data=("glass",)) == []  # the user's own class names are theirs


def _files(tmp_path, classes: dict) -> list:
    src = make_shapes_dataset(tmp_path / "shapes", per_class=1, size=32, classes=tuple(classes))
    files = []
    for cls, n in classes.items():
        png = next((src / cls).glob("*.png")).read_bytes()
        files += [(f"shapes/{cls}/{i}.png", png, "image/png") for i in range(n)]
    return files


def test_data_page_in_spanish(env, tmp_path):
    files = _files(tmp_path, {"circle": 8, "square": 1, "Circle": 2})
    files += [("shapes/.DS_Store", b"junk", "application/octet-stream"),
              ("shapes/circle/notes.txt.png", b"this is not a picture", "image/png"),
              ("shapes/square/empty.png", b"", "image/png"),
              ("shapes/readme.png", files[0][1], "image/png")]
    at = app("app_pages/data.py", lang="es")
    at.file_uploader(key="upload_dir").set_value(files).run()
    assert not at.exception, at.exception
    page = shown(at)
    assert messages.ES["data.not_an_image"] in page and messages.ES["data.system_file"] in page
    assert "muy pocas imágenes en" in page and "solo difieren en mayúsculas" in page
    assert english_in(page, data=("circle", "square")) == []

    one = _files(tmp_path / "one", {"circle": 3}) + [("one/circle/bad.png", b"x", "image/png")]
    at.file_uploader(key="upload_dir").set_value(one).run()
    page = shown(at)
    assert at.error and re.search("carpetas? de clase sin ninguna imagen utilizable", page), [e.value for e in at.error]
    assert "Motivo" in page and english_in(page, data=("one", "circle", "square")) == []  # the skipped files, next to the error

    at.file_uploader(key="upload_zip").set_value(("broken.zip", b"PK\x03\x04 not really", "application/zip")).run()
    page = shown(at)
    assert any("broken.zip" in e.value for e in at.error) and english_in(page, data=("one", "circle", "square")) == []


def test_model_page_in_spanish(env, tmp_path):
    """Widgets are set in English and the last run is in Spanish: AppTest formats a widget's value
    with its format_func in the test's own process, which has no language of its own."""
    import numpy as np
    from safetensors.numpy import save

    at = app("app_pages/model.py")
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_strategy").set_value("feature_extraction").run()
    at.radio(key="m_weights").set_value("file").run()
    if any(r.key == "m_weights_pick" for r in at.radio):
        at.radio(key="m_weights_pick").set_value("upload").run()
    blob = save({"w": np.zeros(3, dtype=np.float32)})
    at.file_uploader(key="m_weights_file").set_value(("other.safetensors", blob, "application/octet-stream")).run()
    at.session_state["lang"] = "es"
    at.run()
    page = shown(at)
    assert messages.ES["catalog.why_resnet18"] in page  # the gallery's "why" column
    assert "Desactivado en extracción de características" in page and "no contiene pesos para" in page
    assert english_in(page) == []

    at = app("app_pages/model.py")
    at.multiselect(key="m_prep_names").set_value(["resnet18"]).run()
    at.session_state["lang"] = "es"
    at.button(key="m_prep_go").click().run()  # offline: the weights cannot be fetched
    page = shown(at)
    assert not at.exception and at.error and english_in(page) == [], [e.value for e in at.error]


def _train(at: AppTest, cfg, until: str) -> str:
    at.session_state["config"] = cfg
    at.switch_page("app_pages/train.py").run()
    at.button(key="train_start").click().run()
    deadline = time.time() + 180
    while until not in shown(at) and time.time() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    return shown(at)


def test_train_and_result_pages_in_spanish(env, tmp_path):
    at = app("app_pages/data.py", lang="es")
    at.button(key="use_sample").click().run()
    # a run that fails with a sentence from tl_core: a weights file that is not there
    page = _train(at, TINY.replace(pretrained=str(tmp_path / "missing.safetensors"), strategy="partial"),
                  until="no existe")
    assert "El archivo de pesos" in page and english_in(page, data=SAMPLE_CLASSES) == []
    # a run that finishes, with notes: augmentation unused, the feature engine, the weights' source
    page = _train(at, TINY.replace(strategy="feature_extraction", augment="light", epochs=1),
                  until="Terminado")
    assert "no se usa con extracción de características" in page and "Se parte de pesos aleatorios" in page
    assert english_in(page, data=SAMPLE_CLASSES) == []
    for name in ("evaluate", "predict", "export", "compare"):  # a fresh session each: they pick the finished run
        page = app(f"app_pages/{name}.py", lang="es")
        assert english_in(shown(page), data=SAMPLE_CLASSES) == [], name
    # the feature map and the wrong-folder search, drawn in Spanish (the map was once cached in English)
    page = app("app_pages/evaluate.py")
    page.toggle(key="ev_map_show").set_value(True).run()
    deadline = time.time() + 600
    while not page.get("iframe") and time.time() < deadline:  # the map is a task: poll as the browser would
        time.sleep(0.3)
        page.run()
    page.session_state["lang"] = "es"
    page.run()
    maps = [str(e.proto) for e in page.get("iframe")]
    assert maps and "PCA (al instante)" in maps[0] and "PCA (instant)" not in maps[0]


def test_teacher_page_in_spanish(env, tmp_path, monkeypatch):
    """The class board as a teacher sees it: token prompt, refusal, students with and without runs."""
    import streamlit as st

    from tl_core.jobs import classboard
    from tl_core.jobs.settings import new_session_token

    token = "a-teacher-token-for-the-spanish-walk"
    for key, value in (("TL_MODE", "hosted"), ("TL_TEACHER_TOKEN", token), ("TL_RUNS", str(tmp_path / "runs"))):
        monkeypatch.setenv(key, value)
    for name in ("Ana", "Ben"):  # two students joined; neither has trained or compared yet
        folder = tmp_path / "runs" / new_session_token()
        folder.mkdir(parents=True)
        classboard.set_class(folder, "bio-7b", name)
    st.cache_resource.clear()  # hosted settings for this test only
    try:
        at = app("app_pages/teacher.py", lang="es")
        assert english_in(shown(at)) == []
        at.text_input(key="tb_token").set_value("wrong").run()
        assert at.error and english_in(shown(at)) == []
        at.text_input(key="tb_token").set_value(token).run()
        page = shown(at)
        assert "2 estudiantes en bio-7b" in page and "aún sin entrenamientos" in page, page
        assert "Ningún estudiante ha comparado" in page and english_in(page, data=("Ana", "Ben")) == []
    finally:
        st.cache_resource.clear()

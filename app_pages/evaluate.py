"""Evaluate: how good is a finished run, where does it go wrong, and how do runs compare."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
import streamlit.components.v1  # noqa: F401  (st.components.v1.html: the feature map's hover images)

from tl_core.jobs import page_work, runs
from tl_core.jobs.task_child import Call
from tl_core.trust.metrics import evaluation
from ui import charts, tasks, trust
from ui.text import say, t
from ui.widgets import energy_line, finished_runs, image_grid, pick_run, run_label, user_errors

MAX_MISTAKES = 24


@st.cache_resource(max_entries=8, show_spinner=False)
def _evaluation(run_dir: str, mtime: float):
    # mtime in the key: a run folder rewritten in place is evaluated again
    return evaluation(run_dir)


def _mtime(run_dir) -> float:
    p = Path(run_dir) / "run.json"
    return p.stat().st_mtime if p.exists() else 0.0


def metrics(info, ev) -> None:
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.metric(t("ev_accuracy"), f"{ev.accuracy:.1%}")
    c2.metric(t("ev_val_loss"), f"{info.metrics.get('val/loss', float('nan')):.3f}")
    cfg = info.config
    with c3:
        # a solved head has no epochs (the config keeps an unused count): say so, not "Epochs: 10"
        st.markdown(f"**{cfg.backbone}** · {t('strat_' + cfg.strategy)} · " +
                    (t("ev_head_solved") if cfg.solves_head else f"{t('ev_epochs')}: {cfg.epochs}"))
        line = energy_line(info.dir)
        if line:
            st.caption(line)
        if cfg.pretrained.startswith("run:"):
            # lineage: this run started from another run's weights
            st.caption(t("ev_lineage_run", parent=cfg.pretrained[4:].rstrip("/").rsplit("/", 1)[-1]))
        else:
            source = t(f"m_weights_{cfg.pretrained}") if cfg.pretrained in ("auto", "package", "hub", "none") else cfg.pretrained
            st.caption(t("ev_lineage", source=source))


def confusion(ev) -> None:
    normalise = st.toggle(t("ev_normalise"), key="ev_norm", help=t("ev_normalise_help"))
    labels = {"pred": t("ev_pred"), "true": t("ev_true")}
    st.plotly_chart(charts.confusion(ev.confusion, ev.classes, normalise, labels), key="confusion")


def per_class(ev) -> None:
    df = pd.DataFrame(ev.per_class).rename(columns={
        "class": t("class"), "precision": t("ev_precision"), "recall": t("ev_recall"), "f1": "F1",
        "support": t("ev_support")})
    st.dataframe(df, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in (t("ev_precision"), t("ev_recall"), "F1")})
    st.caption(t("ev_per_class_help"))


def mistakes(ev) -> None:
    wrong = sorted(ev.misclassified, key=lambda m: -m["confidence"])[:MAX_MISTAKES]
    st.subheader(t("ev_mistakes", n=len(ev.misclassified)))
    if not wrong:
        st.success(t("ev_no_mistakes"))
        return
    from tl_core.data.decode import load_rgb

    images = [load_rgb(m["path"], short_side=128) for m in wrong]
    caps = [t("ev_mistake_cap", true=m["true"], pred=m["pred"], conf=m["confidence"]) for m in wrong]
    image_grid(images, caps, columns=6, width=120)


def confidence(info) -> None:
    """Reliability diagram and ECE before/after temperature scaling; the "not sure" threshold."""
    from tl_core.trust import calibration

    st.subheader(t("ev_cal_title"))
    cal = calibration.load(info.dir)
    c1, c2, c3 = st.columns(3)
    c1.metric(t("ev_ece_before"), f"{cal.ece_before:.1%}")
    c2.metric(t("ev_ece_after"), f"{cal.ece_after:.1%}", delta=f"{cal.ece_after - cal.ece_before:+.1%}",
              delta_color="inverse")
    c3.metric(t("ev_temperature"), f"{cal.temperature:.2f}")
    labels = {k: t(f"ev_rel_{k}") for k in ("perfect", "before", "after", "title", "x", "y")}
    st.plotly_chart(trust.reliability(cal.reliability_before, cal.reliability_after, labels), key="reliability")
    rule = (t("ev_threshold_rule", keep=cal.keep_correct, caught=cal.mistakes_caught)
            if cal.keep_correct == cal.keep_correct else t("ev_threshold_manual"))
    measured = t("ev_ece_cv", in_sample=cal.ece_after_in_sample) if cal.ece_after_cv else t("ev_ece_in_sample")
    st.caption(t("ev_cal_explain", n=cal.n_val, t=cal.temperature, threshold=cal.threshold) + " " + rule + " "
               + measured)


@st.cache_data(max_entries=8, show_spinner=False)
def _label_issues(run_dir: str, mtime: float) -> dict:
    from tl_core.trust.label_issues import label_issues

    return label_issues(run_dir)


def _saved_or_task(info, saved_file: str, kind: str, read, compute):
    """The run's saved result (read back at once), else the `kind` task's result once its button
    ("ev_{kind}_button", key "ev_{kind}") was clicked and the task has finished; None until then."""
    run_dir = str(info.dir)
    if (Path(run_dir) / saved_file).exists():
        return read(run_dir, _mtime(info.dir))
    clicked = st.button(t(f"ev_{kind}_button"), key=f"ev_{kind}")
    return tasks.follow(kind, run_dir, Call(compute, (run_dir,)), t(f"ev_{kind}_working"),
                        start=clicked)


def wrong_folder(info) -> None:
    """Images whose folder disagrees with confident out-of-sample predictions."""
    from tl_core.trust.label_issues import LABEL_ISSUES_FILE

    st.subheader(t("ev_issues_title"))
    st.caption(t("ev_issues_explain"))
    with user_errors():
        # out-of-fold probes on every image's features: a task in the server's job slots
        result = _saved_or_task(info, LABEL_ISSUES_FILE, "issues", _label_issues, page_work.label_issues)
        if result is None:
            return
        issues = result["issues"]
        if not issues:
            st.success(t("ev_issues_none", n=result["n_images"]))
            return
        st.warning(t("ev_issues_found", k=len(issues), n=result["n_images"], acc=result["oof_acc"]))
        shown = issues[:MAX_MISTAKES]
        from tl_core.data.decode import load_rgb

        caps = [t("ev_issue_cap", given=i["given"], suggested=i["suggested"], p=i["p_suggested"], split=t(i["split"]),
                  name=Path(i["path"]).name) for i in shown]
        image_grid([load_rgb(i["path"], short_side=128) for i in shown], caps, columns=6, width=120)


@st.cache_resource(max_entries=2, show_spinner=False)
def _predictor(run_dir: str, mtime: float):
    from tl_core.serving.predict import Predictor  # deferred: torch, only for "try it"

    return Predictor(Path(run_dir))


def out_of_domain(info) -> None:
    """"None of these": the validation images' distances, the threshold, and photos from outside."""
    from tl_core.trust import ood

    st.subheader(t("ev_ood_title"))
    with st.spinner(t("ev_working")):
        detector = _predictor(str(info.dir), _mtime(info.dir)).out_of_domain()
    if detector is None:
        st.info(t("ev_ood_none"))
        return
    detector = ood.load(info.dir)  # the saved threshold (a reused predictor holds the one it loaded)
    val = detector.val_scores
    rule = t("ev_ood_rule", keep=detector.keep, n_val=detector.n_val) if detector.keep else t("ev_ood_manual")
    st.caption(t("ev_ood_explain", k=detector.k, n_bank=detector.n_bank, threshold=detector.threshold) + " " + rule)
    key = f"ev_ood_t::{info.dir}"
    if key not in st.session_state:
        st.session_state[key] = float(detector.threshold)
    threshold = st.slider(t("ev_ood_slider"), 0.0, 1.5, step=0.005, key=key, format="%.3f")
    if abs(threshold - detector.threshold) > 1e-9 and st.button(t("ev_ood_save"), key="ev_ood_save"):
        ood.set_threshold(info.dir, threshold)
        _predictor.clear()
        st.success(t("ev_ood_saved"))
    files = st.file_uploader(t("ev_ood_try"), accept_multiple_files=True, key="ev_ood_files",
                             type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"], help=t("ev_ood_try_help"))
    outside = _outside_scores(info, files or [])
    labels = {k: t(f"ev_ood_{k}") for k in ("in", "out", "x", "y", "line")}
    st.plotly_chart(trust.ood_histogram(val, outside, threshold, labels), key="ood_hist")
    if outside:
        kept = sum(v <= threshold for v in val) / max(1, len(val))
        st.markdown(t("ev_ood_try_result", flagged=sum(v > threshold for v in outside), n=len(outside),
                      threshold=threshold, kept=kept))


def _outside_scores(info, files) -> list[float]:
    predictor = _predictor(str(info.dir), _mtime(info.dir))
    scores = []
    for f in files:
        try:
            image = predictor.prepare(f.getvalue())
        except Exception:  # any decode failure is the user's file, not our bug
            st.error(t("pr_bad_image", name=f.name))
            continue
        scores.append(predictor.answers([image])[0]["ood_score"])
    return scores


@st.cache_data(max_entries=8, show_spinner=False)
def _curve(run_dir: str, mtime: float) -> dict:
    from tl_core.trust.curve import run_curve  # deferred: torch

    return run_curve(run_dir)


def data_curve(info) -> None:
    """Would more images help? Accuracy on 20-100% of the training images, and its reading."""
    from tl_core.trust.curve import CURVE_FILE, FRACTION_SEEDS

    st.subheader(t("ev_curve_title"))
    st.caption(t("ev_curve_explain", seeds=FRACTION_SEEDS))
    with user_errors():
        # a head solved on 20-100% of the training features, several draws: a task in the job slots
        result = _saved_or_task(info, CURVE_FILE, "curve", _curve, page_work.data_curve)
        if result is None:
            return
        if result["n"]:
            labels = {k: t(f"ev_curve_{k}") for k in ("x", "y", "overall")}
            st.plotly_chart(trust.data_curve(result["n"], result["overall"], result["per_class"], labels),
                            key="data_curve")
            st.caption(t("ev_curve_seconds", s=result["seconds"]))
        st.info(say(result["reading"]))


def _map_html(points: dict, title: str) -> str:
    # drawn on the page from the task's points: in the reader's language, whichever language asked
    names = [f"{Path(p).name} ({t(s)})" for p, s in zip(points["paths"], points["splits"])]
    fig = trust.feature_map(points["xy"], points["labels"], points["classes"], names, points["thumbs"], title)
    return trust.hover_image_html(fig)


def feature_map(info) -> None:
    st.subheader(t("ev_map_title"))
    st.caption(t("ev_map_explain"))
    method = st.radio(t("ev_map_method"), ["pca", "tsne"], key="ev_map_method", horizontal=True,
                      format_func=lambda m: t(f"ev_map_{m}"))
    if st.toggle(t("ev_map_show"), key="ev_map_show"):
        run_dir = str(info.dir)
        key = f"{run_dir}|{method}|{_mtime(info.dir)}"
        with user_errors():
            points = tasks.follow("map", key, Call(page_work.map_points, (run_dir, method)),
                                  t("ev_map_working"), auto=True)
            if points is not None:
                title = t(f"ev_map_{method}")
                drawn = st.session_state.get("ev_map_html")
                if drawn is None or drawn[:2] != (key, title):  # a thousand thumbnails: drawn once, not per rerun
                    drawn = st.session_state.ev_map_html = (key, title, _map_html(points, title))
                st.components.v1.html(drawn[2], height=540)


def compare() -> None:
    all_runs = finished_runs()
    if len(all_runs) < 2:
        st.info(t("ev_compare_need"))
        return
    picked = st.multiselect(t("ev_compare_pick"), range(len(all_runs)), default=[0, 1], key="ev_compare",
                            format_func=lambda i: run_label(all_runs[i]))
    chosen = [all_runs[i] for i in picked]
    rows = {r.name: charts.epoch_rows(runs.read_events(r.dir)) for r in chosen}
    labels = {"epoch": t("chart_epoch")}
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.compare(rows, "val/acc", t("ev_compare_acc"), labels), key="cmp_acc")
    c2.plotly_chart(charts.compare(rows, "val/loss", t("ev_compare_loss"), labels), key="cmp_loss")
    table = [{t("ev_run"): r.name, t("ev_backbone"): r.config.backbone,
              t("ev_strategy"): t("strat_" + r.config.strategy), t("ev_accuracy"): r.metrics.get("val/acc"),
              t("ev_val_loss"): r.metrics.get("val/loss"), t("ev_epochs"): "" if r.config.solves_head else r.config.epochs} for r in chosen]
    st.dataframe(pd.DataFrame(table), hide_index=True)


st.title(t("eval_title"))
one, many = st.tabs([t("ev_tab_one"), t("ev_tab_compare")])
with one:
    info = pick_run("ev_pick", key="ev_run")
    if info is not None:
        with st.spinner(t("ev_working")), user_errors():
            ev = _evaluation(str(info.dir), _mtime(info.dir))
            metrics(info, ev)
            left, right = st.columns(2)
            with left:
                confusion(ev)
            with right:
                per_class(ev)
            if not info.images_removed:  # the pictures are gone; pick_run said so
                mistakes(ev)
            st.divider()
            confidence(info)
            st.divider()
            out_of_domain(info)  # the bank is in the run folder: it works after the images are gone
            if not info.images_removed:
                st.divider()
                data_curve(info)
                st.divider()
                wrong_folder(info)
                st.divider()
                feature_map(info)
with many:
    compare()

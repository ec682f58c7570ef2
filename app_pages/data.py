"""Data: upload a folder or zip of class sub-folders (or take the sample) -> a checked Dataset."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from tl_core.base.messages import Message
from tl_core.data import audit
from tl_core.data.dataset import ingest_uploads, load_dataset
from tl_core.data.decode import load_rgb
from tl_core.jobs import page_work, sessions
from tl_core.jobs.task_child import Call
from ui import charts, state, tasks
from ui.buckets import make_classes_tab, offer_open_loaded
from ui.text import say, t
from ui.widgets import image_grid, user_errors

THUMBS_PER_CLASS = 12


def _signature(files) -> str:
    # name + size identifies an upload well enough to not re-ingest it on every rerun
    h = hashlib.sha1()
    for f in files:
        h.update(f"{f.name}\0{f.size}\n".encode())
    return h.hexdigest()[:12]


def _ingest(files) -> None:
    sig = _signature(files)
    if st.session_state.get("upload_sig") == sig:
        return
    cfg = state.config()
    # a fresh folder per upload: a running job may still be reading the previous one
    workdir = state.workspace() / "uploads" / sig
    with st.spinner(t("data_checking", n=len(files))), user_errors():
        pairs = [(f.name, f.getvalue()) for f in files]
        limits = state.server_settings().ingest_limits()
        state.set_dataset(ingest_uploads(pairs, workdir, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                              limits=limits))
        st.session_state.upload_sig = sig
    sessions.prune_uploads(state.server_settings(), state.session_id(), keep=2)  # old uploads, never one in use


def _use_sample(folder) -> None:
    cfg = state.config()
    with st.spinner(t("data_checking_sample")), user_errors():
        state.set_dataset(load_dataset(folder, val_fraction=cfg.val_fraction, seed=cfg.seed))
        st.session_state.upload_sig = f"sample:{folder.name}"


def _use_local(path: str) -> None:
    """Read a folder of the machine running the app in place (local mode only): no copy, no writes."""
    folder = Path(path.strip()).expanduser()
    if not folder.is_dir():
        st.error(t("data_local_not_dir", path=path.strip()))
        return
    cfg = state.config()
    with st.spinner(t("data_checking_local", path=folder)), user_errors():
        state.set_dataset(load_dataset(folder, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                            limits=state.server_settings().ingest_limits()))
        st.session_state.upload_sig = f"local:{folder}"


def _local_tab() -> None:
    path = st.text_input(t("data_local_label"), help=t("data_local_help"), key="local_path",
                         placeholder="/home/me/photos")
    if st.button(t("data_local_button"), type="primary", key="local_use") and path.strip():
        _use_local(path)


# The tabs' text keys, in order; the first choice on an empty page opens one of them by its key.
SOURCE_TABS = ("bk_tab", "data_tab_folder", "data_tab_zip", "data_tab_local", "data_tab_sample")


def _open_tab(key: str) -> None:
    # a callback: it runs before the page, so the tabs below are drawn with this one open
    st.session_state.data_source_tab = t(key)


def first_choice() -> None:
    """What a newcomer sees first on an empty page: three ways in, one click each."""
    with st.container(border=True):
        st.subheader(t("data_choice_title"))
        c1, c2, c3 = st.columns(3)
        with c1:
            if st.button(t("data_choice_sample"), type="primary", key="choice_sample", width="stretch"):
                _use_sample(state.SAMPLE_DIR)
                st.rerun()  # the page again, with the dataset: the choice gives way to the overview
            st.caption(t("data_choice_sample_help"))
        for col, key, tab in ((c2, "choice_make", "bk_tab"), (c3, "choice_upload", "data_tab_folder")):
            with col:
                st.button(t(f"data_{key}"), key=key, width="stretch", on_click=_open_tab, args=(tab,))
                st.caption(t(f"data_{key}_help"))


def sources() -> None:
    local = state.offers_server_paths()  # a path on the server is never offered to strangers
    keys = [k for k in SOURCE_TABS if local or k != "data_tab_local"]
    labels = [t(k) for k in keys]
    if st.session_state.get("data_source_tab") not in labels:  # e.g. after a language switch
        st.session_state.pop("data_source_tab", None)
    tabs = dict(zip(keys, st.tabs(labels, key="data_source_tab", on_change="rerun")))
    with tabs["bk_tab"]:
        make_classes_tab()
    if local:
        with tabs["data_tab_local"]:
            _local_tab()
    with tabs["data_tab_folder"]:
        st.caption(t("data_big_folder", tab=t("data_tab_local")) if local else t("data_big_folder_hosted"))
        files = st.file_uploader(t("data_folder_label"), accept_multiple_files="directory",
                                 help=t("data_folder_help"), key="upload_dir")
        if files:
            _ingest(files)
    with tabs["data_tab_zip"]:
        z = st.file_uploader(t("data_zip_label"), type=["zip"], help=t("data_zip_help"), key="upload_zip")
        if z is not None:
            _ingest([z])
    with tabs["data_tab_sample"]:
        st.write(t("data_sample_text"))
        if st.button(t("data_sample_button"), type="primary", key="use_sample"):
            _use_sample(state.SAMPLE_DIR)
        st.caption(t("data_sample_licence"))
        st.write(t("data_shapes_text"))
        if st.button(t("data_shapes_button"), key="use_shapes"):
            _use_sample(state.SHAPES_DIR)


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumb(path: str):
    return load_rgb(path, short_side=96)


def overview(ds) -> None:
    counts = ds.counts()
    n_train, n_val = len(ds.train), len(ds.val)
    c1, c2, c3 = st.columns(3)
    c1.metric(t("data_classes"), len(ds.classes))
    c2.metric(t("data_train_images"), n_train)
    c3.metric(t("data_val_images"), n_val)
    st.caption(t("data_split_given") if ds.split_given else
               t("data_split_made", pct=round(100 * n_val / max(1, n_train + n_val))))
    labels = {"train": t("train"), "val": t("val")}
    st.plotly_chart(charts.class_counts(counts, t("data_counts_title"), labels), key="counts_chart")
    table = pd.DataFrame([{t("class"): c, t("train"): v["train"], t("val"): v["val"]} for c, v in counts.items()])
    st.dataframe(table, hide_index=True)


def report(ds) -> None:
    for w in ds.report.warnings:
        st.warning(say(w))
    if ds.report.duplicates:
        with st.expander(t("data_duplicates", n=len(ds.report.duplicates))):
            for group in ds.report.duplicates:
                st.write(" · ".join(group))
    skipped = ds.report.skipped
    with st.expander(t("data_skipped", n=len(skipped)), expanded=bool(skipped) and len(skipped) <= 20):
        if skipped:
            st.dataframe(pd.DataFrame([{t("file"): s.name, t("reason"): say(s.reason)} for s in skipped]),
                         hide_index=True)
        else:
            st.write(t("data_none_skipped"))


MAX_PAIRS = 12


def _audit_key(ds) -> str:
    h = hashlib.sha1()
    for split, items in (("t", ds.train), ("v", ds.val)):
        for it in items:
            h.update(f"{split}{it.path}\0{it.sha1}\n".encode())
    return h.hexdigest()[:16]


def _features_audit(ds, key: str):
    """The audit with the chosen backbone's features, as a task in the server's job slots: None
    while it waits or runs (its place in line or progress shows here) or when it failed."""
    cfg = state.config()
    work = Call(page_work.audit_with_features, (cfg.to_dict(), state.dataset_file()))  # in a child process: ui.tasks
    found = tasks.follow("audit_features", key, work, t("au_features_working", backbone=cfg.backbone), auto=True)
    return audit.AuditReport.from_dict(found) if found is not None else None


def _run_audit(ds, with_features: bool):
    """The audit report, or None while the features' task waits or runs."""
    cfg = state.config()  # the features depend on the backbone, its weights and the image size
    key = f"{_audit_key(ds)}:{cfg.backbone}:{cfg.pretrained}:{cfg.image_size}" if with_features else _audit_key(ds)
    if st.session_state.get("audit_key") == key:
        return st.session_state.audit_result
    report = _features_audit(ds, key) if with_features else None
    if with_features and report is None and not tasks.ended_without_result("audit_features", key):
        return None
    found = report if report is not None else audit.audit(ds, None)  # the hash alone when features failed
    st.session_state.audit_result = found
    st.session_state.audit_key = key if report is not None or not with_features else None
    return found


def _fix(ds, action: str, path: str, other: str) -> None:
    name = Path(other).name
    new = (audit.move_to_train(ds, path) if action == "move" else
           audit.drop(ds, path, Message("audit.dropped", {"other": name})))  # rendered in the reader's language
    state.set_dataset(new)
    st.session_state.audit_fixed = t("au_fixed_move" if action == "move" else "au_fixed_drop", name=Path(path).name)


def _method(method: str) -> str:
    # audit's tokens (sha1 | phash | phash+features | features) in words
    return " + ".join(t(f"au_method_{m}") for m in method.split("+"))


def _pair(ds, i: int, p) -> None:
    with st.container(border=True):
        st.markdown(t(f"au_where_{p.where}") + " · " +
                    t("au_similarity", kind=t(f"au_kind_{p.kind}"), sim=p.similarity,
                      method=_method(p.method)))
        c1, c2, c3 = st.columns([1, 1, 1.3])
        for col, path, split, cls in ((c1, p.a, p.a_split, p.a_class), (c2, p.b, p.b_split, p.b_class)):
            col.image(_thumb(path), caption=f"{Path(path).name} · {t(split)} · {cls}", width=150)
        with c3:
            if p.where == "train-val":
                val_copy, train_copy = (p.b, p.a) if p.b_split == "val" else (p.a, p.b)
                st.button(t("au_move"), key=f"au_move_{i}", on_click=_fix, args=(ds, "move", val_copy, train_copy))
                st.button(t("au_drop_val"), key=f"au_drop_{i}", on_click=_fix, args=(ds, "drop", val_copy, train_copy))
            else:
                for j, (path, other) in enumerate(((p.a, p.b), (p.b, p.a))):
                    st.button(t("au_drop", name=Path(path).name), key=f"au_drop_{i}_{j}", on_click=_fix,
                              args=(ds, "drop", path, other))


def audit_section(ds) -> None:
    """Duplicates, leakage and conflicting labels as image pairs with one-click split fixes."""
    st.subheader(t("au_title"))
    st.caption(t("au_explain"))
    with_features = st.toggle(t("au_with_features", backbone=state.config().backbone), key="au_features",
                              help=t("au_with_features_help"))
    with st.spinner(t("au_working")), user_errors():
        report = _run_audit(ds, with_features)
        if report is None:
            return  # the features' task shows where it stands; the page reruns when it ends
        if st.session_state.get("audit_fixed"):
            st.success(st.session_state.pop("audit_fixed"))
        groups = report.by_where()
        c1, c2, c3 = st.columns(3)
        c1.metric(t("au_leaks"), len(groups.get("train-val", [])))
        c2.metric(t("au_conflicts"), len(groups.get("classes", [])))
        c3.metric(t("au_within"), len(groups.get("train", [])) + len(groups.get("val", [])))
        st.caption(t("au_weights_on" if report.class_weights_on else "au_weights_off",
                     ratio=report.imbalance, limit=audit.IMBALANCE_RATIO))
        if not report.pairs:
            st.success(t("au_none"))
            return
        order = {"train-val": 0, "classes": 1, "train": 2, "val": 3}
        pairs = sorted(report.pairs, key=lambda p: (order[p.where], -p.similarity))
        for i, p in enumerate(pairs[:MAX_PAIRS]):
            _pair(ds, i, p)
        if len(pairs) > MAX_PAIRS:
            st.caption(t("au_more", n=len(pairs) - MAX_PAIRS))


def thumbnails(ds) -> None:
    st.subheader(t("data_examples"))
    tabs = st.tabs(ds.classes)
    for label, tab in enumerate(tabs):
        items = [it for it in ds.train + ds.val if it.label == label][:THUMBS_PER_CLASS]
        with tab:
            image_grid([_thumb(it.path) for it in items], [""] * len(items), columns=THUMBS_PER_CLASS // 2, width=96)


st.title(t("data_title"))
st.write(t("data_intro"))
choice = st.empty()  # the first choice, until a dataset is loaded (by it or by any tab below)
if state.dataset() is None:
    with choice.container():
        first_choice()
sources()
ds = state.dataset()
if ds is not None:
    choice.empty()
if ds is None:
    st.info(t("data_none_yet"))
else:
    st.success(t("data_loaded", k=len(ds.classes), n=len(ds.train) + len(ds.val)))
    offer_open_loaded(ds)
    overview(ds)
    report(ds)
    audit_section(ds)
    thumbnails(ds)
    st.page_link("app_pages/model.py", label=t("go_model"), icon=":material/neurology:")

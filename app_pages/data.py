"""Data: upload a folder or zip of class sub-folders (or take the sample) -> a checked Dataset."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from tl_core import data, sessions
from ui import charts, state
from ui.text import t
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
        state.set_dataset(data.ingest_uploads(pairs, workdir, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                              limits=limits))
        st.session_state.upload_sig = sig
    sessions.prune_uploads(state.server_settings(), state.session_id(), keep=2)  # old uploads, never one in use


def _use_sample(folder) -> None:
    cfg = state.config()
    with st.spinner(t("data_checking_sample")), user_errors():
        state.set_dataset(data.load_dataset(folder, val_fraction=cfg.val_fraction, seed=cfg.seed))
        st.session_state.upload_sig = f"sample:{folder.name}"


def _use_local(path: str) -> None:
    """Read a folder of the machine running the app in place (local mode only): no copy, no writes."""
    folder = Path(path.strip()).expanduser()
    if not folder.is_dir():
        st.error(t("data_local_not_dir", path=path.strip()))
        return
    cfg = state.config()
    with st.spinner(t("data_checking_local", path=folder)), user_errors():
        state.set_dataset(data.load_dataset(folder, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                            limits=state.server_settings().ingest_limits()))
        st.session_state.upload_sig = f"local:{folder}"


def _local_tab() -> None:
    path = st.text_input(t("data_local_label"), help=t("data_local_help"), key="local_path",
                         placeholder="/home/me/photos")
    if st.button(t("data_local_button"), type="primary", key="local_use") and path.strip():
        _use_local(path)


def sources() -> None:
    hosted = state.server_settings().hosted  # a path on the server is never offered to strangers
    names = [t("data_tab_folder"), t("data_tab_zip")] + ([] if hosted else [t("data_tab_local")])
    folder_tab, zip_tab, *local, sample_tab = st.tabs(names + [t("data_tab_sample")])
    if local:
        with local[0]:
            _local_tab()
    with folder_tab:
        st.caption(t("data_big_folder_hosted") if hosted else t("data_big_folder", tab=t("data_tab_local")))
        files = st.file_uploader(t("data_folder_label"), accept_multiple_files="directory",
                                 help=t("data_folder_help"), key="upload_dir")
        if files:
            _ingest(files)
    with zip_tab:
        z = st.file_uploader(t("data_zip_label"), type=["zip"], help=t("data_zip_help"), key="upload_zip")
        if z is not None:
            _ingest([z])
    with sample_tab:
        st.write(t("data_sample_text"))
        if st.button(t("data_sample_button"), type="primary", key="use_sample"):
            _use_sample(state.SAMPLE_DIR)
        st.caption(t("data_sample_licence"))
        st.write(t("data_shapes_text"))
        if st.button(t("data_shapes_button"), key="use_shapes"):
            _use_sample(state.SHAPES_DIR)


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumb(path: str):
    return data.load_rgb(path, short_side=96)


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
        st.warning(w)
    if ds.report.duplicates:
        with st.expander(t("data_duplicates", n=len(ds.report.duplicates))):
            for group in ds.report.duplicates:
                st.write(" · ".join(group))
    skipped = ds.report.skipped
    with st.expander(t("data_skipped", n=len(skipped)), expanded=bool(skipped) and len(skipped) <= 20):
        if skipped:
            st.dataframe(pd.DataFrame([{t("file"): s.name, t("reason"): s.reason} for s in skipped]),
                         hide_index=True)
        else:
            st.write(t("data_none_skipped"))


def thumbnails(ds) -> None:
    st.subheader(t("data_examples"))
    tabs = st.tabs(ds.classes)
    for label, tab in enumerate(tabs):
        items = [it for it in ds.train + ds.val if it.label == label][:THUMBS_PER_CLASS]
        with tab:
            image_grid([_thumb(it.path) for it in items], [""] * len(items), columns=THUMBS_PER_CLASS // 2, width=96)


st.title(t("data_title"))
st.write(t("data_intro"))
sources()
ds = state.dataset()
if ds is None:
    st.info(t("data_none_yet"))
else:
    st.success(t("data_loaded", k=len(ds.classes), n=len(ds.train) + len(ds.val)))
    overview(ds)
    report(ds)
    thumbnails(ds)
    st.page_link("app_pages/model.py", label=t("go_model"), icon=":material/neurology:")

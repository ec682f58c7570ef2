"""Export: take the trained model away: one zip per format that runs as unpacked, checked on
every validation image; the backbone features for classical methods; the settings."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from tl_core.jobs import page_work
from tl_core.jobs.task_child import Call
from tl_core.serving import export
from ui import state, tasks
from ui.text import t
from ui.widgets import pick_run, user_errors


def _out_dir(run_dir: Path, fmt: str) -> Path:
    # exports go in the session workspace: the run folder stays as training left it
    return state.workspace() / "exports" / run_dir.name / fmt


def model_download(run_dir: Path, fmt: str) -> None:
    """Make the zip on request (the check runs the export on every validation image), then offer it."""
    st.markdown(f"**{t(f'ex_{fmt}_title')}**")
    st.caption(t(f"ex_{fmt}_help"))
    key = f"ex_{fmt}::{run_dir}"
    if key not in st.session_state:
        clicked = st.button(t(f"ex_{fmt}_make"), key=f"ex_{fmt}_make")
        out_dir = _out_dir(run_dir, fmt)
        with user_errors():
            # the export and its check on every validation image: a task in the server's job slots
            made = tasks.follow(f"export_{fmt}", key, Call(page_work.model_zip, (str(run_dir), fmt, str(out_dir))),
                                t("ex_working_fmt", fmt=t(f"ex_{fmt}_title")), start=clicked)
            if made is not None:
                st.session_state[key] = made
                st.rerun()  # the button above gives way to the download
    if key in st.session_state:
        data, name, result = st.session_state[key]
        if result.images == "validation":
            st.success(t("ex_parity", n=result.n_images, agree=result.agreement, diff=result.max_abs_diff),
                       icon=":material/check_circle:")
        else:  # never call noise images validation images
            st.warning(t("ex_parity_noise", n=result.n_images, diff=result.max_abs_diff))
        st.download_button(t(f"ex_{fmt}_button"), data, file_name=name, mime="application/zip", key=f"dl_{fmt}",
                           icon=":material/download:")
        st.caption(t("ex_unzip", name=name))


def embeddings_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_emb_title')}**")
    st.caption(t("ex_emb_help"))
    key = f"ex_emb::{run_dir}"
    if key not in st.session_state:
        clicked = st.button(t("ex_emb_make"), key="ex_emb_make")
        out_dir = _out_dir(run_dir, "embeddings")
        with user_errors():
            made = tasks.follow("embeddings", key, Call(page_work.embeddings_zip, (str(run_dir), str(out_dir))),
                                t("ex_emb_working"), start=clicked)
            if made is not None:
                st.session_state[key] = made
                st.rerun()  # the button above gives way to the download
    if key in st.session_state:
        data, acc = st.session_state[key]
        st.download_button(t("ex_emb_button"), data, file_name=f"{run_dir.name}-embeddings.zip",
                           mime="application/zip", key="dl_emb", icon=":material/download:")
        st.caption(t("ex_emb_check", acc=acc))


def settings_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_json_title')}**")
    st.caption(t("ex_json_help"))
    st.download_button(t("ex_json_button"), (run_dir / "run.json").read_bytes(), file_name="run.json",
                       mime="application/json", key="dl_json", icon=":material/download:")


def snippet(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_code_title')}**")
    st.caption(t("ex_code_help"))
    with user_errors():
        st.code(export.inference_snippet(run_dir, "onnx"), language="python")


st.title(t("export_title"))
info = pick_run("ex_pick", key="ex_run")
if info is not None:
    run_dir = Path(info.dir)
    left, right = st.columns(2)
    with left:
        model_download(run_dir, "onnx")
        st.divider()
        embeddings_download(run_dir)
    with right:
        model_download(run_dir, "safetensors")
        st.divider()
        settings_download(run_dir)
    st.divider()
    snippet(run_dir)

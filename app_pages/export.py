"""Export: take the trained model away as safetensors, ONNX, its settings and a code snippet."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from tl_core import export
from ui import state
from ui.text import t
from ui.widgets import pick_run, user_errors


def _out_dir(run_dir: Path, fmt: str) -> Path:
    # exports go in the session workspace: the run folder stays as training left it
    return state.workspace() / "exports" / run_dir.name / fmt


def safetensors_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_st_title')}**")
    st.caption(t("ex_st_help"))
    key = f"ex_st::{run_dir}"
    if key not in st.session_state:
        with st.spinner(t("ex_working")), user_errors():
            result = export.export_run(run_dir, "safetensors", _out_dir(run_dir, "safetensors"))
            st.session_state[key] = export.zip_folder(result.path)
    if key in st.session_state:
        st.download_button(t("ex_st_button"), st.session_state[key], file_name=f"{run_dir.name}-safetensors.zip",
                           mime="application/zip", key="dl_st", icon=":material/download:")


def onnx_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_onnx_title')}**")
    st.caption(t("ex_onnx_help"))
    key = f"ex_onnx::{run_dir}"
    # ONNX export takes a few seconds to a minute: only on request
    if key not in st.session_state and st.button(t("ex_onnx_make"), key="ex_onnx_make"):
        with st.status(t("ex_onnx_working"), expanded=False) as status, user_errors():
            result = export.export_run(run_dir, "onnx", _out_dir(run_dir, "onnx"))
            st.session_state[key] = (Path(result.path).read_bytes(), result.max_abs_diff)
            status.update(label=t("ex_onnx_done"), state="complete")
    if key in st.session_state:
        data, diff = st.session_state[key]
        st.success(t("ex_onnx_parity", diff=diff), icon=":material/check_circle:")
        st.download_button(t("ex_onnx_button"), data, file_name=f"{run_dir.name}.onnx",
                           mime="application/octet-stream", key="dl_onnx", icon=":material/download:")


def settings_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_json_title')}**")
    st.caption(t("ex_json_help"))
    st.download_button(t("ex_json_button"), (run_dir / "run.json").read_bytes(), file_name="run.json",
                       mime="application/json", key="dl_json", icon=":material/download:")


def snippet(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_code_title')}**")
    with user_errors():
        code = export.inference_snippet(run_dir)
        st.code(code, language="python")
        st.download_button(t("ex_code_button"), code, file_name="predict.py", mime="text/x-python", key="dl_code")


st.title(t("export_title"))
info = pick_run("ex_pick", key="ex_run")
if info is not None:
    run_dir = Path(info.dir)
    left, right = st.columns(2)
    with left:
        safetensors_download(run_dir)
        st.divider()
        settings_download(run_dir)
    with right:
        onnx_download(run_dir)
    st.divider()
    snippet(run_dir)

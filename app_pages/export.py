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


def _made(key: str) -> dict | None:
    """The zip this session made for `key`, while its file is still on the server (a hosted
    session's workspace is cleared when idle): {"path", ...} from tl_core.jobs.page_work. Its
    download button reads the file only when clicked, not on every rerun of the page."""
    made = st.session_state.get(key)
    if made is not None and not Path(made["path"]).is_file():
        del st.session_state[key]
        st.info(t("ex_zip_gone"), icon=":material/info:")
        return None
    return made


def _make(kind: str, key: str, work: Call, button: tuple[str, str], working: str) -> None:
    """The button (its label, its key) that makes the zip as a task in the server's job slots; its
    result is kept under `key`."""
    clicked = st.button(button[0], key=button[1])
    with user_errors():
        made = tasks.follow(kind, key, work, working, start=clicked)
        if made is not None and Path(made["path"]).is_file():  # a finished task's zip cleared since: make again
            st.session_state[key] = made
            st.rerun()  # the button above gives way to the download


def model_download(run_dir: Path, fmt: str) -> None:
    """Make the zip on request (the check runs the export on every validation image), then offer it."""
    st.markdown(f"**{t(f'ex_{fmt}_title')}**")
    st.caption(t(f"ex_{fmt}_help"))
    key = f"ex_{fmt}::{run_dir}"
    made = _made(key)
    if made is None:
        work = Call(page_work.model_zip, (str(run_dir), fmt, str(_out_dir(run_dir, fmt))))
        working = t("ex_working_fmt", fmt=t(f"ex_{fmt}_title"))
        _make(f"export_{fmt}", key, work, (t(f"ex_{fmt}_make"), f"ex_{fmt}_make"), working)
        return
    check, name = made["check"], Path(made["path"]).name
    if check["images"] == "validation":
        st.success(t("ex_parity", n=check["n_images"], agree=check["agreement"], diff=check["max_abs_diff"]),
                   icon=":material/check_circle:")
    else:  # never call noise images validation images
        st.warning(t("ex_parity_noise", n=check["n_images"], diff=check["max_abs_diff"]))
    st.download_button(t(f"ex_{fmt}_button"), Path(made["path"]).read_bytes, file_name=name,
                       mime="application/zip", key=f"dl_{fmt}", icon=":material/download:")
    st.caption(t("ex_unzip", name=name))


def embeddings_download(run_dir: Path) -> None:
    st.markdown(f"**{t('ex_emb_title')}**")
    st.caption(t("ex_emb_help"))
    key = f"ex_emb::{run_dir}"
    made = _made(key)
    if made is None:
        work = Call(page_work.embeddings_zip, (str(run_dir), str(_out_dir(run_dir, "embeddings"))))
        _make("embeddings", key, work, (t("ex_emb_make"), "ex_emb_make"), t("ex_emb_working"))
        return
    st.download_button(t("ex_emb_button"), Path(made["path"]).read_bytes, file_name=Path(made["path"]).name,
                       mime="application/zip", key="dl_emb", icon=":material/download:")
    st.caption(t("ex_emb_check", acc=made["head_val_acc"]))


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

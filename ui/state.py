"""Where the app's state lives: session_state accessors, folders, the job registry.

Pages read and write state only through these functions, so the keys are spelled once.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import streamlit as st

from tl_core.config import DEFAULT_LR, RunConfig
from tl_core.job import JobManager

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_DIR = ASSETS / "sample"


def runs_root() -> Path:
    # single-user local mode: every session sees the same runs folder
    root = Path(os.environ.get("TL_RUNS", "runs"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def session_id() -> str:
    # our own id rather than Streamlit's internal one: it is stable within the session,
    # exists under AppTest, and is safe as a folder name
    if "sid" not in st.session_state:
        st.session_state.sid = uuid.uuid4().hex[:16]
    return st.session_state.sid


def workspace() -> Path:
    path = Path(os.environ.get("TL_WORKSPACE", "workspace")) / session_id()
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(name: str) -> str:
    """An uploaded file name reduced to something harmless as a single path component."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).name).strip("._")
    return base or "file"


@st.cache_resource
def job_manager() -> JobManager:
    # one registry per server process: jobs outlive a browser refresh, not a restart
    return JobManager(max_concurrent=1)


def dataset():
    return st.session_state.get("dataset")


def set_dataset(ds) -> None:
    st.session_state.dataset = ds


def config() -> RunConfig:
    if "config" not in st.session_state:
        # a tiny, offline-safe default; the Model page replaces it
        st.session_state.config = RunConfig(backbone="resnet18", lr=DEFAULT_LR["feature_extraction"])
    return st.session_state.config


def set_config(cfg: RunConfig) -> None:
    st.session_state.config = cfg


def seed_widget(key: str, value) -> None:
    """Give a keyed widget its value from our own state when Streamlit has dropped it.

    Streamlit forgets a widget's value when its page is not shown; seeding from the saved
    RunConfig makes settings survive a trip to another page.
    """
    if key not in st.session_state:
        st.session_state[key] = value


def sync_job_param() -> None:
    """Keep the job id and run folder in the URL so a browser refresh reattaches."""
    qp = st.query_params
    if "job_id" not in st.session_state and "job" in qp:
        st.session_state.job_id = qp["job"]
        st.session_state.job_run = qp.get("run", "")
    if st.session_state.get("job_id"):
        if qp.get("job") != st.session_state.job_id:
            qp["job"] = st.session_state.job_id
        if st.session_state.get("job_run") and qp.get("run") != st.session_state.job_run:
            qp["run"] = st.session_state.job_run


def set_job(job) -> None:
    st.session_state.job_id = job.id
    st.session_state.job_run = Path(job.run_dir).name
    sync_job_param()


def current_job():
    """-> (job or None, run folder or None) for this session's last job."""
    job_id = st.session_state.get("job_id")
    if not job_id:
        return None, None
    job = job_manager().get(job_id)
    if job is not None:
        return job, Path(job.run_dir)
    # the server restarted: the run folder (named in the URL) still has the events
    raw = st.session_state.get("job_run", "")
    run_dir = runs_root() / safe_name(raw)
    return None, (run_dir if raw and run_dir.is_dir() else None)


def lang() -> str:
    return st.session_state.get("lang", "en")

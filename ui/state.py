"""Where the app's state lives: session_state accessors, folders, the job registry.

Pages read and write state only through these functions, so the keys are spelled once.
"""
from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from tl_core import sessions, settings
from tl_core.config import DEFAULT_LR, RunConfig
from tl_core.runners import make_runner

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLES = ASSETS / "samples"
SAMPLE_DIR = SAMPLES / "recycling"  # real photos (TrashNet subset, MIT): the first thing a user trains on
SHAPES_DIR = SAMPLES / "shapes"  # generated, licence-free: learnable from scratch in seconds


@st.cache_resource
def server_settings() -> settings.Settings:
    # read once per server process: TL_MODE=local|hosted and the caps (tl_core/settings.py)
    return settings.load_settings()


def runs_root() -> Path:
    """Local mode: one runs folder for everyone. Hosted: runs/<session token>/, this session's only."""
    return settings.session_runs_root(server_settings(), session_id())


def session_id() -> str:
    """An unguessable token for this session (our own, not Streamlit's: it exists under AppTest).

    Hosted, it travels in the URL (?s=) so a browser refresh keeps the session's runs and job.
    """
    if "sid" not in st.session_state:
        from_url = st.query_params.get("s")
        hosted = server_settings().hosted
        st.session_state.sid = from_url if hosted and settings.valid_token(from_url) else settings.new_session_token()
        if hosted:
            st.query_params["s"] = st.session_state.sid
            sessions.cleanup_idle_sessions(server_settings())  # once per new session, not per rerun
    return st.session_state.sid


def owner() -> str | None:
    """Whose jobs this session may see: its own when hosted, everyone's in local mode."""
    return session_id() if server_settings().hosted else None


def workspace() -> Path:
    return settings.session_workspace(server_settings(), session_id())


def safe_name(name: str) -> str:
    """An uploaded file name reduced to something harmless as a single path component."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).name).strip("._")
    return base or "file"


@st.cache_resource
def job_manager():
    # one registry per server process: jobs outlive a browser refresh; TL_RUNNER picks where they
    # train (thread, process, or rq workers, whose jobs also outlive a restart of this server)
    return make_runner(server_settings())


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
    job = job_manager().get(job_id, owner=owner())
    if job is not None:
        return job, Path(job.run_dir)
    # the server restarted: the run folder (named in the URL) still has the events
    raw = st.session_state.get("job_run", "")
    run_dir = runs_root() / safe_name(raw)
    return None, (run_dir if raw and run_dir.is_dir() else None)


def lang() -> str:
    return st.session_state.get("lang", "en")


@st.cache_resource
def compare_groups() -> dict:
    # comparisons started in this server process, by id (their files outlive a restart)
    return {}


def current_group_id() -> str | None:
    return st.session_state.get("compare_group")


def set_group(group) -> None:
    compare_groups()[group.id] = group
    st.session_state.compare_group = group.id

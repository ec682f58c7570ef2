"""Where the app's state lives: session_state accessors, folders, the job registry.

Pages read and write state only through these functions, so the keys are spelled once.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import streamlit as st

from tl_core.base import background
from tl_core.base.atomic import read_json, write_json_atomic
from tl_core.base.config import DEFAULT_AUGMENT, DEFAULT_LR, RunConfig
from tl_core.base.messages import ConfigError
from tl_core.data.dataset import Dataset
from tl_core.jobs import process, sessions, settings
from tl_core.jobs.runners import make_runner
from tl_core.jobs.tasks import make_tasks

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLES = ASSETS / "samples"
SAMPLE_DIR = SAMPLES / "recycling"  # real photos (TrashNet subset, MIT): the first thing a user trains on
SHAPES_DIR = SAMPLES / "shapes"  # generated, licence-free: learnable from scratch in seconds


@st.cache_resource
def server_settings() -> settings.Settings:
    # read once per server process: TL_MODE=local|hosted and the caps (tl_core/settings.py)
    return settings.load_settings()


def offers_server_paths() -> bool:
    """"A folder on this computer" only when nobody else can open the app: local mode listening on
    127.0.0.1 (`make run`), never hosted nor `make run ADDRESS=0.0.0.0`."""
    return settings.offers_server_paths(server_settings(), st.get_option("server.address"))


def runs_root() -> Path:
    """Local mode: one runs folder for everyone. Hosted: runs/<session token>/, this session's only."""
    return settings.session_runs_root(server_settings(), session_id())


def session_id() -> str:
    """An unguessable token for this session (our own, not Streamlit's: it exists under AppTest).

    It travels in the URL (?s=) so a browser refresh, or the same link opened later, finds the
    session's workspace again: its dataset and settings (and, hosted, its runs and job).
    """
    if "sid" not in st.session_state:
        from_url = st.query_params.get("s")
        st.session_state.sid = from_url if settings.valid_token(from_url) else settings.new_session_token()
        st.query_params["s"] = st.session_state.sid
        if server_settings().hosted:
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


@st.cache_resource
def task_runner():
    # heavy page work (audit features, speed probe, feature map, embeddings) as tasks in child processes:
    # hosted, in the trainings' own slots (TL_MAX_JOBS); local, at once (tl_core/jobs/tasks.py)
    return make_tasks(server_settings(), job_manager())


# The dataset and the settings are kept in the session's workspace, each under a name made from
# its content and named in the URL (?data=, ?cfg=), as the job is (?job=): a browser refresh or
# the same link opened later (after a server restart too) gets them back. Old versions stay on
# disk, so the back button's URL still names what it showed.
_SAVED = {"dataset": ("data", "datasets"), "config": ("cfg", "configs")}
_NAME = re.compile(r"^[0-9a-f]{16}$")


def _saved_path(what: str, name: str) -> Path:
    return workspace() / _SAVED[what][1] / f"{name}.json"


def _keep(what: str, payload: dict) -> None:
    """Write `payload` into the workspace (atomically) and name it in the URL."""
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    name = hashlib.sha1(body.encode()).hexdigest()[:16]
    path = _saved_path(what, name)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, payload)
    st.session_state[f"url_{what}"] = name  # sync_url puts it back after a page switch
    st.query_params[_SAVED[what][0]] = name


def _restore(what: str) -> dict | None:
    """The payload the URL names, if this session's workspace still has it."""
    name = st.query_params.get(_SAVED[what][0], "")
    if not _NAME.fullmatch(name):  # from a URL: never a path
        return None
    try:
        payload = read_json(_saved_path(what, name))
    except (OSError, ValueError):
        return None
    st.session_state[f"url_{what}"] = name
    return payload


def sync_url() -> None:
    """Put the session (?s=), its dataset (?data=), settings (?cfg=) and job (?job=, ?run=) back
    in the URL on every script run: switching pages starts from a bare URL (st.navigation drops
    the query string), and a refresh there would otherwise lose them all."""
    qp = st.query_params
    if qp.get("s") != session_id():
        qp["s"] = session_id()
    for what, (param, _) in _SAVED.items():
        name = st.session_state.get(f"url_{what}")
        if name and qp.get(param) != name:
            qp[param] = name
    sync_job_param()


def dataset():
    if "dataset" not in st.session_state:
        restored = _restored_dataset()  # None: nothing loaded yet (the key stays unset)
        if restored is not None:
            st.session_state.dataset = st.session_state.dataset_saved = restored
    return st.session_state.get("dataset")


def _restored_dataset():
    saved = _restore("dataset")
    try:
        ds = Dataset.from_dict(saved) if saved else None
    except (KeyError, TypeError, ValueError):
        return None
    # the images must still be there (hosted mode prunes old uploads)
    return ds if ds is not None and Path(ds.root).is_dir() else None


def set_dataset(ds) -> None:
    st.session_state.dataset = ds
    _keep("dataset", ds.to_dict())
    st.session_state.dataset_saved = ds


def dataset_file() -> str:
    """The loaded dataset's saved JSON (a task child reads it there: a path travels on its stdin,
    not ten thousand items converted on every page run)."""
    ds = dataset()
    path = _saved_path("dataset", st.session_state.get("url_dataset") or "none")
    if st.session_state.get("dataset_saved") is not ds or not path.is_file():
        set_dataset(ds)  # one given to the session some other way (a test's session state)
        path = _saved_path("dataset", st.session_state["url_dataset"])
    return str(path)


def config() -> RunConfig:
    if "config" not in st.session_state:
        saved = _restore("config")
        try:
            st.session_state.config = RunConfig.from_dict(saved) if saved else None
        except (ConfigError, TypeError):
            st.session_state.config = None  # written by another version: start from the default
        if st.session_state.config is None:
            st.session_state.config = default_config()
    return st.session_state.config


def default_config() -> RunConfig:
    """RunConfig's defaults (EfficientNet-Lite0 with its packaged ImageNet weights, offline-safe) with
    the learning rate and augmentation of its strategy: Data -> Train with no visit to Model trains
    feature extraction with no augmentation, so no note says the augmentation went unused."""
    base = RunConfig()
    return base.replace(lr=DEFAULT_LR[base.strategy], augment=DEFAULT_AUGMENT[base.strategy])


@st.cache_resource(show_spinner=False)
def warm_up_default_engine() -> bool:
    """Once per server: measure the engines on the default model and export its ONNX file in a
    low-priority process (tl_core.training.features.prepare_engine), while the newcomer looks at
    the Data page. Measured on the 2-core Xeon: about 25 s at nice 19 on an idle machine; it then
    runs the sample's features at 148 images/s instead of 37 (issue 21)."""
    return background.start("tl_core.training.features", json.dumps(default_config().to_dict())) is not None


@st.cache_resource(show_spinner=False)
def start_spare_child() -> bool:
    """Once per server: a child process that has imported torch and timm waits for the first run
    (tl_core.jobs.process.keep_spare), about 5 s off every run's start on the 2-core Xeon."""
    if server_settings().runner != "process":
        return False
    process.keep_spare()
    return True


def set_config(cfg: RunConfig) -> None:
    if st.session_state.get("config") != cfg or st.query_params.get("cfg") is None:
        _keep("config", cfg.to_dict())
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


def follow_run(run_dir) -> None:
    """Make a run that already ended (a comparison's member) this session's run: current_job()
    finds its folder, and Evaluate, Predict and Export open it by default."""
    st.session_state.job_id = st.session_state.job_run = Path(run_dir).name
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

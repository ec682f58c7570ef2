"""Server settings from environment variables: local (one user, the default) or hosted (strangers).

| variable                 | local default | hosted default | meaning                                         |
|--------------------------|---------------|----------------|-------------------------------------------------|
| TL_MODE                  | local         | hosted         | `hosted` isolates sessions and applies the caps |
| TL_RUNS                  | runs          | runs           | folder of run folders (hosted: one per session) |
| TL_WORKSPACE             | workspace     | workspace      | uploads and exports, one folder per session     |
| TL_MAX_UPLOAD_MB         | 4096          | 200            | uncompressed size of one upload or zip          |
| TL_MAX_IMAGES            | 50000         | 5000           | files in one upload or zip                      |
| TL_MAX_PIXELS            | 40000000      | 25000000       | pixels per image (decompression-bomb guard)     |
| TL_MAX_JOBS              | 1             | 2              | trainings at once per server; the rest queue    |
| TL_MAX_EPOCHS            | 1000          | 30             | epochs per run                                  |
| TL_MAX_RUNS_PER_SESSION  | 0 (no limit)  | 5              | runs kept per session; the oldest are deleted   |
| TL_MIN_FREE_MB           | 500           | 1000           | free disk needed to start a run                 |
| TL_SESSION_TTL_HOURS     | 0 (never)     | 24             | idle sessions' runs and uploads are deleted     |
| TL_RUNNER                | process       | process        | where jobs train: thread, process, rq (workers) |
| TL_REDIS_URL             | redis://127.0.0.1:6379 | same  | the queue of the rq runner and of its workers   |
| TL_JOB_TIMEOUT_S         | 86400         | 14400          | rq: a job still training after this is ended    |
| TL_QUEUE_NO_WORKER_S     | 300           | 300            | rq: a queued job with no live worker this long ends Failed |
| TL_DDP_TIMEOUT_S         | 600           | 600            | --devices N: a rank waiting this long on another fails the run |

Local runs train in a child process (TL_RUNNER=process) watched by a thread of the server: on the
2-core machine of issue 21 the same full fine-tuning took 167 s from the Train page's click with
the thread runner against 48 s from the CLI, because the page's reruns competed with the training
thread for the GIL; a process of its own has its own interpreter. Hosted servers too: in the fault
campaign (bench/faults.py, load 6-7) the health check's p95 was 74 ms with a training in a child
process and 788 ms with the same training on a thread of the web server.

TL_QUEUE_NO_WORKER_S: 300 s. The page and `train --queue --wait` say at once that no worker serves
the queue; the deadline only decides when to give up. A worker that systemd restarts (or a deploy)
is back within a minute, and a dead one leaves rq's registry within 120 s (pool.WORKER_TTL_S), so
5 minutes never ends a job that a worker was about to take. TL_DDP_TIMEOUT_S is read by each rank
(tl_core.training.distributed, which says why 600 s).

Hosted defaults assume a classroom: ~30 users on one machine, 200 MB uploads (Streamlit's own
server.maxUploadSize default), and two concurrent trainings so nobody waits behind one long run.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from tl_core.base.config import RunConfig
from tl_core.base.messages import ConfigError, SettingsError  # noqa: F401  (SettingsError: public here too)
from tl_core.data.ingest import IngestLimits

MODES = ("local", "hosted")
RUNNERS = ("thread", "process", "rq")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")  # token_urlsafe(24) is 32 characters

_DEFAULTS = {
    "local": dict(max_upload_mb=4096, max_images=50_000, max_pixels=40_000_000, max_jobs=1, max_epochs=1000,
                  max_runs_per_session=0, min_free_mb=500, session_ttl_hours=0, job_timeout_s=86400,
                  queue_no_worker_s=300, runner="process"),
    "hosted": dict(max_upload_mb=200, max_images=5000, max_pixels=25_000_000, max_jobs=2, max_epochs=30,
                   max_runs_per_session=5, min_free_mb=1000, session_ttl_hours=24, job_timeout_s=4 * 3600,
                   queue_no_worker_s=300, runner="process"),
}


# weights shipped with TL Studio (assets/weights): every session may start from them
BUNDLED_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "weights"


@dataclass(frozen=True)
class Settings:
    mode: str = "local"
    runs_dir: str = "runs"
    workspace_dir: str = "workspace"
    max_upload_mb: int = 4096
    max_images: int = 50_000
    max_pixels: int = 40_000_000
    max_jobs: int = 1
    max_epochs: int = 1000
    max_runs_per_session: int = 0
    min_free_mb: int = 500
    session_ttl_hours: int = 0
    job_timeout_s: int = 86400
    queue_no_worker_s: int = 300
    runner: str = "process"
    redis_url: str = "redis://127.0.0.1:6379"

    @property
    def hosted(self) -> bool:
        return self.mode == "hosted"

    def ingest_limits(self) -> IngestLimits:
        """Upload caps for data.ingest_uploads / load_dataset."""
        total = self.max_upload_mb * 1024**2
        # one image is read into memory to hash and decode it: 50 MB is a 12000x12000 JPEG
        per_file = min(total, 50 * 1024**2) if self.hosted else min(total, IngestLimits.max_file_bytes)
        return IngestLimits(max_bytes=total, max_files=self.max_images, max_pixels=self.max_pixels,
                            max_file_bytes=per_file)


def _int_env(env: dict, name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError("settings.not_a_number", name=name, raw=raw, default=default) from None
    if value < 0:
        raise SettingsError("settings.negative", name=name, raw=raw)
    return value


def load_settings(environ: dict | None = None) -> Settings:
    """Settings from TL_* environment variables (see the table above); SettingsError on bad values."""
    env = os.environ if environ is None else environ
    mode = env.get("TL_MODE", "local").strip().lower() or "local"
    if mode not in MODES:
        raise SettingsError("settings.bad_mode", mode=mode)
    defaults = _DEFAULTS[mode]
    values = {k: _int_env(env, f"TL_{k.upper()}", v) for k, v in defaults.items() if k != "runner"}
    for name in ("max_jobs", "max_epochs", "max_images", "max_upload_mb", "job_timeout_s", "queue_no_worker_s"):
        if values[name] < 1:
            raise SettingsError("settings.at_least_one", name=f"TL_{name.upper()}")
    runner = env.get("TL_RUNNER", "").strip().lower() or defaults["runner"]
    if runner not in RUNNERS:
        raise SettingsError("settings.bad_runner", runner=runner)
    return Settings(mode=mode, runs_dir=env.get("TL_RUNS", "runs"), workspace_dir=env.get("TL_WORKSPACE", "workspace"),
                    runner=runner, redis_url=env.get("TL_REDIS_URL", "redis://127.0.0.1:6379").strip(), **values)


def is_loopback(address: str | None) -> bool:
    """True when a server listening on `address` can be opened from this computer only.

    No address (Streamlit's own default) or 0.0.0.0 listens on every interface: anyone on the
    same network (a classroom's Wi-Fi) can open the app.
    """
    host = (address or "").strip().strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def offers_server_paths(settings: Settings, address: str | None) -> bool:
    """Whether the app may read a folder of this computer by its path ("A folder on this
    computer"): local mode only, and only while nobody else can reach the app."""
    return not settings.hosted and is_loopback(address)


# ---------------------------------------------------------------- sessions


def new_session_token() -> str:
    """An unguessable session token (192 random bits), safe as a folder name and in a URL."""
    return secrets.token_urlsafe(24)


def valid_token(token: str | None) -> bool:
    return isinstance(token, str) and bool(_TOKEN.fullmatch(token))  # fullmatch: "$" allows a "\n"


def _session_dir(base: str, token: str) -> Path:
    # the token comes from a URL: it must never be a path ("../other") or a short guessable name
    if not valid_token(token):
        raise SettingsError("settings.bad_token")
    return Path(base) / token


def session_runs_root(settings: Settings, token: str | None = None) -> Path:
    """Where this session's runs live: runs/ in local mode, runs/<token>/ in hosted mode."""
    root = _session_dir(settings.runs_dir, token) if settings.hosted else Path(settings.runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root


def session_workspace(settings: Settings, token: str) -> Path:
    """This session's uploads/exports folder (per session in both modes: uploads never mix)."""
    path = _session_dir(settings.workspace_dir, token)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_config(settings: Settings, cfg: RunConfig, token: str | None = None) -> None:
    """Refuse a run the server's caps do not allow, with a sentence (before it is queued).

    Hosted, with the session's token: a starting point from a previous run or a weights file
    must be this session's own (a crafted path must not read another user's model).
    """
    if cfg.epochs > settings.max_epochs:
        raise ConfigError("settings.too_many_epochs", epochs=cfg.epochs, limit=settings.max_epochs)
    if not settings.hosted or token is None or cfg.pretrained in ("auto", "package", "hub", "none") or not cfg.uses_pretrained:
        return
    is_run = cfg.pretrained.startswith("run:")
    path = Path(cfg.pretrained[4:] if is_run else cfg.pretrained).resolve()
    home = (session_runs_root(settings, token) if is_run else session_workspace(settings, token)).resolve()
    if not path.is_relative_to(home) and not path.is_relative_to(BUNDLED_WEIGHTS.resolve()):
        raise ConfigError("settings.not_yours")

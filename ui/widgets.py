"""Small pieces of UI that more than one page uses."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from tl_core.base.events import TERMINAL, EpochEnd, HeadSearch, Progress, Started
from tl_core.base.formatting import duration
from tl_core.base.messages import UserError
from tl_core.base.status import RunStatus, status_after
from tl_core.jobs import classboard
from tl_core.jobs.runs import list_runs, read_events, read_json
from ui import state
from ui.text import say, t


@contextmanager
def user_errors():
    """Turn errors a user can cause into a sentence on the page; anything else still raises."""
    try:
        yield
    except UserError as e:
        st.error(say(e), icon=":material/error:")
        report = getattr(e, "report", None)  # a refused dataset: show which files were skipped and why
        if report is not None and report.skipped:
            st.dataframe([{t("file"): s.name, t("reason"): say(s.reason)} for s in report.skipped], hide_index=True)


def status_of(job, events) -> RunStatus:
    """The run's state, from the job or a replay of its events."""
    if job is not None:
        return job.status
    # the last event that sets a state: a note may follow Finished (the "none of these" bank)
    last = next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)
    # no terminal event and no job: the server stopped while it trained
    return status_after(last) if last is not None else RunStatus.INTERRUPTED


def job_events(job, run_dir) -> list:
    if job is not None:
        return job.events()
    return read_events(run_dir) if run_dir else []


def sidebar_status() -> None:
    """Dataset, chosen model and the last run, in a few lines at the bottom of the sidebar."""
    with st.sidebar:
        st.divider()
        ds = state.dataset()
        if ds is not None:
            n = len(ds.train) + len(ds.val)
            st.caption(t("side_data", n=n, k=len(ds.classes)))
        else:
            st.caption(t("side_no_data"))
        cfg = state.config()
        st.caption(t("side_model", backbone=cfg.backbone, strategy=t(f"strat_{cfg.strategy}")))
        job, run_dir = state.current_job()
        if job is None and run_dir is None:
            st.caption(t("side_no_run"))
            return
        events = job_events(job, run_dir)
        status = status_of(job, events)
        line = t("side_run", status=t(f"status_{status.key}"))
        best = _best_epoch(events)
        if best is not None:
            line += " · " + t("side_val_acc", acc=best.metrics.get("val/acc", 0.0), epoch=best.epoch)
        st.caption(line)


def _best_epoch(events):
    # the saved model is the best epoch's, so that is the number to show, not the last epoch's
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    best = [e for e in epochs if e.is_best]
    return best[-1] if best else (epochs[-1] if epochs else None)


def image_grid(images: list, captions: list[str], columns: int = 6, width: int = 110) -> None:
    """Images in rows of `columns`, each with a caption under it."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, img, cap in zip(cols, images[start:start + columns], captions[start:start + columns]):
            col.image(img, caption=cap, width=width)


def progress_line(events) -> tuple[float, str]:
    """-> (fraction done, one-line text) from the latest Progress/Started events."""
    started = next((e for e in events if isinstance(e, Started)), None)
    prog = next((e for e in reversed(events) if isinstance(e, (Progress, HeadSearch))), None)
    if prog is None:
        return 0.0, t("prog_starting")
    if isinstance(prog, HeadSearch):
        return len(prog.l2) / max(1, prog.total), t("prog_head", done=len(prog.l2), total=prog.total,
                                                     folds=prog.folds)
    frac = prog.step / prog.total if prog.total else 0.0
    if prog.phase == "features":  # "features: 412 / 887, 210 img/s"
        eta = t("prog_eta", eta=_fmt_seconds(prog.eta_s)) if prog.eta_s else ""
        return min(1.0, frac), t("prog_features", step=prog.step, total=prog.total, ips=prog.images_per_s) + eta
    if prog.phase == "train" and started:
        # whole-run fraction: finished epochs plus this epoch's share
        frac = ((prog.epoch - 1) + frac) / max(1, started.epochs)
    if prog.phase == "weights":  # a download: step/total are bytes
        return frac, t("prog_weights", done=prog.step / 1e6, total=prog.total / 1e6)
    eta = t("prog_eta", eta=_fmt_seconds(prog.eta_s)) if prog.eta_s is not None else ""
    text = t("prog_line", phase=t(f"phase_{prog.phase}"), epoch=prog.epoch, step=prog.step,
             total=prog.total, ips=prog.images_per_s) + eta
    return min(1.0, max(0.0, frac)), text


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


def run_label(info) -> str:
    acc = info.metrics.get("val/acc") if info.metrics else None
    acc_txt = f" · {acc:.1%}" if isinstance(acc, (int, float)) else ""
    status = "" if info.status == RunStatus.FINISHED else f" · {t('status_' + info.status.key)}"
    return f"{info.name} · {info.config.backbone} · {t('strat_' + info.config.strategy)}{acc_txt}{status}"


def _usable(info) -> bool:
    # a stopped or interrupted run still saved its best epoch
    done = info.status in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.INTERRUPTED)
    return done and all((Path(info.dir) / f).is_file() for f in ("model.safetensors", "val_predictions.json"))


def finished_runs():
    """Runs with a saved model to evaluate, predict with or export, newest first."""
    return [r for r in list_runs(state.runs_root()) if _usable(r)]


def pick_run(label_key: str, key: str):
    """Selectbox over finished runs, newest first; defaults to this session's last run."""
    runs = finished_runs()
    if not runs:
        st.info(t("no_runs"))
        st.page_link("app_pages/train.py", label=t("go_train"), icon=":material/model_training:")
        return None
    by_name = {r.name: r for r in runs}
    _, last = state.current_job()
    names = list(by_name)
    index = names.index(last.name) if last is not None and last.name in by_name else 0
    # options are run names, not positions: a run that finishes meanwhile (newest first) must not
    # move the user's choice onto another run
    name = st.selectbox(t(label_key), names, index=index, key=key, format_func=lambda n: run_label(by_name[n]))
    if by_name[name].images_removed:  # hosted caps deleted its upload (tl_core.jobs.sessions.prune_uploads)
        st.warning(t("run_images_removed"), icon=":material/hide_image:")
    return by_name[name]


def energy_text(energy: dict | None) -> str:
    """One run's energy, saying whether it was measured (and by what) or estimated (and from what)."""
    if not energy or energy.get("wh") is None:
        return "—"
    if not energy.get("estimate"):
        return t("energy_measured", wh=energy["wh"], source=energy_source(energy.get("source", "")))
    key = "energy_estimated" if "core" in energy.get("basis", "core") else "energy_estimated_gpu"
    return t(key, wh=energy["wh"], watts=energy.get("stated_watts", 0))


def energy_source(source: str) -> str:
    """'nvml+rapl' -> the counters' names in words (tl_core.jobs.energy's source tokens)."""
    parts = [t(f"energy_src_{p}") if p in ("rapl", "nvml") else p for p in source.split("+") if p]
    return " + ".join(parts) or "?"


def device_label(device: str) -> str:
    """'cpu' -> 'CPU', 'cuda:1' -> 'GPU 1': a device as a person names it, not torch's token."""
    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        return t("device_gpu_n", n=index) if index else t("m_device_cuda")
    return t(f"m_device_{kind}") if kind in ("auto", "cpu") else str(device)


def weights_label(pretrained: str) -> str:
    """A RunConfig's `pretrained` in words: the kind of source, a run's or a file's name."""
    if pretrained in ("auto", "package", "hub", "none"):
        return t(f"m_weights_{pretrained}")
    name = pretrained.removeprefix("run:").rstrip("/").rsplit("/", 1)[-1]
    return t("weights_of_run", run=name) if pretrained.startswith("run:") else name


def energy_how(energy: dict | None) -> str:
    """How a run's energy was obtained: 'measured (rapl)' or 'estimated (10 W per busy core × CPU time)'."""
    if not energy or energy.get("wh") is None:
        return ""
    if not energy.get("estimate"):
        return t("energy_how_measured", source=energy_source(energy.get("source", "")))
    key = "energy_how_estimated" if "core" in energy.get("basis", "core") else "energy_how_estimated_gpu"
    return t(key, watts=energy.get("stated_watts", 0))


def energy_line(run_dir) -> str | None:
    """'Time 1 min 23 s · energy 0.41 Wh, measured (rapl)' from run.json, or None before the end."""
    try:
        energy = read_json(Path(run_dir) / "run.json").get("energy")
    except (OSError, ValueError):
        return None
    if not energy:
        return None
    return t("energy_line", time=duration(energy.get("wall_s", 0)), energy=energy_text(energy))


def class_code_box() -> None:
    """Hosted mode: join a class (optional) so the teacher's class board lists this session's runs."""
    root = state.runs_root()
    joined = classboard.get_class(root)
    with st.sidebar.expander(t("class_title"), expanded=False):
        if joined:
            st.caption(t("class_joined", code=joined["code"]))
        code = st.text_input(t("class_code"), value=joined["code"] if joined else "", key="class_code")
        name = st.text_input(t("class_name"), value=joined.get("name", "") if joined else "", key="class_name")
        if st.button(t("class_join"), key="class_join", disabled=not code.strip()):
            with user_errors():
                classboard.set_class(root, code, name)
                st.rerun()
        st.caption(t("class_help"))

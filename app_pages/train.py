"""Train: start or stop a Job and watch it live; a refresh or restart replays its events."""
from __future__ import annotations

import streamlit as st

from tl_core.base.events import TERMINAL, EpochEnd, Failed, Finished, HeadSearch, Note, Started, Stopped
from tl_core.base.status import RunStatus
from tl_core.jobs import sessions, settings
from ui import charts, state
from ui.text import say, t
from ui.widgets import device_label, energy_line, job_events, progress_line, status_of, user_errors

POLL_SECONDS = 0.5
CURVE_LABELS = ("loss", "acc", "train", "val", "epoch", "raw", "smoothed", "step_loss", "step",
                "l2", "l2_x", "l2_y", "l2_chosen")


def start(cfg, ds) -> None:
    with user_errors():
        server = state.server_settings()
        # the server's caps (epochs; hosted: only this session's own starting points) before queueing
        settings.check_config(server, cfg, state.session_id())
        sessions.make_room_for_run(server, state.runs_root())  # hosted: drop this session's oldest runs
        job = state.job_manager().submit(cfg, ds, state.runs_root(), owner=state.owner())
        state.set_job(job)


def controls(job, cfg, ds) -> None:
    active = job is not None and job.status.active
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button(t("train_start"), type="primary", disabled=active or ds is None, key="train_start"):
        start(cfg, ds)
        st.rerun()
    if c2.button(t("train_stop"), disabled=not active, key="train_stop"):
        job.stop()
        st.toast(t("train_stopping"))


def header(events, status: RunStatus, job) -> None:
    started = next((e for e in events if isinstance(e, Started)), None)
    if status == RunStatus.QUEUED:
        st.info(t("train_queued", pos=job.queue_position()), icon=":material/hourglass_top:")
        # the rq runner's job says when no worker serves its queue (and when it will give up)
        note = job.waiting_note() if hasattr(job, "waiting_note") else None
        if note is not None:
            st.warning(say(note), icon=":material/warning:")
    if started:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric(t("train_device"), device_label(started.device))
        c2.metric(t("train_images"), f"{started.n_train} / {started.n_val}")
        c3.metric(t("train_trainable"), f"{started.trainable_params:,}")
        ips = next((e.images_per_s for e in reversed(events) if hasattr(e, "images_per_s") and e.images_per_s), 0.0)
        c4.metric(t("train_ips"), f"{ips:,.0f}")
        if started.weights:
            st.caption(say(started.weights_says or started.weights))


def outcome(events, status: RunStatus, run_dir=None, job=None) -> None:
    for e in events:
        if isinstance(e, Note):
            st.caption(say(e))
    # the run's end, not its last line: a note may follow Finished (the "none of these" bank)
    last = next((e for e in reversed(events) if isinstance(e, TERMINAL)), events[-1] if events else None)
    if isinstance(last, Finished):
        acc = last.metrics.get("val/acc", 0.0)
        key = "train_finished_solved" if _solved(events) else "train_finished"
        st.success(t(key, acc=acc, epoch=last.best_epoch, secs=last.train_seconds), icon=":material/check_circle:")
        epochs_run = sum(isinstance(e, EpochEnd) for e in events)
        if last.best_epoch < epochs_run:  # the kept epoch was chosen by looking at these images
            st.caption(t("train_best_picked", epoch=last.best_epoch, n=epochs_run))
        line = energy_line(run_dir) if run_dir else None
        if line:
            st.caption(line)
    elif isinstance(last, Stopped):
        st.warning(t("train_stopped", epoch=last.epoch), icon=":material/stop_circle:")
    elif status == RunStatus.INTERRUPTED:  # the rq runner's job says why (its worker died or went silent)
        why = job.lost_note() if hasattr(job, "lost_note") else None
        st.warning(say(why) if why else t("side_run", status=t("status_interrupted")), icon=":material/warning:")
    elif isinstance(last, Failed):
        st.error(say(last), icon=":material/error:")
        if last.detail:
            with st.expander(t("train_details")):
                st.code(last.detail)


def _solved(events) -> bool:
    """The head is solved (feature extraction): no epochs to chart."""
    return any(isinstance(e, Started) and e.solved_head for e in events)


def live(job, run_dir) -> None:
    """Everything that changes while a run goes: polled every POLL_SECONDS by the fragment below."""
    events = job_events(job, run_dir)
    status = status_of(job, events)
    header(events, status, job)
    if status.active:
        frac, text = progress_line(events)
        st.progress(frac, text=text)
    labels = {k: t(f"chart_{k}") for k in CURVE_LABELS}
    search = next((e for e in reversed(events) if isinstance(e, HeadSearch)), None)
    if search is not None:  # the solved head's live chart: accuracy per L2 strength, the chosen one marked
        st.plotly_chart(charts.l2_search(search, labels), key="l2_search")
    if not _solved(events):
        # rebuilt only when events arrived since the last poll (see charts.run_figures)
        curves, steps = charts.run_figures(events, (str(run_dir), state.lang()), labels, st.session_state)
        if curves is not None:
            st.plotly_chart(curves, key="curves")
        if steps is not None:
            st.plotly_chart(steps, key="steps")
    outcome(events, status, run_dir, job)
    if not status.active and st.session_state.get("train_polling"):
        # the run just ended: one full rerun so the buttons and sidebar catch up, then stop polling
        st.session_state.train_polling = False
        st.rerun(scope="app")


st.title(t("train_title"))
cfg, ds = state.config(), state.dataset()
if ds is None:
    st.info(t("train_need_data"))
    st.page_link("app_pages/data.py", label=t("go_data"), icon=":material/photo_library:")
st.caption(t("train_summary_solved" if cfg.solves_head else "train_summary", backbone=cfg.backbone,
             strategy=t(f"strat_{cfg.strategy}"), epochs=cfg.epochs, lr=cfg.lr, batch=cfg.batch_size))
job, run_dir = state.current_job()
controls(job, cfg, ds)
if job is not None or run_dir is not None:
    st.caption(t("train_run_folder", path=str(run_dir)))
    polling = job is not None and job.status.active
    st.session_state.train_polling = polling
    # 0.5 s: at 1.0 s the browser saw 0.80 updates/s while training (a rerun takes time too);
    # the target is at least one refresh per second (bench/ui_latency.py)
    st.fragment(run_every=POLL_SECONDS if polling else None)(live)(job, run_dir)
    if not polling and status_of(job, job_events(job, run_dir)) in (RunStatus.FINISHED, RunStatus.STOPPED):
        st.page_link("app_pages/evaluate.py", label=t("go_evaluate"), icon=":material/analytics:")
st.page_link("app_pages/compare.py", label=t("go_compare"), icon=":material/leaderboard:")

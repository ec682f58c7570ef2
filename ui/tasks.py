"""Heavy page work as a task (tl_core/jobs/tasks.py): start it or reattach to it, show its place
in line or its progress in a polling fragment, and hand its result to the page once it is done.

The page script never runs the work itself: on a hosted server it waits for a slot like a training
(TL_MAX_JOBS), so a stranger's clicks cannot make the server do more at once than the caps allow.
"""
from __future__ import annotations

import streamlit as st

from tl_core.base.status import RunStatus
from ui import state
from ui.text import say, t

POLL_SECONDS = 0.5  # as the Train page: at least one refresh a second (bench/ui_latency.py)


def follow(kind: str, key, work, text: str, *, start: bool = False, auto: bool = False):
    """This session's `kind` result for `key` once its task has finished, else None.

    work: a task_child.Call (a child process runs it; never st.* in it). start: a click asks for it now;
    auto: start one when this session has none of this kind for `key` (a toggle that is on). While
    it waits or runs, its place in line or its progress bar (with `text`) is polled here, and the
    page reruns once when it ends. A failed or stopped one shows its sentence and "Try again".
    """
    runner, owner = state.task_runner(), state.session_id()
    task = runner.latest(owner, kind)
    if start or (auto and (task is None or task.key != key)):
        task = runner.start(kind, owner, key, work)  # this session's active one, if it has one
    if task is None:
        return None
    if _finished_for(task, key):
        return task.result
    if not task.done:
        st.fragment(run_every=POLL_SECONDS)(_live)(task.id, text)
    elif task.key == key:
        _ended(task, work)
    return None


def finished_result(kind: str, key):
    """This session's finished `kind` result for `key`, or None; draws nothing (for what a page must
    know before drawing the controls above its follow())."""
    task = state.task_runner().latest(state.session_id(), kind)
    return task.result if task is not None and _finished_for(task, key) else None


def _finished_for(task, key) -> bool:
    return task.key == key and task.status == RunStatus.FINISHED


def ended_without_result(kind: str, key) -> bool:
    """True when this session's last `kind` task for `key` failed or was stopped."""
    task = state.task_runner().latest(state.session_id(), kind)
    return task is not None and task.key == key and task.done and task.status != RunStatus.FINISHED


def _live(task_id: str, text: str) -> None:
    task = state.task_runner().get(task_id, state.session_id())
    if task is None:
        return
    if task.done:
        st.rerun(scope="app")  # once: the page picks up the result (and stops polling)
    position = task.queue_position()
    if task.status == RunStatus.QUEUED and position:
        st.info(t("task_waiting", pos=position), icon=":material/hourglass_top:")
        st.caption(t("task_then", what=text))
    else:
        done, total = task.progress
        st.progress(min(1.0, done / total) if total else 0.0, text=text)
    if st.button(t("task_stop"), key=f"task_stop_{task.kind}"):
        task.stop()


def _ended(task, work) -> None:
    show = st.error if task.status == RunStatus.FAILED else st.warning
    show(say(task.error), icon=":material/error:" if task.status == RunStatus.FAILED else ":material/stop_circle:")
    if st.button(t("task_retry"), key=f"task_retry_{task.kind}"):
        state.task_runner().start(task.kind, task.owner, task.key, work)
        st.rerun()

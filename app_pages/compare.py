"""Compare: every strategy on the same data and backbone, a leaderboard, one chart, a verdict."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from tl_core.base.config import RunConfig
from tl_core.base.formatting import duration
from tl_core.jobs import compare, page_work, sessions, settings
from tl_core.jobs.task_child import Call
from tl_core.training import estimate as timing
from tl_core.trust.verdict import render, wilson
from ui import charts, state, tasks
from ui.text import say, t
from ui.widgets import device_label, energy_how, user_errors, weights_label

POLL_SECONDS = 1.0
ENDED = ("Finished", "Stopped", "Failed", "Interrupted", "missing")


@st.cache_resource
def _measured() -> dict:
    # the last speed measured on this server per (config, dataset): a page visit trains nothing
    return {}


def _dataset_key(ds) -> str:
    return f"{ds.root}|{len(ds.train)}|{len(ds.val)}"


def _speed(cfg: RunConfig, ds) -> timing.Speed | None:
    """This computer's measured training speed: on a click (real training steps), then kept."""
    speed_cfg = cfg.replace(epochs=1, pretrained="none")
    key = (json.dumps(speed_cfg.to_dict(), sort_keys=True), _dataset_key(ds))
    measured = tasks.finished_result("speed", key)  # before the button: its label says whether one exists
    if measured is not None:
        _measured()[key] = measured
    clicked = st.button(t("cmp_measure" if key not in _measured() else "cmp_measure_again"), key="cmp_measure",
                        help=t("cmp_measure_help"))
    # real training steps: a task in the server's job slots, never in this page script; its result is
    # read above on the run after it ends
    tasks.follow("speed", key, Call(page_work.training_speed, (speed_cfg.to_dict(), state.dataset_file())),
                 t("cmp_measuring", backbone=cfg.backbone), start=clicked)
    saved = _measured().get(key)
    return timing.Speed(**saved) if saved else None


def plan(cfg: RunConfig, ds):
    """The members the user picks, the epochs (to shorten it) and the estimate, once measured."""
    c1, c2 = st.columns([3, 1])
    picked = c1.multiselect(t("cmp_members"), compare.ORDER, default=list(compare.ORDER), key="cmp_members",
                            format_func=lambda s: t(f"strat_{s}"))
    epochs = c2.number_input(t("cmp_epochs"), 1, state.server_settings().max_epochs, value=min(cfg.epochs, 10),
                             key="cmp_epochs", help=t("cmp_epochs_help"))
    members = compare.member_configs(cfg.replace(epochs=int(epochs)), tuple(picked))
    speed = _speed(cfg, ds)
    if speed is None:
        st.caption(t("cmp_estimate_unmeasured"))
        return members, None
    estimate = timing.estimate_total(members, ds, speed)
    st.info(t("cmp_estimate", time=duration(estimate), n=len(members), epochs=int(epochs)),
            icon=":material/timer:")
    rates = ", ".join(f"{t('strat_' + s)} {speed.train_ips[s]:.1f} img/s" for s in compare.ORDER)
    st.caption(t("cmp_estimate_how", device=device_label(speed.device), rates=rates))
    return members, estimate


def start(members, ds, estimate) -> None:
    server, root = state.server_settings(), state.runs_root()
    for cfg in members:  # the server's caps, before anything is queued
        settings.check_config(server, cfg, state.session_id())
    group = compare.CompareGroup(state.job_manager(), members, ds, root, owner=state.owner(), estimate_s=estimate,
                                 before_submit=lambda: sessions.make_room_for_run(server, root))
    state.set_group(group.start())


def _row(r: dict) -> dict:
    interval = ""
    if r.get("correct") is not None and r.get("n_val"):
        lo, hi = wilson(r["correct"], r["n_val"])
        interval = f"{lo:.1%} – {hi:.1%}"
    status = r.get("status", "")
    return {t("cmp_col_strategy"): t(f"strat_{r['strategy']}"),
            t("cmp_col_status"): t(f"status_{status.lower()}") if status.lower() in (
                "queued", "running", "finished", "stopped", "failed", "interrupted") else t("cmp_status_Waiting"),
            t("cmp_col_acc"): r.get("acc"), t("cmp_col_interval"): interval,
            t("cmp_col_time"): duration(r["wall_s"]) if r.get("wall_s") is not None else "",
            t("cmp_col_energy"): r.get("energy_wh"),
            t("cmp_col_how"): energy_how(r.get("energy"))}


def leaderboard(group: dict, running: bool) -> None:
    """The table (best first), all validation curves in one chart, the verdict."""
    rows = compare.results(group)
    done = sum(r.get("status") in ENDED for r in rows)
    if running:
        st.progress(done / len(rows), text=t("cmp_running", done=done, n=len(rows)))
    st.subheader(t("cmp_leaderboard"))
    ordered = sorted(rows, key=lambda r: -(r.get("acc") or -1))
    st.dataframe(pd.DataFrame([_row(r) for r in ordered]), hide_index=True, column_config={
        t("cmp_col_acc"): st.column_config.NumberColumn(format="percent"),
        t("cmp_col_energy"): st.column_config.NumberColumn(format="%.3g")}, key=f"lb_{group['id']}_{done}")
    st.caption(t("cmp_interval_help"))
    curves = {t(f"strat_{r['strategy']}"): [{"epoch": i + 1, "val/acc": acc} for i, (_, acc) in enumerate(r["curve"])]
              for r in rows if r.get("curve")}
    if curves:
        fig = charts.compare(curves, "val/acc", t("cmp_curves"), {"epoch": t("chart_epoch")})
        fig.update_xaxes(dtick=1)
        fig.update_yaxes(tickformat=".0%")
        st.plotly_chart(fig, key="cmp_curves")
    verdict(rows, group)


def verdict(rows: list, group: dict) -> None:
    st.subheader(t("cmp_verdict"))
    v = compare.verdict_for(rows)
    if v is None:
        st.caption(t("cmp_no_verdict"))
        return
    for kind, sentence in zip((m[0] for m in v.messages), render(v.messages, state.lang())):
        show = st.warning if kind == "negative_transfer" else (st.success if kind in ("winner", "helped") else st.info)
        show(sentence)
    if group.get("ended") and group.get("started") and group.get("estimate_s"):
        st.caption(t("cmp_time_vs", est=duration(group["estimate_s"]), actual=duration(group["ended"] - group["started"])))
    use_best(rows, v.ranking[0], group["id"], too_close=v.winner is None)


def use_best(rows: list, strategy: str, group_id: str, too_close: bool = False) -> None:
    """A button that makes the top finished run this session's run and opens Evaluate (before, Evaluate
    opened the newest run after a comparison: its last member, from scratch). When the verdict is
    too close to call, its label says the pick is only the highest accuracy, not a winner."""
    best = next((r for r in rows if r["strategy"] == strategy and r.get("status") == "Finished"), None)
    if best is None or not best.get("run_dir"):
        return
    label = t("cmp_use_top_close" if too_close else "cmp_use_best", strategy=t(f"strat_{strategy}"))
    if st.button(label, key=f"cmp_use_{group_id}",
                 help=t("cmp_use_best_help"), icon=":material/arrow_forward:"):
        state.follow_run(best["run_dir"])
        st.switch_page("app_pages/evaluate.py", query_params=dict(st.query_params))


def live(group_path) -> None:
    group = compare.read_group(group_path)
    # running: ended is None and this server process runs it (after a restart it never will)
    running = group.get("ended") is None and group["id"] in state.compare_groups()
    if group.get("error"):  # it ended early: the queue did not answer, the disk filled
        st.error(say(group["error"]), icon=":material/error:")
    leaderboard(group, running)
    if not running and st.session_state.get("cmp_polling"):
        st.session_state.cmp_polling = False
        st.rerun(scope="app")  # the buttons catch up once the comparison ends


st.title(t("cmp_title"))
st.write(t("cmp_intro"))
cfg, ds = state.config(), state.dataset()
groups = compare.list_groups(state.runs_root())
active = state.compare_groups().get(state.current_group_id() or "")
busy = active is not None and not active.done
if ds is None:
    st.info(t("cmp_need_data"))
    st.page_link("app_pages/data.py", label=t("go_data"), icon=":material/photo_library:")
elif cfg.pretrained == "none":
    st.warning(t("cmp_need_weights"))
    st.page_link("app_pages/model.py", label=t("go_model"), icon=":material/neurology:")
else:
    weights = weights_label(cfg.pretrained)
    st.markdown(t("cmp_setup", backbone=cfg.backbone, weights=weights, n_train=len(ds.train), n_val=len(ds.val)))
    with user_errors():
        members, estimate = plan(cfg, ds)
        c1, c2, _ = st.columns([1, 1, 3])
        if c1.button(t("cmp_start", n=len(members)), type="primary", disabled=busy or not members, key="cmp_start"):
            start(members, ds, estimate)
            st.rerun()
        if c2.button(t("cmp_stop"), disabled=not busy, key="cmp_stop"):
            active.stop()
if groups:
    ids = [g["id"] for g in groups]
    current = state.current_group_id()
    if current in ids and st.session_state.get("cmp_followed") != current:
        # a keyed selectbox keeps its value over `index`: without this the picker stayed on the
        # previous comparison, the page polled nothing, and a second comparison's Start button
        # never came back in the browser (bench.app_speed)
        st.session_state.cmp_pick = st.session_state.cmp_followed = current
    pick = st.selectbox(t("cmp_pick"), ids, index=ids.index(current) if current in ids else 0, key="cmp_pick",
                        format_func=lambda i: f"{i} · {next(g['backbone'] for g in groups if g['id'] == i)}")
    path = compare.groups_root(state.runs_root()) / f"{pick}.json"
    polling = next(g for g in groups if g["id"] == pick).get("ended") is None and pick in state.compare_groups()
    st.session_state.cmp_polling = polling
    st.fragment(run_every=POLL_SECONDS if polling else None)(live)(path)
else:
    st.caption(t("cmp_none"))

"""Class board: the teacher sees every student session of a class side by side (hosted mode only).

Listed in the navigation only on a hosted server with TL_TEACHER_TOKEN set; even then nothing
is shown until the token is typed here (compared in constant time, kept in this session only).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from tl_core.base.formatting import duration
from tl_core.jobs import classboard
from tl_core.trust.verdict import render
from ui import state
from ui.text import t


def allowed() -> bool:
    if not classboard.teacher_token_set():
        st.info(t("tb_off"))
        return False
    if classboard.teacher_allowed(st.session_state.get("teacher_ok")):
        return True
    given = st.text_input(t("tb_token"), type="password", key="tb_token")
    if given and classboard.teacher_allowed(given):
        st.session_state.teacher_ok = given
        return True
    st.error(t("tb_refused"), icon=":material/lock:")
    return False


def _run_row(student: str, r: dict | None) -> dict:
    if r is None:  # joined the class, trained nothing yet: listed all the same
        return {t("tb_col_student"): student, t("tb_col_backbone"): "", t("cmp_col_strategy"): "",
                t("cmp_col_status"): t("tb_no_run_yet"), t("cmp_col_acc"): None, t("cmp_col_time"): "",
                t("cmp_col_energy"): None}
    return {t("tb_col_student"): student, t("tb_col_backbone"): r["backbone"],
            t("cmp_col_strategy"): t(f"strat_{r['strategy']}"), t("cmp_col_status"): t(f"status_{r['status'].lower()}"),
            t("cmp_col_acc"): r["acc"], t("cmp_col_time"): duration(r["wall_s"]) if r["wall_s"] is not None else "",
            t("cmp_col_energy"): r["energy_wh"]}


def runs_table(students: list) -> None:
    """One row per run, and one for every student who joined but has no run yet."""
    rows = [_run_row(s["student"], r) for s in students for r in (s["runs"] or [None])]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="tb_runs", column_config={
        t("cmp_col_acc"): st.column_config.NumberColumn(format="percent"),
        t("cmp_col_energy"): st.column_config.NumberColumn(format="%.3g")})


def verdicts(students: list) -> None:
    st.subheader(t("tb_verdicts"))
    shown = 0
    for s in students:
        for c in s["comparisons"]:
            if c["verdict"] is None:
                continue
            shown += 1
            with st.container(border=True):
                st.markdown(f"**{s['student']}** · {c['backbone']} · {c['group']}")
                for sentence in render(c["verdict"]["messages"], state.lang()):
                    st.write(sentence)
    if not shown:
        st.caption(t("tb_no_verdicts"))


st.title(t("tb_title"))
if allowed():
    codes = classboard.class_codes(state.server_settings())
    if not codes:
        st.info(t("tb_none"))
    else:
        code = st.selectbox(t("tb_code"), codes, key="tb_code")
        students = classboard.board(state.server_settings(), code)
        st.caption(t("tb_students", n=len(students), code=code))
        runs_table(students)
        verdicts(students)

"""Plotly figure builders shared by the pages. Inputs are plain lists/dicts (events, metrics)."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.base.events import EpochEnd, Progress

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.2))


def class_counts(counts: dict, title: str, labels: dict) -> go.Figure:
    """Stacked train/val bars per class, from Dataset.counts()."""
    classes = list(counts)
    fig = go.Figure()
    for split in ("train", "val"):
        fig.add_bar(name=labels[split], x=classes, y=[counts[c][split] for c in classes])
    fig.update_layout(barmode="stack", title=title, **_LAYOUT)
    return fig


def epoch_rows(events) -> list[dict]:
    return [{"epoch": e.epoch, **e.metrics} for e in events if isinstance(e, EpochEnd)]


def curves(rows: list[dict], labels: dict) -> go.Figure:
    """Loss and accuracy per epoch, train vs val, side by side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(labels["loss"], labels["acc"]))
    epochs = [r["epoch"] for r in rows]
    # one colour per split on both panels, so the legend reads "blue = train, orange = validation"
    for col, metric in ((1, "loss"), (2, "acc")):
        for split, color in (("train", "#1f77b4"), ("val", "#ff7f0e")):
            ys = [r.get(f"{split}/{metric}") for r in rows]
            fig.add_scatter(x=epochs, y=ys, mode="lines+markers", name=labels[split], legendgroup=split,
                            showlegend=col == 1, line=dict(color=color), row=1, col=col)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text=labels["epoch"], dtick=1)
    fig.update_layout(**_LAYOUT)
    return fig


def smoothed_steps(events, beta: float = 0.9) -> tuple[list[int], list[float], list[float]]:
    """Per-step training loss and its bias-corrected EMA (beta 0.9 ~ a 10-step window)."""
    xs, raw, smooth = [], [], []
    avg = 0.0
    for e in events:
        if isinstance(e, Progress) and e.phase == "train" and e.loss is not None:
            avg = beta * avg + (1 - beta) * e.loss
            xs.append(len(xs) + 1)
            raw.append(e.loss)
            smooth.append(avg / (1 - beta ** len(xs)))
    return xs, raw, smooth


def step_loss(events, labels: dict) -> go.Figure:
    xs, raw, smooth = smoothed_steps(events)
    fig = go.Figure()
    fig.add_scatter(x=xs, y=raw, mode="lines", name=labels["raw"], line=dict(color="#9aa0a6", width=1))
    fig.add_scatter(x=xs, y=smooth, mode="lines", name=labels["smoothed"], line=dict(color="#1f77b4", width=3))
    fig.update_layout(title=labels["step_loss"], xaxis_title=labels["step"], **_LAYOUT)
    return fig


def run_figures(events, key, labels: dict, memo) -> tuple:
    """(epoch curves, step loss) of a run, either None before its first point; `memo` (the page's
    session state) keeps them until an event arrives. A full fine-tuning step takes seconds while
    the Train page polls twice a second, and building the two figures took the web process 170-190
    ms each time (measured at load average 8 on 2 cores; serialising them, which every poll still
    does, 14 ms): CPU taken from the training (issue 21)."""
    key = (key, len(events))  # events only grow during a run
    kept = memo.get("run_figures")
    if kept is not None and kept[0] == key:
        return kept[1]
    rows = epoch_rows(events)
    curves_fig = curves(rows, labels) if rows else None
    steps_fig = step_loss(events, labels) if any(getattr(e, "phase", "") == "train" for e in events) else None
    memo["run_figures"] = (key, (curves_fig, steps_fig))
    return curves_fig, steps_fig


def l2_search(search, labels: dict) -> go.Figure:
    """The solved head's cross-validated accuracy per L2 strength (log axis), the chosen one marked."""
    fig = go.Figure()
    fig.add_scatter(x=search.l2, y=search.cv_acc, mode="lines+markers", name=labels["l2_y"],
                    line=dict(color="#1f77b4"), showlegend=False)
    if search.chosen is not None and search.chosen in search.l2:
        acc = search.cv_acc[search.l2.index(search.chosen)]
        fig.add_scatter(x=[search.chosen], y=[acc], mode="markers+text", name=labels["l2_chosen"],
                        marker=dict(symbol="star", size=16, color="#ff7f0e"), text=[labels["l2_chosen"]],
                        textposition="top center", showlegend=False)
    fig.update_xaxes(type="log", autorange="reversed", title_text=labels["l2_x"])  # strong (left) to weak
    fig.update_yaxes(tickformat=".0%", title_text=labels["l2_y"])
    fig.update_layout(title=labels["l2"], **_LAYOUT)
    return fig


def confusion(matrix: list[list[int]], classes: list[str], normalise: bool, labels: dict) -> go.Figure:
    if normalise:
        z = [[v / max(1, sum(row)) for v in row] for row in matrix]
        text = [[f"{v:.0%}" for v in row] for row in z]
    else:
        z, text = matrix, [[str(v) for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, text=text, texttemplate="%{text}",
                               colorscale="Blues", showscale=False))
    fig.update_layout(xaxis_title=labels["pred"], yaxis_title=labels["true"],
                      yaxis=dict(autorange="reversed"), **{**_LAYOUT, "height": 140 + 40 * len(classes)})
    return fig


def compare(runs: dict[str, list[dict]], metric: str, title: str, labels: dict) -> go.Figure:
    """One line per run for `metric` (e.g. "val/acc") against epoch."""
    fig = go.Figure()
    for name, rows in runs.items():
        fig.add_scatter(x=[r["epoch"] for r in rows], y=[r.get(metric) for r in rows],
                        mode="lines+markers", name=name)
    fig.update_layout(title=title, xaxis_title=labels["epoch"], **_LAYOUT)
    return fig


def top_k(pairs: list[tuple[str, float]], title: str) -> go.Figure:
    names = [p[0] for p in pairs][::-1]  # best on top
    probs = [p[1] for p in pairs][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", text=[f"{p:.1%}" for p in probs],
                           textposition="auto"))
    fig.update_layout(title=title, xaxis=dict(range=[0, 1], tickformat=".0%"),
                      **{**_LAYOUT, "height": 120 + 36 * len(pairs)})
    return fig


def scenarios(per_class: int, score: float | None, small_below: int, similar_from: float, labels: dict) -> go.Figure:
    """Seed 001's four scenarios as a chart (size x similarity): this dataset as a point once its
    similarity is measured, before that a line at its size."""
    fig = go.Figure()
    x_max = max(1000, per_class * 2)
    for (x0, x1), (y0, y1), key in (((1, small_below), (similar_from, 1), "small_similar"),
                                    ((small_below, x_max), (similar_from, 1), "large_similar"),
                                    ((1, small_below), (0, similar_from), "small_different"),
                                    ((small_below, x_max), (0, similar_from), "large_different")):
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(width=1, color="#9aa0a6"),
                      fillcolor="rgba(31,119,180,0.06)", layer="below")
        fig.add_annotation(x=math.log10(math.sqrt(x0 * x1)), y=(y0 + y1) / 2, text=labels[key], showarrow=False,
                           font=dict(size=12, color="#555"))
    if score is None:
        # size is known, similarity is not: a line across both rows, no point at a made-up height
        # shapes take data values on a log axis, annotations take log10 of them
        fig.add_shape(type="line", x0=max(1, per_class), x1=max(1, per_class), y0=0, y1=1,
                      line=dict(color="#ff7f0e", width=2, dash="dash"))
        fig.add_annotation(x=math.log10(max(1, per_class)), y=1, yanchor="bottom", showarrow=False,
                           text=labels["you_unmeasured"], font=dict(color="#ff7f0e"))
    else:
        fig.add_scatter(x=[max(1, per_class)], y=[score], mode="markers+text", text=[labels["you"]],
                        textposition="top center", marker=dict(size=14, color="#ff7f0e"), showlegend=False)
    fig.update_xaxes(type="log", range=[0, math.log10(x_max)], title_text=labels["x"])
    fig.update_yaxes(range=[0, 1], title_text=labels["y"])
    fig.update_layout(**{**_LAYOUT, "height": 300})
    return fig

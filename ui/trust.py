"""Charts for trusting data and model: reliability diagram, feature map with images on hover.

Plain inputs (lists, arrays, paths); no torch here.
"""
from __future__ import annotations

import json

import plotly.graph_objects as go
from plotly.colors import qualitative

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=340, legend=dict(orientation="h", y=-0.25))


def reliability(before: list[dict], after: list[dict], labels: dict) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling; diagonal = perfect."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name=labels["perfect"])
    for rows, name, colour in ((before, labels["before"], "#d62728"), (after, labels["after"], "#1f77b4")):
        fig.add_scatter(x=[r["conf"] for r in rows], y=[r["acc"] for r in rows], mode="lines+markers", name=name,
                        marker=dict(size=[6 + 20 * (r["count"] / max(1, max(x["count"] for x in rows)))
                                          for r in rows], color=colour),
                        customdata=[r["count"] for r in rows],
                        hovertemplate="%{x:.0%} → %{y:.0%} (%{customdata})<extra></extra>")
    fig.update_layout(title=labels["title"], xaxis=dict(title=labels["x"], range=[0, 1], tickformat=".0%"),
                      yaxis=dict(title=labels["y"], range=[0, 1.02], tickformat=".0%"), **_LAYOUT)
    return fig


def ood_histogram(in_scores: list, out_scores: list, threshold: float, labels: dict) -> go.Figure:
    """Distances to the training images: validation (in) and the user's outside photos (out), the line."""
    fig = go.Figure()
    fig.add_histogram(x=in_scores, name=labels["in"], opacity=0.7, marker_color="#1f77b4", nbinsx=30)
    if out_scores:
        fig.add_histogram(x=out_scores, name=labels["out"], opacity=0.7, marker_color="#d62728", nbinsx=30)
    fig.add_vline(x=threshold, line=dict(color="black", dash="dash"), annotation_text=labels["line"])
    fig.update_layout(barmode="overlay", xaxis=dict(title=labels["x"]), yaxis=dict(title=labels["y"]), **_LAYOUT)
    return fig


def data_curve(n: list, overall: dict, per_class: dict, labels: dict) -> go.Figure:
    """Validation accuracy against training images: all classes with its seed band, and each class."""
    fig = go.Figure()
    lo = [m - s for m, s in zip(overall["mean"], overall["std"])]
    hi = [m + s for m, s in zip(overall["mean"], overall["std"])]
    fig.add_scatter(x=n + n[::-1], y=hi + lo[::-1], fill="toself", fillcolor="rgba(31,119,180,0.2)",
                    line=dict(width=0), hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=n, y=overall["mean"], mode="lines+markers", name=labels["overall"],
                    line=dict(color="#1f77b4", width=3))
    for name, stats in per_class.items():
        fig.add_scatter(x=n, y=stats["mean"], mode="lines", name=name, line=dict(width=1, dash="dot"))
    fig.update_layout(xaxis=dict(title=labels["x"]), yaxis=dict(title=labels["y"], tickformat=".0%"), **_LAYOUT)
    return fig


def feature_map(xy, labels: list[int], classes: list[str], names: list[str], thumbs: list[str],
                title: str) -> go.Figure:
    """2-D map of the features, one colour per class; customdata carries the hover image."""
    fig = go.Figure()
    palette = qualitative.Plotly + qualitative.Dark24  # explicit: the standalone page has no theme colours
    for c, cls in enumerate(classes):
        idx = [i for i, y in enumerate(labels) if y == c]
        fig.add_scatter(x=[float(xy[i][0]) for i in idx], y=[float(xy[i][1]) for i in idx], mode="markers",
                        name=cls, marker=dict(size=7, opacity=0.8, color=palette[c % len(palette)]),
                        customdata=[[thumbs[i], f"{cls}: {names[i]}"] for i in idx],
                        hovertemplate="%{customdata[1]}<extra></extra>")
    fig.update_layout(title=title, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      margin=dict(l=10, r=10, t=40, b=10), height=520, legend=dict(orientation="h", y=-0.05))
    return fig


_HOVER_JS = """
var plot = document.getElementById('{plot_id}');
var box = document.createElement('div');
box.style.cssText = 'position:fixed;top:48px;right:12px;display:none;background:#fff;border:1px solid #ccc;'
  + 'padding:4px;font:12px sans-serif;z-index:10;text-align:center;max-width:180px';
var img = document.createElement('img');
img.style.cssText = 'width:160px;height:160px;object-fit:cover;display:block';
var cap = document.createElement('div');
box.appendChild(img); box.appendChild(cap); document.body.appendChild(box);
plot.on('plotly_hover', function (ev) {
  var d = ev.points[0].customdata; img.src = d[0]; cap.textContent = d[1]; box.style.display = 'block';
});
plot.on('plotly_unhover', function () { box.style.display = 'none'; });
"""


def hover_image_html(fig: go.Figure) -> str:
    """A standalone page (plotly.js inlined: works offline) showing the point's image on hover.

    Plotly's own hover labels are text only; Streamlit's chart has no hover callback.
    """
    return fig.to_html(include_plotlyjs=True, full_html=True, post_script=_HOVER_JS,
                       config={"displaylogo": False}, default_width="100%", default_height="520px")


def json_line(d: dict) -> str:
    return json.dumps(d, ensure_ascii=False)

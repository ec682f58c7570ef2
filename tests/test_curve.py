"""'Would more images help?': the curve rises where data is short and is flat where it is not."""
from __future__ import annotations

import numpy as np
import pytest

from tl_core.base.messages import Message
from tl_core.trust import curve


def gaussian_task(n_per_class: int, n_val: int, dims: int, separation: float, classes: int = 3, seed: int = 0):
    """Classes as Gaussian clouds (unit noise per dimension) around centres `separation` apart: the
    separation sets how hard, `dims` how much data a linear head needs (more dimensions to estimate
    = more images before it is saturated)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)) * separation / np.sqrt(2 * dims)

    def draw(n):
        y = np.repeat(np.arange(classes), n)
        return (centres[y] + rng.normal(size=(len(y), dims))).astype(np.float32), y

    return (*draw(n_per_class), *draw(n_val))


def test_subsets_are_stratified_and_never_empty():
    y = np.repeat([0, 1, 2], [50, 10, 3])
    rows = curve.stratified_subset(y, 0.2, np.random.default_rng(0))
    assert np.bincount(y[rows]).tolist() == [10, 2, 2]
    assert len(np.unique(rows)) == len(rows)


def test_the_curve_rises_on_a_data_starved_task_and_names_the_classes():
    x, y, xv, yv = gaussian_task(n_per_class=40, n_val=150, dims=256, separation=3.0, seed=1)
    c = curve.measure(x, y, xv, yv, 3, l2=1e-3)
    s = curve.summary(c, ["glass", "metal", "paper"])
    assert s["overall"]["mean"][-1] > s["overall"]["mean"][0]
    message = Message.from_dict(s["reading"])
    assert message.kind == "curve.rising", s["reading_en"]
    assert s["reading_en"].startswith("Still rising") and "would likely help" in s["reading_en"]
    assert "twice the images" in s["reading_en"] and str(2 * s["n"][-1]) in s["reading_en"]
    assert any(cls in s["reading_en"] for cls in ("glass", "metal", "paper"))
    assert "Todavía sube" in message.render("es")


def test_the_curve_is_flat_on_a_saturated_task():
    x, y, xv, yv = gaussian_task(n_per_class=60, n_val=60, dims=8, separation=12.0, seed=2)
    s = curve.summary(curve.measure(x, y, xv, yv, 3, l2=1e-2), ["a", "b", "c"])
    assert s["overall"]["mean"][0] > 0.97
    assert s["reading"]["kind"] == "curve.flat", s["reading_en"]
    assert "will not help much" in s["reading_en"] and "fine-tuning or a bigger backbone" in s["reading_en"]


def test_seeds_that_disagree_more_than_the_gain_are_too_wide_to_tell():
    # a gain of 3 points per doubling, and seeds 10 points apart
    fake = {"n": [20, 40, 60, 80, 100], "overall": [[.6, .7], [.60, .70], [.62, .72], [.63, .73], [.69]],
            "per_class": []}
    message = curve.reading(fake, ["a", "b"])
    assert message.kind == "curve.too_wide"
    assert message.render("en").startswith("Too uncertain to tell")
    assert 2.0 < curve.gain_per_doubling(fake["n"], fake["overall"]) < curve.spread(fake["overall"]) == pytest.approx(10.0)

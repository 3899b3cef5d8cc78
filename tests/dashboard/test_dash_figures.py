"""Figure builders and the HTML report, checked on fig.data without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import cluster_figures_layer as lfig
from dashboard import figures, prepare, report


def test_run_colors_baseline_blue_then_orange():
    c = figures.run_colors(["base", "sgg", "other"], "base")
    assert c == {
        "base": figures.BASELINE_COLOR,
        "sgg": figures.PALETTE[0],
        "other": figures.PALETTE[1],
    }


def test_loss_lines_smooth_before_downsampling_and_figure():
    n = 50_000
    steps = pd.DataFrame({"step": np.arange(1, n + 1), "loss": np.linspace(5, 1, n)})
    steps.loc[100, "loss"] = np.nan
    smooth, raw = prepare.loss_lines({"a": steps, "b": steps}, "step", 0.9, n_out=500)
    assert set(smooth["run"]) == {"a", "b"} and len(smooth) <= 2 * 600
    assert len(raw) > 0
    colors = figures.run_colors(["a", "b"], "a")
    fig = figures.line_figure(smooth, "step", "loss", "run", colors, raw=raw, log_y=True)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert "a" in names and "b" in names and "a (raw)" in names
    bold = next(t for t in fig.data if t.name == "a")
    assert bold.line.color == figures.BASELINE_COLOR
    assert fig.layout.yaxis.type == "log"


def test_empty_inputs_give_a_message_not_an_error():
    for fig in (
        figures.line_figure(pd.DataFrame(), "x", "y", "run", {}),
        figures.heatmap_figure(pd.DataFrame(), title="t", x_title="", z_title="z"),
        figures.sweep_figure(pd.DataFrame(), key="lr"),
        lfig.transition_figure(pd.DataFrame(), title="t"),
    ):
        assert isinstance(fig, go.Figure)
        assert fig.layout.annotations


def test_grad_figure_marks_spikes():
    g = np.ones(5000)
    g[3000] = 10
    steps = pd.DataFrame({"step": np.arange(1, 5001), "grad_norm": g})
    lines, bands, spikes = prepare.grad_lines({"a": steps}, "step")
    assert spikes["step"].tolist() == [3001]
    fig = figures.grad_norm_figure(lines, bands, spikes, "step", {"a": "#000000"})
    assert any(t.name == "a: gradient spikes, 1 per run" for t in fig.data)


def test_heatmap_has_layer_rows():
    p = pd.DataFrame([[1.0, 2.0], [3.0, np.nan]], index=["l0", "l1"], columns=[10, 20])
    fig = figures.heatmap_figure(p, title="t", x_title="Step", z_title="g")
    assert list(fig.data[0].y) == ["l0", "l1"]
    assert fig.data[0].z[1][1] is None


def test_factor_heatmap_is_log_scaled_around_one_without_negative_ticks():
    p = pd.DataFrame([[0.5, 1.0], [2.0, 4.3]], index=["l0", "l1"], columns=[100, 200])
    fig = figures.heatmap_figure(p, title="t", x_title="Step", z_title="factor", multiplier=True)
    hm = fig.data[0]
    assert hm.z[0][0] == pytest.approx(-1.0) and hm.z[1][0] == pytest.approx(1.0)
    assert hm.zmin == pytest.approx(-hm.zmax) and hm.zmid == 0
    assert hm.customdata[1][1] == pytest.approx(4.3)  # hover shows the factor itself
    assert all(t.startswith("x") and float(t[1:]) > 0 for t in hm.colorbar.ticktext)
    assert "x1" in hm.colorbar.ticktext and "x4" in hm.colorbar.ticktext


def test_sweep_figure_marks_divergence():
    df = pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "optimizer": ["adamw", "adamw", "sgg"],
            "value": [1e-3, 1e-2, 1e-2],
            "final_loss": [3.0, np.nan, 3.1],
        }
    )
    fig = figures.sweep_figure(df, key="lr")
    assert [t.name for t in fig.data] == ["adamw", "adamw: diverged", "sgg"]


def test_report_is_self_contained():
    fig = figures.bar_figure(
        pd.DataFrame({"run": ["a"], "v": [1.0]}), "run", "v", {}, title="t", y_title="v"
    )
    html = report.build_report(
        "T <x>", pd.DataFrame({"Run": ["a"]}), ["**a** is fast"], [fig, fig], ["note"]
    )
    assert "T &lt;x&gt;" in html and "<b>a</b> is fast" in html
    assert html.count("plotly.js v") >= 1  # the library itself is inlined
    assert '<script src="http' not in html


def test_log_ticks_are_readable():
    assert figures.log_ticks(0.3, 40) == [0.5, 1, 2, 5, 10, 20, 50]
    assert len(figures.log_ticks(1e-6, 1e3)) <= 12
    assert figures.log_ticks(0, 1) == []


def test_loss_difference_is_run_minus_baseline_per_step():
    step = np.arange(1, 101)
    base = pd.DataFrame({"step": step, "loss": np.full(100, 3.0)})
    run = pd.DataFrame({"step": step[:50], "loss": np.full(50, 2.5)})
    d = prepare.loss_difference({"b": base, "r": run}, "b", "step", 0.9)
    assert set(d["run"]) == {"r"} and len(d) == 50
    np.testing.assert_allclose(d["diff"], -0.5)


def test_group_mean_and_band_over_seeds():
    step = np.arange(1, 101)
    a = pd.DataFrame({"step": step, "loss": np.full(100, 2.0)})
    b = pd.DataFrame({"step": step[:80], "loss": np.full(80, 4.0)})  # shorter: common steps
    means = prepare.group_mean_tables({"g": [a, b], "one": [a]}, ("loss",))
    assert means["one"] is a
    assert len(means["g"]) == 80 and np.allclose(means["g"]["loss"], 3.0)
    band = prepare.group_bands({"g": [a, b], "one": [a]}, "step", "loss", 0.0, "minmax")
    assert set(band["run"]) == {"g"}  # a single run has no band
    assert np.allclose(band["lo"], 2.0) and np.allclose(band["hi"], 4.0)
    sd = prepare.group_bands({"g": [a, b]}, "step", "loss", 0.0, "sd")
    assert np.allclose(sd["hi"] - sd["lo"], 2 * np.std([2.0, 4.0], ddof=1))
    with pytest.raises(ValueError, match="band"):
        prepare.group_bands({"g": [a, b]}, "step", "loss", 0.0, "iqr")


def test_stacked_figures_share_one_x_axis():
    f1 = figures.line_figure(
        pd.DataFrame({"run": ["a"], "x": [1], "y": [2.0]}), "x", "y", "run", {}
    )
    f2 = figures.line_figure(
        pd.DataFrame({"run": ["a"], "x": [1], "y": [3.0]}), "x", "y", "run", {}
    )
    fig = figures.stacked([f1, f2])
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"
    assert fig.layout.yaxis.hoverformat == ".4g"
    assert sum(bool(t.showlegend is not False) for t in fig.data) == 1  # one legend entry per run

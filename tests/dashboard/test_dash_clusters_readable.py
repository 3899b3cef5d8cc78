"""Issue 20, item 4: the Clusters tab readable at 1,280 px: 20+ distinct colours, no line hidden
under another (dashes, markers, one panel per group), end markers, humane layer names with the
raw name on hover, a heatmap colour scale that covers the data and is symmetric around 1 in log
space, an adaptive-lr axis that does not reach lr / eps with its arithmetic said, every cell of
the flow table labelled, titles clear of Plotly's toolbar, legend order = stack order."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import cluster_figures_layer as lfig
from dashboard import cluster_figures_manager as mfig
from dashboard import cluster_words_layer as lwords
from dashboard import cluster_words_manager as mwords
from dashboard import palette
from dashboard.layer_names import humane_name, humane_names, layer_kind, layer_type
from dashboard.metrics import clusters
from dashboard.metrics.cluster_effect import DOWN, SAME, UP


def _lab(hex_color: str) -> np.ndarray:
    """sRGB -> CIELAB (D65), enough to measure how far apart two colours look."""
    rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("colors", [palette.GROUP_COLORS, palette.SERIES_COLORS])
def test_twenty_colours_look_distinct(colors):
    assert len(colors) >= 20
    closest = min(
        float(np.linalg.norm(_lab(a) - _lab(b))) for a, b in itertools.combinations(colors[:20], 2)
    )
    assert closest > 25  # dE: clearly different side by side


def test_lines_differ_in_more_than_colour():
    styles = [palette.line_style(i) for i in range(24)]
    assert len({(s["color"], s["dash"], s["symbol"]) for s in styles}) == 24
    for a, b in itertools.pairwise(styles):
        assert a["dash"] != b["dash"] and a["symbol"] != b["symbol"]
    groups = [palette.group_style(c) for c in range(20)]
    assert len({g["color"] for g in groups}) == 20


def test_equal_groups_stay_two_lines():
    """Groups 0 and 2 with the same factors (both tails at the lower bound) are drawn with
    different dashes and markers, so the one drawn last does not hide the other."""
    df = pd.DataFrame(
        {
            "step": [1, 2] * 3,
            "cluster": [0, 0, 1, 1, 2, 2],
            "factor": [0.9, 0.8, 1.2, 1.3, 0.9, 0.8],
        }
    )
    fig = lfig.cluster_lines(df, "factor", title="t", y_title="f")
    g0, g2 = fig.data[0], fig.data[2]
    assert list(g0.y) == list(g2.y)
    assert g0.line.dash != g2.line.dash and g0.marker.symbol != g2.marker.symbol


def test_a_line_that_stops_early_gets_an_end_marker():
    df = pd.DataFrame(
        {"step": [1, 2, 3, 1, 2, 3], "cluster": [0, 0, 0, 1, 1, 1],
         "factor": [1.0, 1.1, 1.2, 0.9, np.nan, np.nan]}
    )  # fmt: skip
    fig = lfig.cluster_lines(df, "factor", title="t", y_title="f")
    ends = [t for t in fig.data if t.marker.symbol == "x-thin"]
    assert len(ends) == 1 and list(ends[0].x) == [1] and "group 1" in ends[0].name
    series = {
        "a": pd.DataFrame({"step": [1, 2, 3], f"share_{UP}": [0, 0.1, 0.2],
                           f"share_{DOWN}": [0, 0, 0.1]}),
        "b (diverged)": pd.DataFrame({"step": [1, 2], f"share_{UP}": [0, 0.3],
                                      f"share_{DOWN}": [0, 0.2]}),
    }  # fmt: skip
    fig = mfig.effect_lines_figure(
        series, ended={"b (diverged)": "no re-cluster after step 2"}, title="t"
    )
    ends = [t for t in fig.data if t.marker.symbol == "x-thin"]
    assert len(ends) == 2 and all(list(t.x) == [2] for t in ends)  # one per panel
    lines = [t for t in fig.data if t.showlegend]
    assert lines[0].line.color != lines[1].line.color


def test_lines_over_training_carry_the_sidebars_band():
    """Finding 8: the lines over training had no band, whatever the sidebar said."""
    cols = {"": [0.1, 0.2], "_min": [0.05, 0.1], "_max": [0.2, 0.3], "_sd": [0.01, 0.02]}
    t = pd.DataFrame({"step": [1, 2], **{f"share_{UP}{k}": v for k, v in cols.items()},
                      **{f"share_{DOWN}{k}": [0.0, 0.0] for k in cols}})  # fmt: skip
    for band, lo, hi in (("minmax", [0.05, 0.1], [0.2, 0.3]), ("sd", [0.09, 0.18], [0.11, 0.22])):
        fig = mfig.effect_lines_figure({"a": t}, title="t", band_kind=band)
        fills = [f for f in fig.data if f.fill == "tonexty"]
        assert fills and list(fills[0].y) == pytest.approx(hi)
        i = list(fig.data).index(fills[0])
        assert list(fig.data[i - 1].y) == pytest.approx(lo)


def test_stacked_legend_lists_the_top_of_the_stack_first():
    df = pd.DataFrame({"step": [1, 1, 1], "cluster": [0, 1, 2], "share": [0.2, 0.5, 0.3]})
    fig = lfig.cluster_lines(df, "share", title="t", y_title="s", stacked=True)
    # plotly stacks traces in order (group 0 at the bottom); "reversed" lists group 2 first
    assert [t.name for t in fig.data] == ["group 0", "group 1", "group 2"]
    assert fig.layout.legend.traceorder == "reversed"


@pytest.mark.parametrize(
    ("raw", "humane", "kind"),
    [
        ("model.layers.3.self_attn.o_proj.weight", "layer 3 attention output", "attention"),
        ("model.layers.0.mlp.down_proj.weight", "layer 0 MLP down", "MLP"),
        ("model.embed_tokens.weight", "token embeddings", "embeddings"),
        ("lm_head.weight", "output head", "output head"),
        ("model.norm.weight", "final norm", "norm layers"),
        ("model.layers.2.input_layernorm.weight", "layer 2 norm before attention", "norm layers"),
        ("transformer.h.5.attn.c_attn.weight", "layer 5 attention query/key/value", "attention"),
        ("transformer.h.5.mlp.c_proj.bias", "layer 5 MLP out (bias)", "MLP"),
        ("blocks.0.mlp.fc.weight", "layer 0 MLP in", "MLP"),
        ("encoder.layer.1.attention.output.dense.weight", "layer 1 attention output", "attention"),
        ("encoder.layer.1.output.dense.weight", "layer 1 MLP out", "MLP"),
        ("_orig_mod.model.layers.1.self_attn.q_proj.weight", "layer 1 attention query",
         "attention"),
        ("conv1.weight", "conv1", "other"),
    ],
)  # fmt: skip
def test_humane_layer_names(raw, humane, kind):
    assert humane_name(raw) == humane and layer_type(raw) == kind


def test_layer_kind_drops_the_block_number():
    assert layer_kind("model.layers.3.self_attn.v_proj.weight") == "attention value"
    assert layer_kind("model.embed_tokens.weight") == "token embeddings"
    assert layer_kind("conv1.weight") == "other"


def test_humane_names_stay_unique():
    names = humane_names(["a.q_proj.weight", "b.q_proj.weight"])
    assert len(set(names.values())) == 2 and all("[" in v for v in names.values())


def test_overview_shows_humane_names_and_the_raw_name_on_hover():
    piv = pd.DataFrame(
        [[1.0, 1.2]], index=["model.layers.3.self_attn.o_proj.weight"], columns=[50, 100]
    )
    names = humane_names(list(piv.index))
    fig = lfig.overview_heatmap(piv, names, title="t")
    assert list(fig.data[0].y) == ["layer 3 attention output"]
    assert fig.data[0].text[0][0] == "model.layers.3.self_attn.o_proj.weight"
    assert "raw name: %{text}" in fig.data[0].hovertemplate


def test_heatmap_colours_cover_the_data_symmetric_in_log_space():
    """Finding 9: ticks x0.8 / x1 / x1.25 only, 1.7-1.9 saturated without a tick, 0.92-0.97 and
    1.03-1.1 almost white."""
    piv = pd.DataFrame([[0.898, 0.95, 1.0], [1.05, 1.5, 1.96]], index=["a", "b"],
                       columns=[50, 100, 150])  # fmt: skip
    fig = lfig.overview_heatmap(piv, {}, title="t")
    hm = fig.data[0]
    assert (hm.zmin, hm.zmax, hm.zmid) == (-1, 1, 0)
    z = np.array(hm.z, dtype=float)
    assert z.max() == pytest.approx(1.0)  # the highest factor reaches the end of the scale
    ticks = list(hm.colorbar.ticktext)
    assert "0.898x lowest" in ticks and ticks[-1] == "1.96x highest"
    assert {"0.8x", "1x", "1.05x", "1.1x", "1.25x", "1.5x"} <= set(ticks)
    assert "0.9x" not in ticks  # too near 0.898x: it would print over it
    vals = list(hm.colorbar.tickvals)
    assert vals == sorted(vals) and min(np.diff(vals)) > 0.08  # no two ticks on each other
    m = np.log(1.96)
    sq = lfig._squash
    assert sq(0.5, m) == pytest.approx(-sq(2.0, m))  # symmetric in log space
    assert abs(sq(0.95, m)) > 0.2 and abs(sq(1.05, m)) > 0.2  # visibly coloured, not white
    assert hm.customdata[1][2] == pytest.approx(1.96)  # hover shows the factor itself


def _alr_hist(counts, lo=0.01, hi=4e5):
    edges = np.logspace(np.log10(lo), np.log10(hi), len(counts) + 1)
    return pd.DataFrame(
        {"cluster": 0, "bin_left": edges[:-1], "bin_right": edges[1:], "count": counts}
    )


def test_adaptive_lr_axis_leaves_the_lr_over_eps_pile_off():
    # 16 log bins from 0.01 to 4e5 (lr / eps = 4e-3 / 1e-8): most weights around 1-100, 58% in
    # the top bin (zero gradient so far), a few in between; the pile: bins within 100x of 4e5
    counts = [50, 100, 500, 1500, 2000, 3000, 3000, 1300, 400, 190, 50, 30, 100, 100, 40, 19_000]
    h = _alr_hist(counts)
    v = clusters.alr_view(h, 4e5)
    assert v.lo == pytest.approx(0.01) and v.hi < 1e4  # no longer 4e5: the pile from 4e3 up is off
    assert v.pile == pytest.approx(sum(counts[12:]) / sum(counts))
    assert v.hi <= v.pile_from and v.pile_from >= 4e5 / clusters.CEILING_NEAR
    note = lwords.alr_note(v, 4e5, 4e-3, 1e-8, 150, 4e-3)
    assert "lr / eps = 0.004 / 1e-8 = 400,000" in note and "gradient has been zero" in note
    assert f"at {mwords.plain(v.pile_from)} or above" in note  # where the pile starts
    assert "its peak" not in note  # lr at this step is the peak
    assert "Each curve's shares add up to 1 with these weights" in note
    later = lwords.alr_note(v, 3.71e5, 3.71e-3, 1e-8, 150, 4e-3)
    assert "lr / eps = 0.00371 / 1e-8 = 371,000 (lr is the learning rate at step 150, after " \
           "the schedule; its peak is 0.004)" in later  # fmt: skip
    # without lr / eps: a right-edge pile set apart by empty bins is left off
    gap = [10, 500, 3000, 500, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5000]
    v = clusters.alr_view(_alr_hist(gap), float("nan"))
    assert v.pile == pytest.approx(5000 / sum(gap)) and v.hi < 3  # the 5th bin ends at 2.37


def test_numbers_read_without_exponents():
    assert mwords.sci(1e-8) == "1e-8" and mwords.sci(2.5e-7) == "2.5e-7"
    assert mwords.plain(371_425.6) == "371,426" and mwords.plain(0.00371) == "0.00371"


def test_clipped_histogram_axis():
    h = pd.DataFrame({"cluster": [0, 0], "center": [1.0, 4e5], "share": [0.5, 0.5]})
    fig = lfig.histogram_panels(h, title="t", x_title="x", log_x=True, x_range=(0.01, 100.0))
    assert tuple(fig.layout.xaxis.range) == pytest.approx((-2.0, 2.0))


def test_histograms_give_each_group_its_own_panel_over_the_reference():
    """Finding 10: group 2's curve lay exactly under group 0's, and group 1's spike covered
    the black reference line: one panel per group, the reference a grey area behind each."""
    h = pd.DataFrame({"cluster": [0, 0, 1, 1, 2, 2], "center": [1.0, 2.0] * 3,
                      "share": [0.5, 0.5, 0.9, 0.1, 0.5, 0.5]})  # fmt: skip
    ref = pd.DataFrame({"center": [1.0, 2.0], "share": [0.6, 0.4]})
    fig = lfig.histogram_panels(
        h, title="t", x_title="x", log_x=False, reference=ref, reference_name="adamw: whole layer"
    )
    groups = [t for t in fig.data if t.name.startswith("group")]
    refs = [t for t in fig.data if t.name == "adamw: whole layer"]
    assert len({t.xaxis for t in groups}) == 3  # groups 0 and 2 (equal) in two panels
    assert len(refs) == 3 and all(t.fill == "tozeroy" for t in refs)
    assert sum(bool(t.showlegend is not False) for t in refs) == 1
    assert fig.layout.yaxis.title.text and not fig.layout.yaxis2.title.text


def test_effect_labels_state_the_thresholds():
    labels = mfig.EFFECT_LABELS
    assert labels[UP] == "bigger steps (> 1.1x)" and labels[DOWN] == "smaller steps (< 0.91x)"
    assert labels[SAME] == "about AdamW's step"
    assert "0.91x (= 1/1.1)" in mwords.THRESHOLDS


def test_where_the_weights_went_labels_every_cell():
    """Finding 16: the flow diagram left small groups unlabelled and drew labels over flows;
    a table of colour writes every move, tiny ones as '<0.1%'."""
    m = pd.DataFrame({"from_cluster": [0, 0, 1, 2], "to_cluster": [0, 1, 1, 2],
                      "count": [9700, 5, 200, 95]})  # fmt: skip
    shares = clusters.transition_shares(m)
    assert len(shares) == 9 and shares["share"].sum() == pytest.approx(1.0)
    fig = lfig.transition_figure(shares, title="t")
    text = np.array(fig.data[0].text, dtype=object)
    assert text.shape == (3, 3) and all(t for t in text.ravel())
    assert text[0][0] == "97%" and text[0][1] == "<0.1%" and text[0][2] == "0"
    assert fig.data[0].y[0] == "group 0 (97% before)"
    assert "(98% after)" in list(fig.data[0].x)[1] or "(2% after)" in list(fig.data[0].x)[1]
    assert lfig.transition_figure(clusters.transition_shares(None), title="t").layout.annotations


def _churn():
    c = pd.DataFrame({"step": [1, 2], "changed_group": [0.1, 0.2], "changed_effect": [0.0, 0.1]})
    return lfig.churn_figure(c, None, "x")


def _lines():
    t = pd.DataFrame({"step": [1], f"share_{UP}": [0.1], f"share_{DOWN}": [0.0]})
    return mfig.effect_lines_figure({"a": t}, title="t")


def _heatmap():
    piv = pd.DataFrame([[1.0, 1.1]], index=["a"], columns=[1, 2])
    return lfig.overview_heatmap(piv, {}, title="t")


@pytest.mark.parametrize("fig", [_churn, _lines, _heatmap])
def test_titles_leave_room_for_plotlys_toolbar(fig):
    """Finding 15: the toolbar covered titles on hover; they sit below its row now."""
    f = fig()
    assert f.layout.title.pad.t >= mfig.TOOLBAR_ROOM
    assert f.layout.title.yref == "container" and f.layout.title.yanchor == "top"
    assert f.layout.margin.t >= f.layout.title.pad.t + 40


def test_every_bar_text_and_title_fits(tmp_path):
    """Short titles: half-width charts at 1,280 px hold ~40 characters of title."""
    fig = lfig.churn_figure(pd.DataFrame(), pd.DataFrame(), "x")
    assert len(fig.layout.title.text) <= 40
    r = pd.DataFrame(
        {"layer": "a", "position": [1], "step": [1], "cluster": [0], "factor": [1.0],
         "effect": [SAME], "weight": [1.0], "row": [0]}
    )  # fmt: skip
    assert len(lfig.raster_figure(r, "a").layout.title.text) <= 45
    assert isinstance(lfig.raster_figure(r, "a"), go.Figure)

"""Issue 20, item 1: what SGG set for the model's step sizes, as shares of weights, in bullets
and figures from the same numbers; on runs with pinned factors (known answers) and on the sample
runs. Said as a setting (a bigger or smaller step than AdamW's), never as an outcome; every
number of a seed group with its interval; SGG against its shadow with a verdict."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dash_clusters_fixtures import FC, PINNED, PROJ, QKV, TOTAL, expected_shares, pinned_run
from scipy import stats

from dashboard import cluster_figures_manager as mfig
from dashboard import cluster_words_manager as mwords
from dashboard import loader, palette
from dashboard.layer_names import NORMS
from dashboard.metrics import cluster_effect as ce
from dashboard.metrics import cluster_factors as cf
from dashboard.metrics import clusters
from dashboard.metrics.groups import optimizer_name, seed_of

OUTCOME_WORDS = re.compile(r"\b(sped up|slowed( down)?|speeds? up|faster|slower)\b", re.I)


def _runs(root, names):
    found = {r.rel: r for r in loader.discover_runs(root).runs}
    out = []
    for n in names:
        run = found[n]
        out.append((seed_of(run.meta), loader.read_table(run, "clusters", root).df, run.meta))
    return out


def _series(root, names) -> ce.SeriesEffect:
    se = ce.series_effect(_runs(root, names))
    assert se is not None
    return se


def _bullets(se: ce.SeriesEffect, **kw) -> str:
    return mwords.effect_bullets(se.effect, se.seeds, se.types, **kw)


def test_scope_says_the_tab_shows_settings_not_results():
    s = mwords.SCOPE
    assert "not whether they helped" in s and "**Summary**" in s and "**Loss**" in s
    # outcome words only where it sends the reader to the tabs that measure outcomes
    assert "bigger step than AdamW's" in s and not OUTCOME_WORDS.search(s.split("Whether")[0])


def test_pinned_factors_give_exact_shares_and_bullets(tmp_path):
    pinned_run(tmp_path, "sgg")
    se = _series(tmp_path, ["sgg"])
    e, want = se.effect, expected_shares(PINNED)
    for cls, v in want.items():
        assert e.share[cls] == pytest.approx(v, abs=1e-12)
    assert want[ce.UP] == pytest.approx(131_072 / TOTAL)  # 25%, at 1.5x
    assert e.factor[ce.UP] == pytest.approx(1.5) and e.factor[ce.DOWN] == pytest.approx(0.5)
    assert (e.step, e.first_step, e.reclusters) == (600, 100, 6)
    assert e.applied and e.whole_model
    # where: half of the attention weights get bigger steps, an eighth smaller; MLP at 1
    assert e.where[ce.UP] == [("attention", pytest.approx(0.5))]
    assert e.where[ce.DOWN] == [("attention", pytest.approx(0.125))]
    text = _bullets(se)
    for part in (
        "**SGG at step 600 (re-cluster 6), one seed:**",
        "- **Bigger steps** than AdamW's (factor above 1.1x): **25%** of the model's weights, on "
        "average **1.50x** AdamW's step size; the largest factor 1.50x. Where: 50% of the "
        "attention weights.",
        "- **Smaller steps** than AdamW's (factor below 0.91x): **6%** of the model's weights, on "
        "average **0.500x** AdamW's step size; the smallest factor 0.500x. Where: 12% of the "
        "attention weights.",
        "- **About AdamW's step** (0.91x to 1.1x): **69%** of the model's weights",
        "from 0% at the first re-cluster (step 100) to 25%",
        "One seed, so cannot tell how much these shares move from seed to seed",
    ):
        assert part in text, (part, text)
    assert "would have" not in text
    assert not OUTCOME_WORDS.search(text)  # a setting, never an outcome
    assert all(len(b) < 400 for b in text.split("\n"))  # short bullets, not one long sentence


def test_bigger_and_smaller_bars_label_every_visible_segment(tmp_path):
    pinned_run(tmp_path, "sgg")
    se = _series(tmp_path, ["sgg"])
    fig = mfig.type_bars_figure(se.types, title="t", applied=True)
    bars = {t.legendgroup: t for t in fig.data if isinstance(t, go.Bar)}
    assert [y.split(" (")[0] for y in bars[ce.UP].y] == ["attention", "MLP", "norm layers"]
    assert list(bars[ce.UP].x) == pytest.approx([0.5, 0.0, 0.0])
    assert bars[ce.UP].text[0] == "50% · 1.50x"
    assert bars[ce.DOWN].text[0] == "12% · 0.500x"  # the smaller segment is labelled too
    assert bars[ce.SAME].text[1] == "100% · 1.00x"
    for t in bars.values():  # no segment of 3% or more without its number
        assert all(txt for v, txt in zip(t.x, t.text, strict=True) if v >= 0.03)
    assert bars[ce.UP].textfont.color == mfig.LABEL_LIGHT
    assert bars[ce.SAME].textfont.color == mfig.LABEL_DARK
    assert not any("NOT APPLIED" in (a.text or "") for a in fig.layout.annotations)
    area = mfig.effect_figure(se.over, title="t", applied=True)
    stack = [t for t in area.data if isinstance(t, go.Bar)]
    assert area.layout.barmode == "stack"  # one stacked bar per re-cluster
    # stacked bottom to top in the classes' order; the legend lists the top of the stack first
    assert [t.legendgroup for t in stack] == list(ce.CLASSES)
    assert area.layout.legend.traceorder == "reversed"
    for t in stack:
        assert t.y[-1] == pytest.approx(se.effect.share[t.legendgroup])
        assert t.y[0] == pytest.approx(1.0 if t.legendgroup == ce.SAME else 0.0)


def test_bar_labels_carry_the_interval_as_room_allows():
    assert mfig._bar_text(0.96, 0.95, 0.97, 1.84) == "96% (95%–97%) · 1.84x"
    assert mfig._bar_text(0.34, np.nan, np.nan, 1.15) == "34% · 1.15x"
    assert mfig._bar_text(0.2, 0.1, 0.3, 1.15) == "20% · 1.15x"
    assert mfig._bar_text(0.06, 0.05, 0.07, 0.9) == "6%"
    assert mfig._bar_text(0.02, 0.01, 0.03, 0.9) == ""


def test_shadow_clustering_is_what_sgg_would_have_done(tmp_path):
    pinned_run(tmp_path, "adamw", optimizer="adamw")
    se = _series(tmp_path, ["adamw"])
    assert not se.effect.applied
    text = _bullets(se)
    assert text.startswith("**What SGG would have done (not applied)**")
    assert "every weight took AdamW's own step" in text
    assert "**Would have had bigger steps** than AdamW's" in text and "**25%**" in text
    assert "would get the bigger steps" in text and "would-be bigger-step share" in text
    for fig in (
        mfig.type_bars_figure(se.types, title="x", applied=False),
        mfig.effect_figure(se.over, title="x", applied=False),
        mfig.kind_factor_figure(se.kinds, ce.kind_order(se.kinds), title="x",
                                           band_kind="minmax", applied=False),
    ):  # fmt: skip
        assert any("NOT APPLIED" in (a.text or "") for a in fig.layout.annotations)
    bars = mfig.type_bars_figure(se.types, title="x", applied=False)
    for t in bars.data:  # hatched in the class's own colour, dark labels readable on it
        assert t.marker.pattern.shape == "/"
        assert t.marker.pattern.fgcolor == palette.EFFECT_COLORS[t.legendgroup]
        assert t.textfont.color == mfig.LABEL_DARK
    area = mfig.effect_figure(se.over, title="x", applied=False)
    bars = [t for t in area.data if isinstance(t, go.Bar)]
    assert bars and all(t.marker.pattern.shape == "/" for t in bars)


def test_seed_group_gives_an_interval_across_seeds(tmp_path):
    lasts = {
        0: PINNED,
        1: {**PINNED, QKV: [(65_536, 1.5), (65_536, 1.0), (65_536, 1.0)]},
        2: {**PINNED, QKV: [(65_536, 1.5), (65_536, 1.5), (65_536, 1.5)]},
    }
    for seed, last in lasts.items():
        pinned_run(tmp_path, f"sgg-s{seed}", last=last, seed=seed)
    se = _series(tmp_path, [f"sgg-s{s}" for s in lasts])
    ups = np.array([expected_shares(v)[ce.UP] for v in lasts.values()])
    d = se.seeds.share[ce.UP]
    ci = stats.t.interval(0.95, len(ups) - 1, loc=ups.mean(), scale=stats.sem(ups))
    assert se.seeds.n == 3 and d.estimate == pytest.approx(ups.mean())
    assert (d.low, d.high) == pytest.approx(ci)
    assert se.seeds.spread[ce.UP] == pytest.approx((ups.min(), ups.max()))
    text = _bullets(se)
    lo, hi = mwords.share(max(ci[0], 0)), mwords.share(ci[1])
    assert f"**25%** ({lo} to {hi}) of the model's weights" in text
    assert "at step 600, the last re-cluster all 3 seeds reached" in text
    assert "the largest factor 1.50x in any seed" in text
    # the per-type share carries its interval too (attention: 50%, 25%, 75% over the seeds)
    att = np.array([0.5, 0.25, 0.75])
    lo, hi = stats.t.interval(0.95, 2, loc=att.mean(), scale=stats.sem(att))
    assert "50% (0% to 100%) of the attention weights" in text  # clipped to possible shares
    row = se.types.set_index("type").loc["attention"]
    assert row[f"share_{ce.UP}_low"] == pytest.approx(lo)
    assert "One seed" not in text
    cell = mwords.comparison_row("sgg", se)["Bigger steps"]
    ci = stats.t.interval(0.95, len(ups) - 1, loc=ups.mean(), scale=stats.sem(ups))
    want = mwords.dash_span(max(ci[0], 0), ci[1], mwords.share)
    assert cell == f"25% ({want}) at 1.50x"  # compact; the factor has no spread: no interval


def test_seed_stats_counts_a_seed_once_and_gives_no_interval_without_spread():
    a = pd.DataFrame({"step": [1, 2], "v": [0.2, 0.4]})
    b = pd.DataFrame({"step": [1, 2], "v": [0.4, 0.4]})
    c = pd.DataFrame({"step": [1, 2], "v": [0.6, 0.4]})
    out = ce.seed_stats([(0, a), (0, b), (1, c)], ["step"], ["v"]).set_index("step")
    assert out.loc[1, "n"] == 2 and out.loc[1, "v"] == pytest.approx((0.3 + 0.6) / 2)
    half = stats.t.ppf(0.975, 1) * np.std([0.3, 0.6], ddof=1) / np.sqrt(2)
    assert out.loc[1, "v_low"] == pytest.approx(0.45 - half)
    assert (out.loc[1, "v_min"], out.loc[1, "v_max"]) == pytest.approx((0.3, 0.6))
    assert math.isnan(out.loc[2, "v_low"])  # every seed 0.4: no spread is not certainty
    lo, hi = ce.band(out.reset_index(), "v", "sd")
    assert hi[0] - lo[0] == pytest.approx(2 * np.std([0.3, 0.6], ddof=1))


def test_repeats_of_a_seed_count_once():
    d = ce.mean_interval([(0, 0.2), (0, 0.4), (1, 0.5)])
    assert d.n == 2 and d.estimate == pytest.approx((0.3 + 0.5) / 2)
    assert any("repeats of one seed" in n for n in d.notes)
    assert ce.mean_interval([(0, 0.3)]).reason == ce.ONE_SEED


def test_group_of_runs_that_stopped_early_is_compared_at_the_shared_step(tmp_path):
    pinned_run(tmp_path, "a", seed=0)
    short = pinned_run(tmp_path, "b", seed=1)
    from dash_clusters_fixtures import unchanged, write_clusters

    write_clusters(short, lambda s: unchanged(PINNED) if s == 100 else PINNED, [100, 200, 300],
                   False)  # fmt: skip
    se = _series(tmp_path, ["a", "b"])
    assert se.effect.step == 300 and se.seeds.step == 300


def test_factor_classes_and_weight_rows():
    assert list(ce.factor_class([1.2, 1.1, 1.0, 0.91, 0.9, float("nan")])) == [
        ce.UP, ce.SAME, ce.SAME, ce.SAME, ce.DOWN, ce.SAME,
    ]  # fmt: skip
    assert pytest.approx(1 / 1.1) == ce.SMALLER


# ------------------------------------------------------------------ slow moves, lopsided, why


def _slow_fall(step: int):
    """The attention output's factors fall 3% a re-cluster from 1 (0.97 at step 100, 0.91 at
    step 300, below 0.909 only from step 400), the rest at 1."""
    f = 1 - 0.03 * (step // 100)
    return {
        QKV: [(65_536, 1.0)] * 3,
        PROJ: [(16_384, f), (32_768, f), (16_384, f)],
        FC: [(87_382, 1.0), (87_381, 1.0), (87_381, 1.0)],
    }


def test_a_slow_steady_fall_is_shown_by_kind_not_only_by_share(tmp_path):
    """Finding 3: a layer whose factors fell at every re-cluster counted as 'about AdamW's
    step' until it crossed 0.91x, then 'smaller steps' at once: the mean factor per kind of
    layer shows the fall, and the words say the share counts it only from the crossing."""
    pinned_run(tmp_path, "sgg", pin=_slow_fall)
    se = _series(tmp_path, ["sgg"])
    order = ce.kind_order(se.kinds)
    assert order == ["attention query/key/value", "attention output", "MLP in"]
    out = se.kinds[se.kinds["kind"] == "attention output"]
    assert list(out["factor"]) == pytest.approx([0.97, 0.94, 0.91, 0.88, 0.85, 0.82])
    assert list(out[f"share_{ce.DOWN}"]) == [0, 0, 0, 1, 1, 1]
    text = mwords.kinds_sentence(se.kinds, order)
    assert (
        "Smaller steps first appear at step 400, in the attention output (100% of its weights)"
        in text
    )
    assert (
        "had fallen at 4 of the 4 re-clusters up to then, from 0.970x at step 100 to 0.880x" in text
    )
    assert "counts only from the step it crosses" in text
    fig = mfig.kind_factor_figure(se.kinds, order, title="t", band_kind="minmax",
                                             applied=True)  # fmt: skip
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == order  # one panel each: no line hides another
    assert len({t.xaxis for t in lines}) == len(order)
    zones = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(zones) == len(order)  # the 'about AdamW's step' zone in every panel
    assert zones[0].y0 == pytest.approx(ce.SMALLER) and zones[0].y1 == pytest.approx(ce.BIGGER)
    assert any("step 600: 0.820x" in (a.text or "") for a in fig.layout.annotations)
    for ax in (fig.layout.yaxis, fig.layout.yaxis2, fig.layout.yaxis3):  # each its own axis
        lo, hi = ax.range
        assert ax.type == "log" and lo <= np.log10(ce.SMALLER) and hi >= np.log10(ce.BIGGER)
    assert fig.layout.yaxis2.range[0] <= np.log10(0.82) < fig.layout.yaxis.range[0]


def test_a_cut_above_the_threshold_is_said_to_count_as_adamws_step(tmp_path):
    def pin(step):
        g = _slow_fall(min(step, 200))  # down to 0.94 and held there: never below 0.909
        return g

    pinned_run(tmp_path, "sgg", pin=pin)
    se = _series(tmp_path, ["sgg"])
    text = mwords.kinds_sentence(se.kinds, ce.kind_order(se.kinds))
    assert "the lowest mean factor is the attention output's, 0.940x" in text
    assert "a 6% cut, but above 0.91x, so the shares above count these weights as 'about " \
           "AdamW's step'" in text  # fmt: skip
    assert "Smaller steps first appear" not in text


@pytest.mark.parametrize(
    ("rate", "bounds", "n", "rise", "fall", "hi", "lo"),
    [(0.01, (0.1, 10.0), 12, "9%", "0.9%", "2.02x", "0.898x"),
     (0.1, (0.2, 5.0), 3, "40%", "8.0%", "2.08x", "0.783x")],
)  # fmt: skip
def test_the_lopsided_answer_is_explained_with_the_runs_own_options(rate, bounds, n, rise, fall,
                                                                  hi, lo):  # fmt: skip
    r = cf.reach(rate, *bounds, n)
    assert r.rise == pytest.approx(rate * (bounds[1] - 1))
    assert r.fall == pytest.approx(rate * (1 - bounds[0]))
    assert r.lowest == pytest.approx(bounds[0] + (1 - bounds[0]) * (1 - rate) ** n)
    e = ce.Effect(600, 50, {}, {}, {}, r.lowest, 1.5, {}, 1, True, True, n)
    text = mwords.lopsided_sentence(r, e)
    assert f"rise up to {rise} at one re-cluster but fall at most {fall}" in text
    assert f"no factor can be above {hi} or below {lo}" in text
    assert f"clamped to [{bounds[0]:g}, {bounds[1]:g}]" in text
    assert "as small as the rule allows" in text  # the smallest factor sits at its floor
    assert cf.reach(float("nan"), 0.1, 10, 3) is None


def test_which_weights_names_those_that_barely_train():
    d = ce.mean_interval([(0, 0.58), (1, 0.60), (2, 0.59)])
    text = mwords.which_weights({"embeddings": d, "output head": ce.mean_interval([])})
    assert "nearest the layer's mean (weights training pushes little) gets the bigger steps" in text
    assert "Many of those barely train: 59% (" in text and "of the embeddings have had a " \
           "gradient of about zero so far" in text  # fmt: skip
    assert "output head" not in text  # no value: nothing said
    assert "barely" not in mwords.which_weights({})


def test_barely_training_counts_the_weights_near_lr_over_eps():
    edges = np.logspace(-2, np.log10(4e5), 17)
    counts = np.array([0, 10, 50, 100, 200, 300, 200, 100, 50, 10, 0, 0, 0, 0, 100, 880])
    hist = pd.DataFrame({"step": 100, "layer": "emb", "quantity": "adaptive_lr", "cluster": -1,
                         "bin_left": edges[:-1], "bin_right": edges[1:],
                         "count": counts})  # fmt: skip
    steps = pd.DataFrame({"step": [1, 50, 100], "lr": [1e-4, 4e-3, 4e-3]})
    share, at = clusters.barely_training(hist, ["emb"], 150, steps, 1e-8)
    pile = counts[edges[:-1] >= 4e5 / clusters.CEILING_NEAR].sum()
    assert at == 100 and share == pytest.approx(pile / counts.sum())
    assert math.isnan(clusters.barely_training(hist, ["emb"], 50, steps, 1e-8)[0])  # not yet
    assert math.isnan(clusters.barely_training(hist, ["emb"], 150, steps, None)[0])


def test_sgg_against_its_shadow_gets_a_verdict_with_an_interval(tmp_path):
    def qkv(up_extra):  # bigger steps for 131,072 + up_extra of the qkv weights (x1.5)
        return {**PINNED, QKV: [(65_536 + up_extra, 1.5), (65_536, 1.5), (65_536 - up_extra, 1.0)]}

    def shadow(extra):
        return {**PINNED, QKV: [(65_536 + extra, 1.5), (65_536, 1.0), (65_536 - extra, 1.0)]}

    for s, (a, b) in enumerate(((0, 1000), (1000, 0), (3000, 3500))):
        pinned_run(tmp_path, f"sgg-s{s}", last=qkv(a), seed=s)
        pinned_run(tmp_path, f"adamw-s{s}", last=qkv(b), seed=s, optimizer="adamw")
        pinned_run(tmp_path, f"half-s{s}", last=shadow(b), seed=s, optimizer="adamw")
    sgg = _series(tmp_path, [f"sgg-s{s}" for s in range(3)])
    same = _series(tmp_path, [f"adamw-s{s}" for s in range(3)])
    half = _series(tmp_path, [f"half-s{s}" for s in range(3)])
    d = ce.compare_share(sgg.seeds, same.seeds)
    assert d.method == "paired" and not d.detected
    text = mwords.shadow_verdict("sgg", "adamw", d, d, 600)
    assert "no detectable difference (" in text and "which is not the same as equal" in text
    assert "Applying the factors did not detectably change" in text
    d = ce.compare_share(sgg.seeds, half.seeds)
    diffs = np.array([65_536 - 1000, 65_536 + 1000, 65_536 - 500]) / TOTAL
    assert d.estimate == pytest.approx(diffs.mean()) and d.detected
    text = mwords.shadow_verdict("sgg", "adamw", d, d, 600)
    assert f"larger by {d.estimate * 100:.1f} points (95% interval" in text
    assert "did not detectably change" not in text


@pytest.fixture(scope="module")
def sample(demo_root):
    """The sample runs' (or the demo set's) clustered SGG and shadow AdamW runs."""
    runs = [r for r in loader.discover_runs(demo_root).runs if r.has_clustering]
    sgg = [r.rel for r in runs if optimizer_name(r.meta) == "sgg"]
    shadow = [r.rel for r in runs if optimizer_name(r.meta) != "sgg"]
    assert sgg and shadow
    return demo_root, sgg, shadow


def test_sample_runs_figure_and_bullets_agree(sample):
    root, sgg, shadow = sample
    for names in (sgg[:1], shadow[:1]):
        se = _series(root, names)
        e = se.effect
        over = se.over
        total = sum(over[f"share_{c}"] for c in ce.CLASSES)
        assert np.allclose(total, 1.0)  # every weight is in exactly one class
        assert e.weights == root_params(root, names[0])
        fig = mfig.effect_figure(over, title="t", applied=e.applied)
        areas = {t.legendgroup: t for t in fig.data if isinstance(t, go.Bar)}
        text = _bullets(se)
        for cls in (ce.UP, ce.DOWN):
            shown = mwords.share(areas[cls].y[-1])
            if e.share[cls] > 0:
                assert f"**{shown}**" in text, (cls, shown, text)
            if math.isfinite(e.factor[cls]):
                assert mwords.times(e.factor[cls]) in text
        assert ("would have" in text) is (not e.applied)
        assert not OUTCOME_WORDS.search(text)


def root_params(root, rel) -> int:
    run = {r.rel: r for r in loader.discover_runs(root).runs}[rel]
    return int(sum(x["numel"] for x in run.meta["model"]["layers"]))


def test_sample_seed_group_bullets_carry_intervals(sample):
    root, sgg, _ = sample
    group = [r for r in sgg if r.startswith(sgg[0].rsplit("-s", 1)[0] + "-s")]
    if len(group) < 2:
        pytest.skip("no seed group among the sample runs")
    se = _series(root, group)
    text = _bullets(se)
    assert f"all {se.seeds.n} seeds reached" in text and "95% interval" in text
    f = se.seeds.factor[ce.UP]
    assert f"**{mwords.times(f.estimate)}** AdamW's step size (" in text
    assert se.kinds["factor_low"].notna().any()  # the mean factor per kind has its interval


def test_unclustered_layers_count_as_adamws_step(tmp_path):
    pinned_run(tmp_path, "sgg")
    (_, cl, meta), = _runs(tmp_path, ["sgg"])  # fmt: skip
    rows = ce.weight_rows(cl, ce.layer_sizes(meta))
    last = rows[rows["step"] == 600]
    assert last["weights"].sum() == TOTAL
    norm = last[last["type"] == NORMS]
    assert list(norm["factor"]) == [1.0] and list(norm["effect"]) == [ce.SAME]
    assert set(last.loc[last["layer"] == FC, "effect"]) == {ce.SAME}
    assert set(last.loc[last["layer"] == PROJ, "type"]) == {"attention"}
    assert set(last.loc[last["layer"] == PROJ, "kind"]) == {"attention output"}


def test_without_model_layers_the_clustered_weights_are_counted(tmp_path):
    """A run.json without `model.layers` (a foreign run): shares of the clustered weights."""
    pinned_run(tmp_path, "sgg")
    ((_, cl, _),) = _runs(tmp_path, ["sgg"])
    e = ce.run_effect(cl, {})
    assert not e.whole_model and e.weights == TOTAL - 256  # the 1-D norm is not known
    assert e.share[ce.UP] == pytest.approx(131_072 / (TOTAL - 256))
    assert "of the clustered weights" in mwords.effect_bullets(e)


def test_a_shadow_is_compared_only_with_sgg_of_the_same_options(tmp_path):
    """A decay-0.9 SGG is not SGG's shadow at decay 0.99: no verdict pairs them; one seed on
    each side gets one line saying 'cannot tell' (not a verdict per run)."""
    import json

    for s in (0, 1):
        pinned_run(tmp_path, f"sgg-s{s}", seed=s)
        pinned_run(tmp_path, f"adamw-s{s}", seed=s, optimizer="adamw")
    sgg = _series(tmp_path, ["sgg-s0", "sgg-s1"])
    shadow = _series(tmp_path, ["adamw-s0", "adamw-s1"])
    meta = {r.rel: r.meta for r in loader.discover_runs(tmp_path).runs}
    effects = {"sgg": (sgg, meta["sgg-s0"]), "adamw": (shadow, meta["adamw-s0"])}
    (text,) = mwords.shadow_verdicts(effects)
    assert text.startswith("**SGG against its shadow**, at step 600: **sgg**")
    other = json.loads(json.dumps(meta["sgg-s0"]))
    other["optimizer"]["sgg"]["scale_decay"] = 0.9
    assert mwords.shadow_verdicts({"sgg": (sgg, other), "adamw": effects["adamw"]}) == []
    one = _series(tmp_path, ["sgg-s0"]), _series(tmp_path, ["adamw-s0"])
    pairs = {"a": (one[0], meta["sgg-s0"]), "b": (one[1], meta["adamw-s0"]),
             "c": (one[0], meta["sgg-s0"])}  # fmt: skip
    (line,) = mwords.shadow_verdicts(pairs)
    assert "(a, c against the AdamW run" in line and "one seed each, so cannot tell" in line

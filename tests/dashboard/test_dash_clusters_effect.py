"""Issue 20, item 1: what SGG did to the model, as shares of weights, in one sentence and one
figure from the same numbers; on runs with pinned factors (known answers) and on the sample runs."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
from dash_clusters_fixtures import FC, PINNED, PROJ, QKV, TOTAL, expected_shares, pinned_run
from scipy import stats

from dashboard import cluster_figures, cluster_words, loader
from dashboard.metrics import cluster_effect as ce
from dashboard.metrics.groups import optimizer_name, seed_of


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


def test_pinned_factors_give_exact_shares_and_sentence(tmp_path):
    pinned_run(tmp_path, "sgg")
    se = _series(tmp_path, ["sgg"])
    e, want = se.effect, expected_shares(PINNED)
    for cls, v in want.items():
        assert e.share[cls] == pytest.approx(v, abs=1e-12)
    assert want["sped up"] == pytest.approx(131_072 / TOTAL)  # 25%, at 1.5x
    assert e.factor[ce.UP] == pytest.approx(1.5) and e.factor[ce.DOWN] == pytest.approx(0.5)
    assert (e.step, e.first_step, e.reclusters) == (600, 100, 6)
    assert e.applied and e.whole_model
    # where: half of the attention weights sped up, an eighth slowed; MLP and norms untouched
    assert e.where[ce.UP] == [("attention", pytest.approx(0.5))]
    assert e.where[ce.DOWN] == [("attention", pytest.approx(0.125))]
    text = cluster_words.effect_sentence(e, 0.01, se.seeds)
    for part in (
        "sped up **25%** of the model's weights, to 1.50x AdamW's step size on average "
        "(up to 1.50x): 50% of the attention weights",
        "slowed down **6%** of them, to 0.500x AdamW's step size on average (down to 0.500x): "
        "12% of the attention weights",
        "left **69%** about unchanged",
        "from 0% at the first re-cluster (step 100) to 25%",
        "One seed, so cannot tell how much these shares move from seed to seed",
    ):
        assert part in text, (part, text)
    assert "would have" not in text


def test_pinned_figure_shows_the_sentence_numbers(tmp_path):
    pinned_run(tmp_path, "sgg")
    se = _series(tmp_path, ["sgg"])
    fig = cluster_figures.effect_figure(se.over, se.types, title="t", applied=True, step=600)
    areas = [t for t in fig.data if isinstance(t, go.Scatter) and t.stackgroup]
    # stacked bottom to top in the classes' order; the legend lists the top of the stack first
    assert [t.legendgroup for t in areas] == list(ce.CLASSES)
    assert fig.layout.legend.traceorder == "reversed"
    for t in areas:
        assert t.y[-1] == pytest.approx(se.effect.share[t.legendgroup])
        assert t.y[0] == pytest.approx(1.0 if t.legendgroup == ce.SAME else 0.0)
    assert not any("NOT APPLIED" in (a.text or "") for a in fig.layout.annotations)
    bars = {t.legendgroup: t for t in fig.data if isinstance(t, go.Bar)}
    types = [x.split("<br>")[0] for x in bars[ce.UP].x]
    assert types == ["attention", "MLP", "norms"]  # model order, only types present
    assert list(bars[ce.UP].y) == pytest.approx([0.5, 0.0, 0.0])
    assert "50% · 1.50x" in bars[ce.UP].text[0]


def test_shadow_clustering_is_what_sgg_would_have_done(tmp_path):
    pinned_run(tmp_path, "adamw", optimizer="adamw")
    se = _series(tmp_path, ["adamw"])
    assert not se.effect.applied
    text = cluster_words.effect_sentence(se.effect, 0.01, se.seeds)
    assert text.startswith("**What SGG would have done (not applied)**")
    assert "would have sped up **25%**" in text and "took AdamW's own step" in text
    fig = cluster_figures.effect_figure(se.over, se.types, title="x", applied=False, step=600)
    assert any("NOT APPLIED" in (a.text or "") for a in fig.layout.annotations)
    areas = [t for t in fig.data if isinstance(t, go.Scatter) and t.stackgroup]
    assert all(t.fillpattern.shape == "/" for t in areas)  # hatched: visibly not applied
    assert all(t.marker.pattern.shape == "/" for t in fig.data if isinstance(t, go.Bar))


def test_seed_group_gives_an_interval_across_seeds(tmp_path):
    lasts = {
        0: PINNED,
        1: {**PINNED, QKV: [(65_536, 1.5), (65_536, 1.0), (65_536, 1.0)]},
        2: {**PINNED, QKV: [(65_536, 1.5), (65_536, 1.5), (65_536, 1.5)]},
    }
    for seed, last in lasts.items():
        pinned_run(tmp_path, f"sgg-s{seed}", last=last, seed=seed)
    se = _series(tmp_path, [f"sgg-s{s}" for s in lasts])
    ups = np.array([expected_shares(v)["sped up"] for v in lasts.values()])
    d = se.seeds.share[ce.UP]
    ci = stats.t.interval(0.95, len(ups) - 1, loc=ups.mean(), scale=stats.sem(ups))
    assert se.seeds.n == 3 and d.estimate == pytest.approx(ups.mean())
    assert (d.low, d.high) == pytest.approx(ci)
    assert se.seeds.spread[ce.UP] == pytest.approx((ups.min(), ups.max()))
    text = cluster_words.effect_sentence(se.effect, 0.01, se.seeds)
    lo, hi = cluster_words.share(max(ci[0], 0)), cluster_words.share(ci[1])
    assert f"sped up **25%** of the model's weights (95% interval {lo} to {hi})" in text
    assert "on average over 3 seeds at step 600" in text
    # every seed slowed the same share: no spread is "cannot tell", never a zero-width interval
    assert "cannot tell how sure" in text and "One seed" not in text


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
    assert pytest.approx(1 / 1.1) == ce.SLOWED


@pytest.fixture(scope="module")
def sample(demo_root):
    """The sample runs' (or the demo set's) clustered SGG and shadow AdamW runs."""
    runs = [r for r in loader.discover_runs(demo_root).runs if r.has_clustering]
    sgg = [r.rel for r in runs if optimizer_name(r.meta) == "sgg"]
    shadow = [r.rel for r in runs if optimizer_name(r.meta) != "sgg"]
    assert sgg and shadow
    return demo_root, sgg, shadow


def test_sample_runs_figure_and_sentence_agree(sample):
    root, sgg, shadow = sample
    for names in (sgg[:1], shadow[:1]):
        se = _series(root, names)
        e = se.effect
        over = se.over
        total = sum(over[f"share_{c}"] for c in ce.CLASSES)
        assert np.allclose(total, 1.0)  # every weight is in exactly one class
        assert e.weights == root_params(root, names[0])
        fig = cluster_figures.effect_figure(over, se.types, title="t", applied=e.applied,
                                            step=e.step)  # fmt: skip
        areas = {t.legendgroup: t for t in fig.data if isinstance(t, go.Scatter) and t.stackgroup}
        text = cluster_words.effect_sentence(e, 0.01, se.seeds)
        for cls in (ce.UP, ce.DOWN):
            shown = cluster_words.share(areas[cls].y[-1])
            if e.share[cls] > 0:
                assert f"**{shown}**" in text, (cls, shown, text)
            if math.isfinite(e.factor[cls]):
                assert cluster_words.times(e.factor[cls]) in text
        assert ("would have" in text) is (not e.applied)


def root_params(root, rel) -> int:
    run = {r.rel: r for r in loader.discover_runs(root).runs}[rel]
    return int(sum(x["numel"] for x in run.meta["model"]["layers"]))


def test_sample_seed_group_sentence_carries_the_interval(sample):
    root, sgg, _ = sample
    group = [r for r in sgg if r.startswith(sgg[0].rsplit("-s", 1)[0] + "-s")]
    if len(group) < 2:
        pytest.skip("no seed group among the sample runs")
    se = _series(root, group)
    text = cluster_words.effect_sentence(se.effect, 0.01, se.seeds)
    assert f"over {se.seeds.n} seeds" in text and "95% interval" in text


def test_unclustered_layers_count_as_unchanged(tmp_path):
    pinned_run(tmp_path, "sgg")
    (_, cl, meta), = _runs(tmp_path, ["sgg"])  # fmt: skip
    rows = ce.weight_rows(cl, ce.layer_sizes(meta))
    last = rows[rows["step"] == 600]
    assert last["weights"].sum() == TOTAL
    norm = last[last["type"] == "norms"]
    assert list(norm["factor"]) == [1.0] and list(norm["effect"]) == [ce.SAME]
    assert set(last.loc[last["layer"] == FC, "effect"]) == {ce.SAME}
    assert set(last.loc[last["layer"] == PROJ, "type"]) == {"attention"}


def test_without_model_layers_the_clustered_weights_are_counted(tmp_path):
    """A run.json without `model.layers` (a foreign run): shares of the clustered weights."""
    pinned_run(tmp_path, "sgg")
    ((_, cl, _),) = _runs(tmp_path, ["sgg"])
    e = ce.run_effect(cl, {})
    assert not e.whole_model and e.weights == TOTAL - 256  # the 1-D norm is not known
    assert e.share[ce.UP] == pytest.approx(131_072 / (TOTAL - 256))
    assert "of the clustered weights" in cluster_words.effect_sentence(e)

"""Issue 20, items 2 and 3: the recorded weights followed through re-clusters (churn, how long a
weight keeps a bigger step, pooled over seeds with intervals), and why a layer's factors move
(spread, target, EMA, bounds) at the re-cluster the slider shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dashboard import cluster_figures_layer as lfig
from dashboard import cluster_words_layer as lwords
from dashboard import cluster_words_manager as mwords
from dashboard.metrics import cluster_factors as cf
from dashboard.metrics import cluster_population as cp
from dashboard.metrics.cluster_effect import SAME, UP


def _clusters(rows):
    """rows: (step, layer, cluster, size, factor[, raw, mda, global_mda])."""
    full = [r if len(r) == 8 else (*r, r[4], 1e-3 / r[4], 1e-3) for r in rows]
    return pd.DataFrame(
        full,
        columns=["step", "layer", "cluster", "size", "factor", "raw_factor", "mda", "global_mda"],
    )


# one layer of 400 weights, K = 2: group 1 sped up (x1.5) from step 20 on, group 0 at 1
CL = _clusters(
    [(s, "a", c, 200, f) for s, fs in ((10, (1.0, 1.0)), (20, (1.0, 1.5)), (30, (1.0, 1.5)),
                                       (40, (1.0, 1.5))) for c, f in enumerate(fs)]
)  # fmt: skip
# four sampled weights, their groups at steps 10, 20, 30, 40
PATHS = {0: (0, 1, 1, 1), 1: (1, 1, 0, 1), 2: (0, 0, 0, 0), 3: (1, 0, 1, 0)}
MEMBERSHIP = pd.DataFrame(
    [(s, "a", p, g) for p, gs in PATHS.items() for s, g in zip((10, 20, 30, 40), gs, strict=True)],
    columns=["step", "layer", "position", "cluster"],
)


def test_history_joins_groups_to_the_factor_in_force():
    h = cp.sampled_history(MEMBERSHIP, CL, {"a": 400})
    assert len(h) == 16 and set(h["weight"]) == {100.0}  # 400 weights / 4 sampled
    w0 = h[h["position"] == 0]
    assert list(w0["effect"]) == [SAME, UP, UP, UP]


def test_churn_counts_group_changes_and_effect_changes_apart():
    h = cp.sampled_history(MEMBERSHIP, CL, {"a": 400})
    c = cp.churn(h).set_index("step")
    # 10 -> 20: weights 0 and 3 changed group (2 of 4); effects: 0 became sped up, 1 became
    # sped up (group 1 now x1.5), 3 left group 1 (still 1.0 then): 2 of 4 changed effect
    assert c.loc[20, "changed_group"] == pytest.approx(0.5)
    assert c.loc[20, "changed_effect"] == pytest.approx(0.5)
    # 20 -> 30: weights 1 and 3 swapped groups: 2 of 4 changed group and effect
    assert c.loc[30, "changed_group"] == pytest.approx(0.5)
    assert c.loc[30, "changed_effect"] == pytest.approx(0.5)
    assert list(c["n"]) == [4, 4, 4]


def test_stays_follow_the_same_weights():
    s = cp.stays(cp.sampled_history(MEMBERSHIP, CL, {"a": 400}))
    assert s.sampled == 4 and s.reclusters == 4 and s.interval == 10
    assert s.ever_up == pytest.approx(0.75)  # weights 0, 1, 3
    # sped up at one re-cluster (steps 20, 30): 0@20, 1@20, 0@30, 3@30 -> still at the next:
    # 0@30, 0@40 (yes, yes), 1@30 (no), 3@40 (no): 2 of 4
    assert s.persistence == pytest.approx(0.5)
    # spells: weight 0: 3 re-clusters (open); weight 1: 1, then 1 (open); weight 3: 1
    assert s.median_spell == 1 and s.open_spells == pytest.approx(2 / 4)
    text = lwords.stays_sentence(cp.stays_across([(0, s)]), 4)
    assert "in one seed, so cannot tell how much these numbers move from seed to seed" in text
    assert "**50% changed group**" in text and "75% had a bigger step" in text
    assert "50% still had it at the next" in text and "a median 1 re-clusters (10 steps)" in text


def test_raster_rows_most_often_sped_up_first():
    r = cp.raster(cp.sampled_history(MEMBERSHIP, CL, {"a": 400}), "a")
    first = r[r["row"] == 0]
    assert first["position"].iloc[0] == 0 and (first["effect"] == UP).sum() == 3
    fig = lfig.raster_figure(r, "layer a")
    z = [list(row) for row in fig.data[0].z]
    assert z[0] == [1.0, 2.0, 2.0, 2.0]  # unchanged, then sped up three times
    assert "group 1, factor 1.5" in str(fig.data[0].customdata)


def test_membership_missing_says_so():
    assert cp.stays(cp.sampled_history(None, CL, {})) is None
    assert cp.stays_across([(0, None)]) is None
    assert "No membership sample" in lwords.stays_sentence(None)


def test_stays_pool_the_seeds_with_an_interval():
    """Finding 8: the sample's numbers were one seed's; a seed group's are the mean over its
    seeds with their 95% interval."""
    one = cp.stays(cp.sampled_history(MEMBERSHIP, CL, {"a": 400}))
    paths = {**PATHS, 2: (0, 1, 0, 1)}  # weight 2 now changes group at every re-cluster
    other = pd.DataFrame(
        [(s, "a", p, g) for p, gs in paths.items() for s, g in zip((10, 20, 30, 40), gs,
                                                                    strict=True)],
        columns=["step", "layer", "position", "cluster"],
    )  # fmt: skip
    two = cp.stays(cp.sampled_history(other, CL, {"a": 400}))
    pooled = cp.stays_across([(0, one), (1, two)])
    assert pooled.n == 2 and pooled.sampled == 4
    vals = np.array([one.changed_group, two.changed_group])
    assert pooled.changed_group.estimate == pytest.approx(vals.mean())
    lo, hi = stats.t.interval(0.95, 1, loc=vals.mean(), scale=stats.sem(vals))
    assert (pooled.changed_group.low, pooled.changed_group.high) == pytest.approx((lo, hi))
    text = lwords.stays_sentence(pooled, 2, shown="sgg, lr 1e-3, seed 0")
    assert "in each of 2 seeds (the mean over seeds, its 95% interval in brackets)" in text
    assert f"**{mwords.share(vals.mean())} (" in text
    assert "The two charts below show sgg, lr 1e-3, seed 0." in text


def test_a_churn_spike_is_clipped_and_explained():
    """Finding 10: one layer's sampled weights crossing 1.1x together made a 95% spike that set
    the axis alone; it is clipped, its value written, and the words say what it was."""
    model = pd.DataFrame({"step": [2, 3, 4, 5], "changed_group": [0.2, 0.25, 0.3, 0.28],
                          "changed_effect": [0.02, 0.05, 0.03, 0.04]})  # fmt: skip
    layer = model.assign(changed_effect=[0.0, 0.95, 0.02, 0.03], changed_group=0.1)
    step, value, name, who = lfig.churn_spike(model, layer, "token embeddings")
    assert (step, value, who) == (3, 0.95, "layer")
    assert name == "token embeddings: changed step class"
    fig = lfig.churn_figure(model, layer, "token embeddings")
    top = fig.layout.yaxis.range[1]
    assert 0.3 < top < 0.95  # the spike is off the axis, the rest fills it
    assert any("95% ↑" in (a.text or "") for a in fig.layout.annotations)
    styles = {(t.line.color, t.line.dash, t.marker.symbol) for t in fig.data}
    assert len(styles) == 4  # four lines, none alike
    assert len({t.line.color for t in fig.data}) == 2 and len({t.line.dash for t in fig.data}) == 2
    assert lfig.churn_spike(model, model, "x") is None  # no spike: nothing clipped
    h = cp.sampled_history(MEMBERSHIP, CL, {"a": 400})
    moves = cp.class_moves(h, "a", 20)
    assert moves.iloc[0]["from"] == SAME and moves.iloc[0]["to"] == UP
    assert moves["share"].sum() == pytest.approx(0.5)
    note = lwords.spike_note(3, 0.95, name, moves)
    assert note.startswith("Off the axis: token embeddings: changed step class, 95% at step 3")
    assert "moved from 'about AdamW's step' to 'bigger steps' at once" in note


# ------------------------------------------------------------------ why the factors move


def _falling_layer():
    """Two groups whose targets lie below their factors at steps 20 and 30 (the model's spread
    fell between them), one rising at step 10."""
    rows = []
    for s, targets, gm in ((10, (2.0, 0.1), 1e-3), (20, (0.5, 0.1), 1e-3), (30, (0.2, 0.1), 5e-4)):
        for c, t in enumerate(targets):
            rows.append((s, "l", c, 100, None, t, gm / t, gm))
    df = pd.DataFrame(
        rows,
        columns=["step", "layer", "cluster", "size", "factor", "raw_factor", "mda", "global_mda"],
    )
    prev = {0: 1.0, 1: 1.0}
    for i, r in df.iterrows():  # the EMA with beta3 = 0.9
        prev[r["cluster"]] = 0.9 * prev[r["cluster"]] + 0.1 * r["raw_factor"]
        df.loc[i, "factor"] = prev[r["cluster"]]
    return df


def test_falls_together_are_found_and_explained():
    steps = cf.factor_steps(_falling_layer(), "l")
    assert list(steps.loc[steps["step"] == 10, "prev"]) == [1.0, 1.0]
    assert (steps["move"] == steps["factor"] - steps["prev"]).all()
    falls = cf.falls_together(steps)
    assert [f.step for f in falls] == [20, 30]  # at 10 group 0 rose
    f = falls[1]
    assert f.target_low == pytest.approx(0.1) and f.target_high == pytest.approx(0.2)
    assert f.at_lower_bound == 1 and f.prev_step == 20 and f.target_fell is False
    assert f.model_spread_change == pytest.approx(-0.5)
    text = lwords.fall_summary(falls, 3)
    assert "fell together at 2 of its 3 re-clusters (steps 20 and 30)" in text
    why = lwords.step_why(steps, 30, falls, 0.1, 0.1)
    assert why.startswith("**Why, at step 30:**")
    assert "so their targets were 0.1 to 0.2; 1 of them clamped at the lower bound 0.1" in why
    assert "Each factor moves 10% of the way to its target" in why
    lines = lwords.step_lines(steps, 20, 0.1, 10.0)
    assert lines[0].startswith("group 0 (50% of the layer): factor 1.1 -> 1.04 (-5.45%), pulled ")
    assert "at the lower bound 0.1" in lines[1]


def test_the_why_follows_the_slider():
    """Finding 7: the sentence explained the last fall while the slider showed another step."""
    steps = cf.factor_steps(_falling_layer(), "l")
    falls = cf.falls_together(steps)
    at20 = lwords.step_why(steps, 20, falls, 0.1, 0.1)
    assert at20.startswith("**Why, at step 20:**") and "targets were 0.1 to 0.5" in at20
    at10 = lwords.step_why(steps, 10, falls, 0.1, 0.1)
    assert at10.startswith("**Why, at step 10:**")
    assert "1 of the 2 factors rose and 1 fell" in at10 and "targets were" not in at10


def test_target_fall_is_traced_to_the_spreads():
    df = _falling_layer()
    df.loc[(df["step"] == 30) & (df["cluster"] == 1), "raw_factor"] = 0.05  # below its 0.1
    f = cf.falls_together(cf.factor_steps(df, "l"))[1]
    assert f.target_fell
    now = cf.factor_steps(df, "l")
    text = lwords.target_moves(now[now["step"] == 30])
    # group 0: target 0.5 -> 0.2 (its spread grew 1.25-fold, the model's shrank 2-fold)
    assert "group 0's target fell from 0.5 to 0.2: its spread grew 1.25-fold while the model's "\
           "shrank 2-fold (from 2x to 5x the model's)" in text  # fmt: skip
    assert "group 1's target fell from 0.1 to 0.05" in text


def test_a_target_moved_by_a_group_changing_size_is_traced():
    """Finding 7, the embeddings at step 150: k-means put almost every weight in group 1, whose
    spread grew, so its target fell: said, not left to the charts."""
    cl = _clusters([(100, "e", 0, 5, 1.0, 0.1, 1e-3, 1e-5), (100, "e", 1, 95, 1.0, 2.0, 5e-6, 1e-5),
                    (150, "e", 0, 1, 1.0, 0.1, 2e-2, 3e-5), (150, "e", 1, 99, 1.0, 0.64, 4.7e-5,
                                                               3e-5)])  # fmt: skip
    steps = cf.factor_steps(cl, "e")
    text = lwords.target_moves(steps[steps["step"] == 150])
    assert "group 1's target fell from 2 to 0.64: it went from 95% to 99% of the layer's " \
           "weights, and its spread grew 9.4-fold while the model's grew 3-fold" \
           in text  # fmt: skip
    assert "group 0" not in text  # its target stayed at the bound
    far = lwords.far_from_model(steps[steps["step"] == 150])
    assert far.startswith("Every group of this layer lies at least 1.57x as far from its layer's")


def test_no_common_fall_is_said():
    assert lwords.fall_summary([], 4).startswith("At no re-cluster")
    assert "would-be factors" in lwords.fall_summary([], 4, applied=False)


def test_shadow_layer_words_say_would_have():
    """Finding 6: below the top, a shadow clustering's sentences still say 'would'."""
    steps = cf.factor_steps(_falling_layer(), "l")
    lines = lwords.step_lines(steps, 20, 0.1, 10.0, applied=False)
    assert all("would-be factor" in t for t in lines)
    why = lwords.step_why(steps, 10, cf.falls_together(steps), 0.1, 0.1, applied=False)
    assert "would-be factors" in why and "SGG would have set them" in why
    m = cf.mean_move(_falling_layer(), "l", 20)
    assert "would-be mean factor (not applied)" in lwords.mean_move_sentence(m, False)
    fig = lfig.factor_explain_figure(steps, layer_name="l", bounds=(0.1, 10.0),
                                                rate=0.1, applied=False)  # fmt: skip
    assert fig.layout.yaxis5.title.text == "3. would-be factor (not applied)"  # row 3, col 1
    assert any("NOT APPLIED" in (a.text or "") for a in fig.layout.annotations)


def test_mean_move_splits_factor_moves_from_group_changes():
    # factors unchanged, 100 weights move from group 1 (x2) to group 0 (x1): the layer's mean
    # falls by 100/400 of a factor point, all of it from weights changing groups
    cl = _clusters([(10, "l", 0, 200, 1.0), (10, "l", 1, 200, 2.0),
                    (20, "l", 0, 300, 1.0), (20, "l", 1, 100, 2.0)])  # fmt: skip
    m = cf.mean_move(cl, "l", 20)
    assert (m.before, m.after) == pytest.approx((1.5, 1.25))
    assert m.from_factors == pytest.approx(0.0) and m.from_groups == pytest.approx(-0.25)
    assert "-0.2500 from weights changing groups" in lwords.mean_move_sentence(m)
    assert "the layer's mean factor (weighted" in lwords.mean_move_sentence(m)
    first = cf.mean_move(cl, "l", 10)
    assert first.before == 1.0 and first.from_factors == pytest.approx(0.5)


def test_explained_chart_draws_spread_target_bounds_and_pull():
    steps = cf.factor_steps(_falling_layer(), "l")
    fig = lfig.factor_explain_figure(steps, layer_name="l", bounds=(0.1, 10.0),
                                                rate=0.1)  # fmt: skip
    names = [t.name for t in fig.data]
    assert "group 0" in names
    spread = next(t for t in fig.data if t.name == "group 0")
    assert list(spread.y) == pytest.approx([0.5, 2.0, 5.0])  # a multiple of the model's spread
    assert fig.layout.yaxis.ticktext[0].endswith("x")  # '1x', '10x': no 10^-6 labels
    assert fig.layout.yaxis5.title.text == "3. factor applied"  # not 'factor in force'
    bounds = sorted({s.y0 for s in fig.layout.shapes if s.y0 in (0.1, 10.0)})
    assert bounds == [0.1, 10.0]
    ones = [s for s in fig.layout.shapes if s.y0 == 1 and s.y1 == 1]
    assert {s.yref for s in ones} >= {"y", "y5"}  # 1 marked in the spread and factor rows
    factor = next(t for t in fig.data if t.name == "group 0: factor")
    assert list(factor.marker.symbol) == ["triangle-up", "triangle-down", "triangle-down"]
    target = next(t for t in fig.data if t.name == "group 1: target")
    assert list(target.y) == pytest.approx([0.1, 0.1, 0.1])
    assert any("lower bound 0.1" in (a.text or "") for a in fig.layout.annotations)


def test_ema_and_bounds_come_from_run_json():
    meta = {"optimizer": {"sgg": {"scale_decay": 0.99, "scale_bounds": [0.2, 5]}}}
    assert cf.ema_rate(meta) == pytest.approx(0.01) and cf.bounds(meta) == (0.2, 5.0)
    shadow = {"optimizer": {"sgg": None, "shadow": {"scale_decay": 0.9}}}
    assert cf.ema_rate(shadow) == pytest.approx(0.1) and cf.bounds(shadow) == (0.1, 10.0)
    assert cf.ema_rate({}) != cf.ema_rate({})  # NaN: not recorded


def test_missing_targets_and_spreads_still_draw():
    """A foreign clustering that logged factors only (targets and spreads null)."""
    df = _falling_layer().assign(raw_factor=float("nan"), mda=float("nan"))
    steps = cf.factor_steps(df, "l")
    fig = lfig.factor_explain_figure(steps, layer_name="l", bounds=(0.1, 10.0),
                                                rate=float("nan"))  # fmt: skip
    assert fig.to_json()  # serialisable: no NaN axis range
    assert [f.step for f in cf.falls_together(steps)] == [20, 30]
    text = lwords.step_why(steps, 20, cf.falls_together(steps), float("nan"), 0.1)
    assert "did not record the targets and spreads, so why cannot be told here" in text
    assert "target was not recorded" in lwords.step_lines(steps, 20, 0.1, 10.0)[0]

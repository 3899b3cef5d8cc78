"""Issue 20, items 2 and 3: the recorded weights followed through re-clusters (churn, how long a
weight stays sped up), and why a layer's factors move (spread, target, EMA, bounds)."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard import cluster_figures, cluster_words
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
    text = cluster_words.stays_sentence(s, 4)
    assert "**50% changed group**" in text and "75% were sped up" in text
    assert "50% still were at the next" in text and "a median 1 re-clusters, 10 steps" in text


def test_raster_rows_most_often_sped_up_first():
    r = cp.raster(cp.sampled_history(MEMBERSHIP, CL, {"a": 400}), "a")
    first = r[r["row"] == 0]
    assert first["position"].iloc[0] == 0 and (first["effect"] == UP).sum() == 3
    fig = cluster_figures.raster_figure(r, "layer a")
    z = [list(row) for row in fig.data[0].z]
    assert z[0] == [1.0, 2.0, 2.0, 2.0]  # unchanged, then sped up three times
    assert "group 1, factor 1.5" in str(fig.data[0].customdata)


def test_membership_missing_says_so():
    assert cp.stays(cp.sampled_history(None, CL, {})) is None
    assert "No membership sample" in cluster_words.stays_sentence(None)


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
    text = cluster_words.fall_sentence(falls, 3, 0.1, 0.1)
    assert "fell together at 2 of its 3 re-clusters (steps 20 and 30)" in text
    assert "1 of them clamped at the lower bound 0.1" in text
    assert "Why, at step 30" in text and "so their targets were 0.1 to 0.2" in text  # the last
    assert "moves each factor 10% of the way" in text
    lines = cluster_words.step_lines(steps, 20, 0.1, 10.0)
    assert lines[0].startswith("group 0: factor 1.1 -> 1.04 (-5.45%), pulled down toward its")
    assert "at the lower bound 0.1" in lines[1]


def test_target_fall_is_traced_to_the_spreads():
    df = _falling_layer()
    df.loc[(df["step"] == 30) & (df["cluster"] == 1), "raw_factor"] = 0.05  # below its 0.1
    f = cf.falls_together(cf.factor_steps(df, "l"))[1]
    assert f.target_fell
    assert "The targets themselves fell since step 20: the model's spread fell 50%" in (
        cluster_words.fall_sentence([f], 3, 0.1, 0.1)
    )


def test_no_common_fall_is_said():
    assert cluster_words.fall_sentence([], 4, 0.01, 0.1).startswith("At no re-cluster")


def test_mean_move_splits_factor_moves_from_group_changes():
    # factors unchanged, 100 weights move from group 1 (x2) to group 0 (x1): the layer's mean
    # falls by 100/400 of a factor point, all of it from weights changing groups
    cl = _clusters([(10, "l", 0, 200, 1.0), (10, "l", 1, 200, 2.0),
                    (20, "l", 0, 300, 1.0), (20, "l", 1, 100, 2.0)])  # fmt: skip
    m = cf.mean_move(cl, "l", 20)
    assert (m.before, m.after) == pytest.approx((1.5, 1.25))
    assert m.from_factors == pytest.approx(0.0) and m.from_groups == pytest.approx(-0.25)
    assert "-0.2500 from weights changing groups" in cluster_words.mean_move_sentence(m)
    first = cf.mean_move(cl, "l", 10)
    assert first.before == 1.0 and first.from_factors == pytest.approx(0.5)


def test_explained_chart_draws_spread_target_bounds_and_pull():
    steps = cf.factor_steps(_falling_layer(), "l")
    fig = cluster_figures.factor_explain_figure(steps, layer_name="l", bounds=(0.1, 10.0),
                                                rate=0.1)  # fmt: skip
    names = [t.name for t in fig.data]
    assert "whole model's spread" in names and "group 0" in names
    bounds = sorted({s.y0 for s in fig.layout.shapes if s.y0 in (0.1, 10.0)})
    assert bounds == [0.1, 10.0]
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
    fig = cluster_figures.factor_explain_figure(steps, layer_name="l", bounds=(0.1, 10.0),
                                                rate=float("nan"))  # fmt: skip
    assert fig.to_json()  # serialisable: no NaN axis range
    assert [f.step for f in cf.falls_together(steps)] == [20, 30]
    text = cluster_words.fall_sentence(cf.falls_together(steps), 3, float("nan"), 0.1)
    assert "did not record the targets and spreads, so why cannot be told here" in text
    assert "target was not recorded" in cluster_words.step_lines(steps, 20, 0.1, 10.0)[0]

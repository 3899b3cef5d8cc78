"""Pure numbers: smoothing, spikes, CV, speed-ups, summaries, sentences, sweeps, configs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard import metrics, narrative
from dashboard.metrics.sweep_groups import Tolerance


def tensorboard_ema(values, weight):
    """TensorBoard's own loop (tensorboard/.../vz_line_chart2 smoothing), as the reference."""
    last, n, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.5, 0.9, 0.99, 0.999])
def test_ema_matches_tensorboard(weight):
    x = np.random.default_rng(0).normal(3, 1, 500)
    x[[10, 11, 200]] = np.nan
    x[300] = np.inf
    got = metrics.ema(x, weight)
    want = tensorboard_ema(x, weight)
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)


def test_ema_first_value_is_unbiased_and_input_untouched():
    x = np.array([5.0, 5.0, 5.0])
    np.testing.assert_allclose(metrics.ema(x, 0.99), [5, 5, 5])
    assert x.tolist() == [5.0, 5.0, 5.0]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_ema_rejects_bad_weight(bad):
    with pytest.raises(ValueError, match="weight"):
        metrics.ema([1.0, 2.0], bad)


def test_spike_mask_counts_each_spike_once():
    rng = np.random.default_rng(1)
    x = 1 + 0.02 * rng.normal(size=2000)
    x[1000:1005] = 5  # one spike of five steps
    x[1500] = 4
    m = metrics.spike_mask(x, 3.0)
    assert np.flatnonzero(m).tolist() == [1000, 1500]
    assert metrics.spike_mask(np.array([]), 3.0).size == 0


def test_spike_mask_ignores_a_falling_curve_and_nans():
    x = np.linspace(10, 1, 3000)
    x[2000:] = np.nan
    assert not metrics.spike_mask(x, 1.25).any()


def test_coefficient_of_variation():
    x = np.r_[np.full(10, 100.0), np.tile([1.0, 3.0], 45)]
    assert metrics.coefficient_of_variation(x) == pytest.approx(0.5)
    assert math.isnan(metrics.coefficient_of_variation([1.0]))


def test_first_reach():
    assert metrics.first_reach([1, 2, 3, 4], [5, 4, 3, 2], 3.5) == 3
    assert math.isnan(metrics.first_reach([1, 2], [5, 4], 1))


def _steps(n, speed=1.0, nan_from=None):
    step = np.arange(1, n + 1)
    loss = 2 + 5 / (1 + speed * step / 50)
    if nan_from:
        loss[nan_from:] = np.nan
    return pd.DataFrame(
        {
            "step": step,
            "loss": loss,
            "tokens": step * 100,
            "wall_time": step * 0.5,
            "grad_norm": np.ones(n),
        }
    )


def _evals(steps_df, every=50):
    e = steps_df.iloc[every - 1 :: every]
    return pd.DataFrame(
        {
            "step": e["step"],
            "tokens": e["tokens"],
            "wall_time": e["wall_time"],
            "split": "val",
            "loss": e["loss"] + 0.1,
        }
    )


def test_summarize_definitions():
    s = _steps(1000)
    ev = _evals(s)
    r = metrics.summarize("a", "adamw", "finished", s, ev)
    assert r.steps == 1000
    assert r.final_train_loss == pytest.approx(s["loss"].iloc[-100:].mean())
    assert r.best_train_loss == pytest.approx(s["loss"].rolling(100).mean().min())
    assert r.final_eval_loss == pytest.approx(ev["loss"].iloc[-1])
    assert r.final_eval_ppl == pytest.approx(math.exp(ev["loss"].iloc[-1]))
    assert r.wall_time_s == 500
    assert r.nan_steps == 0 and r.first_nan_step is None


def test_summarize_nan_and_empty():
    r = metrics.summarize("x", "sgg", "failed", _steps(500, nan_from=300), None)
    assert r.first_nan_step == 301 and r.nan_steps == 200
    assert np.isfinite(r.final_train_loss)
    empty = metrics.summarize("e", "sgg", "running", None, None)
    assert empty.steps is None and math.isnan(empty.final_train_loss)


def test_speedup_eval_and_train():
    base, fast = _steps(1000), _steps(1000, speed=2.0)
    data = {"b": (base, _evals(base)), "f": (fast, _evals(fast))}
    sums = {k: metrics.summarize(k, "?", "finished", *v) for k, v in data.items()}
    metrics.add_speedups(sums, data, "b")
    assert sums["f"].target_kind == "eval"
    assert sums["b"].speedup_steps == pytest.approx(1.0)
    # loss(step * 2) for the fast run: it reaches the target in about half the steps
    assert sums["f"].speedup_steps == pytest.approx(2.0, rel=0.06)
    assert sums["f"].speedup_tokens == pytest.approx(sums["f"].speedup_steps)
    data = {"b": (base, None), "f": (fast, None)}
    sums = {k: metrics.summarize(k, "?", "finished", *v) for k, v in data.items()}
    metrics.add_speedups(sums, data, "b")
    assert sums["f"].target_kind == "train"
    assert sums["f"].speedup_steps > 1.5


def _meta(opt, lr, steps=100):
    return {
        "optimizer": {"name": opt, "hyperparameters": {"lr": lr}},
        "config": {"lr": lr, "steps": steps, "optimizer": opt},
    }


def test_sweep_members_compare_like_with_like():
    metas = {
        "a1": _meta("adamw", 1e-3),
        "a2": _meta("adamw", 1e-2),
        "s1": _meta("sgg", 1e-3),
        "s2": _meta("sgg", 1e-2),
        "long": _meta("sgg", 1e-3, steps=999),
    }
    assert metrics.varying_hyperparameters(metas)[0] == "config.lr"
    assert sorted(metrics.sweep_members(metas, "config.lr")) == ["a1", "a2", "s1", "s2"]
    assert metrics.plain_name("config.lr") == "learning rate"


def test_sweep_uses_initial_lr_without_config():
    meta = {"optimizer": {"hyperparameters": {"lr": 8e-5, "initial_lr": 4e-3}}}
    assert metrics.hyperparameter_value(meta, "hyperparameters.lr") == 4e-3


def test_tolerance_and_sentences():
    df = pd.DataFrame(
        {
            "optimizer": ["adamw"] * 3 + ["sgg"] * 3,
            "value": [1e-4, 1e-3, 1e-2] * 2,
            "final_loss": [4.0, 3.0, np.nan, 3.1, 3.0, 3.1],
        }
    )
    tol = metrics.tolerance(df).set_index("optimizer")
    assert tol.loc["adamw", "width"] == 1 and tol.loc["sgg", "width"] == pytest.approx(100)
    # the claim needs intervals: wider only when sure beyond everything the other could be
    sure = Tolerance("sgg", 1e-3, 3.0, within=[1e-4, 1e-3, 1e-2])
    narrow = Tolerance("adamw", 1e-3, 3.0, within=[1e-3], outside=[1e-4], diverged=[1e-2])
    text = " ".join(narrative.tolerance_sentences([narrow, sure], "hyperparameters.lr"))
    assert "**sgg** tolerates a wider range of learning rate than adamw" in text
    unsure = Tolerance("adamw", 1e-3, 3.0, within=[1e-3], unsure=[1e-4, 1e-2])
    text = " ".join(narrative.tolerance_sentences([unsure, sure], "hyperparameters.lr"))
    assert "tolerates a wider" not in text and "cannot tell" in text


def test_config_table_marks_differences():
    t = metrics.config_table({"a": _meta("adamw", 1e-3), "b": _meta("sgg", 1e-3)})
    assert bool(t.loc["optimizer.name", "differs"]) is True
    assert bool(t.loc["optimizer.hyperparameters.lr", "differs"]) is False


def test_cluster_helpers():
    tr = pd.DataFrame(
        {
            "step": [10] * 4,
            "layer": ["w"] * 4,
            "from_cluster": [0, 0, 1, 1],
            "to_cluster": [0, 1, 0, 1],
            "count": [90, 10, 0, 100],
        }
    )
    assert metrics.moved_share(tr)["moved"].iloc[0] == pytest.approx(0.05)
    cl = pd.DataFrame({"step": [10, 10], "layer": ["w", "w"], "size": [1, 3], "factor": [2.0, 1.0]})
    assert metrics.size_weighted_factor(cl)["factor"].iloc[0] == pytest.approx(1.25)
    h = pd.DataFrame(
        {
            "quantity": ["adaptive_lr"] * 2,
            "cluster": [0, 0],
            "bin_left": [1, 10],
            "bin_right": [10, 100],
            "count": [1, 3],
        }
    )
    d = metrics.histogram_density(h)
    assert d["share"].tolist() == [0.25, 0.75]
    assert d["center"].tolist() == pytest.approx([10**0.5, 10**1.5])

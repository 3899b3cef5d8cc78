"""The second manager review's fixes, each pinned: time verdicts only between runs trained at
the same time and over a run's whole cost, repeats whose results differ flagged, no sweep over
seeds or recording options, no range claim from one value, a notice for unpooled seeds, spike
markers that do not hide each other, steadiness over the steps both sides ran."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from dashboard import figures, narrative
from dashboard.metrics import compare, intervals, sweep
from dashboard.metrics.compare import RunFacts
from dashboard.metrics.sweep_groups import Tolerance

DIRECTION = re.compile(r"\b(less time|more time)\b")
HOUR = 3600.0


def _run(name, seed, opt, typical, start, steps=100, grad=None):
    meta = {
        "optimizer": {"name": opt},
        "config": {"seed": seed, "lr": 4e-3, "optimizer": opt},
        "host": {"hostname": "h", "cpu": "c", "device": "cpu", "cpu_count": 2},
    }
    rng = np.random.default_rng(seed + 10 * len(opt))
    f = RunFacts(name, seed, meta, "finished", last_step=steps)
    f.train_step = np.arange(1, steps + 1, dtype=float)
    f.train_avg = np.linspace(3, 2, steps)
    f.optimizer_time = typical * (1 + rng.normal(0, 0.01, steps))
    f.step_time = np.full(steps - 1, 0.1)
    f.reclustered = np.zeros(steps, bool)
    f.span = (start, start + HOUR)
    if grad is not None:
        f.grad = np.asarray(grad, dtype=float)
    return f


def test_times_of_runs_not_trained_together_get_no_verdict():
    """A 3x slower step measured an hour apart on a shared machine is not the optimizer's."""
    together = compare.compare(
        [_run(f"s{i}", i, "sgg", 0.03, 0.0) for i in range(3)],
        [_run(f"a{i}", i, "adamw", 0.01, 0.0) for i in range(3)],
        "sgg",
        "adamw",
    )
    assert together.concurrent and together.optimizer_time_diff.detected
    apart = compare.compare(
        [_run(f"s{i}", i, "sgg", 0.03, 5 * HOUR) for i in range(3)],
        [_run(f"a{i}", i, "adamw", 0.01, 0.0) for i in range(3)],
        "sgg",
        "adamw",
    )
    assert apart.concurrent is False and not apart.optimizer_time_diff.has_interval
    text = narrative.time_sentence(apart)
    assert not DIRECTION.search(text) and "not trained at the same time" in text
    cell = narrative.cost_table([apart], apart).iloc[1]["Optimizer time vs baseline"]
    assert cell == "cannot tell (not run at the same time)"


def test_the_time_per_step_spreads_the_re_cluster_steps_over_the_run():
    t = np.full(100, 0.010)
    t[0] = 40.0  # the first step (a build) stays apart
    rc = np.zeros(100, bool)
    rc[25::25] = True
    t[rc] = 0.5
    cost = compare.step_cost(t, rc)
    assert cost.typical == pytest.approx(0.010)
    assert cost.amortised == pytest.approx((0.010 * 96 + 0.5 * 3) / 99)
    assert cost.first == 40.0


def test_repeats_of_one_seed_whose_results_differ_are_flagged():
    _, notes = intervals.seed_values([(0, 1.95), (0, 2.21)], "baseline")
    assert "repeats of one seed" in notes[0] and "check that their seed" in notes[0]
    _, same = intervals.seed_values([(0, 2.0), (0, 2.0)], "baseline")
    assert "check" not in same[0]


def test_seeds_and_recording_options_are_not_settings_to_sweep():
    metas = {
        f"r{i}": {
            "optimizer": {"name": "sgg"},
            "config": {"seed": i, "layer_stride": 10 * (i + 1), "lr": 1e-3 * (i + 1)},
        }
        for i in range(3)
    }
    assert sweep.varying_hyperparameters(metas) == ["config.lr"]


def test_an_optimizer_tried_at_one_value_gets_no_range_claim():
    one = Tolerance("sgg", 1e-3, 2.0, within=[1e-3])
    many = Tolerance("adamw", 1e-3, 2.0, within=[1e-3, 4e-3], unsure=[1.6e-2])
    text = " ".join(narrative.tolerance_sentences([many, one], "config.lr"))
    assert "**sgg** was tried at one learning rate only" in text
    assert "tolerates" not in text


def test_unpooled_runs_of_a_seed_group_are_said_to_rest_on_one_seed():
    groups = {"g1": ["a0", "a1", "a2"], "g2": ["s0"]}
    group_of = {"a0": "g1", "a1": "g1", "a2": "g1", "s0": "g2"}
    note = narrative.unpooled_note([("a0", ["a0"]), ("s0", ["s0"])], groups, group_of)
    assert "a0 (1 of 3 runs of its setting)" in note and "s0" not in note
    assert narrative.unpooled_note([("s0", ["s0"])], groups, group_of) == ""


def test_spikes_of_two_lines_at_one_step_both_stay_visible():
    steps = np.arange(1, 11, dtype=float)
    lines = pd.concat(
        [pd.DataFrame({"run": n, "step": steps, "grad_norm": 1.0}) for n in ("adamw", "sgg")]
    )
    spikes = pd.DataFrame({"run": ["adamw", "sgg"], "step": [5.0, 5.0], "grad_norm": [9.0, 9.0]})
    fig = figures.grad_norm_figure(
        lines, pd.DataFrame(), spikes, "step", {"adamw": "#1f77b4", "sgg": "#ff7f0e"}
    )
    marks = [t.marker for t in fig.data if t.mode == "markers"]
    assert len(marks) == 2
    assert marks[0].symbol != marks[1].symbol and marks[1].size > marks[0].size


def test_steadiness_is_measured_over_the_steps_both_sides_ran():
    """A 600-step run against a 200-step one: the longer run's calm later steps must not make
    it look steadier; both are read over the first 200 steps."""
    rng = np.random.default_rng(3)
    noisy_start = np.r_[rng.lognormal(0, 0.8, 200), np.full(400, 1.0)]
    long = [_run(f"l{i}", i, "adamw", 0.01, 0.0, steps=600, grad=noisy_start) for i in range(3)]
    short = [
        _run(f"s{i}", i, "sgg", 0.01, 0.0, steps=200, grad=noisy_start[:200]) for i in range(3)
    ]
    c = compare.compare(short, long, "short", "long")
    assert c.cv == pytest.approx(c.base_cv)
    assert narrative.verdict_word(c.cv_diff, "steadier", "less steady").startswith("cannot tell")

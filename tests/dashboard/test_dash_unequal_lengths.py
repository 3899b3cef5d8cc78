"""Runs of unequal length are compared on the same steps: the spikes and the gradient-size
variation of a 600-step group against a 200-step group are counted over steps 1 to 200 on both
sides (a long run's later steps, after its warm-up, must not make a verdict), and the
Comparison says so; equal-length comparisons are the whole runs', as before."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import loader
from dashboard.metrics import compare
from dashboard.metrics.statistics import coefficient_of_variation
from tests.dashboard.dash_fixtures import SAMPLE_RUNS

STEADY = ("cv", "base_cv", "cv_diff", "spikes", "base_spikes", "spikes_diff")
NOTE = "spikes and gradient-size variation counted over steps 1 to 200, the steps both sides ran"


@pytest.fixture(scope="module")
def tables() -> dict[str, tuple[loader.Run, pd.DataFrame, pd.DataFrame]]:
    root = Path(SAMPLE_RUNS)
    runs = loader.discover_runs(root).runs
    out = {}
    for r in runs:
        out[r.rel] = (
            r,
            loader.read_table(r, "steps", root).df,
            loader.read_table(r, "evals", root).df,
        )
    return out


def _facts(tables, prefix: str, upto: int | None = None) -> list[compare.RunFacts]:
    out = []
    for rel in sorted(k for k in tables if re.fullmatch(re.escape(prefix) + r"-s\d+", k)):
        run, steps, evals = tables[rel]
        if upto is not None:  # the run as if it had stopped at step `upto`
            steps = steps[steps["step"] <= upto].reset_index(drop=True)
            evals = evals[evals["step"] <= upto].reset_index(drop=True)
        out.append(compare.run_facts(run.name, run.meta, "finished", steps, evals))
    return out


def test_600_steps_against_200_are_compared_on_the_first_200(tables):
    long_side = _facts(tables, "main-600/sgg-lr4e-3-T50")
    short_side = _facts(tables, "adamw-lr4e-3")
    assert len(long_side) == 10 and {f.last_step for f in long_side} == {600}
    assert len(short_side) == 3 and {f.last_step for f in short_side} == {200}
    c = compare.compare(long_side, short_side, "sgg", "adamw")
    cut = compare.compare(_facts(tables, "main-600/sgg-lr4e-3-T50", 200), short_side, "s", "a")
    for name in STEADY:
        assert getattr(c, name) == getattr(cut, name), name
    # the same numbers from the steps themselves: the first 200 gradient norms of each seed
    cv = [coefficient_of_variation(f.grad[f.train_step <= 200]) for f in long_side]
    assert c.cv == pytest.approx(np.mean(cv), rel=1e-12)
    assert c.cv != pytest.approx(np.mean([f.grad_cv for f in long_side]))  # not the whole run's
    assert any(n.startswith(NOTE) for n in c.notes), c.notes
    assert not any("counted over" in n for n in cut.notes)  # equal lengths: nothing cut


def test_equal_lengths_keep_the_whole_runs_numbers(tables):
    prefixes = sorted({re.sub(r"-s\d+$", "", k) for k in tables})
    checked = 0
    for pa in prefixes:
        for pb in prefixes:
            a, b = _facts(tables, pa), _facts(tables, pb)
            if pa == pb or len({f.last_step for f in a + b}) != 1:
                continue
            c = compare.compare(a, b, pa, pb)
            whole = compare.side_mean(a, [f.grad_cv for f in a])
            assert c.cv == whole or (np.isnan(c.cv) and np.isnan(whole))
            if not c.grad_mismatch:
                assert c.spikes == compare.side_mean(a, [f.loss_spikes + f.grad_spikes for f in a])
            assert not any("counted over" in n for n in c.notes)
            checked += 1
    assert checked >= 40


def _steps(n: int, seed: int, spiky_after: int | None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    step = np.arange(1, n + 1, dtype=np.float64)
    loss = 2.0 + 3.0 * np.exp(-step / 60) + rng.normal(0, 0.02, n)
    grad = 1.0 + 0.1 * rng.standard_normal(n) ** 2
    if spiky_after is not None:  # every 40 steps after the short side stopped: a spike in both
        late = np.flatnonzero((step > spiky_after) & (step % 40 == 0))
        loss[late] *= 3.0
        grad[late] *= 20.0
    return pd.DataFrame({"step": step, "loss": loss, "grad_norm": grad})


def test_a_long_runs_spiky_extra_steps_make_no_verdict(tables):
    metas = [tables[f"main-600/sgg-lr4e-3-T50-s{i}"][0].meta for i in range(3)]
    base_metas = [tables[f"adamw-lr4e-3-s{i}"][0].meta for i in range(3)]
    long_side = [
        compare.run_facts(f"long-{i}", m, "finished", _steps(600, i, 200), None)
        for i, m in enumerate(metas)
    ]
    short_side = [
        compare.run_facts(f"short-{i}", m, "finished", _steps(200, 100 + i, None), None)
        for i, m in enumerate(base_metas)
    ]
    # over their whole length the long runs are spiky: 10 loss and 10 gradient spikes each
    assert all(f.loss_spikes >= 9 and f.grad_spikes >= 9 for f in long_side)
    assert all(f.loss_spikes + f.grad_spikes == 0 for f in short_side)
    assert min(f.grad_cv for f in long_side) > 3 * max(f.grad_cv for f in short_side)
    c = compare.compare(long_side, short_side, "long", "short")
    assert c.spikes == 0 and c.base_spikes == 0
    assert not c.spikes_diff.detected and not c.cv_diff.detected
    assert abs(c.cv - c.base_cv) < 0.5 * c.base_cv
    assert any(n.startswith(NOTE) for n in c.notes), c.notes

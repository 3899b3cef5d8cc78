"""Issue 17, mixed-folder review: damaged runs, foreign tools and unrecorded gradients never
give a false number."""

import numpy as np
import pandas as pd

from dashboard.metrics import compare, groups


def _steps(n=50, grad=True, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"step": np.arange(1, n + 1), "loss": 3 - np.arange(n) / n + rng.random(n) * 0.01}
    )
    if grad:
        df["grad_norm"] = 1 + rng.random(n)
    return df


def _meta(seed, source=None):
    m = {"name": f"r{seed}", "config": {"seed": seed, "lr": 4e-3}, "optimizer": {"name": "adamw"}}
    if source:
        m["source"] = {"kind": source}
    return m


def test_damaged_run_left_out_and_named():
    base = [compare.run_facts(f"b{s}", _meta(s), "finished", _steps(seed=s), None) for s in (0, 1)]
    bad = compare.run_facts("copy", _meta(2), "finished", None, None, "its steps are damaged")
    run = [
        compare.run_facts(f"a{s}", _meta(s), "finished", _steps(seed=s + 5), None) for s in (0, 1)
    ]
    c = compare.compare(run, [*base, bad], "a", "b")
    assert "copy left out: its steps are damaged" in c.notes
    assert c.runs == (2, 2)


def test_no_gradient_norm_is_not_zero_spikes():
    f = compare.run_facts("x", _meta(0), "finished", _steps(grad=False), None)
    assert np.isnan(f.grad_spikes)
    a = [compare.run_facts(f"a{s}", _meta(s), "finished", _steps(seed=s), None) for s in (0, 1)]
    b = [compare.run_facts(f"b{s}", _meta(s), "finished", _steps(grad=False), None) for s in (0, 1)]
    c = compare.compare(a, b, "a", "b")
    assert c.grad_mismatch and np.isfinite(c.spikes) and np.isfinite(c.base_spikes)


def test_tools_are_never_one_group_nor_paired():
    assert groups.group_id(_meta(0)) != groups.group_id(_meta(0, "tensorboard"))
    assert "TensorBoard" in groups.group_label(_meta(0, "tensorboard"), [], [0, 1])
    rec = [
        compare.run_facts(f"a{s}", _meta(s), "finished", _steps(seed=s), None) for s in (0, 1, 2)
    ]
    tb = [
        compare.run_facts(f"t{s}", _meta(s, "tensorboard"), "finished", _steps(seed=s + 9), None)
        for s in (0, 1, 2)
    ]
    assert not compare.pairable(rec + tb) and compare.pairable(rec)
    assert compare.compare(tb, rec, "t", "a").loss_diff.method != "paired"


def test_short_run_named_at_comparison_step():
    a = [compare.run_facts("long", _meta(0), "finished", _steps(50), None)]
    b = [compare.run_facts("short", _meta(1), "finished", _steps(30, seed=1), None)]
    c = compare.compare(a, b, "a", "b")
    assert c.at_step == 30
    assert any("short stopped at step 30" in n for n in c.notes)

"""The Loss view's difference panel: validation loss of each series minus the baseline's per
evaluation step, with its 95% band across seeds (paired by seed when both sides ran the same
seeds), checked against scipy on generated data and rendered by AppTest on real run folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dash_fixtures import small_run
from scipy import stats
from test_dash_app import render, texts

from dashboard import prepare
from dashboard.views import loss

STEPS = np.array([50, 100, 150, 200])
# one band for the whole curve: each step's interval at 1 - 5% / steps (Bonferroni)
BAND = 1 - 0.05 / len(STEPS)


def evals(loss_values, steps=STEPS) -> pd.DataFrame:
    """One run's evaluation table as the loader returns it (a val and a train split)."""
    steps = np.asarray(steps)
    val = pd.DataFrame({"step": steps, "tokens": steps * 1000, "split": "val", "loss": loss_values})
    train = val.assign(split="train", loss=np.asarray(loss_values) + 100.0)  # never used
    return pd.concat([train, val], ignore_index=True)


def groups_of(rng, n_seeds: int, effect: float, noise: float = 0.05):
    """Base and run losses per seed at STEPS: a seed's luck is shared by both sides (paired)."""
    luck = rng.normal(0, 0.3, size=(n_seeds, 1))
    curve = 3.0 - np.log(STEPS / 25.0)
    base = curve + luck + rng.normal(0, noise, size=(n_seeds, len(STEPS)))
    run = curve + luck + effect + rng.normal(0, noise, size=(n_seeds, len(STEPS)))
    return base, run


def diff_of(base_rows, run_rows, base_seeds, run_seeds, **kw) -> pd.DataFrame:
    tables = {"base": [evals(r) for r in base_rows], "run": [evals(r) for r in run_rows]}
    return prepare.paired_eval_difference(
        tables, {"base": list(base_seeds), "run": list(run_seeds)}, "base", **kw
    )


def test_paired_seeds_give_the_mean_difference_and_scipy_paired_interval():
    base, run = groups_of(np.random.default_rng(0), 4, effect=-0.02)
    d = diff_of(base, run, range(4), range(4))
    assert d["step"].tolist() == STEPS.tolist() and set(d["run"]) == {"run"}
    for i, row in enumerate(d.itertuples()):
        ci = stats.ttest_rel(run[:, i], base[:, i]).confidence_interval(BAND)
        assert row.diff == pytest.approx(np.mean(run[:, i] - base[:, i]))
        assert (row.lo, row.hi) == pytest.approx((ci.low, ci.high))
        assert row.n == 4 and row.method == "paired"
    # pairing removes each seed's luck: the band is narrower than an unpaired one
    ind = stats.ttest_ind(run[:, 0], base[:, 0], equal_var=False).confidence_interval(BAND)
    assert d["hi"].iloc[0] - d["lo"].iloc[0] < ind.high - ind.low


def test_seeds_are_paired_by_name_not_by_order():
    base, run = groups_of(np.random.default_rng(1), 3, effect=0.1)
    d = diff_of(base, run[::-1], [0, 1, 2], [2, 1, 0])
    ci = stats.ttest_rel(run[:, 1], base[:, 1]).confidence_interval(BAND)
    assert (d["lo"].iloc[1], d["hi"].iloc[1]) == pytest.approx((ci.low, ci.high))


def test_repeats_of_one_seed_are_averaged_before_pairing():
    base, run = groups_of(np.random.default_rng(2), 3, effect=0.0)
    repeat = run[0] + 0.4  # a second run of seed 0 on the run side
    d = diff_of(base, [run[0], repeat, run[1], run[2]], [0, 1, 2], [0, 0, 1, 2])
    averaged = np.vstack([(run[0] + repeat) / 2, run[1], run[2]])
    ci = stats.ttest_rel(averaged[:, 2], base[:, 2]).confidence_interval(BAND)
    assert d["n"].tolist() == [3] * len(STEPS)  # three seeds, not four runs
    assert d["diff"].iloc[2] == pytest.approx(np.mean(averaged[:, 2] - base[:, 2]))
    assert (d["lo"].iloc[2], d["hi"].iloc[2]) == pytest.approx((ci.low, ci.high))
    assert "2 runs with seed 0 (compared run): repeats of one seed" in loss.difference_caption(
        d, "base"
    )


def test_identical_differences_draw_no_band_and_are_not_beyond_noise():
    base, _ = groups_of(np.random.default_rng(3), 3, effect=0.0)
    d = diff_of(base, base + 0.25, range(3), range(3))
    assert d["diff"].to_numpy() == pytest.approx(0.25)
    assert d["lo"].isna().all() and d["hi"].isna().all()
    assert prepare.beyond_noise(d).empty
    words = loss.difference_caption(d, "base")
    assert "its seeds show no spread" in words and "no band is drawn there" in words
    assert "beyond noise" not in words and "no detectable difference" not in words


def test_without_common_seeds_it_is_the_difference_of_means_with_welch():
    base, run = groups_of(np.random.default_rng(4), 3, effect=0.05)
    d = diff_of(base, run, [0, 1, 2], [3, 4, 5])
    # Welch's standard error with the conservative min(n) - 1 degrees of freedom (intervals.py)
    a, b = run[:, 3], base[:, 3]
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    half = stats.t.ppf(1 - (1 - BAND) / 2, min(a.size, b.size) - 1) * se
    est = a.mean() - b.mean()
    assert d["diff"].iloc[3] == pytest.approx(est)
    assert (d["lo"].iloc[3], d["hi"].iloc[3]) == pytest.approx((est - half, est + half))
    assert set(d["method"]) == {"across seeds"}
    assert "not paired by seed" in loss.difference_caption(d, "base")


def test_runs_without_a_known_seed_are_never_paired_or_counted_as_seeds():
    base, run = groups_of(np.random.default_rng(5), 3, effect=0.05)
    # all unseeded: they may be repeats of one seed, so each side counts as one value
    d = diff_of(base, run, [None] * 3, [None] * 3)
    assert set(d["method"]) == {"none"} and d["lo"].isna().all()
    assert d["diff"].iloc[0] == pytest.approx(run[:, 0].mean() - base[:, 0].mean())
    assert "no band can be drawn from one run each" in loss.difference_caption(d, "base")
    # beside seeded runs an unseeded one is left out: the three seeds are paired
    extra = run[0] - 1.0
    d = diff_of(base, [*run, extra], range(3), [0, 1, 2, None])
    ci = stats.ttest_rel(run[:, 0], base[:, 0]).confidence_interval(BAND)
    assert set(d["method"]) == {"paired"} and d["n"].tolist() == [3] * len(STEPS)
    assert (d["lo"].iloc[0], d["hi"].iloc[0]) == pytest.approx((ci.low, ci.high))
    assert "without a recorded seed (compared run): left out" in loss.difference_caption(d, "base")


def test_one_run_each_is_the_line_alone_and_the_caption_says_why():
    d = diff_of([[3.0, 2.5, 2.2, 2.0]], [[2.9, 2.6, 2.0, 1.9]], [0], [0])
    assert d["diff"].to_numpy() == pytest.approx([-0.1, 0.1, -0.2, -0.1])
    assert d["lo"].isna().all() and set(d["method"]) == {"none"}
    assert prepare.beyond_noise(d).empty
    assert "no band can be drawn from one run each" in loss.difference_caption(d, "base")


def test_only_steps_both_sides_evaluated_are_compared():
    tables = {
        "base": [evals([3.0, 2.5, 2.2, 2.0]), evals([3.1, 2.4, 2.3, 2.1])],
        "run": [evals([2.9, 2.4], STEPS[:2]), evals([3.0, 2.5], STEPS[:2])],
    }
    d = prepare.paired_eval_difference(tables, {"base": [0, 1], "run": [0, 1]}, "base")
    assert d["step"].tolist() == [50, 100]
    assert d["diff"].tolist() == pytest.approx([-0.1, 0.0])


def test_a_clear_lead_is_beyond_noise_on_the_tokens_axis():
    base, run = groups_of(np.random.default_rng(6), 5, effect=-0.3, noise=0.01)
    d = diff_of(base, run, range(5), range(5), x="tokens")
    assert d["tokens"].tolist() == (STEPS * 1000).tolist()
    marks = prepare.beyond_noise(d)
    assert marks["step"].tolist() == STEPS.tolist() and set(marks["side"]) == {"ahead"}
    words = loss.difference_caption(d, "base", "tokens")
    assert "across 5 paired seeds" in words and "below 0 the run is ahead of the baseline" in words
    assert "steps 50, 100, 150 and 200 the band lies below 0" in words
    assert "drawn at the run's mean tokens seen" in words


def test_no_evaluations_give_an_empty_frame():
    d = prepare.paired_eval_difference({"base": [None], "run": [None]}, {}, "base")
    assert d.empty and list(d.columns) == prepare.DIFFERENCE_COLUMNS


def spec(at) -> str:
    return " ".join(c.proto.spec for c in at.get("plotly_chart"))


def test_loss_tab_draws_the_paired_difference_of_seed_groups(tmp_path, monkeypatch):
    for opt in ("adamw", "sgg"):
        for seed in (0, 1, 2):
            small_run(tmp_path, f"{opt}-s{seed}", optimizer=opt, lr=4e-3, seed=seed)
    at = render(tmp_path, monkeypatch, baseline="adamw-s0", compare=["sgg-s0"], view="Loss")
    assert not at.error
    assert "Validation loss minus the baseline" in spec(at)
    words = texts(at)
    assert "the mean of the per-seed differences, with its 95% band across 3 paired seeds" in words
    assert "minus the baseline's (adamw, lr 4e-3 (3 seeds))" in words
    assert "95% band" in spec(at) and "paired seeds" in spec(at)  # the hover note
    assert '"fill":"toself"' in spec(at)  # the band is drawn


def test_loss_tab_one_run_each_says_no_band(tmp_path, monkeypatch):
    small_run(tmp_path, "adamw", optimizer="adamw", lr=4e-3, seed=0)
    small_run(tmp_path, "sgg", optimizer="sgg", lr=4e-3, seed=0)
    at = render(tmp_path, monkeypatch, baseline="adamw", compare=["sgg"], view="Loss")
    assert "Validation loss minus the baseline" in spec(at)
    assert "no band can be drawn from one run each" in texts(at)
    assert '"fill":"toself"' not in spec(at)


def test_loss_tab_without_evaluations_falls_back_to_training_loss(tmp_path, monkeypatch):
    small_run(tmp_path, "adamw", optimizer="adamw", lr=4e-3, seed=0, eval_every=10_000)
    small_run(tmp_path, "sgg", optimizer="sgg", lr=4e-3, seed=0, eval_every=10_000)
    at = render(tmp_path, monkeypatch, baseline="adamw", compare=["sgg"], view="Loss")
    assert "Training loss minus the baseline" in spec(at)
    assert "Validation loss minus the baseline" not in spec(at)
    assert "falls back to the training loss" in texts(at)


def test_one_run_against_a_group_uses_the_groups_spread():
    base, run = groups_of(np.random.default_rng(7), 4, effect=0.0)
    d = diff_of(base, run[:1], range(4), [0])
    b = base[:, 1]
    half = stats.t.ppf(1 - (1 - BAND) / 2, 3) * b.std(ddof=1) * np.sqrt(1 + 1 / 4)
    assert d["diff"].iloc[1] == pytest.approx(run[0, 1] - b.mean())
    assert (d["lo"].iloc[1], d["hi"].iloc[1]) == pytest.approx(
        (d["diff"].iloc[1] - half, d["diff"].iloc[1] + half)
    )
    assert "one run against a group of 4" in loss.difference_caption(d, "base")
    # a group without spread gives no band, and is not called "one run each"
    flat = diff_of(np.tile(base[:1], (4, 1)), run[:1], range(4), [0])
    words = loss.difference_caption(flat, "base")
    assert flat["lo"].isna().all() and "show no spread" in words and "one run each" not in words


def test_a_step_without_a_band_breaks_the_band_instead_of_being_bridged():
    d = np.array([0.1, 0.2, 0.1, 0.2, 0.1, 0.15, 0.12])
    frame = pd.DataFrame({"run": "r", "step": np.arange(1, 8), "diff": d, "lo": d - 0.1})
    frame["hi"] = d + 0.1
    frame.loc[[2, 3, 6], ["lo", "hi"]] = np.nan  # no band at steps 3, 4 and 7
    frame.loc[5, ["lo", "hi"]] = np.nan  # ... and 6: step 5 stands alone
    outline = prepare.band_outline(frame)
    rings = np.split(outline["step"].to_numpy(), np.flatnonzero(outline["step"].isna()) + 1)
    assert [r[~np.isnan(r)].tolist() for r in rings if len(r)] == [[1, 2, 2, 1]]
    assert set(outline["step"].dropna()) == {1, 2}  # never over steps 3 and 4
    assert prepare.lone_bands(frame)["step"].tolist() == [5]

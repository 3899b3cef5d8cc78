"""The one rule for claims: intervals on groups with known truth, words only when the interval
excludes zero, like-for-like comparison, spikes from the first steps."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from dashboard import narrative
from dashboard.metrics import compare, intervals, spikes

WORDS = re.compile(r"\b(better|worse|faster|slower|steadier|less steady)\b")


@pytest.mark.parametrize("paired", [False, True])
def test_identical_groups_read_as_no_detectable_difference(paired):
    rng = np.random.default_rng(0)
    trials, quiet = 2000, 0
    for _ in range(trials):
        seed_luck = rng.normal(0, 0.05, 3)  # shared by both optimizers when paired
        a = 3.0 + (seed_luck if paired else rng.normal(0, 0.05, 3)) + rng.normal(0, 0.01, 3)
        b = 3.0 + seed_luck + rng.normal(0, 0.01, 3)
        d = (
            intervals.across_seeds(dict(enumerate(a)), dict(enumerate(b)))
            if paired
            else intervals.across_seeds(list(a), list(b))
        )
        assert d.method == (intervals.PAIRED if paired else intervals.UNPAIRED)
        text = narrative.claim(d, "lower (better)", "higher (worse)")
        quiet += text.startswith(narrative.NO_DIFFERENCE)
        assert bool(WORDS.search(text)) == d.detected
    assert quiet / trials >= 0.95


def test_one_run_against_a_group_is_calibrated():
    rng = np.random.default_rng(2)
    quiet = 0
    for _ in range(2000):
        d = intervals.across_seeds([3.0 + rng.normal(0, 0.05)], list(3.0 + rng.normal(0, 0.05, 3)))
        assert d.method == intervals.ONE_VS_GROUP
        quiet += not d.detected
    assert quiet / 2000 >= 0.95
    shifted = intervals.across_seeds([3.5], [3.0, 3.01, 2.99, 3.02])
    assert shifted.detected and shifted.low > 0


def test_a_real_shift_is_detected_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(1)
    luck = rng.normal(0, 0.3, 3)  # large seed effect, shared by both optimizers
    sgg = {s: 3.0 + 0.036 + luck[s] + rng.normal(0, 0.005) for s in range(3)}
    adamw = {s: 3.0 + luck[s] + rng.normal(0, 0.005) for s in range(3)}
    paired = intervals.across_seeds(sgg, adamw)
    unpaired = intervals.across_seeds(list(sgg.values()), list(adamw.values()))
    assert paired.detected and paired.low > 0
    assert not unpaired.detected
    assert paired.half_width < unpaired.half_width / 5
    assert narrative.claim(paired, "lower (better)", "higher (worse)").startswith("higher (worse)")


def test_one_run_each_cannot_tell_and_per_batch_spread_can():
    d = intervals.across_seeds([3.0], [3.1])
    assert not d.has_interval
    assert narrative.CANNOT_TELL in narrative.claim(d, "lower", "higher")
    wide = intervals.from_spread(3.0, 0.2, 4, 3.05, 0.2, 4)
    assert wide.has_interval and not wide.detected
    narrow = intervals.from_spread(3.0, 0.01, 50, 3.05, 0.01, 50)
    assert narrow.detected and narrow.estimate == pytest.approx(-0.05)


def test_bad_spread_inputs_give_no_interval():
    assert not intervals.from_spread(3.0, float("nan"), 4, 3.1, 0.1, 4).has_interval
    assert not intervals.from_samples([1.0], [1.0, 2.0]).has_interval


def test_spikes_are_found_in_warm_up():
    step = np.arange(1, 601)
    loss = 10 * np.exp(-step / 12) + 3.0
    loss[36] = 4.91  # a jump from ~3.5 at step 37
    grad = np.exp(np.random.default_rng(0).normal(0, 0.15, 600))
    grad[31] = 68.0  # 68x at step 32
    assert np.flatnonzero(spikes.spike_mask(loss, spikes.LOSS_SPIKE_FACTOR)).tolist() == [36]
    assert np.flatnonzero(spikes.spike_mask(grad, spikes.GRAD_SPIKE_FACTOR)).tolist() == [31]
    assert not spikes.spike_mask(loss[:3], 1.25).any()  # too little history to judge


def _run(name, seed, lr, n=600, shift=0.0, luck=0.0, opt="adamw", status="finished"):
    step = np.arange(1, n + 1)
    rng = np.random.default_rng(seed + int(lr * 1e4))
    loss = 2 + 5 / (1 + step / 50) + shift + luck + rng.normal(0, 0.01, n)
    steps = pd.DataFrame(
        {
            "step": step,
            "loss": loss,
            "grad_norm": np.exp(rng.normal(0, 0.1, n)),
            "wall_time": step * 0.5,
        }
    )
    ev = steps.iloc[49::50]
    evals = pd.DataFrame(
        {
            "step": ev["step"],
            "split": "val",
            "loss": ev["loss"] + 0.1,
            "loss_std": 0.05,
            "n_batches": 8,
        }
    )
    meta = {
        "optimizer": {"name": opt},
        "config": {"lr": lr, "steps": 600, "optimizer": opt},
        "seed": seed,
    }
    return compare.run_facts(name, meta, status, steps, evals)


def test_shorter_run_is_compared_at_equal_steps_and_never_says_never():
    base = _run("adamw-4e-3", 0, 4e-3)
    short = _run("sgg-3e-3", 0, 3e-3, n=400, opt="sgg", shift=-0.02)
    c = compare.compare([short], [base], short.name, base.name)
    assert c.at_step == 400
    lines = narrative.comparison_sentences(c)
    assert lines[0].startswith("Not like for like: learning rate 3e-3 vs 4e-3")
    assert "400 vs 600 steps" in lines[0]
    assert "at step 400" in " ".join(lines)
    assert "never" not in " ".join(lines).lower()


def test_not_reached_says_what_is_known():
    base = _run("b", 0, 4e-3)
    worse = _run("w", 0, 4e-3, opt="sgg", shift=0.2)
    c = compare.compare([worse], [base], "w", "b")
    text = narrative.reach_sentence(c)
    assert not c.reached and "in 600 steps; at step 600 it is" in text and "above" in text


def test_seed_only_difference_makes_no_claim():
    a = _run("adamw-s0", 0, 1.6e-2)
    b = _run("adamw-s1", 1, 1.6e-2, shift=-0.05)
    c = compare.compare([b], [a], b.name, a.name)
    assert c.same_settings and not c.loss_diff.has_interval
    short = narrative.in_short(c)
    assert "differ only in the seed" in short and not WORDS.search(short)


def test_paired_groups_of_seeds():
    luck = [0.3, -0.2, 0.1]
    jitter = [0.003, -0.002, 0.001]  # identical differences would be no spread, not certainty
    sgg = [
        _run(f"s{i}", i, 4e-3, opt="sgg", shift=0.04 + jitter[i], luck=luck[i]) for i in range(3)
    ]
    adamw = [_run(f"a{i}", i, 4e-3, luck=luck[i]) for i in range(3)]
    c = compare.compare(sgg, adamw, "sgg (3 seeds)", "adamw (3 seeds)")
    assert c.loss_diff.method == intervals.PAIRED and c.n == 3
    assert c.loss_diff.detected and c.loss_diff.estimate > 0
    row = narrative.comparison_table([c]).iloc[0]
    assert row["Verdict"] == "worse" and row["Seeds"] == 3


def test_no_sentence_contradicts_its_numbers():
    """Every verdict word in every sentence, table cell and the overview comes from an
    interval that excludes zero, for a spread of random comparisons."""
    rng = np.random.default_rng(3)
    comps = []
    for k in range(12):
        n = 1 + k % 3
        luck = rng.normal(0, 0.05, n)
        shift = [0.0, 0.02, -0.3][k % 3]
        a = [_run(f"a{k}{i}", i, 4e-3, opt="sgg", shift=shift, luck=luck[i]) for i in range(n)]
        b = [_run(f"b{k}{i}", i, 4e-3, luck=luck[i]) for i in range(n)]
        comps.append(compare.compare(a, b, f"a{k}", f"b{k}"))
    for c in comps:
        sentences = {
            "loss": narrative.loss_sentence(c),
            "reach": narrative.reach_sentence(c),
            "stability": narrative.stability_sentence(c),
        }
        for part, diffs in (
            ("loss", [c.loss_diff]),
            ("reach", [c.steps_diff]),
            ("stability", [c.spikes_diff, c.cv_diff]),
        ):
            if WORDS.search(sentences[part]) or re.search(r"\b(fewer|more) by\b", sentences[part]):
                assert any(d.detected for d in diffs), sentences[part]
        row = narrative.comparison_table([c]).iloc[0]
        assert (row["Verdict"] in ("better", "worse")) == c.loss_diff.detected
    assert narrative.overview(comps)

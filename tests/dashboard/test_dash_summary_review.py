"""The Summary's cards and sentences after the fresh-eyes review (findings 5, 6, 7, 11), on the
review's own comparison (sample_runs/main-600: SGG against AdamW, 10 seeds each) and on known
differences: one seed count per steps number, differences at the digits their interval
resolves, the optimizer's time explained from what the runs record, and "not the same as equal"
said once per comparison."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from dash_fixtures import SAMPLE_RUNS
from test_dash_claim_rule import CLAIM, check_versus, quantity

from dashboard import cards, narrative, verdicts
from dashboard.metrics import compare
from dashboard.metrics.intervals import Difference

MAIN = SAMPLE_RUNS / "main-600"
pytestmark = pytest.mark.skipif(
    not (MAIN / "sgg-lr4e-3-T50-s0" / "run.json").exists(), reason="no sample runs"
)


def _facts(prefix: str) -> list[compare.RunFacts]:
    """The seeds of one group, read straight from their Parquet tables."""
    out = []
    for d in sorted(MAIN.glob(f"{prefix}-s*")):
        meta = json.loads((d / "run.json").read_text())
        tables = [
            pd.concat([pd.read_parquet(p) for p in sorted((d / "tables" / t).glob("*.parquet"))])
            for t in ("steps", "evals")
        ]
        out.append(compare.run_facts(meta["name"], meta, "finished", *tables))
    return out


@pytest.fixture(scope="module")
def review() -> compare.Comparison:
    return compare.compare(_facts("sgg-lr4e-3-T50"), _facts("adamw-lr4e-3"), "sgg", "adamw")


def _card(c, label: str) -> cards.Card:
    return next(x for x in cards.comparison_cards(c) if x.label.startswith(label))


# --------------------------------------------------------------------------- finding 5


def test_every_steps_number_says_the_seeds_it_comes_from(review):
    """516 vs 515 come from the 5 seeds that reached the target on both sides: the card, the
    sentence, the table and "In short" say that count, and "In short" no longer hangs the
    interval on "6 of 10 seeds reached it"."""
    c = review
    assert (c.reached_k, c.base_reached_k, c.steps_diff.n) == (6, 5, 5)
    basis = "from the 5 seeds that reached it on both sides"
    assert narrative.steps_basis(c) == basis
    card = _card(c, "Steps to match")
    assert card.label == "Steps to match (on 5 of 10 seeds)"
    assert basis in card.help and (card.value, card.delta["delta_description"]) == ("516", "vs 515")
    reach = narrative.reach_sentence(c)
    assert f"{basis}: step 516 vs 515" in reach and "(the seeds that reached it)" not in reach
    assert check_versus(reach) == 1
    short = narrative.in_short(c)
    assert "reached it (+1" not in short
    assert re.search(rf"speed \*\*[^*]+\*\* \(\+1 ± 17 steps, {basis}\)", short), short
    cell = narrative.detail_table([c], c).iloc[1]["Steps to the baseline's loss"]
    assert cell == f"516 vs 515 (6 of 10 seeds reached it; {basis})"


def test_unpaired_steps_name_each_sides_count():
    """Different seeds on the two sides: each side's mean is over its own seeds that reached
    the target, and the phrase says both counts (never 'on both sides')."""
    d = Difference(-30.0, -60.0, 0.0, 3, "unpaired", 4, mean=200.0, base_mean=230.0)
    c = _stub(steps_diff=d, reached_k=3, base_reached_k=4, n=4, n_base=5)
    assert narrative.steps_basis(c) == "from the 3 and 4 seeds that reached it"
    assert cards._on_seeds(c) == " (on 3 and 4 seeds)"


def _stub(**kw) -> compare.Comparison:
    """A comparison with only the fields a test sets (the rest neutral)."""
    nan = float("nan")
    base = {f: nan for f in compare.Comparison.__dataclass_fields__}
    base.update(
        name="sgg", base_name="adamw", n=3, n_base=3, kind="validation", at_step=600,
        lengths=(600, 600), not_like_for_like=[], hardware="same", base_shadow=False,
        diverged_at=None, base_diverged_at=None, reached=True, same_settings=False,
        reached_k=3, base_reached_k=3, resolution=25.0, notes=(), stalls=(), runs=(3, 3),
        seeds=(frozenset(), frozenset()), concurrent=True, base_fused=None, base_adamw=True,
        not_recorded=(), grad_mismatch="",
    )  # fmt: skip
    for f in ("loss_diff", "steps_diff", "cv_diff", "spikes_diff", "optimizer_time_diff",
              "step_time_diff"):  # fmt: skip
        base[f] = Difference(nan)
    base.update(kw)
    return compare.Comparison(**base)


# --------------------------------------------------------------------------- finding 6


def test_a_difference_shows_the_digits_its_values_carry(review):
    """'-0.007 ± 0.013' beside '1.399 vs 1.406' (was '-0.007020 ± 0.01316'); spikes '1.4 vs
    1.5' with '-0.10 ± 0.41' (was '1.400 vs 1.500' and '-0.1000 ± 0.4061'), on the cards,
    in the sentences and in the table alike; the estimate is the same number, rounded."""
    c = review
    assert _card(c, "Loss").delta["delta"] == "-0.007 ± 0.013: no detectable difference"
    assert _card(c, "Spikes").delta["delta"] == "-0.10 ± 0.41: no detectable difference"
    said = " ".join(narrative.comparison_sentences(c))
    assert "1.399 vs 1.406: no detectable difference (-0.007 ± 0.013)" in said
    assert "1.4 vs 1.5: no detectable difference (-0.10 ± 0.41)" in said
    assert "0.007020" not in said and "0.01316" not in said and "1.400 vs" not in said
    assert "(-0.09 ms ± 0.91 ms)" in said  # was -0.0911 ms ± 0.913 ms
    assert narrative.comparison_table([c], c).iloc[1]["vs baseline"] == "-0.007 ± 0.013"
    for d in (c.loss_diff, c.spikes_diff):  # the shown number is the estimate, rounded
        est, _, half = verdicts.pm_text(d).partition(" ± ")
        (e, err), (h, herr) = quantity(est), quantity(half)
        assert abs(e - d.estimate) <= err and abs(h - d.half_width) <= herr


@pytest.mark.parametrize("seed", range(4))
def test_pm_text_keeps_two_figures_of_the_half_width_and_the_verdicts_side(seed):
    """Random differences: the half-width has 2 significant figures (or the units, never
    beyond), the estimate its decimal places, the pair reads with the verdict (an interval
    that excludes zero shows |estimate| > half-width), and both are the true values rounded."""
    rng = np.random.default_rng(seed)
    two = 0
    for _ in range(400):
        scale = 10.0 ** rng.uniform(-4, 2)
        est, hw = rng.normal(0, 2) * scale, abs(rng.normal(1, 0.5)) * scale + 1e-12
        d = Difference(est, est - hw, est + hw, 5, "paired", 5, mean=2 + est, base_mean=2.0)
        text = verdicts.pm_text(d)
        e_txt, _, h_txt = text.partition(" ± ")
        (e, err), (h, herr) = quantity(e_txt), quantity(h_txt)
        assert abs(e - est) <= err * (1 + 1e-9) and abs(h - hw) <= herr * (1 + 1e-9), text
        if "e" not in text:
            assert len(e_txt.partition(".")[2]) == len(h_txt.partition(".")[2]), text
            two += len(h_txt.replace(".", "").lstrip("0")) == 2
        assert (abs(e) > h) == (d.low > 0 or d.high < 0), text
    assert two >= 300  # two figures but where the units or the verdict's side need others


def test_the_rule_still_reads_the_rounded_claims():
    """Words and numbers still agree to the shown digits: an interval that excludes zero by a
    hair is never printed as '+0.41 ± 0.41' beside 'detected'; a tiny difference without an
    interval is 'the same to the shown digits'."""
    near = Difference(0.4071, 0.001, 0.8132, 5, "paired", 5, mean=2.4, base_mean=2.0)
    est, _, half = verdicts.pm_text(near).partition(" ± ")
    assert abs(quantity(est)[0]) > quantity(half)[0], (est, half)
    tiny = Difference(2.384e-08, n=1, n_max=1, mean=1.4 + 2.384e-08, base_mean=1.4)
    assert "the same to the shown digits" in verdicts.claim(tiny, "lower", "higher")


# --------------------------------------------------------------------------- finding 7


def test_the_optimizer_time_is_split_and_its_implementations_named(review):
    """5.14 ms vs 5.23 ms: the re-clusters' share (12 x 180 ms over 600 steps, about 3.6 ms)
    and the ordinary step left (about 1.5 ms) are said, and why that step can be cheaper:
    the baseline's AdamW records `fused` not set (torch's default), SGG runs its own update.
    The first step's cost is not called compilation: what it went to is not recorded."""
    c = review
    assert c.base_fused is None and c.base_adamw
    text = narrative.time_sentence(c)
    share = c.recluster_time * c.n_recluster / (c.lengths[0] - 1)
    assert 3.4e-3 < share < 3.8e-3
    assert f"about {verdicts.ms(share)} is its re-cluster steps" in text
    assert f"leaving about {verdicts.ms(c.optimizer_time - share)} for its ordinary step" in text
    assert narrative.NOT_SET_NOTE in text
    assert "compiling the update)" not in text and "(a one-time cost" not in text
    first = re.search(r"first step 167 ms vs 6\.85 ms \(([^)]*)\)", text)
    assert first and "not record" in first.group(1), text
    assert "one-time compilation" not in narrative.TIME_HOW


@pytest.mark.parametrize(("fused", "note"), [(False, "UNFUSED_NOTE"), (True, None)])
def test_the_implementation_note_follows_the_recorded_fused_flag(review, fused, note):
    c = compare.Comparison(**{**review.__dict__, "base_fused": fused})
    text = narrative.time_sentence(c)
    assert narrative.NOT_SET_NOTE not in text
    assert (note is not None) == (narrative.UNFUSED_NOTE in text)


# --------------------------------------------------------------------------- finding 11


def test_not_the_same_as_equal_is_said_once_and_every_verdict_keeps_its_numbers(review):
    """Five 'no detectable difference' verdicts, one 'which is not the same as equal: too few
    seeds to tell' (at the first); each verdict keeps its interval and what its seeds can
    detect, and the words still agree with the numbers beside them."""
    said = narrative.comparison_sentences(review)
    text = " ".join(said)
    assert text.count(f"{verdicts.NO_DIFFERENCE} (") == 5
    assert text.count("which is not the same as equal") == 1
    assert text.count("too few seeds to tell") == 1
    first = text.index(f"{verdicts.NO_DIFFERENCE} (")
    assert text.index("which is not the same as equal") < text.index(
        f"{verdicts.NO_DIFFERENCE} (", first + 1
    )
    assert text.count("can detect differences above") == 5
    for m in CLAIM.finditer(text):
        assert m.group("word") is None  # nothing detected here: no direction word anywhere
    assert sum(check_versus(s) for s in said) >= 5


def test_the_caveat_moves_to_the_first_undecided_verdict(review):
    """When the loss is decided, the caveat goes with the next 'no detectable difference'."""
    sure = Difference(-0.05, -0.08, -0.02, 10, "paired", 10, mean=1.35, base_mean=1.4)
    c = compare.Comparison(**{**review.__dict__, "loss_diff": sure})
    text = " ".join(narrative.comparison_sentences(c))
    assert text.count("which is not the same as equal") == 1
    spikes = text.index("Spikes per run")
    assert text.index("which is not the same as equal") > spikes
    assert math.isfinite(c.loss_diff.estimate)


def test_a_compared_side_that_does_not_apply_sgg_gets_no_sgg_split_or_note(review):
    """An AdamW run with a shadow clustering compared with AdamW: its grouping is not in its
    optimizer time, so no re-cluster split and no "SGG's is its own update"."""
    assert review.sgg_applied
    c = compare.Comparison(**{**review.__dict__, "sgg_applied": False})
    text = narrative.time_sentence(c)
    assert "is its re-cluster steps" not in text and narrative.NOT_SET_NOTE not in text
    shadow = compare.compare(_facts("adamw-lr4e-3"), _facts("adamw-lr4e-3"), "a", "b")
    assert not shadow.sgg_applied

"""Review 2 (findings 3, 4, 6): derived sizes at 2 figures, spike counts at one set of digits,
'per seed' where seeds repeat, a count's unresolved verdict in counts' words, and a card's
'no detectable difference' saying on the card that it is not 'the same'."""

from __future__ import annotations

import json

import pandas as pd

from dashboard import cards, narrative, verdicts
from dashboard.metrics import compare
from dashboard.metrics.intervals import PAIRED, Difference


def _d(est: float, low: float, high: float, **kw) -> Difference:
    return Difference(est, low, high, n=10, method=PAIRED, se=0.25, df=9.0, unit_sd=0.8, **kw)


def test_what_these_seeds_could_detect_is_given_at_two_figures():
    d = _d(-0.1, -0.51, 0.31, base_mean=1.5)
    text = verdicts.claim(d, "fewer", "more", size=0.01)
    assert "0.5654" not in text and "can detect differences above 0.79 (" in text
    assert verdicts.detectable_text(d) == verdicts.num(d.detectable(), 2)


def test_spike_counts_share_their_digits_and_never_read_equal_when_they_differ():
    assert narrative.counts(1.4, 4 / 3) == ("1.40", "1.33")
    assert narrative.counts(1.0, 4 / 3) == ("1.00", "1.33")
    assert narrative.counts(1.4, 1.5) == ("1.4", "1.5")
    a, b = narrative.counts(1.3333, 1.3334)
    assert a != b
    assert narrative.counts(4 / 3, 0.0) == ("1.33", "0")


def test_an_unresolved_count_is_less_than_one_spike_apart_never_below_resolution():
    d = _d(0.0, -0.5, 0.5, base_mean=1.33)
    assert verdicts.verdict_word(d, "fewer", "more") == "cannot tell (less than one spike apart)"
    text = verdicts.claim(d, "fewer", "more")
    assert "resolves" not in text and "less than one spike apart" in text
    assert text.endswith("(difference 0)")
    steps = _d(1.0, -16.0, 18.0, resolution=25.0)  # steps keep their measuring step
    assert verdicts.verdict_word(steps, "faster", "slower") == "cannot tell (below resolution)"


class _C:
    """The fields `spikes_per` and `spikes_label` read."""

    def __init__(self, runs, n, n_base):
        self.runs, self.n, self.n_base = runs, n, n_base


def test_spikes_are_per_seed_where_a_seed_repeats_and_per_run_otherwise():
    assert narrative.spikes_per(_C((10, 10), 10, 10)) == "per run"
    assert narrative.spikes_per(_C((4, 3), 3, 3)) == "per seed"
    both = [_C((10, 10), 10, 10), _C((4, 3), 3, 3)]
    assert narrative.spikes_label(both) == "Spikes per seed (loss + gradient)"


def test_a_no_detectable_difference_card_says_it_is_not_shown_equal():
    card = cards.Card("Loss at step 600", "1.399", "help", {"delta": "x"})
    nd = _d(-0.007, -0.02, 0.006)
    out = cards._not_equal(card, nd)
    assert out.label == "Loss at step 600 (not shown equal)"
    assert "not 'the" in out.help and out.delta == card.delta
    found = _d(-0.1, -0.2, -0.05)
    assert cards._not_equal(card, found) is card


def test_a_verdict_on_runs_that_differ_in_more_than_the_optimizer_says_so_beside_it():
    """The review's 600-step SGG group against a 200-step AdamW group: "less steady" in the
    Speed and steadiness table carries "not like for like" beside it, not only in the loss
    table's column."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "sample_runs"

    def group(pattern: str) -> list[compare.RunFacts]:
        out = []
        for d in sorted(root.glob(pattern)):
            meta = json.loads((d / "run.json").read_text())
            tables = [
                pd.concat(
                    [pd.read_parquet(p) for p in sorted((d / "tables" / t).glob("*.parquet"))]
                )
                for t in ("steps", "evals")
            ]
            out.append(compare.run_facts(meta["name"], meta, "finished", *tables))
        return out

    c = compare.compare(group("main-600/sgg-lr4e-3-T50-s*"), group("adamw-lr4e-3-s*"), "s", "a")
    row = narrative.detail_table([c], c).iloc[-1]
    assert row["Steadiness"].endswith(narrative.UNLIKE_MARK)
    same = compare.compare(
        group("main-600/sgg-lr4e-3-T50-s*"), group("main-600/adamw-lr4e-3-s*"), "s", "a"
    )
    assert (
        not narrative.detail_table([same], same)
        .iloc[-1]["Steadiness"]
        .endswith(narrative.UNLIKE_MARK)
    )

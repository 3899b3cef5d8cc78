"""The Summary's four cards for one comparison: loss, steps to match, spikes, gradient-size
variation. Pure: each card is its label, value, delta and help text, from the `Comparison` the
sentences and tables below the cards read too (so that they cannot disagree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dashboard import narrative, verdicts
from dashboard.metrics.compare import Comparison
from dashboard.metrics.intervals import PAIRED, Difference

NOT_EQUAL = "(not shown equal)"  # what a card's "no detectable difference" is not


@dataclass(frozen=True)
class Card:
    """One `st.metric`: `delta` holds its delta keywords (delta, colour, arrow, description)."""

    label: str
    value: str
    help: str
    delta: Mapping[str, str] = field(default_factory=dict)


def delta(
    d: Difference, lower: str, higher: str, base: str, fmt: Callable = verdicts.signed
) -> dict[str, str]:
    """The card's delta: the verdict, coloured (with an arrow) only when the interval excludes
    zero, grey otherwise; the baseline's value beside it."""
    word = narrative.TABLE_WORDS.get(*(2 * [narrative.verdict_word(d, lower, higher)]))
    out = {"delta_description": f"vs {base}"}
    # the headline carries its uncertainty: "-0.6575 ± 0.3588", or the verdict "cannot tell"
    # at the interval's digits (`verdicts.pm_text`) where the values are plain numbers
    pm = (
        verdicts.pm_text(d)
        if fmt is verdicts.signed
        else f"{fmt(d.estimate)} ± {fmt(d.half_width).lstrip('+')}"
    )
    sure = f"{pm}: " if d.has_interval else ""
    if d.detected:
        return {**out, "delta": f"{sure}{word}", "delta_color": "inverse"}
    # the badge is narrow at 1,280 px: its reason is in the sentences below the cards
    short = word.split(" (")[0]
    return {**out, "delta": f"{sure}{short}", "delta_color": "off", "delta_arrow": "off"}


def comparison_cards(c: Comparison) -> list[Card]:
    """Loss, steps to match, spikes, gradient-size variation (two a row on the page)."""
    diffs = [c.loss_diff, c.steps_diff if c.reached_k else None, c.spikes_diff, c.cv_diff]
    return [
        _not_equal(card, d)
        for card, d in zip([_loss(c), _steps(c), _spikes(c), _variation(c)], diffs, strict=True)
    ]


def _not_equal(card: Card, d: Difference | None) -> Card:
    """A card whose verdict is "no detectable difference" says in its label that this is not
    "the same" (the badge has no room left at 1,280 px), and why in its help."""
    if d is None or not narrative.no_difference(d):
        return card
    why = f"{verdicts.NO_DIFFERENCE.capitalize()}: {narrative.definition(verdicts.NO_DIFFERENCE)}"
    return Card(f"{card.label} {NOT_EQUAL}", card.value, f"{card.help} {why}", card.delta)


def _loss(c: Comparison) -> Card:
    return Card(
        f"Loss at step {c.at_step:,}",
        narrative.num(c.loss),
        f"{c.kind.capitalize()} loss. {narrative.definition('95% interval')}",
        delta(c.loss_diff, "better", "worse", narrative.num(c.base_loss)),
    )


def _steps(c: Comparison) -> Card:
    """Steps to reach the baseline's loss; when no seed reached it, the gap at the end."""
    if c.reached_k:
        basis = narrative.steps_basis(c)  # the seeds both numbers come from, said as below
        out = delta(
            c.steps_diff,
            "faster",
            "slower",
            narrative.steps_text(c.base_steps_to_target),
            lambda v: f"{v:+,.0f}",
        )
        return Card(
            "Steps to match" + _on_seeds(c),
            narrative.steps_text(c.steps_to_target),
            f"Steps to reach the baseline's loss: {verdicts.reached_text(c.reached_k, c.n)} "
            f"(the baseline's own: {verdicts.reached_text(c.base_reached_k, c.n_base)}); both "
            f"numbers {basis or 'from each side'}. "
            + narrative.definition("steps to the baseline's loss"),
            out,
        )
    gap = (
        f"{verdicts.gap_pct(c.end_gap, signed=True)} at the end (no interval)"
        if c.end_gap == c.end_gap
        else "not reached"
    )
    return Card(
        "Steps to match",
        f"> {c.lengths[0]:,}",
        f"The baseline's loss was not reached in {c.lengths[0]:,} steps "
        f"({verdicts.reached_text(0, c.n)}); below the value: the gap of the "
        "run's (mean) loss at its last evaluation to the baseline's loss.",
        {"delta": gap, "delta_color": "off", "delta_arrow": "off"},
    )


def _on_seeds(c: Comparison) -> str:
    """The label's short form of `narrative.steps_basis` (the card is narrow): ' (on 5 of 10
    seeds)', ' (on 6 and 5 seeds)', ' (on all 10 seeds)'; '' for one run each."""
    d, basis = c.steps_diff, narrative.steps_basis(c)
    if not basis:
        return ""
    if basis.startswith("from all"):
        return f" ({basis.removeprefix('from ')})".replace("all ", "on all ", 1)
    if d.method == PAIRED:
        return f" (on {d.n} of {max(c.n, c.n_base)} seeds)"
    return f" (on {c.reached_k} and {c.base_reached_k} seeds)"


def _spikes(c: Comparison) -> Card:
    """Spikes per run (per seed where a seed repeats: `narrative.spikes_per`); loss spikes
    alone when the gradient norms cannot be compared (one side's before clipping, the
    other's after)."""
    apart = (
        f" Gradient spikes: {narrative.CANNOT_TELL}: {c.grad_mismatch}." if c.grad_mismatch else ""
    )
    ours, theirs = narrative.counts(c.spikes, c.base_spikes)
    per = narrative.spikes_per(c)
    return Card(
        f"Loss spikes {per}" if c.grad_mismatch else f"Spikes {per}",
        ours,
        narrative.definition("spike") + apart + f" {narrative.SPIKES_NOTE}",
        delta(c.spikes_diff, "fewer", "more", theirs),
    )


def _variation(c: Comparison) -> Card:
    return Card(
        "Gradient-size variation",
        narrative.pct(c.cv),
        narrative.definition("gradient-size variation (CV)"),
        delta(
            c.cv_diff,
            "steadier",
            "less steady",
            narrative.pct(c.base_cv),
            lambda v: f"{v * 100:+.0f} pts",
        ),
    )

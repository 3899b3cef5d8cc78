"""The Clusters tab's sentences, each built from the numbers its chart shows (never apart).

`metrics.cluster_effect`, `metrics.cluster_population` and `metrics.cluster_factors` compute; this
module only phrases. A sentence says "cannot tell" with the reason when its numbers cannot tell.
"""

from __future__ import annotations

import math

from dashboard.layer_names import ATTENTION, EMBEDDINGS, HEAD, MLP, NORMS
from dashboard.metrics.cluster_effect import (
    DOWN,
    SAME,
    SLOWED,
    SPED_UP,
    UP,
    Effect,
    GroupEffect,
)
from dashboard.metrics.cluster_factors import Fall, MeanMove
from dashboard.metrics.cluster_population import Stays
from dashboard.metrics.clusters import CEILING_NEAR
from dashboard.metrics.intervals import LEVEL
from dashboard.verdicts import CANNOT_TELL

NOT_APPLIED = "not applied"
THRESHOLDS = (
    f"sped up: factor above {SPED_UP:g}x; slowed down: below {SLOWED:.2f}x (= 1/{SPED_UP:g}); "
    "about unchanged: in between"
)
TYPE_WORDS = {
    EMBEDDINGS: "the embeddings",
    ATTENTION: "the attention weights",
    MLP: "the MLP weights",
    NORMS: "the norm weights",
    HEAD: "the output head",
}
INTRO = (
    "SGG sorts the weights of every layer into a few groups by their momentum (the running "
    "average of their gradients) and multiplies the step AdamW would take for each weight by its "
    "group's factor. A group's factor is pulled toward the whole model's spread of momentum "
    "divided by the group's own spread: a group less spread out than the model's typical weight "
    "is pulled above 1 (sped up), a more spread-out group below 1 (slowed down). The groups and "
    "the pull are recomputed every T steps (a 're-cluster'), and each pull moves a factor only "
    "(1 - beta3) of the way (1% with the default beta3 = 0.99), so factors change slowly."
)
GROUPS_ARE_RANKS = (
    "**Group numbers are ranks, not fixed sets of weights**: at every re-cluster k-means sorts "
    "each layer's weights again by their momentum, and group 0 is always the lowest momentum "
    "(the largest negative values), the last group the highest. A 'group 2' line follows a "
    "position in that order, while the weights in it come and go."
)


def share(v: float) -> str:
    """'31%', '0.4%' (a small share never prints as 0%), '0%' only for none."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0%"
    if v < 0.01 or (v > 0.99 and v < 1):
        return f"{v:.1%}"
    return f"{v:.0%}"


def times(v: float) -> str:
    """A factor as a multiple of AdamW's step: '1.26x', '0.904x'."""
    return "n/a" if v is None or not math.isfinite(v) else f"{v:#.3g}x"


def _where(items: list[tuple[str, float]], limit: int = 3) -> str:
    parts = [f"{share(s)} of {TYPE_WORDS.get(t, 'the other weights')}" for t, s in items[:limit]]
    parts = [p for p, (_, s) in zip(parts, items, strict=False) if s >= 0.01]
    return ", ".join(parts)


def _seed_interval(seeds: GroupEffect | None, cls: str) -> str:
    """' (95% interval 27% to 32% over 10 seeds)' or why there is none ('' for one seed: the
    sentence says that once)."""
    if seeds is None or seeds.n < 2:
        return ""
    d = seeds.share[cls]
    if d.has_interval:
        lo, hi = share(max(d.low, 0.0)), share(min(d.high, 1.0))
        return f" ({LEVEL:.0%} interval {lo} to {hi})"
    return f" ({CANNOT_TELL} how sure: {d.reason})"


def _clause(e: Effect, cls: str, verb: str, whose: str, seeds: GroupEffect | None) -> str:
    s = e.share[cls]
    if s <= 0 and (seeds is None or seeds.spread[cls][1] <= 0):
        return f"{verb} none of {whose}"
    how = {
        UP: f"to {times(e.factor[UP])} AdamW's step size on average (up to {times(e.high)})",
        DOWN: f"to {times(e.factor[DOWN])} AdamW's step size on average (down to {times(e.low)})",
    }[cls]
    where = _where(e.where.get(cls, []))
    return f"{verb} **{share(s)}** of {whose}{_seed_interval(seeds, cls)}, {how}" + (
        f": {where}" if where else ""
    )


def effect_sentence(e: Effect, ema: float = float("nan"), seeds: GroupEffect | None = None) -> str:
    """The manager's answer for a run or a seed group (`seeds`: the shares across its seeds):
    what share was sped up, slowed, left alone, by how much, where, and how it moved; for a
    shadow clustering, what SGG *would* have done."""
    whose = "the model's weights" if e.whole_model else "the clustered weights"
    if seeds is not None and seeds.n >= 2:
        when = (
            f"on average over {seeds.n} seeds at step {e.step:,} (the last re-cluster all reached)"
        )
    else:
        when = f"at step {e.step:,} (re-cluster {e.reclusters})"
    up = _clause(e, UP, "sped up", whose, seeds)
    down = _clause(e, DOWN, "slowed down", "them", seeds)
    ci = _seed_interval(seeds, SAME)
    band = (
        f"every factor between {times(e.low)} and {times(e.high)}"
        if e.share[UP] <= 0 and e.share[DOWN] <= 0
        else f"factors between {SLOWED:.2f}x and {SPED_UP:g}x"
    )
    same = (
        f"left **{share(e.share[SAME])}** about unchanged ({ci[2:-1] + '; ' if ci else ''}{band}"
        + (", the 1-D weights, which SGG does not scale, included)" if e.whole_model else ")")
    )
    these = "these runs" if seeds is not None and seeds.n > 1 else "this run"
    if e.applied:
        head = f"SGG, {when}: {up}; {down}; {same}."
    else:
        head = (
            f"**What SGG would have done ({NOT_APPLIED})**: {these} trained with plain AdamW "
            f"and only observed SGG's clustering. Had the factors been applied, {when} SGG "
            f"would have {up}; {down}; {same}. In {these} every weight took AdamW's own step."
        )
    one = (
        f" One seed, so {CANNOT_TELL} how much these shares move from seed to seed."
        if seeds is not None and seeds.n < 2
        else ""
    )
    return f"{head} {moved_sentence(e, ema)}{one}"


def moved_sentence(e: Effect, ema: float = float("nan")) -> str:
    """How the shares moved from the first re-cluster to `e.step`."""
    if e.reclusters < 2:
        return "One re-cluster so far: how the shares move over training cannot be told yet."
    up, down = ("sped-up", "slowed-down") if e.applied else ("would-be sped-up", "slowed-down")
    text = (
        f"Over training the {up} share went from {share(e.first_share[UP])} at the first "
        f"re-cluster (step {e.first_step:,}) to {share(e.share[UP])}, the {down} share "
        f"from {share(e.first_share[DOWN])} to {share(e.share[DOWN])}."
    )
    if math.isfinite(ema) and ema > 0:
        text += (
            f" Each re-cluster moves a factor {ema:.0%} of the way to its target "
            f"(beta3 = {1 - ema:g}), so the shares change slowly."
        )
    return text


def _stay_text(s: Stays) -> str:
    """How long sped-up weights stay sped up (or why that cannot be told)."""
    if not s.ever_up > 0:
        return "none of them was sped up at any re-cluster"
    if not math.isfinite(s.persistence):
        return (
            f"{share(s.ever_up)} were sped up, all first at the last re-cluster, so "
            f"{CANNOT_TELL} yet how long a weight stays sped up"
        )
    steps = f", {s.median_spell * s.interval:,.0f} steps" if math.isfinite(s.interval) else ""
    return (
        f"{share(s.ever_up)} were sped up at one re-cluster or more; of the weights sped up at "
        f"one re-cluster, {share(s.persistence)} still were at the next; a sped-up spell lasted "
        f"a median {s.median_spell:g} re-clusters{steps} ({share(s.open_spells)} of the spells "
        "were still going at the last re-cluster, so those last at least that long)"
    )


def stays_sentence(s: Stays | None, per_layer: int | None = None) -> str:
    """What the recorded sample of weights did through the re-clusters."""
    if s is None:
        return "No membership sample was recorded in this run, so weights cannot be followed."
    if s.reclusters < 2:
        return "One re-cluster so far: weights cannot be followed from one to the next yet."
    each = f" ({per_layer} a layer)" if per_layer else ""
    stay = _stay_text(s)
    return (
        f"Following the {s.sampled:,} weights recorded{each} through {s.reclusters} re-clusters: "
        f"at a typical re-cluster (the median) **{share(s.changed_group)} changed group**, but "
        f"only **{share(s.changed_effect)} changed between sped up, about unchanged and slowed "
        f"down**. {stay[0].upper() + stay[1:]}. Shares are weighted by parameter count."
    )


def _pct_range(lo: float, hi: float) -> str:
    a, b = f"{abs(lo):.2g}%", f"{abs(hi):.2g}%"
    return a if a == b else f"{a} to {b}"


def _steps_list(steps: list[int], limit: int = 6) -> str:
    """'step 150', 'steps 50, 100 and 150', 'steps 50, ..., 300 and 6 more'."""
    if len(steps) == 1:
        return f"step {steps[0]:,}"
    shown = [f"{s:,}" for s in steps[:limit]]
    if len(steps) > limit:
        return f"steps {', '.join(shown)} and {len(steps) - limit} more"
    return f"steps {', '.join(shown[:-1])} and {shown[-1]}"


def ratio(v: float) -> str:
    """'1.57x', '66x', '2,430x' (no exponent notation for a reader)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:,.0f}x" if v >= 100 else f"{v:.3g}x"


def _span(lo: float, hi: float, fmt) -> str:
    a, b = fmt(lo), fmt(hi)
    return a if a == b else f"{a} to {b}"


def fall_sentence(falls: list[Fall], reclusters: int, ema: float, lower: float) -> str:
    """When all of a layer's factors fell together: how often, and why the last time (the
    fall that made the factors what they are now)."""
    if not falls:
        return "At no re-cluster did all of this layer's factors fall together."
    f = falls[-1]
    every = "all" if f.at_lower_bound == f.groups else str(f.at_lower_bound)
    bound = (
        f"; {every} of them clamped at the lower bound {lower:g}, where a group's spread is "
        f"more than {1 / lower:g}x the model's"
        if f.at_lower_bound
        else ""
    )
    how_often = (
        f"at every one of its {reclusters} re-clusters"
        if len(falls) == reclusters
        else f"at {len(falls)} of its {reclusters} re-clusters"
    )
    rate = f"{ema:.0%}" if math.isfinite(ema) else "(1 - beta3)"
    if not (math.isfinite(f.target_low) and math.isfinite(f.spread_ratio_low)):
        return (
            f"All {f.groups} of this layer's factors fell together {how_often} "
            f"({_steps_list([x.step for x in falls])}); this run did not record the targets "
            "and spreads, so why cannot be told here."
        )
    text = (
        f"All {f.groups} of this layer's factors fell together {how_often} "
        f"({_steps_list([x.step for x in falls])}). Why, at step {f.step:,}: every group's "
        "target (the whole model's spread / the group's spread) was below the factor in force. "
        f"The groups' momentum was {_span(f.spread_ratio_low, f.spread_ratio_high, ratio)} as "
        f"spread out as the model's, so their targets were "
        f"{_span(f.target_low, f.target_high, lambda v: f'{v:.3g}')}{bound}. The EMA moves each "
        f"factor {rate} of the way to its target, so each fell by "
        f"{_pct_range(100 * f.highest_move, 100 * f.lowest_move)}."
    )
    if f.target_fell and f.prev_step is not None:
        text += " " + target_change(f)
    return text


def target_change(f: Fall) -> str:
    """Why the targets themselves fell since the re-cluster before."""
    m, (g0, g1) = f.model_spread_change, f.group_spread_change
    model = f"{'rose' if m > 0 else 'fell'} {abs(m):.0%}" if math.isfinite(m) else "changed"
    if math.isfinite(g0):
        grp = f"{'rose' if g0 > 0 else 'changed'} {g0:+.0%} to {g1:+.0%}"
    else:
        grp = "changed"
    return (
        f"The targets themselves fell since step {f.prev_step:,}: the model's spread {model} "
        f"while the groups' spreads {grp}."
    )


def step_lines(steps, step: int, lower: float, upper: float) -> list[str]:
    """Per group at one re-cluster: factor before -> after, the target and why it is there
    (rows of `metrics.cluster_factors.factor_steps`)."""
    out = []
    for r in steps[steps["step"] == step].itertuples():
        rel = r.factor / r.prev - 1 if r.prev else float("nan")
        spread = r.mda / r.global_mda if r.global_mda else float("nan")
        clamp = (
            f", at the lower bound {lower:g}"
            if r.target <= lower * (1 + 1e-4)
            else f", at the upper bound {upper:g}"
            if r.target >= upper * (1 - 1e-4)
            else ""
        )
        way = "down" if r.move < 0 else "up" if r.move > 0 else "nowhere"
        if not math.isfinite(r.target):
            out.append(f"group {r.cluster}: factor {r.prev:.4g} -> {r.factor:.4g} ({rel:+.2%}); "
                       "its target was not recorded")  # fmt: skip
            continue
        out.append(
            f"group {r.cluster}: factor {r.prev:.4g} -> {r.factor:.4g} ({rel:+.2%}), pulled "
            f"{way} toward its target {r.target:.3g}{clamp}; its spread is {ratio(spread)} the "
            "model's"
        )
    return out


def mean_move_sentence(m: MeanMove | None) -> str:
    """'At step 150 the layer's mean factor went from 0.9911 to 0.9823 (-0.89%): -0.90 points
    of it from the groups' factors, +0.01 from weights changing groups.'"""
    if m is None:
        return ""
    rel = m.after / m.before - 1 if m.before else float("nan")
    return (
        f"At step {m.step:,} the layer's mean factor (weighted by group size) went from "
        f"{m.before:.4g} to {m.after:.4g} ({rel:+.2%}): {m.from_factors:+.4f} from the groups' "
        f"factors moving, {m.from_groups:+.4f} from weights changing groups."
    )


def alr_note(at_ceiling: float, ceiling: float, hi: float) -> str:
    """Why the adaptive-learning-rate axis stops where it does (from `clusters.alr_view`)."""
    if not (math.isfinite(at_ceiling) and at_ceiling > 0):
        return ""
    where = f"lr / eps = {ceiling:.3g}" if math.isfinite(ceiling) else "the right edge"
    return (
        f"The axis stops at {hi:.3g}, where the other weights end: {share(at_ceiling)} of this "
        f"layer's weights sit within {CEILING_NEAR:g}x of {where}, the largest step AdamW can "
        "give, which a weight gets when its gradient has been zero (or nearly) so far, e.g. the "
        "embedding of a byte the text does not contain. Off the axis, not lost: the curves' "
        "shares count them."
    )


def reference_note(name: str, drawn: list[str], missing: list[str], layer: str) -> str:
    """The AdamW run's whole-layer histograms: which are drawn, and which are not recorded."""
    if not drawn:
        return (
            f"{name} (AdamW, no groups): its whole-layer histogram of {layer} is not recorded "
            "in this run, so it is not drawn."
        )
    text = f"Dashed black: {name}, the whole layer (AdamW, no groups)"
    if missing:
        text += f"; its {' and '.join(missing)} of this layer is not recorded in this run"
    return text + "."

"""The Clusters tab's sentences about one layer: the same weights through the re-clusters, why
its factors move, how typical a seed is, and its histograms. Numbers are phrased with
`cluster_words_manager`'s formats; a shadow clustering says "would have" and "not applied".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.cluster_words_manager import (
    NOT_APPLIED,
    pct_range,
    plain,
    possessive,
    range_text,
    ratio,
    sci,
    share,
    span,
    steps_list,
    times,
)
from dashboard.metrics.cluster_effect import BIGGER, SMALLER
from dashboard.metrics.cluster_factors import Fall, MeanMove
from dashboard.metrics.cluster_population import StaysAcross
from dashboard.metrics.clusters import CEILING_NEAR, AlrView
from dashboard.metrics.intervals import LEVEL, Difference
from dashboard.verdicts import CANNOT_TELL


def stays_sentence(s: StaysAcross | None, per_layer: int | None = None, shown: str = "") -> str:
    """What the recorded sample of weights did through the re-clusters, pooled over the seeds
    (each number its mean over seeds with its interval), or said to be one seed."""
    if s is None:
        return "No membership sample was recorded in this run, so weights cannot be followed."
    if s.reclusters < 2:
        return "One re-cluster so far: weights cannot be followed from one to the next yet."
    each = f" ({per_layer} per layer)" if per_layer else ""
    who = (
        f"in each of {s.n} seeds (the mean over seeds, its {LEVEL:.0%} interval in brackets)"
        if s.n >= 2
        else f"in one seed, so {CANNOT_TELL} how much these numbers move from seed to seed"
    )

    def v(d: Difference, fmt=share) -> str:
        return fmt(d.estimate) + range_text(d, fmt, clip01=fmt is share)

    head = (
        f"Following the same {s.sampled:,} sampled weights{each} through {s.reclusters} "
        f"re-clusters, {who}:"
    )
    spell = s.median_spell.estimate * s.interval
    steps = f" ({spell:,.0f} steps)" if math.isfinite(spell) else ""
    bullets = [
        f"at a typical re-cluster (the median) **{v(s.changed_group)} changed group**, but only "
        f"**{v(s.changed_effect)} changed between bigger, about AdamW's and smaller steps**;",
        f"{v(s.ever_up)} had a bigger step at one re-cluster or more;",
    ]
    if math.isfinite(s.persistence.estimate):
        bullets.append(
            f"of those with a bigger step at one re-cluster, {v(s.persistence)} still had it at "
            f"the next; a spell of bigger steps lasted a median "
            f"{v(s.median_spell, lambda x: f'{x:.3g}')} re-clusters{steps}."
        )
    tail = "Shares are weighted by parameter count."
    if shown:
        tail += f" The two charts below show {shown}."
    return head + "\n" + "\n".join(f"- {b}" for b in bullets) + "\n\n" + tail


def spike_note(step: int, value: float, who: str, moves: pd.DataFrame) -> str:
    """Why a churn point is off the axis: its value and the class moves behind it."""
    text = f"Off the axis: {who}, {share(value)} at step {step:,}"
    if moves is not None and not moves.empty:
        m = moves.iloc[0]
        text += (
            f"; most of them ({share(m['share'])} of the sampled weights) moved from "
            f"'{m['from']}' to '{m['to']}' at once: their group's factor crossed a threshold "
            f"({SMALLER:.2f}x or {BIGGER:g}x), so all its weights changed class together"
        )
    return text + "."


# --------------------------------------------------------------------------- why factors move


def how_it_works(
    k: int | None, interval: int | None, rate: float, lower: float, upper: float
) -> str:
    """How SGG sets a factor, with this run's numbers (bullets)."""
    every = f"Every {interval:,} steps" if interval else "Every T steps"
    groups = f"{k} groups" if k else "a few groups"
    pct = f"{rate:.0%}" if math.isfinite(rate) else "(1 - beta3)"
    return "\n".join(
        f"- {b}"
        for b in (
            f"{every} (a *re-cluster*) SGG sorts each layer's weights into {groups} by their "
            "momentum (which way, and how hard, training pushes each weight).",
            "A group's **spread** (MDA) is the median distance of its weights' momentum from "
            "their layer's mean momentum. The whole model's spread is the same median over "
            "every weight SGG groups.",
            f"Each group's **target** is the whole model's spread divided by the group's, "
            f"clamped to [{lower:g}, {upper:g}]: a group nearer its layer's mean than the "
            "model's typical weight gets a target above 1; a group farther away, below 1.",
            f"The **factor** moves {pct} of the way from where it is to its target at each "
            "re-cluster (a moving average); between re-clusters groups and factors stay fixed.",
        )
    )


def fall_summary(falls: list[Fall], reclusters: int, applied: bool = True) -> str:
    """How often all of a layer's factors fell together (independent of the chosen step)."""
    which = "factors" if applied else "would-be factors"
    if not falls:
        return f"At no re-cluster did all of this layer's {which} fall together."
    how_often = (
        f"at every one of its {reclusters} re-clusters"
        if len(falls) == reclusters
        else f"at {len(falls)} of its {reclusters} re-clusters"
    )
    return (
        f"All {falls[-1].groups} of this layer's {which} fell together {how_often} "
        f"({steps_list([x.step for x in falls])})."
    )


def fall_bullets(f: Fall, ema: float, lower: float) -> list[str]:
    """Why every factor fell at the re-cluster `f.step` (the step the slider shows)."""
    if not (math.isfinite(f.target_low) and math.isfinite(f.spread_ratio_low)):
        return [
            f"Every factor fell at step {f.step:,}; this run did not record the targets and "
            "spreads, so why cannot be told here."
        ]
    every = "all" if f.at_lower_bound == f.groups else str(f.at_lower_bound)
    bound = (
        f"; {every} of them clamped at the lower bound {lower:g} (a group more than "
        f"{1 / lower:g}x as far from its layer's mean as the model's typical weight)"
        if f.at_lower_bound
        else ""
    )
    rate = f"{ema:.0%}" if math.isfinite(ema) else "(1 - beta3)"
    spreads = span(f.spread_ratio_low, f.spread_ratio_high, ratio)
    targets = span(f.target_low, f.target_high, lambda v: f"{v:.3g}")
    return [
        "Every factor fell because every group's target was below its factor.",
        f"The groups' spreads were {spreads} the whole model's, so their targets were "
        f"{targets}{bound}.",
        f"Each factor moves {rate} of the way to its target, so each fell by "
        f"{pct_range(100 * f.highest_move, 100 * f.lowest_move)}.",
    ]


def step_why(steps: pd.DataFrame, step: int, falls: list[Fall], ema: float, lower: float,
             applied: bool = True) -> str:  # fmt: skip
    """Why the factors moved as they did at the slider's re-cluster `step` (a heading and
    bullets: what moved, the targets behind it, what moved the targets, the layer against the
    model)."""
    now = steps[steps["step"] == step]
    if now.empty:
        return ""
    fall = next((f for f in falls if f.step == step), None)
    if fall is not None:
        bullets = fall_bullets(fall, ema, lower)
    else:
        up, down = int((now["move"] > 0).sum()), int((now["move"] < 0).sum())
        which = "factors" if applied else "would-be factors"
        bullets = [
            f"{up} of the {len(now)} {which} rose and {down} fell: each moves toward its "
            "target, so it rose where the target was above it and fell where below."
        ]
    bullets += [target_moves(now), far_from_model(now)]
    if not applied:
        bullets.append(
            f"None of these factors was applied ({NOT_APPLIED}): SGG would have set them."
        )
    return f"**Why, at step {step:,}:**\n" + "\n".join(f"- {b}" for b in bullets if b)


def _fold(r: float) -> str:
    """'grew 9.19-fold', 'shrank 2.1-fold', 'stayed about the same'."""
    if not math.isfinite(r) or r <= 0:
        return "changed"
    if abs(r - 1) < 0.05:
        return "stayed about the same"
    return f"grew {r:.3g}-fold" if r > 1 else f"shrank {1 / r:.3g}-fold"


TARGET_MOVE = 0.25  # a target that moved by more than this (relatively) is traced to its causes


def target_moves(now: pd.DataFrame) -> str:
    """Groups whose target moved a lot since the re-cluster before, traced to what moved under
    it: the group's size, its own spread and the model's spread."""
    parts = []
    for r in now.itertuples():
        if not (math.isfinite(r.prev_target) and math.isfinite(r.target) and r.prev_target > 0):
            continue
        if abs(r.target / r.prev_target - 1) <= TARGET_MOVE:
            continue
        way = "fell" if r.target < r.prev_target else "rose"
        grp, mod = _fold(r.mda / r.prev_mda), _fold(r.global_mda / r.prev_global_mda)
        size = (
            f"it went from {share(r.prev_share)} to {share(r.share)} of the layer's weights, and "
            if math.isfinite(r.prev_share) and abs(r.share - r.prev_share) >= 0.02
            else ""
        )
        parts.append(
            f"group {r.cluster}'s target {way} from {r.prev_target:.3g} to {r.target:.3g}: "
            f"{size}its spread {grp} while the model's {mod} "
            f"(from {ratio(r.prev_mda / r.prev_global_mda)} to {ratio(r.mda / r.global_mda)} "
            "the model's)"
        )
    return ("Since the re-cluster before, " + "; ".join(parts) + ".") if parts else ""


def far_from_model(now: pd.DataFrame) -> str:
    """Why a layer's targets all lie below 1: every group farther from its layer's mean than
    the model's typical weight (the whole model's spread is a median over all grouped
    weights, so the largest layers set it)."""
    r = (now["mda"] / now["global_mda"]).to_numpy(float)
    r = r[np.isfinite(r)]
    if r.size == 0 or r.min() <= 1:
        return ""
    return (
        f"Every group of this layer lies at least {ratio(float(r.min()))} as far from its "
        "layer's mean as the model's typical weight does: this layer's momentum is larger than "
        "most of the model's (the whole model's spread is a median over all its grouped "
        "weights, so its largest layers set it), so all its targets are below 1."
    )


def step_lines(steps, step: int, lower: float, upper: float, applied: bool = True) -> list[str]:
    """Per group at one re-cluster: factor before -> after, the target and why it is there
    (rows of `metrics.cluster_factors.factor_steps`)."""
    out = []
    what = "factor" if applied else "would-be factor"
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
        size = f" ({share(r.share)} of the layer)" if math.isfinite(r.share) else ""
        if not math.isfinite(r.target):
            out.append(f"group {r.cluster}{size}: {what} {r.prev:.4g} -> {r.factor:.4g} "
                       f"({rel:+.2%}); its target was not recorded")  # fmt: skip
            continue
        out.append(
            f"group {r.cluster}{size}: {what} {r.prev:.4g} -> {r.factor:.4g} ({rel:+.2%}), "
            f"pulled {way} toward its target {r.target:.3g}{clamp}; its spread is "
            f"{ratio(spread)} the model's"
        )
    return out


def mean_move_sentence(m: MeanMove | None, applied: bool = True) -> str:
    """'At step 150 the layer's mean factor went from 0.9911 to 0.9823 (-0.89%): -0.0090 from
    the groups' factors moving, +0.0001 from weights changing groups.'"""
    if m is None:
        return ""
    rel = m.after / m.before - 1 if m.before else float("nan")
    what = "mean factor" if applied else "would-be mean factor (not applied)"
    return (
        f"At step {m.step:,} the layer's {what} (weighted by group size) went from "
        f"{m.before:.4g} to {m.after:.4g} ({rel:+.2%}): {m.from_factors:+.4f} from the groups' "
        f"factors moving, {m.from_groups:+.4f} from weights changing groups."
    )


def typical_sentence(d: Difference, this: float, seed_name: str, layer: str, step: int) -> str:
    """How typical the seed shown is: the layer's mean factor over seeds against this seed's."""
    if d.n < 2:
        return f"One seed: {CANNOT_TELL} how typical its {layer} is."
    return (
        f"How typical this seed ({seed_name}) is: at step {step:,} the {possessive(layer)} mean "
        f"factor is "
        f"{times(this)} in this seed, {times(d.estimate)}{range_text(d, times)} on average over "
        f"the {d.n} seeds."
    )


# --------------------------------------------------------------------------- histograms


def alr_note(v: AlrView, ceiling: float, lr: float, eps: float, step: int, peak: float) -> str:
    """What the adaptive-learning-rate axis leaves off (from `clusters.alr_view`), with the
    arithmetic of lr / eps at this step said out."""
    if not (math.isfinite(v.pile) and v.pile > 0):
        return ""
    if math.isfinite(ceiling) and math.isfinite(lr):
        peak_text = f"; its peak is {plain(peak)}" if math.isfinite(peak) and peak != lr else ""
        where = (
            f"lr / eps = {plain(lr)} / {sci(eps)} = {plain(ceiling)} (lr is the learning rate at "
            f"step {step:,}, after the schedule{peak_text})"
        )
    else:
        where = "the right edge"
    start = f" at {plain(v.pile_from)} or above" if math.isfinite(v.pile_from) else ""
    return (
        f"Off the axis to the right: **{share(v.pile)}** of this layer's weights, {start.strip()}"
        f", within {CEILING_NEAR:g}x of the largest step size AdamW can give, {where}. A weight "
        "gets it when its gradient has been zero, or nearly, so far (e.g. the embedding of a "
        "byte the text does not contain). Each curve's shares add up to 1 with these weights."
    ).replace(", ,", ",")


def reference_note(name: str, drawn: list[str], missing: list[str], why: str) -> str:
    """The reference drawn behind the groups (grey area): whose whole layer, and why it is the
    reference; or that it is not recorded."""
    if not drawn:
        return (
            f"{name}: its whole-layer histogram of this layer is not recorded, so no reference "
            "is drawn."
        )
    text = f"Grey area: {name}, the whole layer ({why})"
    if missing:
        text += f"; its {' and '.join(missing)} of this layer is not recorded"
    return text + "."


def factors_caption(lower: float, upper: float, rate: float, applied: bool) -> str:
    """How to read the spread / target / factor panels of one layer."""
    return (
        "Read top to bottom. 1: each group's spread as a multiple of the whole model's (1, "
        "dashed: as far from its layer's mean as the model's typical weight). 2: the target "
        f"that gives, model / group, clamped to [{lower:g}, {upper:g}] (dotted lines): a group "
        "nearer its layer's mean than the model's typical weight gets a target above 1. 3: the "
        f"factor {'SGG applied' if applied else 'SGG would have applied'}, which moves "
        + (f"{rate:.0%}" if math.isfinite(rate) else "(1 - beta3)")
        + " of the way to its target at each re-cluster: a triangle down where the target was "
        "below the factor, up where above."
    )

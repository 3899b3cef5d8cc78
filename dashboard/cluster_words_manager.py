"""The Clusters tab's sentences, each built from the numbers its chart shows (never apart). This
module: the manager's part (the whole model, SGG against its shadow, the runs side by side) and
the number formats every Clusters sentence shares; `cluster_words_layer` phrases one layer.

`metrics.cluster_effect`, `metrics.cluster_population` and `metrics.cluster_factors` compute; this
module only phrases. The words say what SGG *set* (a bigger or smaller step than AdamW's), never
an outcome; a number from several seeds carries its 95% interval, one seed says "cannot tell" how
much it moves; a shadow clustering says "would have" and "not applied" in every sentence.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.layer_names import ATTENTION, EMBEDDINGS, HEAD, MLP, NORMS
from dashboard.metrics.cluster_effect import (
    BIGGER,
    CLASSES,
    DOWN,
    SAME,
    SMALLER,
    UP,
    Effect,
    GroupEffect,
    SeriesEffect,
    compare_share,
    shadow_pairs,
)
from dashboard.metrics.cluster_factors import Reach
from dashboard.metrics.clusters import CEILING_NEAR
from dashboard.metrics.intervals import LEVEL, Difference
from dashboard.verdicts import CANNOT_TELL, claim

NOT_APPLIED = "not applied"
THRESHOLDS = (
    f"bigger steps: a factor above {BIGGER:g}x AdamW's step size; smaller steps: below "
    f"{SMALLER:.2f}x (= 1/{BIGGER:g}); about AdamW's step: in between"
)
TYPE_WORDS = {
    EMBEDDINGS: "the embeddings",
    ATTENTION: "the attention weights",
    MLP: "the MLP weights",
    NORMS: "the norm layers",
    HEAD: "the output head",
}
SCOPE = (
    "**This tab shows the step sizes SGG set, not whether they helped.** SGG multiplies the "
    "step AdamW would take for each weight by a factor: above 1 a bigger step than AdamW's, "
    "below 1 a smaller one. Whether that trained the model better or faster is on the "
    "**Summary** and **Loss** tabs."
)
GROUPS_ARE_RANKS = (
    "**Group numbers are ranks, not fixed sets of weights.** At every re-cluster each layer's "
    "weights are sorted again by their momentum: group 0 always holds the lowest momentum (the "
    "largest negative values), the last group the highest. A 'group 2' line follows a place in "
    "that order while the weights in it come and go."
)


# --------------------------------------------------------------------------- numbers


def share(v: float) -> str:
    """'31%', '0.4%', '0.04%' (a small share never prints as 0%), '99.7%', '99.96%' (nor a
    share short of all as 100%); '0%' only for none, '100%' only for all."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v <= 0 or v >= 1:
        return f"{v:.0%}"
    if v < 0.001 or v > 0.999:  # one significant figure of the share, or of what it lacks
        lack = float(f"{100 * min(v, 1 - v):.1g}")
        digits = max(1, -math.floor(math.log10(lack)))
        return f"{100 * v:.{digits}f}%"
    if v < 0.01 or v > 0.99:
        return f"{v:.1%}"
    return f"{v:.0%}"


def times(v: float) -> str:
    """A factor as a multiple of AdamW's step: '1.26x', '0.904x'."""
    return "n/a" if v is None or not math.isfinite(v) else f"{v:#.3g}x"


def ratio(v: float) -> str:
    """'1.57x', '66x', '2,430x' (no exponent notation for a reader)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:,.0f}x" if v >= 100 else f"{v:.3g}x"


def plain(v: float) -> str:
    """A positive number without exponent notation: '371,000', '4,840', '0.00371', '12.5'."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) >= 1e-4 else f"{v:.2e}"


def sci(v: float) -> str:
    """'1e-8', '2.5e-7' (not Python's '1e-08')."""
    if v is None or not math.isfinite(v) or v <= 0:
        return "n/a"
    e = math.floor(math.log10(v))
    m = v / 10**e
    return f"{m:.3g}e{e}" if round(m, 3) != 1 else f"1e{e}"


def span(lo: float, hi: float, fmt) -> str:
    """'27% to 32%', one value when both print alike."""
    a, b = fmt(lo), fmt(hi)
    return a if a == b else f"{a} to {b}"


def dash_span(lo: float, hi: float, fmt) -> str:
    """'27–32%', '1.28–1.33x': a compact range for table cells (one unit, at the end)."""
    a, b = fmt(lo), fmt(hi)
    if a == b:
        return a
    unit = b[-1] if b[-1:] in ("%", "x") and a[-1:] == b[-1:] else ""
    return f"{a[: len(a) - len(unit)]}–{b}"


def range_text(d: Difference | None, fmt, clip01: bool = False) -> str:
    """' (27% to 32%)': a 95% interval in brackets, '' without one."""
    if d is None or not d.has_interval:
        return ""
    lo, hi = (max(d.low, 0.0), min(d.high, 1.0)) if clip01 else (d.low, d.high)
    return f" ({span(lo, hi, fmt)})"


def interval_of(row, col: str, fmt, clip01: bool = False) -> str:
    """' (27% to 32%)' from a `seed_stats` row's `col_low`, `col_high` ('' when NaN)."""
    lo, hi = row.get(f"{col}_low", np.nan), row.get(f"{col}_high", np.nan)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    if clip01:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return f" ({span(lo, hi, fmt)})"


def steps_list(steps: list[int], limit: int = 6) -> str:
    """'step 150', 'steps 50, 100 and 150', 'steps 50, ..., 300 and 6 more'."""
    if len(steps) == 1:
        return f"step {steps[0]:,}"
    shown = [f"{s:,}" for s in steps[:limit]]
    if len(steps) > limit:
        return f"steps {', '.join(shown)} and {len(steps) - limit} more"
    return f"steps {', '.join(shown[:-1])} and {shown[-1]}"


def pct_range(lo: float, hi: float) -> str:
    a, b = f"{abs(lo):.2g}%", f"{abs(hi):.2g}%"
    return a if a == b else f"{a} to {b}"


# --------------------------------------------------------------------------- the manager's answer


def _where(types: pd.DataFrame | None, e: Effect, cls: str, limit: int = 3) -> str:
    """'96% (95% to 97%) of the embeddings, 94% of the output head' - the types a class
    reached, largest share first, each with its interval across seeds."""
    items = [(t, s) for t, s in e.where.get(cls, []) if s >= 0.01][:limit]
    rows = {} if types is None else {r["type"]: r for _, r in types.iterrows()}
    parts = []
    for t, s in items:
        ci = interval_of(rows[t], f"share_{cls}", share, clip01=True) if t in rows else ""
        parts.append(f"{share(s)}{ci} of {TYPE_WORDS.get(t, 'the other weights')}")
    return ", ".join(parts)


def _class_bullet(e: Effect, g: GroupEffect | None, types, cls: str, whose: str) -> str:
    """One class of the answer: its share of `whose` weights, mean factor, extreme factor and
    where."""
    label = {UP: "bigger steps", DOWN: "smaller steps", SAME: "about AdamW's step"}[cls]
    label = label if e.applied else f"would have had {label}"
    bound = {
        UP: f"than AdamW's (factor above {BIGGER:g}x)",
        DOWN: f"than AdamW's (factor below {SMALLER:.2f}x)",
        SAME: f"({SMALLER:.2f}x to {BIGGER:g}x)",
    }[cls]
    head = f"**{label[0].upper() + label[1:]}** {bound}"
    d = g.share[cls] if g is not None and g.n >= 2 else None
    text = f"{head}: **{share(e.share[cls])}**{range_text(d, share, clip01=True)}"
    if cls == SAME:
        return text + f" of the {whose}, biases and norm weights (1-D: not scaled) included."
    if e.share[cls] <= 0:
        return text + f" of the {whose}"
    f = g.factor[cls] if g is not None and g.n >= 2 else None
    extreme = (f"the largest factor {times(e.high)}" if cls == UP
               else f"the smallest factor {times(e.low)}")  # fmt: skip
    anywhere = " in any seed" if g is not None and g.n >= 2 else ""
    text += (
        f" of the {whose}, on average **{times(e.factor[cls])}** AdamW's step size"
        f"{range_text(f, times)}; {extreme}{anywhere}"
    )
    where = _where(types, e, cls)
    return text + (f". Where: {where}." if where else ".")


def effect_heading(e: Effect, seeds: GroupEffect | None) -> str:
    """What the bullets below describe: which step, how many seeds, what the brackets hold."""
    if seeds is not None and seeds.n >= 2:
        when = (
            f"at step {e.step:,}, the last re-cluster all {seeds.n} seeds reached (the mean over "
            f"seeds; in brackets its {LEVEL:.0%} interval)"
        )
    else:
        when = f"at step {e.step:,} (re-cluster {e.reclusters}), one seed"
    if e.applied:
        return f"**SGG {when}:**"
    return (
        f"**What SGG would have done ({NOT_APPLIED})**: these runs trained with plain AdamW, and "
        f"every weight took AdamW's own step. SGG's groups and factors were only computed "
        f"alongside. Had they been applied, {when}:"
    )


def effect_bullets(
    e: Effect,
    seeds: GroupEffect | None = None,
    types: pd.DataFrame | None = None,
    *,
    reach: Reach | None = None,
    barely: dict[str, Difference] | None = None,
) -> str:
    """The manager's answer for a run or a seed group, as a heading and short bullets: the
    share given bigger, about AdamW's and smaller steps, by how much and where (each with its
    interval across seeds), how that moved, which weights and why the answer is lopsided."""
    whose = "model's weights" if e.whole_model else "clustered weights"
    bullets = [_class_bullet(e, seeds, types, c, whose) for c in (UP, DOWN, SAME)]
    bullets.append(moved_sentence(e))
    bullets.append(which_weights(barely or {}, e.applied))
    if reach is not None:
        bullets.append(lopsided_sentence(reach, e))
    if seeds is not None and seeds.n < 2:
        bullets.append(f"One seed, so {CANNOT_TELL} how much these shares move from seed to seed.")
    return effect_heading(e, seeds) + "\n" + "\n".join(f"- {b}" for b in bullets if b)


def moved_sentence(e: Effect) -> str:
    """How the shares moved from the first re-cluster to `e.step`."""
    if e.reclusters < 2:
        return "One re-cluster so far: how the shares move over training cannot be told yet."
    would = "" if e.applied else "would-be "
    return (
        f"**Over training**: the {would}bigger-step share went from {share(e.first_share[UP])} "
        f"at the first re-cluster (step {e.first_step:,}) to {share(e.share[UP])}, the "
        f"smaller-step share from {share(e.first_share[DOWN])} to {share(e.share[DOWN])}."
    )


def which_weights(barely: dict[str, Difference], applied: bool = True) -> str:
    """Which weights get the bigger steps, and how many of them barely train (`barely`: type ->
    the share of its weights whose step size sits near lr / eps, over seeds)."""
    get, get_pl = ("gets", "get") if applied else ("would get", "would get")
    text = (
        f"**Which weights**: in each layer the group whose momentum lies nearest the layer's "
        f"mean (weights training pushes little) {get} the bigger steps; the groups far from it "
        f"(pushed hardest, either way) {get_pl} the smaller ones."
    )
    parts = [
        f"{share(d.estimate)}{range_text(d, share, clip01=True)} of {TYPE_WORDS.get(t, t)}"
        for t, d in barely.items()
        if math.isfinite(d.estimate) and d.estimate >= 0.05
    ]
    if parts:
        text += (
            f" Many of those barely train: {' and '.join(parts)} have had a gradient of about "
            f"zero so far (their AdamW step size is within {CEILING_NEAR:g}x of its largest, "
            "lr / eps; e.g. bytes the text does not contain)."
        )
    return text


def lopsided_sentence(r: Reach, e: Effect) -> str:
    """Why there are far more bigger than smaller steps: the clamp and the EMA's rate."""
    text = (
        f"**Why far more bigger than smaller steps**: targets are clamped to [{r.lower:g}, "
        f"{r.upper:g}] and a factor moves {r.rate:.0%} of the way to its target per re-cluster, "
        f"so from 1 it can rise up to {r.rise:.0%} at one re-cluster but fall at most "
        f"{r.fall:.1%}. After {r.reclusters} re-clusters no factor can be above "
        f"{times(r.highest)} or below {times(r.lowest)}; here they span {times(e.low)} to "
        f"{times(e.high)}."
    )
    if math.isfinite(e.low) and e.low <= r.lowest * (1 + 1e-3):
        text += " The smallest factors are as small as the rule allows by now."
    return text


def shadow_verdict(
    applied_name: str, shadow_name: str, up: Difference, down: Difference, step: int
) -> str:
    """SGG against the AdamW seeds that only recorded what SGG would have set: does applying
    the factors change which share of the model gets bigger or smaller steps? A verdict with
    its interval (`verdicts.claim`), 'no detectable difference' never read as equal."""

    def pts(v: float) -> str:
        return "n/a" if not math.isfinite(v) else f"{v * 100:.1f} points"

    def one(d: Difference, what: str) -> str:
        return (
            f"{what}: {share(d.mean)} with SGG against {share(d.base_mean)} in its shadow, "
            f"{claim(d, 'smaller', 'larger', pts)}"
        )

    text = (
        f"**SGG against its shadow**, at step {step:,}: **{applied_name}** applied the factors; "
        f"**{shadow_name}** trained with AdamW and only recorded what SGG would have set.\n"
        f"- {one(up, 'Share with bigger steps')}.\n- {one(down, 'Share with smaller steps')}."
    )
    if not up.detected and not down.detected and up.has_interval and down.has_interval:
        text += (
            "\n\nApplying the factors did not detectably change how much of the model SGG picks "
            "for bigger or smaller steps."
        )
    return text


def possessive(name: str) -> str:
    """ "the token embeddings'", "the attention output's"."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _first_crossing(kinds: pd.DataFrame, applied: bool) -> str:
    """When smaller steps first appear, which kinds of layer crossed the threshold then, and
    how long their mean factor had been falling before: a slow cut, not an event."""
    down = f"share_{DOWN}"
    if down not in kinds:
        return ""
    hit = kinds[kinds[down] >= 0.01].sort_values(["step", down], ascending=[True, False])
    steps = sorted(kinds["step"].unique())
    if hit.empty or int(hit["step"].iloc[0]) == steps[0]:
        return ""
    s1 = int(hit["step"].iloc[0])
    at = hit[hit["step"] == s1].head(3)
    pairs = zip(at["kind"], at[down], strict=True)
    names = ", ".join(f"the {k} ({share(v)} of its weights)" for k, v in pairs)
    top = at["kind"].iloc[0]
    line = kinds[(kinds["kind"] == top) & (kinds["step"] <= s1)].sort_values("step")
    f = line["factor"].to_numpy(float)
    fell = int((np.diff(f) < 0).sum()) + int(f[0] < 1)
    crossed, mean = (
        ("crossed", "mean factor") if applied else ("would have crossed", "would-be mean factor")
    )
    return (
        f"Smaller steps first appear at step {s1:,}, in {names}: groups of them {crossed} "
        f"{SMALLER:.2f}x then. "
        f"The {possessive(top)} {mean} had fallen at {fell} of the {len(f)} re-clusters up "
        f"to then, from {times(f[0])} at step {int(line['step'].iloc[0]):,} to {times(f[-1])}: "
        "a slow, steady cut, which the smaller-step share counts only from the step it crosses."
    )


def shadow_single(names: list[str]) -> str:
    """SGG against its shadow with one seed on each side: no verdict, and what would give one."""
    return (
        f"**SGG against its shadow** ({', '.join(names)} against the AdamW run that only "
        f"recorded what SGG would have set): one seed each, so {CANNOT_TELL} whether applying "
        "the factors changes which weights get bigger steps. Pool the seeds (sidebar) to "
        "compare seed groups."
    )


def kinds_sentence(kinds: pd.DataFrame, order: list[str], applied: bool = True) -> str:
    """The slow, steady moves the class shares hide (rows of `cluster_effect.seed_stats` of
    `kind_over_time`): when smaller steps first appeared and why, the kind of layer with the
    lowest mean factor at the last step (how often it fell, the cut the shares call 'about
    AdamW's step') and the highest, each with its interval across seeds."""
    if kinds is None or kinds.empty:
        return ""
    step = int(kinds["step"].max())
    last = kinds[kinds["step"] == step].set_index("kind")
    low, high = last["factor"].idxmin(), last["factor"].idxmax()
    what = "mean factor" if applied else "mean factor SGG would have applied"
    line = kinds[kinds["kind"] == low].sort_values("step")
    f = line["factor"].to_numpy(float)
    fell = int((np.diff(f) < 0).sum()) + int(f[0] < 1)
    lo = last.loc[low]
    crossing = _first_crossing(kinds, applied)
    text = (
        f"At step {step:,} the lowest {what} is the {possessive(low)}, "
        f"{times(lo['factor'])}{interval_of(lo, 'factor', times)}"
    )
    if f"The {possessive(low)} " not in crossing:
        text += (
            f". It fell at {fell} of {len(f)} re-clusters, from {times(f[0])} at step "
            f"{int(line['step'].iloc[0]):,}"
        )
    cut = 1 - float(lo["factor"])
    if float(lo["factor"]) >= SMALLER and cut > 0.01:
        text += (
            f": a {cut:.0%} cut, but above {SMALLER:.2f}x, so the shares above count these "
            "weights as 'about AdamW's step'."
        )
    else:
        text += "."
    hi = last.loc[high]
    bullets = [
        crossing,
        text,
        f"The highest: the {possessive(high)}, {times(hi['factor'])}"
        f"{interval_of(hi, 'factor', times)}.",
    ]
    head = "**Slow moves the class shares hide** (each kind of layer, all blocks together):"
    return head + "\n" + "\n".join(f"- {b}" for b in bullets if b)


# --------------------------------------------------------------------------- the same weights


def shadow_verdicts(effects: dict[str, tuple[SeriesEffect, dict]]) -> list[str]:
    """SGG against the shadow clustering of the AdamW group with the same settings and the same
    clustering options (`cluster_effect.shadow_pairs`); one line when every such pair is one
    seed against one."""
    out, single = [], []
    for an, a, sn, s in shadow_pairs(effects):
        if a.seeds.n < 2 and s.seeds.n < 2:
            single.append(an)
            continue
        up = compare_share(a.seeds, s.seeds, UP)
        down = compare_share(a.seeds, s.seeds, DOWN)
        out.append(shadow_verdict(an, sn, up, down, min(a.effect.step, s.effect.step)))
    if single:
        out.append(shadow_single(single))
    return out


def comparison_row(label: str, se: SeriesEffect) -> dict:
    """'30% (27% to 32%) at 1.31x (1.28x to 1.34x)': the mean share over seeds, its 95%
    interval, and the mean factor of those weights with its interval."""
    e, g = se.effect, se.seeds
    row = {"Run or seed group": label, "Step": e.step}  # the label says how many seeds
    for cls in CLASSES:
        d = g.share[cls]
        text = share(d.estimate)
        if d.has_interval:
            text += f" ({dash_span(max(d.low, 0), min(d.high, 1), share)})"
        f = g.factor[cls]
        if cls != SAME and d.estimate > 0 and math.isfinite(f.estimate):
            text += f" at {times(f.estimate)}"
            if f.has_interval:
                text += f" ({dash_span(f.low, f.high, times)})"
        row[cls[0].upper() + cls[1:]] = text
    return row


def effect_caption(se: SeriesEffect, band: str) -> str:
    """What the effect's figures show; `band` names the panels' band in words."""
    e, n = se.effect, se.seeds.n
    seeds = (
        f"Numbers are the mean over {n} seeds; brackets and the bars' labels hold their 95% "
        f"interval; the panels' band is the {band} (sidebar)."
        if n > 1
        else "One seed: no interval or band can be drawn."
    )
    return (
        f"Each weight is classed by the factor SGG {'applied to' if e.applied else 'computed for'}"
        f" its step ({THRESHOLDS}); shares are weighted by parameter count. 'x AdamW's "
        "step size': the step divided by the one AdamW would take from the same state. A kind "
        "of layer is every block's layer of that kind together (e.g. all attention values); the "
        f"grey zone is about AdamW's step. Before the first re-cluster every factor is 1. Each "
        "bar is one re-cluster (its factors hold until the next); the bar at step "
        f"{e.step:,}, labelled above it, holds the shares in the sentences above. {seeds}"
        + ("" if e.applied else f" Hatched: {NOT_APPLIED}.")
    )

"""The words: one table of definitions and every sentence, all built from the numbers in `metrics`.

The page, the HTML report and `docs/dashboard.md` show the same `DEFINITIONS`
(`python -m dashboard.narrative` prints the Markdown that the docs hold; a test keeps them equal).
Every claim goes through `claim()`: a verdict word only when the 95% interval excludes zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.metrics.compare import Comparison
from dashboard.metrics.intervals import (
    LEVEL,
    ONE_VS_GROUP,
    PAIRED,
    UNPAIRED,
    WITHIN_RUN,
    Difference,
)
from dashboard.metrics.spikes import (
    GRAD_SPIKE_FACTOR,
    LOSS_SPIKE_FACTOR,
    MIN_HISTORY,
    SPIKE_WINDOW,
)
from dashboard.metrics.statistics import FINAL_WINDOW, WARMUP_FRACTION
from dashboard.metrics.sweep import plain_name

CANNOT_TELL = "one run each: cannot tell an effect from noise"
NO_DIFFERENCE = "no detectable difference"

# (term, what it means), in the order a reader meets them
DEFINITIONS: list[tuple[str, str]] = [
    (
        "SGG",
        "Scaling with Gradient Grouping: an add-on to AdamW that, inside every layer, sorts the "
        "weights into a few groups by how their updates behave and gives each group its own "
        "learning-rate multiplier (the 'scale factor').",
    ),
    ("AdamW", "the standard optimizer for language models; here it is the baseline."),
    (
        "loss",
        "how wrong the model's predictions are (lower is better). Train loss is measured on "
        "the data being learned, validation loss on held-out data.",
    ),
    (
        "seed group",
        "runs trained with the same settings that differ only in the random seed (the starting "
        "weights and the order of the data). Their spread shows how much a result moves by "
        "chance alone; charts draw the group's mean with a band, N = number of seeds.",
    ),
    (
        "like for like",
        "two runs are compared at the same step (the last step both reached), and every setting "
        "in which they differ besides the optimizer is listed above the verdict.",
    ),
    (
        "95% interval",
        "the range in which the true difference lies with 95% confidence. With two or more "
        "seeds per side it comes from the spread across seeds (paired seed by seed when both "
        "sides ran the same seeds, which removes the luck of the seed); with one run against a "
        "group, from the group's spread; with one run each, from "
        "the spread of the per-batch validation losses when they were recorded.",
    ),
    (
        "better / worse / faster / steadier",
        "used only when the 95% interval excludes zero. Otherwise the page says 'no detectable "
        f"difference (± half the interval's width)', or '{CANNOT_TELL}' when there is no way to "
        "measure the noise.",
    ),
    (
        "final train loss",
        f"the mean of the last {FINAL_WINDOW} logged training losses, so that one noisy step "
        f"does not decide; best train loss: the lowest {FINAL_WINDOW}-step average.",
    ),
    (
        "validation loss",
        "the loss on held-out data at an evaluation (split 'val' when there are several); "
        "compared at the last evaluation both runs reached.",
    ),
    (
        "perplexity",
        "e to the power of the loss: roughly how many equally likely next words the model "
        "hesitates between; lower is better.",
    ),
    (
        "gradient norm",
        "the size of the correction the optimizer computes at a step; sudden jumps (spikes) are "
        "a sign of unstable training.",
    ),
    (
        "spike",
        f"a value more than {LOSS_SPIKE_FACTOR:g}x (loss) or {GRAD_SPIKE_FACTOR:g}x (gradient "
        "norm) the typical (median) value of the steps just before it: of the last quarter of "
        f"the steps so far early in training (at least {MIN_HISTORY}), of the last "
        f"~{SPIKE_WINDOW} steps later; consecutive spiking steps count as one spike.",
    ),
    (
        "gradient-size variation (CV)",
        "the standard deviation of the gradient norm divided by its mean, after the first "
        f"{WARMUP_FRACTION:.0%} of the run; lower means steadier training.",
    ),
    (
        "steps to the baseline's loss",
        "the first step at which a run's validation loss (or, without evaluations, its "
        f"{FINAL_WINDOW}-step average training loss) is at or below the baseline's loss at the "
        "comparison step; speed-up = the baseline's steps / the run's steps.",
    ),
    (
        "optimizer time",
        "seconds spent inside the optimizer's step, recorded separately from the whole training "
        "step; the page gives the median over the ordinary steps (the first step, which "
        "includes the one-time compilation, and the re-cluster steps are reported apart); wall "
        "times are compared only between runs on the same machine and hardware.",
    ),
]


def definitions_markdown() -> str:
    """The definitions as a Markdown list (what the page and docs/dashboard.md show)."""
    return "\n".join(f"- **{term}**: {text}" for term, text in DEFINITIONS)


def definition(term: str) -> str:
    return dict(DEFINITIONS)[term]


# --------------------------------------------------------------------------- formatting


def num(v: float | None, digits: int = 4) -> str:
    """A number at `digits` significant figures ('n/a' when missing)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def num3(v: float | None) -> str:
    return num(v, 3)


def steps_text(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{round(v):,}"


def pct(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.0%}"


def points(v: float) -> str:
    """A difference of two percentages, in percentage points."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v * 100:.0f} points"


def ms(v: float) -> str:
    """Seconds as '12.3 ms' or '1.19 s' (3 significant figures)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.3g} s" if abs(v) >= 1 else f"{v * 1000:.3g} ms"


def interval_text(d: Difference, fmt=num) -> str:
    """'+0.036 (95% interval -0.024 to +0.096, paired by seed, 3 seeds)'."""
    how = {
        PAIRED: f"paired by seed, {d.n} seeds",
        UNPAIRED: f"across seeds, {d.n}+ per side",
        WITHIN_RUN: "one run each, from the per-batch spread",
        ONE_VS_GROUP: f"one run against {d.n_max} seeds, from their spread",
    }.get(d.method, "")
    return f"{LEVEL:.0%} interval {_signed(d.low, fmt)} to {_signed(d.high, fmt)}" + (
        f", {how}" if how else ""
    )


def _signed(v: float, fmt) -> str:
    return ("+" if v > 0 else "-" if v < 0 else "") + fmt(abs(v)) if np.isfinite(v) else "n/a"


def signed(v: float, fmt=num) -> str:
    """A difference with its sign: '+0.01736', '-2.71 ms' (4 significant figures by default)."""
    return _signed(v, fmt)


def diff_text(d: Difference, fmt=num) -> str:
    """'+0.01736 ± 0.04085' (the estimate and half the 95% interval), or the estimate alone
    when there is no interval: what every table shows for a difference."""
    if not math.isfinite(d.estimate):
        return "n/a"
    return (
        f"{_signed(d.estimate, fmt)} ± {fmt(d.half_width)}"
        if d.has_interval
        else _signed(d.estimate, fmt)
    )


def claim(d: Difference, lower: str, higher: str, fmt=num) -> str:
    """The one rule: `lower` / `higher` only when the interval excludes zero."""
    if not math.isfinite(d.estimate):
        return "cannot be compared"
    if not d.has_interval:
        return f"{_why_not(d)} (difference {_signed(d.estimate, fmt)})"
    if d.detected:
        word = lower if d.estimate < 0 else higher
        return f"{word} by {fmt(abs(d.estimate))} ({interval_text(d, fmt)})"
    return f"{NO_DIFFERENCE} ({_signed(d.estimate, fmt)} ± {fmt(d.half_width)})"


def _why_not(d: Difference) -> str:
    if d.n_max <= 1:
        return CANNOT_TELL
    return "one run on one side: cannot tell an effect from noise"


def verdict_word(d: Difference, lower: str, higher: str) -> str:
    """The short form of `claim` for tables and cards."""
    if not math.isfinite(d.estimate):
        return "n/a"
    if not d.has_interval:
        return "cannot tell" + (" (one run each)" if d.n_max <= 1 else " (one run on a side)")
    if d.detected:
        return lower if d.estimate < 0 else higher
    return NO_DIFFERENCE


# --------------------------------------------------------------------------- sentences


def like_for_like(c: Comparison) -> str:
    """'Not like for like: learning rate 0.003 vs 0.004; 400 vs 600 steps.' or ''."""
    parts = [f"{k} {a} vs {b}" for k, a, b in c.not_like_for_like]
    if c.lengths[0] != c.lengths[1]:
        parts.append(f"{c.lengths[0]:,} vs {c.lengths[1]:,} steps recorded")
    return ("Not like for like: " + "; ".join(parts) + ".") if parts else ""


def loss_sentence(c: Comparison) -> str:
    where = f"at step {c.at_step:,}" + (
        " (the last step both reached)" if c.lengths[0] != c.lengths[1] else ""
    )
    return (
        f"{c.kind.capitalize()} loss {where}: {num(c.loss)} vs {num(c.base_loss)}: "
        f"{claim(c.loss_diff, 'lower (better)', 'higher (worse)')}."
    )


def reach_sentence(c: Comparison) -> str:
    target = f"the baseline's {c.kind} loss at step {c.at_step:,} ({num(c.target)})"
    if not c.reached:
        gap = (
            f"; at step {c.lengths[0]:,} it is {abs(c.end_gap):.1%} "
            f"{'above' if c.end_gap > 0 else 'below'}"
            if np.isfinite(c.end_gap)
            else ""
        )
        return f"Did not reach {target} in {c.lengths[0]:,} steps{gap}."
    ratio = f", {c.speedup:.2f}x" if np.isfinite(c.speedup) else ""
    return (
        f"Reached {target} at step {steps_text(c.steps_to_target)} vs "
        f"{steps_text(c.base_steps_to_target)}{ratio}: "
        f"{claim(c.steps_diff, 'faster', 'slower', lambda v: f'{steps_text(v)} steps')}."
    )


def stability_sentence(c: Comparison) -> str:
    return (
        f"Spikes per run (loss and gradient, mean over seeds): {num(c.spikes)} vs "
        f"{num(c.base_spikes)}: {claim(c.spikes_diff, 'fewer', 'more')}. Gradient-size "
        f"variation: {pct(c.cv)} vs {pct(c.base_cv)}: "
        f"{claim(c.cv_diff, 'steadier', 'less steady', points)}."
    )


TIME_HOW = (
    "median per step; the first step, which includes the one-time compilation, and the "
    "re-cluster steps are reported apart"
)
SHADOW_NOTE = (
    "The baseline also ran a shadow clustering (SGG's grouping computed only to be shown in "
    "the Clusters view, not applied to its weights) after each optimizer step: that work is "
    "not in its optimizer time, but it is in its wall time."
)


def _times(a: float, b: float) -> str:
    """'25.3 times the baseline's' / '0.81 times the baseline's'."""
    return f"{num(a / b, 3)} times the baseline's" if b and np.isfinite(a / b) else ""


def time_claim(d: Difference, a: float, b: float) -> str:
    """The optimizer-time verdict; the ratio is given only beside a detected difference, so
    that a large ratio never stands next to 'no detectable difference'."""
    text = claim(d, "less time", "more time", ms)
    ratio = _times(a, b)
    return f"{text}; {ratio}" if d.detected and ratio else text


def time_sentence(c: Comparison) -> str:
    out = []
    if np.isfinite(c.optimizer_time) and np.isfinite(c.base_optimizer_time):
        out.append(
            f"Time inside the optimizer step ({TIME_HOW}): {ms(c.optimizer_time)} vs "
            f"{ms(c.base_optimizer_time)}: "
            + (
                time_claim(c.optimizer_time_diff, c.optimizer_time, c.base_optimizer_time)
                if c.hardware == "same"
                else "measured on different or unrecorded machines, so not compared"
            )
            + "."
        )
        apart = []
        if np.isfinite(c.first_step_time):
            apart.append(
                f"first step {ms(c.first_step_time)} vs {ms(c.base_first_step_time)} "
                "(a one-time cost: compiling the update)"
            )
        if np.isfinite(c.recluster_time):
            apart.append(
                f"each re-cluster step {ms(c.recluster_time)} ({num(c.n_recluster, 3)} per run)"
            )
        if apart:
            out.append("Reported apart: " + "; ".join(apart) + ".")
    if c.hardware == "same":
        out.append(
            f"Wall time per step (median): {ms(c.step_time)} vs {ms(c.base_step_time)}: "
            f"{claim(c.step_time_diff, 'less time', 'more time', ms)}."
        )
    elif c.hardware == "different":
        out.append("Wall times are not compared: the runs ran on different machines.")
    else:
        out.append("Wall times are not compared: the runs do not record which machine ran them.")
    if c.base_shadow:
        out.append(SHADOW_NOTE)
    return " ".join(out)


def in_short(c: Comparison) -> str:
    if c.diverged_at is not None:
        return (
            f"**In short: {c.name} failed**: its loss became not-a-number at step "
            f"{c.diverged_at:,}."
        )
    if c.same_settings:
        return (
            f"**In short: {c.name} and {c.base_name} differ only in the seed**: any difference "
            "between them is chance, not the optimizer."
        )
    speed = (
        verdict_word(c.steps_diff, "faster", "slower")
        if c.reached
        else f"baseline's loss not reached in {c.lengths[0]:,} steps"
        + (
            f" ({c.end_gap:+.1%} at the end: "
            f"{verdict_word(c.loss_diff, 'beyond noise', 'beyond noise')})"
            if np.isfinite(c.end_gap)
            else ""
        )
    )
    return (
        f"**In short: {c.name}** against {c.base_name}: loss "
        f"**{verdict_word(c.loss_diff, 'lower (better)', 'higher (worse)')}**; speed "
        f"**{speed}**; steadiness **{verdict_word(c.cv_diff, 'steadier', 'less steady')}**."
    )


def comparison_sentences(c: Comparison) -> list[str]:
    """The like-for-like note first, then the verdict, then the numbers behind it."""
    out = [s for s in (like_for_like(c),) if s]
    out.append(in_short(c))
    if c.base_diverged_at is not None:
        out.append(f"The baseline's loss became not-a-number at step {c.base_diverged_at:,}.")
    out += [loss_sentence(c), reach_sentence(c), stability_sentence(c), time_sentence(c)]
    return out


def overview(comparisons: list[Comparison]) -> str:
    """A short paragraph for many compared groups (the table holds the numbers)."""
    if not comparisons:
        return ""
    words = [
        "failed" if c.diverged_at is not None else verdict_word(c.loss_diff, "better", "worse")
        for c in comparisons
    ]
    phrases = {
        "better": "reach a lower loss",
        "worse": "reach a higher loss",
        NO_DIFFERENCE: "show no detectable difference",
        "failed": "diverged",
    }
    count = {w: words.count(w) for w in dict.fromkeys(words)}
    kinds = "; ".join(
        f"{n} {phrases.get(w, 'cannot be told apart from noise (too few runs)')}"
        for w, n in count.items()
    )
    ok = [c for c in comparisons if c.diverged_at is None and np.isfinite(c.loss)]
    text = (
        f"Against **{comparisons[0].base_name}**, by {comparisons[0].kind} loss at the last "
        f"step both reached: {kinds}."
    )
    if ok:
        best = min(ok, key=lambda c: c.loss)
        text += (
            f" Lowest: **{best.name}** at {num(best.loss)}, "
            f"{claim(best.loss_diff, 'lower (better)', 'higher (worse)')}."
        )
    unlike = sum(1 for c in comparisons if like_for_like(c))
    if unlike:
        text += (
            f" {unlike} of the {len(comparisons)} differ from the baseline in more than the "
            "optimizer (column 'Not like for like' of the cost table)."
        )
    return text


COMPARISON_COLUMNS = ["Group", "Loss", "vs baseline", "Verdict", "At step", "Seeds"]
OPTIMIZER_TIME = "Optimizer time (median per step)"
COST_COLUMNS = ["Group", OPTIMIZER_TIME, "Optimizer time vs baseline", "Not like for like"]
SPIKES_LABEL = "Spikes per run (loss + gradient)"
SPIKES_NOTE = (
    "Spikes per run: loss spikes plus gradient spikes of each run, averaged over the seeds; "
    "the Gradient stability view marks the gradient spikes alone, every seed's."
)
DETAIL_COLUMNS = [
    "Group",
    "Steps to the baseline's loss",
    "Speed",
    "Spikes per run (loss + gradient)",
    "Spikes",
    "Gradient CV",
    "Steadiness",
]
TABLE_WORDS: dict[str, str] = {}  # one vocabulary: the tables use the sentences' words
STEPS_NOTE = (
    "Steps to the baseline's loss: the first evaluation at which a run's loss is at or below "
    "the baseline's loss at the comparison step, averaged over the seeds (so it can fall "
    "between two evaluations); the baseline's own row is left empty."
)


def _short(word: str) -> str:
    return TABLE_WORDS.get(word, word)


def _time_word(c: Comparison) -> str:
    """The table's optimizer-time verdict: the sentence's words, the ratio only when detected."""
    d = c.optimizer_time_diff
    word = verdict_word(d, "less time", "more time")
    if d.detected and c.base_optimizer_time:
        word += f", {num(c.optimizer_time / c.base_optimizer_time, 3)}x"
    return word


def comparison_table(comparisons: list[Comparison], base: Comparison | None = None) -> pd.DataFrame:
    """One row per compared group (the baseline first when given): the loss verdict, where it
    was measured and on how many seeds."""
    rows = []
    if base is not None:
        rows.append(
            {
                "Group": f"{base.base_name} (baseline)",
                "Seeds": base.n_base,
                "At step": base.at_step,
                "Loss": num(base.base_loss),
                "vs baseline": "",
                "Verdict": "",
            }
        )
    for c in comparisons:
        d = c.loss_diff
        rows.append(
            {
                "Group": c.name,
                "Seeds": c.n,
                "At step": c.at_step,
                "Loss": num(c.loss),
                "vs baseline": diff_text(d),
                "Verdict": _short(verdict_word(d, "better", "worse"))
                if c.diverged_at is None
                else "failed",
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def cost_table(comparisons: list[Comparison], base: Comparison | None = None) -> pd.DataFrame:
    """The optimizer's cost per group and what is not like for like, in the sentences' words."""
    rows = []
    if base is not None:
        rows.append(
            {
                "Group": f"{base.base_name} (baseline)",
                OPTIMIZER_TIME: ms(base.base_optimizer_time),
                "Optimizer time vs baseline": "",
                "Not like for like": "",
            }
        )
    for c in comparisons:
        same = c.hardware == "same" and np.isfinite(c.optimizer_time_diff.estimate)
        rows.append(
            {
                "Group": c.name,
                OPTIMIZER_TIME: ms(c.optimizer_time),
                "Optimizer time vs baseline": _time_word(c) if same else "not compared",
                "Not like for like": like_for_like(c).removeprefix("Not like for like: "),
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def detail_table(comparisons: list[Comparison], base: Comparison | None = None) -> pd.DataFrame:
    """Speed and steadiness, one row per group, in the sentences' words."""
    rows = []
    if base is not None:
        rows.append(
            {
                "Group": f"{base.base_name} (baseline)",
                "Steps to the baseline's loss": "",
                "Speed": "",
                SPIKES_LABEL: num(base.base_spikes),
                "Spikes": "",
                "Gradient CV": pct(base.base_cv),
                "Steadiness": "",
            }
        )
    for c in comparisons:
        rows.append(
            {
                "Group": c.name,
                "Steps to the baseline's loss": steps_text(c.steps_to_target)
                if c.reached
                else f"not reached in {c.lengths[0]:,}",
                "Speed": verdict_word(c.steps_diff, "faster", "slower") if c.reached else "",
                SPIKES_LABEL: num(c.spikes),
                "Spikes": verdict_word(c.spikes_diff, "fewer", "more"),
                "Gradient CV": pct(c.cv),
                "Steadiness": verdict_word(c.cv_diff, "steadier", "less steady"),
            }
        )
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


def pileup_note(share: float) -> str:
    """Why the adaptive learning rate piles up at the right edge (when it does)."""
    if not np.isfinite(share) or share < 0.2:
        return ""
    return (
        f"{share:.0%} of this layer's values sit in the highest bin. That is not a cut-off axis: "
        "it is the largest step AdamW can give (learning rate / eps), which a weight gets when "
        "its gradient has been zero so far, e.g. the embedding of a word the data never "
        "contained."
    )


TRAIN_VS_VALIDATION = (
    "The difference chart uses the training loss (on the batches being learned, smoothed), "
    "so it can show a run ahead while the Summary's verdict, made on the validation loss "
    "(held-out data) at the last evaluation, finds it behind or no different: the two "
    "measure different things, and only the Summary's verdict carries a 95% interval."
)


SWEEP_RESULT_NOTE = (
    "Each row is the same comparison as the Summary for these two seed groups (all their "
    "seeds, the same step, the same numbers): 'better' or 'worse' only when the 95% interval "
    f"of SGG's loss minus AdamW's excludes zero, else '{NO_DIFFERENCE}'."
)


def tolerance_sentences(tol: pd.DataFrame, key: str, within: float = 0.05) -> list[str]:
    out = []
    for r in tol.itertuples():
        if not np.isfinite(r.best):
            out.append(f"**{r.optimizer}**: every run diverged.")
            continue
        where = (
            f"only at {plain_name(key)} {r.low:.3g} (of the values tried)"
            if r.low == r.high
            else f"for {plain_name(key)} from {r.low:.3g} to {r.high:.3g}"
            + (f" (a {r.width:.3g}x range)" if np.isfinite(r.width) and r.width > 1 else "")
        )
        out.append(
            f"**{r.optimizer}** stays within {within:.0%} of its best final loss ({r.best:.4g}) "
            f"{where}."
        )
    if len(tol) >= 2 and tol["width"].notna().any():
        w = tol.dropna(subset=["width"]).sort_values("width", ascending=False)
        if len(w) >= 2 and w["width"].iloc[0] > w["width"].iloc[1]:
            out.append(
                f"**{w['optimizer'].iloc[0]}** tolerates the wider range of {plain_name(key)}."
            )
    return out


if __name__ == "__main__":
    print(definitions_markdown())

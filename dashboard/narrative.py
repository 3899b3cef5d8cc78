"""The words: one table of definitions and every sentence, all built from the numbers in `metrics`.

The page, the HTML report and `docs/dashboard.md` show the same `DEFINITIONS`
(`python -m dashboard.narrative` prints the Markdown that the docs hold; a test keeps them equal).
Every claim goes through `claim()`: a verdict word only when the 95% interval excludes zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard import verdicts
from dashboard.metrics import groups
from dashboard.metrics.cluster_effect import BIGGER, SMALLER
from dashboard.metrics.compare import STALL_SECONDS, Comparison, RunFacts, grad_norm_mismatch
from dashboard.metrics.intervals import PAIRED, POWER
from dashboard.metrics.spikes import (
    GRAD_SPIKE_FACTOR,
    LOSS_SPIKE_FACTOR,
    MERGE_GAP,
    MIN_HISTORY,
    SPIKE_WINDOW,
)
from dashboard.metrics.statistics import FINAL_WINDOW, WARMUP_FRACTION
from dashboard.metrics.sweep import plain_name
from dashboard.verdicts import (
    claim,
    diff_text,
    ms,
    num,
    pct,
    points,
    steps_text,
    verdict_word,
)

CANNOT_TELL = verdicts.CANNOT_TELL
NO_DIFFERENCE = verdicts.NO_DIFFERENCE
LOSS_SIZE = 0.01  # "about N seeds would detect ..." a loss difference of 1% of the baseline's

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
        "chance alone; charts draw the group's mean with a band. N counts distinct seeds: runs "
        "with the same seed are repeats of one seed and count once (their mean); runs without "
        "a recorded seed do not count as separate seeds.",
    ),
    (
        "like for like",
        "two runs are compared at the same step (the last step both reached), and every setting "
        "in which they differ besides the optimizer is listed beside the verdict ('Not like for "
        "like').",
    ),
    (
        "95% interval",
        "the range in which the true difference lies with 95% confidence. With two or more "
        "seeds per side it comes from the spread across seeds (paired seed by seed when both "
        "sides ran the same seeds, which removes the luck of the seed); with one run against a "
        "group, from the group's spread; with one run each, from "
        "the spread of the per-batch validation losses when they were recorded. An interval "
        "of zero width (every seed gave the same value) measures no noise: it is "
        f"'{CANNOT_TELL}', not certainty.",
    ),
    (
        "better / worse / faster / steadier",
        "used only when the 95% interval excludes zero and the difference is larger than what "
        "the measurement resolves (e.g. one evaluation interval for steps). Otherwise the page "
        f"says '{NO_DIFFERENCE} (± half the interval's width)', or '{CANNOT_TELL}' with the "
        "reason when the noise cannot be measured.",
    ),
    (
        NO_DIFFERENCE,
        "the interval includes zero: these seeds cannot tell the two apart. It is not 'the "
        "same': a real difference smaller than the smallest detectable difference can hide "
        "in it.",
    ),
    (
        "smallest detectable difference",
        f"the true difference these seeds would detect {POWER:.0%} of the time, from the spread "
        "they showed (two-sided test at 5%); the page also says about how many seeds would "
        f"detect a difference of a stated size ({LOSS_SIZE:.0%} of the loss for losses).",
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
        "e to the power of the loss: roughly how many equally likely next tokens (words, or "
        "bytes for a byte-level model) the model hesitates between; lower is better.",
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
        f"~{SPIKE_WINDOW} steps later (steps themselves that far above it are left out of the "
        f"median); spiking steps with at most {MERGE_GAP} calm steps between them count as one "
        "spike, marked at its highest step.",
    ),
    (
        "gradient-size variation (CV)",
        "the standard deviation of the gradient norm divided by its mean, after the first "
        f"{WARMUP_FRACTION:.0%} of the run; lower means steadier training.",
    ),
    (
        "steps to the baseline's loss",
        "the step at which a run's validation loss (or, without evaluations, its "
        f"{FINAL_WINDOW}-step average training loss) first reaches the baseline's loss at the "
        "comparison step (the mean of its seeds), read between the two evaluations around it "
        "(linear interpolation). A group 'reached' it when its seeds did: the page says how many "
        "of them ('2 of 3 seeds reached it'), and compares steps over the seeds that reached it "
        "on both sides. A difference within one evaluation interval is called neither faster "
        "nor slower. Speed-up = the baseline's steps / the run's steps.",
    ),
    (
        "optimizer time",
        "seconds spent inside the optimizer's step, recorded separately from the whole training "
        "step. The page gives its cost per step over a run: the typical (median) ordinary step, "
        "with the re-cluster steps' time spread over all steps; the first step, which includes "
        "the one-time set-up of the optimizer (its state, an update kernel built or compiled), "
        "is reported apart. One value per run, compared across seeds: "
        "per-step times within one run share that run's machine load, so one run each is "
        f"'{CANNOT_TELL}'. Times are compared only between runs on the same machine and "
        "hardware that were trained at the same time (a shared machine's load changes from hour "
        f"to hour). Every step over {STALL_SECONDS:g} s is listed as a stall with its step.",
    ),
    (
        "momentum",
        "the running average of a weight's recent gradients (AdamW's first moment): which way, "
        "and how steadily, training pushes that weight. SGG groups each layer's weights by it.",
    ),
    (
        "re-cluster",
        "every T steps (the run's re-cluster interval) SGG sorts each layer's weights into K "
        "groups again by their momentum (with k-means, a standard way to split values into "
        "groups) and moves each group's factor toward its target; between re-clusters groups "
        "and factors stay fixed.",
    ),
    (
        "group",
        "one of the K sets a re-cluster makes in a layer, numbered by rank of momentum (group 0 "
        "holds the lowest). A number is a position, not a fixed set of weights: many weights "
        "change group at every re-cluster.",
    ),
    (
        "spread (MDA)",
        "how far a group's momentum lies from its layer's mean: the median, over the group's "
        "weights, of |momentum - the layer's mean momentum| (the paper's MDA). The whole "
        "model's spread is the same median over every weight SGG groups. A group with a "
        "smaller spread than the model's gets a target above 1 (bigger steps); a larger "
        "spread, a target below 1 (smaller steps).",
    ),
    (
        "scale factor",
        "the multiplier SGG sets on the step AdamW would take for each weight of a group "
        "(x2: twice AdamW's step size): a setting, not a result. Its target is the whole "
        "model's spread / the group's, clamped to [0.1, 10]; at each re-cluster the factor "
        "moves (1 - beta3) of the way to it (1% with beta3 = 0.99), so from 1 it can rise up "
        f"to 9% at one re-cluster but fall at most 0.9%. Bigger steps: a factor above "
        f"{BIGGER:g}x; smaller steps: below {SMALLER:.2f}x (1/{BIGGER:g}); about AdamW's step "
        "in between.",
    ),
    (
        "adaptive learning rate",
        "the step size AdamW gives each weight per unit of momentum: the learning rate / (the "
        "square root of its second moment + eps); AdamW's step is it times the momentum, "
        "before SGG's factor.",
    ),
    (
        "eps",
        "AdamW's small constant (typically 1e-8) added under the division so that it does not "
        "divide by zero; a weight whose gradient has been zero gets the largest step size, the "
        "learning rate / eps (e.g. 4e-3 / 1e-8 = 4e5 at a peak learning rate of 4e-3; less "
        "later, as the schedule lowers the learning rate).",
    ),
    (
        "shadow clustering",
        "SGG's groups and factors computed alongside a plain AdamW run, for comparison, and not "
        "applied: what SGG would have done. The Clusters tab marks it 'not applied'.",
    ),
]


def definitions_markdown() -> str:
    """The definitions as a Markdown list (what the page and docs/dashboard.md show)."""
    return "\n".join(f"- **{term}**: {text}" for term, text in DEFINITIONS)


def definition(term: str) -> str:
    return dict(DEFINITIONS)[term]


# --------------------------------------------------------------------------- formatting
# the vocabulary lives in `dashboard.verdicts` (imported above under the views' names)


# --------------------------------------------------------------------------- sentences


def like_for_like(c: Comparison) -> str:
    """'Not like for like: learning rate 0.003 vs 0.004; 400 vs 600 steps.' or ''."""
    parts = [f"{k} {a} vs {b}" for k, a, b in c.not_like_for_like]
    if c.lengths[0] != c.lengths[1]:
        parts.append(f"{c.lengths[0]:,} vs {c.lengths[1]:,} steps recorded")
    text = ("Not like for like: " + "; ".join(parts) + ".") if parts else ""
    return " ".join(t for t in (text, not_recorded_sentence(c)) if t)


def not_recorded_sentence(c: Comparison) -> str:
    """'Not compared, as not recorded in adamw-tb: gradient clipping (max norm).' or '': a
    setting one side does not record is neither the same nor a difference."""
    by_side: dict[str, list[str]] = {}
    for setting, side in c.not_recorded:
        by_side.setdefault(side, []).append(setting)
    if not by_side:
        return ""
    return (
        "Not compared, as not recorded in "
        + "; in ".join(f"{side}: {', '.join(names)}" for side, names in by_side.items())
        + "."
    )


def _loss_size(c: Comparison) -> tuple[float, str]:
    """The loss difference the 'how many seeds' advice is about: 1% of the baseline's loss."""
    return abs(c.target) * LOSS_SIZE, f"{LOSS_SIZE:.0%} of the loss"


def loss_sentence(c: Comparison, caveat: bool = True) -> str:
    """The loss at the comparison step; `caveat`: this sentence says that no detectable
    difference is not 'equal' (once per comparison: `comparison_sentences`)."""
    where = f"at step {c.at_step:,}" + (
        " (the last step both reached)" if c.lengths[0] != c.lengths[1] else ""
    )
    size, of = _loss_size(c)
    said = claim(c.loss_diff, "lower (better)", "higher (worse)", size=size, of=of, caveat=caveat)
    return f"{c.kind.capitalize()} loss {where}: {num(c.loss)} vs {num(c.base_loss)}: {said}."


def _end_text(c: Comparison) -> str:
    """Where the group's mean stands at its last evaluation, relative to the target."""
    if not np.isfinite(c.end_gap):
        return ""
    side = "above" if c.end_gap > 0 else "below"
    who = "its mean" if c.n > 1 else "it"
    return f"at step {c.lengths[0]:,} {who} is {verdicts.gap_pct(c.end_gap)} {side} the target"


def steps_basis(c: Comparison) -> str:
    """The seeds both steps-to-target numbers come from: 'from the 5 seeds that reached it on
    both sides' (paired), 'from the 6 and 5 seeds that reached it' (unpaired), 'from all 10
    seeds'; '' for one run each. The one phrase of the card, the sentences and the table."""
    d = c.steps_diff
    if not np.isfinite(d.estimate) or max(c.n, c.n_base) <= 1:
        return ""
    if d.method == PAIRED:
        if d.n == c.n == c.n_base:
            return f"from all {d.n} seeds"
        return f"from the {d.n} seeds that reached it on both sides"
    a, b = c.reached_k, c.base_reached_k
    if a == c.n and b == c.n_base:
        return f"from all {a} and {b} seeds" if a != b else f"from all {a} seeds of each side"
    return (
        f"from the {a} and {b} seeds that reached it"
        if (a, b) != (1, 1)
        else ("from the one seed of each side that reached it")
    )


def reach_sentence(c: Comparison, caveat: bool = True) -> str:
    """When each side first reached the baseline's loss: 'reached' is defined once, by seeds;
    the steps compared say which seeds they come from (`steps_basis`)."""
    target = f"the baseline's {c.kind} loss at step {c.at_step:,} ({num(c.target)})"
    reached = verdicts.reached_text(c.reached_k, c.n)
    base = verdicts.reached_text(c.base_reached_k, c.n_base)
    if c.reached_k == 0:
        end = _end_text(c)
        return f"Steps to {target}: {reached} in {c.lengths[0]:,} steps" + (
            f"; {end}." if end else "."
        )
    d = c.steps_diff
    why = ", as about half do when the target is their mean" if c.n_base > 1 else ""
    head = f"Steps to {target}: {reached} (the baseline's own: {base}{why})"
    if not np.isfinite(d.estimate):
        return f"{head}; no seed reached it on both sides, so the speed cannot be compared."
    ratio = f", {c.speedup:.2f}x" if np.isfinite(c.speedup) and d.detected else ""
    basis = steps_basis(c)
    res = (
        f", read between evaluations {steps_text(c.resolution)} steps apart"
        if c.kind == "validation" and c.resolution > 1
        else ""
    )
    said = claim(
        d, "faster", "slower", verdicts.steps_unit, size=0.1 * d.base_mean, of=STEPS_OF,
        caveat=caveat,
    )  # fmt: skip
    return (
        f"{head}; {basis + ': ' if basis else ''}step {steps_text(d.mean)} vs "
        f"{steps_text(d.base_mean)}{ratio}{res}: {said}."
    )


STEPS_OF = "10% of the baseline's steps"


def heading_name(name: str) -> str:
    """A series' name as a heading says it: never empty, never a bare "?" (a run that does not
    name its optimizer is labelled groups.UNKNOWN_OPTIMIZER; this is the last guard)."""
    return name if name.strip(" ?") else "the baseline"


def stability_sentence(c: Comparison, caveat: bool = True) -> str:
    """Spikes and gradient-size variation. Gradient norms one side measured before clipping
    and the other after (`Comparison.grad_mismatch`) are not compared: neither their spikes nor
    their variation; the loss spikes still are. Mean counts as the cards show them ('1.4');
    `caveat` goes with the sentence's first no-detectable-difference."""
    per = spikes_per(c)
    ours, theirs = counts(c.spikes, c.base_spikes)
    if c.grad_mismatch:
        spikes = claim(
            c.spikes_diff, "fewer", "more", size=1.0, of=f"one loss spike {per}", caveat=caveat
        )
        return (
            f"Loss spikes {per} (mean over seeds): {ours} vs {theirs}: "
            f"{spikes}. Gradient spikes and gradient-size variation ({pct(c.cv)} vs "
            f"{pct(c.base_cv)}): {CANNOT_TELL}: {c.grad_mismatch}."
        )
    spikes = claim(c.spikes_diff, "fewer", "more", size=1.0, of=f"one spike {per}", caveat=caveat)
    later = caveat and not no_difference(c.spikes_diff)  # the caveat passes to the CV's verdict
    return (
        f"Spikes {per} (loss and gradient, mean over seeds): {ours} vs {theirs}: {spikes}. "
        f"Gradient-size variation: {pct(c.cv)} vs {pct(c.base_cv)}: "
        f"{claim(c.cv_diff, 'steadier', 'less steady', points, size=0.05, caveat=later)}."
    )


def no_difference(d) -> bool:
    """The verdict is 'no detectable difference' (an interval with zero in it, resolved)."""
    return bool(np.isfinite(d.estimate) and d.has_interval and d.resolved and not d.detected)


GRAD_NORMS_APART = (
    f"{CANNOT_TELL}: one run's gradient norm is before clipping, the other's after"  # the prefix
)


def grad_norms_apart(series: list[tuple[str, list[dict]]]) -> str:
    """For a chart of several series' gradient norms ({name: its runs' run.json}): why two of
    them cannot be compared (one's norm before clipping, the other's after, as
    `compare.grad_norm_mismatch` says for the Summary), '' when they can."""
    sides = [(name, [RunFacts(name, None, m, "") for m in metas]) for name, metas in series]
    for i, (a, facts_a) in enumerate(sides):
        for b, facts_b in sides[i + 1 :]:
            why = grad_norm_mismatch(facts_a, facts_b, a, b)
            if why:
                return (
                    f"Gradient spikes and sizes of these lines are not compared: {CANNOT_TELL}: "
                    f"{why}. Each line's spikes count against its own typical level only."
                )
    return ""


def spikes_cell(c: Comparison, base: bool = False) -> str:
    """A table's spikes per run: loss + gradient, or the loss's alone where the gradient norms
    are not comparable (said in the cell)."""
    if base:
        return count(c.base_spikes) + (" (loss only)" if c.grad_mismatch else "")
    text = " vs ".join(counts(c.spikes, c.base_spikes))
    return (
        f"{text} (loss only; gradient: {CANNOT_TELL}: {c.grad_mismatch})"
        if c.grad_mismatch
        else text
    )


TIME_HOW = (
    "per step over each run, the re-cluster steps' time spread over all steps (the typical "
    "step's median plus that share), then the mean over seeds; the first step is reported apart"
)
FIRST_STEP = (
    "paid once: the first step also sets the optimizer up, e.g. creates its state, builds or "
    "compiles an update kernel; the runs do not record what the time went to"
)
SHADOW_NOTE = (
    "The baseline also ran a shadow clustering (SGG's grouping computed only to be shown in "
    "the Clusters view, not applied to its weights) after each optimizer step: that work is "
    "not in its optimizer time, but it is in its wall time."
)


UNFUSED_NOTE = (
    "The baseline ran torch's AdamW as configured, without fused=True (torch's default); SGG "
    "runs its own fused kernel, which is why its optimizer step can cost less than the "
    "baseline's although it does more."
)
NOT_SET_NOTE = (
    "The two ordinary steps run different code: the baseline's is torch's AdamW with `fused` "
    "not set in its recorded settings (torch's default, not its fused kernel); SGG's is its own "
    "update (a fused kernel). A cheaper ordinary step there says how the two are implemented, "
    "not that SGG does less work."
)


def _ordinary_text(c: Comparison) -> str:
    """How the compared side's time splits: the re-clusters' share (their mean time x count,
    spread over the run's steps) and the ordinary step that remains; '' without re-clusters."""
    rc, k, steps = c.recluster_time, c.n_recluster, max(c.lengths[0] - 1, 1)
    if not c.sgg_applied:  # a shadow's grouping is not in its optimizer time
        return ""
    if not (np.isfinite(rc) and np.isfinite(k) and k > 0 and np.isfinite(c.optimizer_time)):
        return ""
    share = rc * k / steps
    rest = c.optimizer_time - share
    if not 0 < share < c.optimizer_time:
        return ""
    return (
        f"Of the compared side's {ms(c.optimizer_time)}, about {ms(share)} is its re-cluster "
        f"steps ({k:.3g} per run, {ms(rc)} each, spread over {steps + 1:,} steps), leaving about "
        f"{ms(rest)} for its ordinary step, against the baseline's {ms(c.base_optimizer_time)}."
    )


def _implementation_note(c: Comparison) -> str:
    """Why SGG's ordinary step can cost less than AdamW's, from the baseline's recorded
    `fused` flag: False (UNFUSED_NOTE), not set (NOT_SET_NOTE); '' when the baseline is fused
    or not AdamW, or the compared side does not apply SGG."""
    if not c.base_adamw or c.base_fused is True or not c.sgg_applied:
        return ""
    if c.base_fused is False:
        return UNFUSED_NOTE
    return NOT_SET_NOTE if np.isfinite(c.recluster_time) else ""


def _times(a: float, b: float) -> str:
    """'25.3 times the baseline's' / '0.81 times the baseline's'."""
    return f"{num(a / b, 3)} times the baseline's" if b and np.isfinite(a / b) else ""


def time_claim(d, a: float, b: float, caveat: bool = True) -> str:
    """The optimizer-time verdict; the ratio is given only beside a detected difference, so
    that a large ratio never stands next to 'no detectable difference'."""
    text = claim(d, "less time", "more time", ms, caveat=caveat)
    ratio = _times(a, b)
    return f"{text}; {ratio}" if d.detected and ratio else text


def stalls_sentence(c: Comparison) -> str:
    """Every optimizer step slower than STALL_SECONDS, grouped by what it was, with its steps."""
    if not c.stalls:
        return ""
    by_why: dict[str, list[tuple[str, int, float]]] = {}
    for run, step, sec, why in c.stalls:
        by_why.setdefault(why, []).append((run, step, sec))
    parts = []
    for why, items in by_why.items():
        secs = [sec for _, _, sec in items]
        steps = sorted({step for _, step, _ in items})
        runs = len({run for run, _, _ in items})
        span = ms(secs[0]) if len(secs) == 1 else f"{ms(min(secs))} to {ms(max(secs))}"
        where = ", ".join(f"{x:,}" for x in steps[:6]) + (", ..." if len(steps) > 6 else "")
        parts.append(
            f"{why}: {span} ({len(items)} time{'s' if len(items) != 1 else ''} in {runs} "
            f"run{'s' if runs != 1 else ''}; step{'s' if len(steps) != 1 else ''} {where})"
        )
    return (
        f"Stalls (optimizer steps over {STALL_SECONDS:g} s: building or compiling the update, "
        f"re-clustering): {'; '.join(parts)}."
    )


def time_sentence(c: Comparison, caveat: bool = True) -> str:
    """Optimizer and wall time per step; how the compared side's time splits and why the
    two ordinary steps can differ (`_implementation_note`); the one-off steps apart."""
    out = []
    said = False  # the caveat went with the optimizer time's verdict
    if np.isfinite(c.optimizer_time) and np.isfinite(c.base_optimizer_time):
        same = c.hardware == "same"
        said = caveat and same and no_difference(c.optimizer_time_diff)
        out.append(
            f"Time inside the optimizer step ({TIME_HOW}): {ms(c.optimizer_time)} vs "
            f"{ms(c.base_optimizer_time)}: "
            + (
                time_claim(c.optimizer_time_diff, c.optimizer_time, c.base_optimizer_time, caveat)
                if same
                else "measured on different or unrecorded machines, so not compared"
            )
            + "."
        )
        out += [x for x in (_ordinary_text(c), _implementation_note(c)) if x]
        apart = []
        if np.isfinite(c.first_step_time):
            apart.append(
                f"first step {ms(c.first_step_time)} vs {ms(c.base_first_step_time)} ({FIRST_STEP})"
            )
        if np.isfinite(c.recluster_time):
            apart.append(
                f"each re-cluster step {ms(c.recluster_time)} ({c.n_recluster:.3g} per run, "
                "included above)"
            )
        if apart:
            out.append("Reported apart: " + "; ".join(apart) + ".")
    stall = stalls_sentence(c)
    if stall:
        out.append(stall)
    if c.hardware == "same":
        wall = claim(c.step_time_diff, "less time", "more time", ms, caveat=caveat and not said)
        out.append(f"Wall time per step (median): {ms(c.step_time)} vs {ms(c.base_step_time)}: "
                   f"{wall}.")  # fmt: skip
    elif c.hardware == "different":
        out.append("Wall times are not compared: the runs ran on different machines.")
    else:
        out.append("Wall times are not compared: the runs do not record which machine ran them.")
    if c.base_shadow:
        out.append(SHADOW_NOTE)
    return " ".join(out)


def seeds_sentence(c: Comparison) -> str:
    """What the N on each side counts, when runs and seeds differ or seeds were left out."""
    if not c.notes and c.runs == (c.n, c.n_base):
        return ""
    head = f"Seeds: {c.n} vs {c.n_base} distinct seeds"
    if c.runs != (c.n, c.n_base):
        head += f" ({c.runs[0]} vs {c.runs[1]} runs)"
    return head + (": " + "; ".join(c.notes) if c.notes else "") + "."


def _speed_word(c: Comparison) -> str:
    d = c.steps_diff
    if c.reached_k == 0:
        end = _end_text(c)
        return "baseline's loss not reached" + (f" ({end})" if end else "")
    word = verdict_word(d, "faster", "slower")
    if np.isfinite(d.estimate):  # the numbers beside it say which seeds (`_steps_numbers`)
        return word
    return word if c.reached else f"{word}; {verdicts.reached_text(c.reached_k, c.n)}"


def _steps_numbers(c: Comparison) -> str:
    """' (+1 ± 17 steps, from the 5 seeds that reached it on both sides)': the steps
    difference with the seeds it comes from, as the card and the sentence say them."""
    d = c.steps_diff
    if not c.reached_k or not np.isfinite(d.estimate):
        return ""
    inner = _numbers(d, steps_text)[2:-1]
    if d.has_interval or inner.startswith("+") or inner.startswith("-"):
        inner += " steps"
    basis = steps_basis(c)
    return f" ({inner}{', ' + basis if basis else ''})"


def _one_seed(c: Comparison) -> bool:
    """Both sides ran the same single seed (e.g. a copied run)."""
    return c.seeds[0] == c.seeds[1] and len(c.seeds[0]) == 1


def in_short(c: Comparison) -> str:
    if c.diverged_at is not None:
        return f"**In short: {c.name} {verdicts.FAILED}**: {verdicts.diverged_text(c.diverged_at)}."
    if c.same_settings and c.n == 1 == c.n_base and c.loss_diff.notes == () and _one_seed(c):
        return (
            f"**In short: {c.name} and {c.base_name} are repeats of one run**: the same settings "
            "and the same seed, so there is nothing to compare."
        )
    if c.same_settings:
        return (
            f"**In short: {c.name} and {c.base_name} differ only in the seed**: any difference "
            "between them is chance, not the optimizer."
        )
    return (
        f"**In short: {c.name}** against {c.base_name}: loss "
        f"**{verdict_word(c.loss_diff, 'lower (better)', 'higher (worse)')}**"
        f"{_numbers(c.loss_diff, num)}; speed **{_speed_word(c)}**"
        f"{_steps_numbers(c)}; steadiness "
        f"**{verdict_word(c.cv_diff, 'steadier', 'less steady')}**"
        f"{_numbers(c.cv_diff, verdicts.points)}."
    )


def _numbers(d, fmt) -> str:
    """' (-0.6575 ± 0.3588)': the numbers a verdict word of "In short" summarises; the
    difference alone where there is no interval, nothing where there is no difference."""
    if not np.isfinite(d.estimate):
        return ""
    if d.has_interval:
        return f" ({verdicts.pm_text(d, fmt)})"
    return f" ({verdicts.difference_text(d, fmt)})"


def comparison_sentences(c: Comparison) -> list[str]:
    """The like-for-like note first, then the verdict, then the numbers behind it."""
    out = [s for s in (like_for_like(c),) if s]
    out.append(in_short(c))
    if c.base_diverged_at is not None:
        out.append(f"The baseline {verdicts.FAILED}: {verdicts.diverged_text(c.base_diverged_at)}.")
    first = _caveat_at(c)  # "not the same as equal" once, at the first such verdict
    out += [
        loss_sentence(c, first == "loss"),
        reach_sentence(c, first == "reach"),
        stability_sentence(c, first == "stability"),
        time_sentence(c, first == "time"),
    ]
    return out + [s for s in (seeds_sentence(c),) if s]


def _caveat_at(c: Comparison) -> str:
    """Which sentence holds the comparison's first 'no detectable difference' (its caveat,
    that this is not 'equal', is said there once), '' when none does."""
    same = c.hardware == "same"
    order = [
        ("loss", [c.loss_diff]),
        ("reach", [c.steps_diff] if c.reached_k else []),
        ("stability", [c.spikes_diff] + ([] if c.grad_mismatch else [c.cv_diff])),
        ("time", [c.optimizer_time_diff, c.step_time_diff] if same else []),
    ]
    return next((name for name, ds in order if any(no_difference(d) for d in ds)), "")


def _one(phrase: str, n: int) -> str:
    """'reach a lower loss' -> 'reaches a lower loss' for one group."""
    if n != 1:
        return phrase
    verb, _, rest = phrase.partition(" ")
    singular = {"reach": "reaches", "show": "shows"}
    return " ".join(x for x in (singular.get(verb, verb), rest) if x)


def overview(comparisons: list[Comparison]) -> str:
    """A short paragraph for many compared groups (the table holds the numbers)."""
    if not comparisons:
        return ""
    words = [
        verdicts.FAILED
        if c.diverged_at is not None
        else verdict_word(c.loss_diff, "better", "worse")
        for c in comparisons
    ]
    phrases = {
        "better": "reach a lower loss",
        "worse": "reach a higher loss",
        NO_DIFFERENCE: "show no detectable difference (which is not the same as equal)",
        verdicts.FAILED: "diverged",
    }
    count = {w: words.count(w) for w in dict.fromkeys(words)}
    kinds = "; ".join(
        f"{n} {_one(phrases.get(w, 'cannot be told apart from noise (too few seeds)'), n)}"
        for w, n in count.items()
    )
    ok = [c for c in comparisons if c.diverged_at is None and np.isfinite(c.loss)]
    text = (
        f"Against **{comparisons[0].base_name}**, by {comparisons[0].kind} loss at the last "
        f"step both reached: {kinds}."
    )
    if len({c.at_step for c in comparisons}) > 1:
        ok = []  # losses read at different steps are not ranked
        text += (
            " They are compared at different steps (the last step each reached with the "
            "baseline: column 'At step'), so they are not ranked against each other."
        )
    if ok:
        best = min(ok, key=lambda c: c.loss)
        size, of = _loss_size(best)
        text += (
            f" Lowest: **{best.name}** at {num(best.loss)}, "
            f"{claim(best.loss_diff, 'lower (better)', 'higher (worse)', size=size, of=of)}."
        )
    differs = [bool(c.not_like_for_like) or c.lengths[0] != c.lengths[1] for c in comparisons]
    unlike = sum(differs)
    if unlike:
        text += (
            f" {unlike} of the {len(comparisons)} differ from the baseline in more than the "
            "optimizer (column 'Not like for like')."
        )
    unchecked = sum(
        1 for c, d in zip(comparisons, differs, strict=True) if c.not_recorded and not d
    )
    if unchecked:
        text += (
            f" {unchecked} could not be checked fully: some settings are not recorded on one "
            "side (same column), which is neither the same nor a difference."
        )
    return text


DETECTABLE = "Smallest detectable difference (80% power)"
BASE_LOSS = "Baseline's loss at that step"
UNLIKE = "Not like for like"
COMPARISON_COLUMNS = [
    "Group",
    "Loss",
    BASE_LOSS,
    "vs baseline",
    "Verdict",
    DETECTABLE,
    "At step",
    "Seeds",
    UNLIKE,
]
OPTIMIZER_TIME = "Optimizer time per step (re-clusters included)"
COST_COLUMNS = ["Group", OPTIMIZER_TIME, "Baseline's time", "Optimizer time vs baseline"]
SPIKES_LABEL = "Spikes per run (loss + gradient)"  # 'per seed' where a seed repeats
SPIKES_NOTE = (
    "Spikes per run, or per seed where a seed was run more than once: loss spikes plus "
    "gradient spikes of each run, averaged over the distinct seeds (a repeated seed's runs "
    "count once, as their mean; the loss spikes alone where one side's gradient norm is "
    "before clipping and the other's after: those are not compared); the Gradient stability "
    "view marks the gradient spikes alone, every seed's."
)
DETAIL_COLUMNS = [
    "Group",
    "Steps to the baseline's loss",
    "Speed",
    SPIKES_LABEL,
    "Spikes",
    "Gradient CV",
    "Steadiness",
]
TABLE_WORDS: dict[str, str] = {}  # one vocabulary: the tables use the sentences' words
STEPS_NOTE = (
    "Steps to the baseline's loss: where a run's loss first reaches the baseline's loss at the "
    "comparison step, read between the two evaluations around it, averaged over the seeds "
    "that reached it on both sides; the baseline's own row is left empty."
)


def _short(word: str) -> str:
    return TABLE_WORDS.get(word, word)


def _time_word(c: Comparison) -> str:
    """The table's optimizer-time verdict: the sentence's words, the ratio only when detected."""
    d = c.optimizer_time_diff
    word = verdict_word(d, "less time", "more time")
    if d.detected and c.base_optimizer_time:
        b = c.base_optimizer_time
        word += f", {num(c.optimizer_time / b, 3)}x"
        m = d.base_mean  # the ratio's 95% interval, from the difference's (same units)
        if d.has_interval and np.isfinite(m) and m > 0:
            word += f" (95% interval {num((m + d.low) / m, 3)}x to {num((m + d.high) / m, 3)}x)"
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
                BASE_LOSS: "",
                "vs baseline": "",
                "Verdict": "",
                DETECTABLE: "",
                UNLIKE: "",
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
                BASE_LOSS: num(c.base_loss),
                "vs baseline": diff_text(d),
                UNLIKE: like_for_like(c).removeprefix("Not like for like: "),
                "Verdict": _short(verdict_word(d, "better", "worse"))
                if c.diverged_at is None
                else verdicts.failed_text(c.diverged_at),
                DETECTABLE: verdicts.detectable_text(d) if c.diverged_at is None else "",
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
                "Baseline's time": "",
                "Optimizer time vs baseline": "",
            }
        )
    for c in comparisons:
        same = c.hardware == "same" and np.isfinite(c.optimizer_time_diff.estimate)
        rows.append(
            {
                "Group": c.name,
                OPTIMIZER_TIME: ms(c.optimizer_time),
                "Baseline's time": ms(c.base_optimizer_time),
                "Optimizer time vs baseline": _time_word(c) if same else "not compared",
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def unpooled_note(
    series: list[tuple[str, list[str]]], groups: dict[str, list[str]], group_of: dict[str, str]
) -> str:
    """With seeds not pooled, say which single runs stand where whole seed groups exist."""
    parts = []
    for name, members in series:
        if len(members) == 1 and len(groups.get(group_of.get(members[0], ""), [])) > 1:
            parts.append(f"{name} (1 of {len(groups[group_of[members[0]]])} runs of its setting)")
    if not parts:
        return ""
    return (
        "Seeds are not pooled: each entry is one run, so each comparison rests on one seed: "
        + "; ".join(parts)
        + ". Turn on 'Pool seeds into groups' to compare all the seeds."
    )


def count(v: float) -> str:
    """A mean count per run: '1.5', '2', '1.33' (no padding zeros on a count)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def counts(a: float, b: float) -> tuple[str, str]:
    """Two mean counts side by side at the same decimals ('1.40' beside '1.33', never '1.4'
    beside '1.33'), with more decimals where two different values would read the same."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return count(a), count(b)
    dec = max(len(count(v).partition(".")[2]) for v in (a, b))
    while a != b and f"{a:.{dec}f}" == f"{b:.{dec}f}" and dec < 6:
        dec += 1
    return tuple("0" if v == 0 else f"{v:.{dec}f}" for v in (a, b))  # a zero is exact


def spikes_per(c: Comparison) -> str:
    """'per run' where each side's runs are its seeds, else 'per seed': the counts are means
    over distinct seeds (a repeated seed's runs count once, as their mean)."""
    return "per run" if c.runs == (c.n, c.n_base) else "per seed"


def spikes_label(comparisons: list[Comparison]) -> str:
    """The Speed and steadiness table's spikes column, per run or per seed (`spikes_per`)."""
    per = "per run" if all(spikes_per(c) == "per run" for c in comparisons) else "per seed"
    return f"Spikes {per} (loss + gradient)"


def _steps_cell(c: Comparison) -> str:
    """The steps the seeds that reached the target took, and how many of them did."""
    if not c.reached_k:
        return f"not reached in {c.lengths[0]:,}" + (
            f" ({verdicts.reached_text(0, c.n)})" if c.n > 1 else ""
        )
    text = f"{steps_text(c.steps_to_target)} vs {steps_text(c.base_steps_to_target)}"
    basis = steps_basis(c)
    if c.reached and c.base_reached_k == c.n_base:
        return f"{text} ({basis})" if basis else text
    reached = verdicts.reached_text(c.reached_k, c.n)
    return f"{text} ({reached}; {basis or 'no seed reached it on both sides'})"


def detail_table(comparisons: list[Comparison], base: Comparison | None = None) -> pd.DataFrame:
    """Speed and steadiness, one row per group, in the sentences' words; each row gives the
    baseline's value over the steps that row compares (the baseline row only when those are
    the same for every row)."""
    rows = []
    # the baseline's own row only when every row counts its spikes over the same steps alike
    same_span = len({(c.at_step, bool(c.grad_mismatch)) for c in comparisons}) <= 1
    if base is not None:
        rows.append(
            {
                "Group": f"{base.base_name} (baseline)",
                "Steps to the baseline's loss": "",
                "Speed": "",
                SPIKES_LABEL: spikes_cell(base, base=True) if same_span else "see each row",
                "Spikes": "",
                "Gradient CV": pct(base.base_cv) if same_span else "see each row",
                "Steadiness": "",
            }
        )
    for c in comparisons:
        unlike = _unlike_mark(c)
        rows.append(
            {
                "Group": c.name,
                "Steps to the baseline's loss": _steps_cell(c),
                "Speed": verdict_word(c.steps_diff, "faster", "slower") + unlike
                if c.reached_k
                else "",
                SPIKES_LABEL: spikes_cell(c),
                "Spikes": verdict_word(c.spikes_diff, "fewer", "more") + unlike,
                "Gradient CV": f"{pct(c.cv)} vs {pct(c.base_cv)}",
                "Steadiness": verdict_word(c.cv_diff, "steadier", "less steady") + unlike,
            }
        )
    out = pd.DataFrame(rows, columns=DETAIL_COLUMNS)
    return out.rename(columns={SPIKES_LABEL: spikes_label(comparisons)})


UNLIKE_MARK = " (not like for like: see the first table)"


def _unlike_mark(c: Comparison) -> str:
    """Beside a verdict of a comparison whose sides differ in more than the optimizer (its
    settings or its length): the verdict is about those runs, not the optimizer alone."""
    return UNLIKE_MARK if c.not_like_for_like or c.lengths[0] != c.lengths[1] else ""


NOT_RECORDED_NOTE = "{run}: {what} not recorded in this run."


def not_recorded_note(runs: list[str], what: str) -> str:
    """One line per run: "<run>: gradient norm not recorded in this run." """
    return "\n\n".join(NOT_RECORDED_NOTE.format(run=r, what=what) for r in runs)


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
    "Each row compares SGG's and AdamW's seed groups at that value with the Summary's rule "
    "(all their seeds, read at the last step all the sweep's runs reached; these may be other "
    "runs than the Summary's): 'better' or 'worse' only when the 95% interval "
    f"of SGG's loss minus AdamW's excludes zero, else '{NO_DIFFERENCE}', which is not 'the "
    "same': the last column gives the smallest difference these seeds would detect (80% "
    "power); a smaller real difference can hide in the interval."
)


def _values(key: str, values: list[float]) -> str:
    return ", ".join(groups.fmt_lr(v) if key.endswith("lr") else f"{v:g}" for v in values)


def tolerance_sentences(tols: list, key: str, within: float = 0.05) -> list[str]:
    """Per optimizer: where its loss stays within `within` of its best, judged with intervals;
    'X tolerates the wider range' only when X's sure range is wider than everything the other
    optimizer's could be."""
    name = plain_name(key)
    out = []
    for t in tols:
        if not np.isfinite(t.best_loss):
            out.append(f"**{t.optimizer}**: every value tried diverged.")
            continue
        tried = len(t.within) + len(t.unsure) + len(t.outside) + len(t.diverged)
        if tried < 2:
            out.append(
                f"**{t.optimizer}** was tried at one {name} only ({_values(key, t.within)}): "
                "how far it could vary cannot be told."
            )
            continue
        others = [v for v in t.within if v != t.best_value]
        parts = [
            f"surely within {within:.0%} of it also at {_values(key, others)}"
            if others
            else f"no other value tried is surely within {within:.0%} of it"
        ]
        if t.unsure:
            parts.append(
                f"{CANNOT_TELL} at {_values(key, t.unsure)} (too few seeds to confirm either way)"
            )
        if t.outside:
            parts.append(f"more than {within:.0%} worse at {_values(key, t.outside)}")
        if t.diverged:
            parts.append(f"diverged at {_values(key, t.diverged)}")
        best = groups.fmt_lr(t.best_value) if key.endswith("lr") else f"{t.best_value:g}"
        out.append(
            f"**{t.optimizer}**: lowest loss {num(t.best_loss)} at {name} {best}; "
            + "; ".join(parts)
            + "."
        )
    ok = [t for t in tols if np.isfinite(t.best_loss) and len(t.within + t.unsure + t.outside) > 1]
    if len(ok) == 2:
        a, b = ok
        for x, y in ((a, b), (b, a)):
            if x.sure_width > y.possible_width:
                out.append(
                    f"**{x.optimizer}** tolerates a wider range of {name} than {y.optimizer}: "
                    f"{x.sure_width:.3g}x beyond noise, against at most {y.possible_width:.3g}x."
                )
                break
        else:
            out.append(
                f"Which optimizer tolerates the wider range of {name} cannot be told from these "
                "seeds: their ranges overlap once the values that cannot be told apart from "
                "the best are counted."
            )
    return out


if __name__ == "__main__":
    print(definitions_markdown())

"""The words: one table of definitions and the sentences, all built from the numbers in `metrics`.

The page, the HTML report and `docs/dashboard.md` show the same `DEFINITIONS`
(`python -m dashboard.narrative` prints the Markdown that the docs hold; a test keeps them equal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.metrics.spikes import GRAD_SPIKE_FACTOR, LOSS_SPIKE_FACTOR, SPIKE_WINDOW
from dashboard.metrics.statistics import (
    FINAL_WINDOW,
    SAME_LOSS,
    WARMUP_FRACTION,
    RunSummary,
    perplexity,
)
from dashboard.metrics.sweep import plain_name

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
        "the data being learned, validation (eval) loss on held-out data.",
    ),
    (
        "final train loss",
        f"the mean of the last {FINAL_WINDOW} logged training losses, so that one noisy step "
        f"does not decide; best train loss: the lowest {FINAL_WINDOW}-step average.",
    ),
    (
        "final / best validation loss",
        "the last / lowest validation loss (split 'val' when there are several).",
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
        f"norm) the typical (median) value of the preceding ~{SPIKE_WINDOW} steps; consecutive "
        "spiking steps count as one spike.",
    ),
    (
        "gradient-size variation (CV)",
        "the standard deviation of the gradient norm divided by its mean, after the first "
        f"{WARMUP_FRACTION:.0%} of the run; lower means steadier training.",
    ),
    (
        "steps to the baseline's loss",
        "the first step at which a run's validation loss (or, without evaluations, its "
        f"{FINAL_WINDOW}-step average training loss) is at or below the baseline's final loss; "
        "speed-up = the baseline's steps / the run's steps.",
    ),
    (
        "practically the same",
        f"final losses less than {SAME_LOSS:.0%} apart.",
    ),
]


def definitions_markdown() -> str:
    """The definitions as a Markdown list (what the page and docs/dashboard.md show)."""
    return "\n".join(f"- **{term}**: {text}" for term, text in DEFINITIONS)


def definition(term: str) -> str:
    return dict(DEFINITIONS)[term]


def _n(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def _int(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{round(v):,}"


def _dur(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sentences(summaries: list[RunSummary], baseline: str) -> list[str]:
    """A few plain-language sentences comparing every run with the baseline."""
    by = {s.name: s for s in summaries}
    if baseline not in by:
        return []
    b = by[baseline]
    out: list[str] = []
    kind = b.target_kind or "train"
    loss_word = "validation loss" if kind == "eval" else "training loss"
    b_loss = b.final_eval_loss if kind == "eval" else b.final_train_loss
    if b.first_nan_step is not None and not np.isfinite(b_loss):
        out.append(
            f"The baseline **{b.name}** broke down: its loss became not-a-number at step "
            f"{b.first_nan_step:,}, so the comparisons below are limited."
        )
    for s in summaries:
        if s.name == baseline:
            continue
        loss = s.final_eval_loss if kind == "eval" else s.final_train_loss
        out.append(verdict(s, b, loss, b_loss))
        if s.first_nan_step is not None:
            out.append(
                f"**{s.name}** diverged: its training loss became not-a-number (the numbers "
                f"blew up) at step {s.first_nan_step:,}."
            )
        if np.isfinite(s.speedup_steps):
            fewer = 1 - 1 / s.speedup_steps
            if s.speedup_steps >= 1.005:
                out.append(
                    f"**{s.name}** reached the baseline's final {loss_word} ({_n(b_loss)}) after "
                    f"{_int(s.steps_to_target)} steps instead of {_int(b.steps_to_target)}: "
                    f"{fewer:.0%} fewer steps, a **{s.speedup_steps:.2f}x speed-up**."
                )
            elif s.speedup_steps > 1 / 1.005:
                out.append(
                    f"**{s.name}** reached the baseline's final {loss_word} ({_n(b_loss)}) at "
                    f"the same point as the baseline (step {_int(s.steps_to_target)}): no "
                    f"speed-up, no slow-down."
                )
            else:
                out.append(
                    f"**{s.name}** needed {_int(s.steps_to_target)} steps to reach the baseline's "
                    f"final {loss_word} ({_n(b_loss)}), versus {_int(b.steps_to_target)} for the "
                    f"baseline: it is {1 / s.speedup_steps:.2f}x slower."
                )
        elif np.isfinite(b_loss):
            msg = f"**{s.name}** never reached the baseline's final {loss_word} ({_n(b_loss)})"
            if (
                np.isfinite(s.baseline_steps_to_own)
                and np.isfinite(s.steps_to_own)
                and s.baseline_steps_to_own < s.steps_to_own
            ):
                msg += (
                    f"; the other way round, the baseline reached {s.name}'s final "
                    f"{loss_word} ({_n(loss)}) after {_int(s.baseline_steps_to_own)} steps, "
                    f"versus {_int(s.steps_to_own)} for {s.name}"
                )
            out.append(msg + ".")
        if np.isfinite(loss) and np.isfinite(b_loss):
            ppl = (
                f"(perplexity {_n(perplexity(loss))} vs {_n(perplexity(b_loss))}; "
                "perplexity = e^loss, "
                "roughly how many equally likely next words the model hesitates between, lower "
                "is better)"
            )
            if abs(loss - b_loss) < SAME_LOSS * abs(b_loss):
                out.append(
                    f"Its final {loss_word} is {_n(loss)}, practically the same as the "
                    f"baseline's {_n(b_loss)}, less than {SAME_LOSS:.0%} apart {ppl}."
                )
            else:
                better = "lower (better)" if loss < b_loss else "higher (worse)"
                out.append(
                    f"Its final {loss_word} is {_n(loss)}, {better} than the baseline's "
                    f"{_n(b_loss)} {ppl}."
                )
        out.append(
            f"Stability: {s.loss_spikes} sudden loss jump(s) and {s.grad_spikes} gradient "
            f"spike(s), versus {b.loss_spikes} and {b.grad_spikes} for the baseline; the gradient "
            f"size varies by {_pct(s.grad_norm_cv)} around its average versus "
            f"{_pct(b.grad_norm_cv)} (coefficient of variation: lower means steadier training)."
        )
        if np.isfinite(s.wall_time_s) and np.isfinite(b.wall_time_s) and b.wall_time_s > 0:
            per_s = s.wall_time_s / max(1, s.steps or 1)
            per_b = b.wall_time_s / max(1, b.steps or 1)
            extra = per_s / per_b - 1
            cost = (
                "about the same time as the baseline's"
                if abs(extra) < 0.005
                else f"{abs(extra):.0%} {'more' if extra > 0 else 'less'} time than the baseline's"
            )
            out.append(
                f"Time: {_dur(s.wall_time_s)} for {_int(s.steps)} steps versus "
                f"{_dur(b.wall_time_s)} for {_int(b.steps)}; each step takes {cost}"
                + (
                    " (the baseline also computed a shadow clustering for comparison, which "
                    "costs time)."
                    if b.shadow
                    else "."
                )
            )
    return out


def verdict(s: RunSummary, b: RunSummary, loss: float, b_loss: float) -> str:
    """One 'in short' sentence: faster or not, better or not, steadier or not."""
    if s.first_nan_step is not None and not np.isfinite(loss):
        return f"**In short: {s.name} failed** (its loss blew up); {b.name} did not."
    if np.isfinite(s.speedup_steps) and s.speedup_steps >= 1.05:
        speed = f"reaches the baseline's result **{s.speedup_steps:.2f}x faster**"
    elif np.isfinite(s.speedup_steps) and s.speedup_steps <= 1 / 1.05:
        speed = f"is **{1 / s.speedup_steps:.2f}x slower** to reach the baseline's result"
    elif np.isfinite(s.speedup_steps) or (
        np.isfinite(loss) and np.isfinite(b_loss) and abs(loss - b_loss) < SAME_LOSS * abs(b_loss)
    ):
        speed = "learns about as fast as the baseline"
    else:
        speed = "never reaches the baseline's final loss"
    if np.isfinite(loss) and np.isfinite(b_loss):
        if abs(loss - b_loss) < SAME_LOSS * abs(b_loss):
            end = "ends level with it (final loss within 2%)"
        elif loss < b_loss:
            end = "ends **better** (lower final loss)"
        else:
            end = "ends **worse** (higher final loss)"
    else:
        end = "cannot be compared at the end"
    calmer = (s.loss_spikes + s.grad_spikes) - (b.loss_spikes + b.grad_spikes)
    cv_diff = (
        s.grad_norm_cv - b.grad_norm_cv
        if np.isfinite(s.grad_norm_cv) and np.isfinite(b.grad_norm_cv)
        else 0.0
    )
    if calmer < 0 or (calmer == 0 and cv_diff < -0.05):
        stab = "and trains **more steadily**"
    elif calmer > 0 or cv_diff > 0.05:
        stab = "but trains **less steadily**"
    else:
        stab = "and is as steady"
    return f"**In short: {s.name}** {speed}, {end}, {stab}."


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.0%}"


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

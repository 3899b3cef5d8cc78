"""The vocabulary of verdicts: every word that judges a difference, and the rule for using it.

One module, so that the Summary, the Sweep, the run health notes and the report cannot phrase
the same result in two ways. The rule (`claim`, `verdict_word`):

- a direction word (lower / faster / steadier / fewer ...) only when the difference is
  `detected`: its 95% interval has a width, excludes zero, and the difference is larger than
  what the measurement resolves;
- an interval that includes zero is "no detectable difference", and never "the same": it comes
  with what these seeds could detect and about how many seeds would decide (`decide_text`);
- no interval (one seed each, or no spread at all) is "cannot tell", with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dashboard.metrics.compare import NOT_TOGETHER
from dashboard.metrics.intervals import (
    LEVEL,
    MAX_SEEDS,
    NO_SPREAD,
    ONE_EACH,
    ONE_VS_GROUP,
    PAIRED,
    POWER,
    UNPAIRED,
    WITHIN_RUN,
    Difference,
)

NO_DIFFERENCE = "no detectable difference"
CANNOT_TELL = "cannot tell"
FAILED = "failed"
NOT_COMPARED = "cannot be compared"

Fmt = Callable[[float], str]


# --------------------------------------------------------------------------- numbers


def num(v: float | None, digits: int = 4) -> str:
    """A number at `digits` significant figures ('n/a' when missing)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    text = f"{v:#.{digits}g}"  # '1.400' beside '1.412': the same number of figures
    return text.rstrip(".") if "e" not in text else f"{v:.{digits}g}"


def num3(v: float | None) -> str:
    return num(v, 3)


def steps_text(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{round(v):,}"


def steps_unit(v: float) -> str:
    text = steps_text(v)
    return f"{text} step" if text == "1" else f"{text} steps"


def pct(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.0%}"


def gap_pct(v: float, signed: bool = False) -> str:
    """A relative gap as a percentage that is never a misleading zero: '3.2%', and for a gap
    under 0.05% two significant figures ('0.0012%'), so that a loss just above a target is
    never shown as "0.0% above" it."""
    if v is None or not np.isfinite(v):
        return "n/a"
    sign = ("+" if v > 0 else "-" if v < 0 else "") if signed else ""
    size = abs(v)
    return sign + (f"{size:.1%}" if size >= 0.0005 or size == 0 else f"{size * 100:.2g}%")


def points(v: float) -> str:
    """A difference of two percentages, in percentage points."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v * 100:.0f} points"


def ms(v: float) -> str:
    """Seconds as '12.3 ms' or '1.19 s' (3 significant figures)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.3g} s" if abs(v) >= 1 else f"{v * 1000:.3g} ms"


def signed(v: float, fmt: Fmt = num) -> str:
    """A difference with its sign: '+0.01736', '-2.71 ms'."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return ("+" if v > 0 else "-" if v < 0 else "") + fmt(abs(v))


def same_digits(base: float, estimate: float, fmt: Fmt = num) -> bool:
    """True when `estimate` is below what the shown digits of `base` can show: 1.400 against
    1.400 differs by +2.384e-08, which no number on the page can display."""
    if not (math.isfinite(base) and math.isfinite(estimate)) or not estimate:
        return False
    return fmt(base + estimate) == fmt(base)


def difference_text(d: Difference, fmt: Fmt = num) -> str:
    """'difference +0.01736', or 'the same to the shown digits' when the difference is below
    the values' resolution (never '+2.384e-08' beside two equal numbers)."""
    if same_digits(d.base_mean, d.estimate, fmt):
        return "the same to the shown digits"
    return f"difference {signed(d.estimate, fmt)}"


def share_text(r: float) -> str:
    """A size as a share of the baseline's value: '4.1%', '57%', or a ratio ('30x') once the
    share is past 2x, where a percentage ('2979%') is harder to read."""
    if not math.isfinite(r):
        return "n/a"
    if r < 0.1:
        return f"{r:.1%} of the baseline's value"
    if r < 2:
        return f"{r:.0%} of the baseline's value"
    return f"{r:.1f}x the baseline's value" if r < 10 else f"{r:,.0f}x the baseline's value"


def seeds_text(n: int, paired: bool = False) -> str:
    word = "paired seed" if paired else "seed"
    return f"{n:,} {word}{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- differences


def interval_text(d: Difference, fmt: Fmt = num) -> str:
    """'95% interval -0.024 to +0.096, paired by seed, 3 seeds'."""
    how = {
        PAIRED: f"paired by seed, {d.n} seeds",
        UNPAIRED: f"across seeds, {d.n}+ per side",
        WITHIN_RUN: "one run each, from the per-batch spread",
        ONE_VS_GROUP: f"one run against {d.n_max} seeds, from their spread",
    }.get(d.method, "")
    low, high = signed(d.low, fmt), signed(d.high, fmt)
    if low == high and fmt in FINER:  # a narrow interval must not print as zero width
        low, high = signed(d.low, FINER[fmt]), signed(d.high, FINER[fmt])
    return f"{LEVEL:.0%} interval {low} to {high}" + (f", {how}" if how else "")


FINER: dict[Fmt, Fmt] = {
    num: lambda v: num(v, 7),
    num3: lambda v: num(v, 6),
    ms: lambda v: "n/a" if not np.isfinite(v) else f"{v * 1000:.6g} ms",
}


# the figures each formatter shows: a difference beside its interval never shows more
PM_FIGURES: dict[Fmt, int] = {num: 4, num3: 3, ms: 3}


def _pm_digits(e: float, h: float, dec: int, excludes_zero: bool) -> tuple[str, str] | None:
    """The estimate and half-width rounded to `dec` decimals, or None when rounding would
    hide the half-width or make the pair read against the verdict (an interval that excludes
    zero shows |estimate| > half-width, one that includes it |estimate| <= half-width)."""
    places = dec
    er, hr = round(e, dec), round(h, dec)
    if hr <= 0 or (abs(er) > hr) != excludes_zero:
        return None
    sign = "+" if er > 0 else "-" if er < 0 else ""
    return f"{sign}{abs(er):.{places}f}", f"{hr:.{places}f}"


def pm_text(d: Difference, fmt: Fmt = num) -> str:
    """'-0.007 ± 0.013': a difference and half its 95% interval at the digits the interval
    resolves (2 significant figures of the half-width, the estimate to the same decimal place),
    never more figures than `fmt` gives a value, so that a difference beside '1.399 vs 1.406'
    does not read '-0.007020 ± 0.01316'. Formats it does not know keep their own digits."""
    est, hw = d.estimate, d.half_width
    known = fmt in PM_FIGURES and math.isfinite(est) and math.isfinite(hw) and hw > 0
    if known:
        scale, unit = (1.0, "") if fmt is not ms else (1.0, " s") if hw >= 1 else (1e3, " ms")
        e, h = est * scale, hw * scale
        own = PM_FIGURES[fmt] - 1 - math.floor(math.log10(abs(e))) if e else 99
        dec = 1 - math.floor(math.log10(h))
        dec -= round(h, dec) >= 10 ** (2 - dec)  # 9.96 rounds up to 10: two figures, not 10.0
        # never past the units ('800' would read as exact to the unit) nor `fmt`'s own figures
        dec = max(min(dec, own), 0)
        excludes = d.low > 0 or d.high < 0
        for extra in range(4):  # more digits only where fewer would read against the verdict
            got = _pm_digits(e, h, dec + extra, excludes) if dec + extra <= 6 else None
            if got:
                return f"{got[0]}{unit} ± {got[1]}{unit}"
    return f"{signed(est, fmt)} ± {fmt(hw)}"


def diff_text(d: Difference, fmt: Fmt = num) -> str:
    """'+0.017 ± 0.041' (the estimate and half the 95% interval, `pm_text`), or the estimate
    alone when there is no interval: what every table shows for a difference."""
    if not math.isfinite(d.estimate):
        return "n/a"
    if d.has_interval:
        return pm_text(d, fmt)
    return signed(d.estimate, fmt)


# a count (spikes: the one vocabulary whose lower word is "fewer") that is not resolved is
# a difference under one spike, never "below resolution" (a count has no measuring step)
COUNT_LOWER = "fewer"
APART_SHORT = "less than one spike apart"


def why_not(d: Difference, fmt: Fmt = num, count: bool = False) -> str:
    """Why a difference carries no verdict although it has a value; `count`: a spike count,
    whose unresolved difference is said as less than one spike apart."""
    if not d.has_interval:
        return d.reason or "no way to measure the noise"
    if count:
        return f"the seeds compared are {APART_SHORT} in all"
    return (
        f"the difference ({fmt(abs(d.estimate))}) is within what the measurement resolves "
        f"({fmt(d.resolution)})"
    )


TWO_FIGURES: dict[Fmt, Fmt] = {
    num: lambda v: num(v, 2),
    num3: lambda v: num(v, 2),
    ms: lambda v: (
        "n/a"
        if v is None or not np.isfinite(v)
        else (f"{num(v, 2)} s" if abs(v) >= 1 else f"{num(v * 1000, 2)} ms")
    ),
}


def two_figures(fmt: Fmt) -> Fmt:
    """`fmt` at 2 significant figures, as `pm_text` gives a half-width: a derived size (what
    these seeds could detect) is no more exact than the interval it comes from."""
    return TWO_FIGURES.get(fmt, fmt)


def decide_text(
    d: Difference, fmt: Fmt = num, size: float = float("nan"), of: str = "", lead: bool = True
) -> str:
    """What would decide a 'no detectable difference': the smallest difference these seeds can
    detect (80% power, from the observed spread) and about how many seeds would detect a
    difference of `size` ('' when the spread is unknown). `of` names what `size` is a share of,
    e.g. "1% of the loss". `lead`: open with "too few seeds to tell" (said once per comparison
    on the Summary)."""
    mdd = d.detectable()
    if not math.isfinite(mdd):
        return ""
    fmt = two_figures(fmt)
    paired = d.method == PAIRED
    these = (
        f"these {seeds_text(d.n, paired)}"
        if d.method in (PAIRED, UNPAIRED)
        else f"one run against {d.n_max} seeds"
        if d.method == ONE_VS_GROUP
        else "these runs"
    )
    share = ""
    if math.isfinite(d.base_mean) and d.base_mean:
        share = f" ({share_text(abs(mdd / d.base_mean))})"
    if d.method == WITHIN_RUN:
        return (
            f"one run each: with {POWER:.0%} power, the spread of their evaluation batches can "
            f"detect differences above {fmt(mdd)}{share}, but it says nothing of how much "
            "another seed would change the result; only more seeds per side can measure that"
        )
    text = ("too few seeds to tell: " if lead else "") + (
        f"{these} can detect differences above {fmt(mdd)}{share}"
    )
    if (
        math.isfinite(size)
        and 0 < size < mdd
        and math.isfinite(d.unit_sd)
        and fmt(size) != fmt(0.0)
    ):
        n = d.seeds_needed(size)
        what = f"{fmt(size)}" + (f" ({of})" if of else "")
        per = "paired seeds" if paired else "seeds per side"
        text += (
            f"; about {n:,} {per} would detect {what}"
            if n is not None
            else f"; more than {MAX_SEEDS:,} {per} would be needed to detect {what}"
        )
    return text + f" ({POWER:.0%} power)"


def claim(
    d: Difference,
    lower: str,
    higher: str,
    fmt: Fmt = num,
    size: float = float("nan"),
    of: str = "",
    caveat: bool = True,
) -> str:
    """The one rule, as a sentence part: `lower` / `higher` only when detected. `caveat`: say
    that no detectable difference is not 'equal' (the Summary says it once per comparison, at
    its first such verdict; each verdict keeps its interval and what its seeds can detect)."""
    if not math.isfinite(d.estimate):
        return NOT_COMPARED
    if not d.detected:
        if not d.has_interval or not d.resolved:
            count = lower == COUNT_LOWER
            diff = "difference 0" if count and d.estimate == 0 else difference_text(d, fmt)
            return f"{CANNOT_TELL}: {why_not(d, fmt, count)} ({diff})"
        decide = decide_text(d, fmt, size, of, lead=caveat)
        head = f"{NO_DIFFERENCE} ({pm_text(d, fmt)})"
        if caveat:
            head += ", which is not the same as equal"
        return head + (f": {decide}" if decide else "")
    word = lower if d.estimate < 0 else higher
    return f"{word} by {fmt(abs(d.estimate))} ({interval_text(d, fmt)})"


SHORT_REASONS = {
    ONE_EACH: "one seed each",
    NO_SPREAD: "no spread",
    NOT_TOGETHER: "not run at the same time",
}


def verdict_word(d: Difference, lower: str, higher: str) -> str:
    """The short form of `claim` for tables and cards."""
    if not math.isfinite(d.estimate):
        return "n/a"
    if not d.has_interval:
        short = SHORT_REASONS.get(d.reason, "")
        return CANNOT_TELL + (f" ({short})" if short else "")
    if not d.resolved:  # a count has no measuring step: it is under one spike apart
        return CANNOT_TELL + (
            f" ({APART_SHORT})" if lower == COUNT_LOWER else " (below resolution)"
        )
    if d.detected:
        return lower if d.estimate < 0 else higher
    return NO_DIFFERENCE


def diverged_text(step: int) -> str:
    """What happened to a run that failed: the one sentence for it in every view."""
    return f"its loss became not-a-number at step {step:,} (diverged)"


def failed_text(step: int | None, who: str = "") -> str:
    """The one phrase for a run whose loss became not-a-number: 'SGG failed (diverged at
    step 40)'."""
    where = f" at step {step:,}" if step is not None else ""
    return f"{who + ' ' if who else ''}{FAILED} (diverged{where})"


def detectable_text(d: Difference, fmt: Fmt = num) -> str:
    """The smallest difference this comparison would detect (80% power), for a table cell, at
    2 significant figures (`two_figures`)."""
    mdd = d.detectable()
    if d.detected:
        return ""
    fmt = two_figures(fmt)
    return fmt(mdd) if math.isfinite(mdd) else "unknown (no spread)"


def reached_text(k: int, n: int) -> str:
    """'reached it: 2 of 3 seeds' - the one definition of 'reached' for a group."""
    if n <= 1:
        return "reached it" if k else "did not reach it"
    if k == n:
        return f"all {n} seeds reached it"
    if k == 0:
        return f"none of the {n} seeds reached it"
    return f"{k} of {n} seeds reached it"

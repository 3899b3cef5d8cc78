"""The one rule for every claim: a difference with its 95% interval, or an explicit "cannot tell".

- Seeds are seeds: a side's N counts distinct seeds. Runs with the same seed are repeats of one
  seed and count once (their mean); runs without a recorded seed are never counted as seeds
  (`seed_values`).
- N >= 2 seeds on each side: a t-interval across seeds, paired when both sides ran the same
  seeds (same initialisation and batches), Welch's otherwise;
- one seed against a group of N >= 2 seeds: the group's spread stands for the single run's too
  (t with N - 1 degrees of freedom);
- one run each, with a per-run spread (per-batch evaluation losses, per-step times): Welch's
  interval from the two means, standard deviations and counts;
- otherwise, and whenever the spread is zero (identical values cannot measure the noise), no
  interval: the reason is kept in `Difference.reason`.

A word such as better / worse / faster / steadier may be used only when `Difference.detected`:
the interval has a width, excludes zero, and the estimate is larger than the measurement's
resolution. `detectable()` and `seeds_needed()` say what it would take to decide (80% power).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import special

LEVEL = 0.95
POWER = 0.80
MAX_SEEDS = 1000  # seeds_needed() gives up beyond this
PAIRED, UNPAIRED, WITHIN_RUN, NONE = "paired", "across seeds", "within run", "none"
ONE_VS_GROUP = "one run against a group"

NO_SPREAD = (
    "every seed gave the same value, so the noise cannot be measured (no spread is not certainty)"
)
ONE_EACH = "one seed each, so the noise cannot be measured"


@dataclass(frozen=True)
class Difference:
    """`estimate` = run side minus baseline side (`mean` - `base_mean`, the values actually
    compared), with its 95% interval [low, high]."""

    estimate: float
    low: float = float("nan")
    high: float = float("nan")
    n: int = 1  # distinct seeds (or pairs) on the smaller side
    method: str = NONE
    n_max: int = 1  # distinct seeds on the larger side
    mean: float = float("nan")
    base_mean: float = float("nan")
    se: float = float("nan")  # standard error of the estimate
    df: float = float("nan")  # degrees of freedom of its t distribution
    unit_sd: float = float("nan")  # se = unit_sd / sqrt(seeds per side) for a new experiment
    resolution: float = 0.0  # differences up to this are below what the measure resolves
    notes: tuple[str, ...] = ()  # repeats merged, seeds left out: said beside the verdict
    reason: str = ""  # why there is no interval, in words

    @property
    def has_interval(self) -> bool:
        """A finite interval with a width (a zero-width one is no spread, not certainty)."""
        return math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low

    @property
    def resolved(self) -> bool:
        """The estimate is larger than what the measurement can resolve."""
        return math.isfinite(self.estimate) and abs(self.estimate) > self.resolution

    @property
    def detected(self) -> bool:
        """The interval excludes zero (no difference), and the estimate is resolvable."""
        return self.has_interval and (self.low > 0 or self.high < 0) and self.resolved

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_interval else float("nan")

    def detectable(self, power: float = POWER) -> float:
        """The smallest true difference this comparison would detect with `power` (two-sided
        test at 1 - LEVEL), NaN when its noise is unknown."""
        if not (math.isfinite(self.se) and self.se > 0 and math.isfinite(self.df)):
            return float("nan")
        return max(detectable_difference(self.se, self.df, power), self.resolution)

    def seeds_needed(self, delta: float, power: float = POWER) -> int | None:
        """About how many seeds per side (pairs, when paired) would detect a true difference
        of `delta` with `power`; None when unknown or more than MAX_SEEDS."""
        if not (math.isfinite(self.unit_sd) and self.unit_sd > 0 and delta > self.resolution):
            return None

        def enough(n: int) -> bool:  # power grows with n: a binary search finds the least
            return _power(delta, self.unit_sd / math.sqrt(n), n - 1) >= power

        lo, hi = 2, MAX_SEEDS
        if not enough(hi):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
        return lo


def t_quantile(q: float | np.ndarray, df: float | np.ndarray) -> float | np.ndarray:
    """Student's t quantile, equal bit for bit to `scipy.stats.t.ppf(q, df)` (which calls
    `special.stdtrit`) without importing scipy.stats (~0.5 s of every dashboard start).
    NaN where df <= 0 or NaN, as stats gives."""
    if np.ndim(df) == 0 and np.ndim(q) == 0:
        return float(special.stdtrit(df, q)) if df > 0 else float("nan")
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(df > 0, special.stdtrit(np.where(df > 0, df, 1.0), q), np.nan)


def _tcrit(df: float, level: float = LEVEL) -> float:
    return t_quantile(0.5 + level / 2, df)


def _power_nc(nc: float, t: float, df: float) -> float:
    """Two-sided power at noncentrality `nc` >= 0 and critical value `t`. The upper tail is
    P(T > t | nc) = P(T < -t | -nc): nctdtr(df, -nc, -t) is the same Boost call, bit for bit,
    as stats.nct.sf(t, df, nc), without importing scipy.stats (checked over df 1..10,000)."""
    with np.errstate(over="ignore"):
        upper = min(max(float(special.nctdtr(df, -nc, -t)), 0.0), 1.0)
        lower = float(special.nctdtr(df, nc, -t))  # the wrong-sign tail: NaN far below 1e-300
    return upper + (lower if math.isfinite(lower) else 0.0)


def _power(delta: float, se: float, df: float, level: float = LEVEL) -> float:
    """Power of the two-sided t-test for a true difference `delta` (noncentral t)."""
    return _power_nc(abs(delta) / se, _tcrit(df, level), df)


def detectable_difference(se: float, df: float, power: float = POWER) -> float:
    """The true difference a two-sided t-test with standard error `se` and `df` degrees of
    freedom detects with probability `power` (the minimum detectable difference)."""
    if not (se > 0 and df > 0):
        return float("nan")
    return se * _solve_nc(power, _tcrit(df), df)


def _solve_nc(power: float, t: float, df: float) -> float:
    """The noncentrality at which the two-sided power is `power`. nctdtrinc inverts the upper
    tail alone (off by up to ~1e-4 relative at df = 1, the wrong-sign tail left out); false
    position on the two-sided power itself then pins the root to ~1e-13 relative: closer to
    the true root than brentq's xtol = 1e-6 * se, used before (scipy.optimize costs ~0.15 s
    to import)."""

    def gap(nc: float) -> float:
        g = _power_nc(nc, t, df) - power
        if math.isnan(g):
            raise ValueError(f"the power is NaN at noncentrality {nc!r} (df {df!r})")
        return g

    g0 = gap(0.0)
    if g0 >= 0:  # power at no difference is the test's size, 1 - LEVEL
        if g0 == 0:
            return 0.0
        raise ValueError(f"power {power!r} is not above the test's size {power + g0!r}")
    # nctdtrinc (cdflib) is checked for df >= 1, the dashboard's; it can hang at df = 0.01
    guess = float(special.nctdtrinc(df, 1.0 - power, t)) if df >= 1 else t + 1.0
    if not (math.isfinite(guess) and guess > 0):
        guess = t + 1.0
    a, fa = guess, gap(guess)
    step = 1e-3 * guess if fa < 0 else -1e-3 * guess
    b = max(a + step, 0.0)
    fb = g0 if b == 0 else gap(b)
    for _ in range(2000):  # walk from the guess until the root is bracketed
        if fa * fb <= 0:
            break
        step *= 2
        a, fa = b, fb
        b = max(a + step, 0.0)
        fb = g0 if b == 0 else gap(b)
    else:
        raise ValueError(f"no noncentrality gives power {power!r} (df {df!r})")
    return _illinois(gap, a, fa, b, fb)


def _illinois(gap: Callable[[float], float], a: float, fa: float, b: float, fb: float) -> float:
    """Root of `gap` in the bracket [a, b] (fa, fb of opposite signs, or one zero) by false
    position with the Illinois halving: the bracket always holds the root and shrinks
    superlinearly; stops at 1e-13 relative (the power's own rounding) or 200 steps."""
    for _ in range(200):
        if fb == 0 or abs(b - a) <= 1e-13 * max(abs(a), abs(b)):
            break
        c = b - fb * (b - a) / (fb - fa)
        if not min(a, b) < c < max(a, b):  # rounding at the ends: bisect
            c = (a + b) / 2
        fc = gap(c)
        if fc * fb < 0:
            a, fa = b, fb
        else:
            fa /= 2
        b, fb = c, fc
    return b if abs(fb) <= abs(fa) else a


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def seed_text(seed: object) -> str:
    return f"seed {seed}"


def _repeat_note(seed: object, values: list[float], who: str) -> str:
    text = f"{len(values)} runs with {seed_text(seed)}{who}: repeats of one seed, counted once"
    x = _finite(values)
    if x.size > 1 and not _no_spread(float(np.ptp(x)), x):
        text += (
            f" (their mean), although their results differ ({_apart(x.min(), x.max())}): "
            "check that their seed was recorded correctly"
        )
    return text


def _apart(lo: float, hi: float) -> str:
    """'2.13312 to 2.13315': the fewest significant figures (4 or more) that tell them apart."""
    for digits in range(4, 17):
        a, b = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
        if a != b:
            return f"{a} to {b}"
    return f"{lo!r} to {hi!r}"


def seed_values(
    pairs: Iterable[tuple[object, float]], side: str = ""
) -> tuple[dict[object, float], tuple[str, ...]]:
    """{seed: value} with one value per distinct seed (repeats of a seed: their mean), and the
    notes that say what was merged or left out. Runs without a recorded seed (None) never count
    as seeds: left out beside runs with seeds, else their mean counts as one value."""
    known: dict[object, list[float]] = {}
    unknown: list[float] = []
    for seed, v in pairs:
        (unknown if seed is None else known.setdefault(seed, [])).append(float(v))
    who = f" ({side})" if side else ""
    notes = [_repeat_note(s, vs, who) for s, vs in known.items() if len(vs) > 1]
    out = {s: _mean(vs) for s, vs in known.items()}
    if unknown and known:
        notes.append(
            f"{len(unknown)} run(s) without a recorded seed{who}: left out (they may repeat a "
            "seed already counted)"
        )
    elif len(unknown) > 1:
        notes.append(
            f"{len(unknown)} runs without a recorded seed{who}: they may be repeats of one seed, "
            "so they count as one"
        )
        out = {None: _mean(unknown)}
    elif unknown:
        out = {None: unknown[0]}
    return out, tuple(notes)


def _mean(values) -> float:
    x = _finite(values)
    return float(x.mean()) if x.size else float("nan")


def _no_spread(sd: float, *values: np.ndarray) -> bool:
    """A spread that is zero up to float rounding (identical values written through float32,
    differences of identical runs): it measures no noise."""
    scale = max((float(np.abs(v).max()) for v in values if v.size), default=0.0)
    return sd <= 1e-9 * scale


def _no_interval(est, n, n_max, mean, base_mean, reason, **kw) -> Difference:
    return Difference(est, n=n, n_max=n_max, mean=mean, base_mean=base_mean, reason=reason, **kw)


def across_seeds(
    run_side: dict[object, float] | list[float],
    base_side: dict[object, float] | list[float],
    *,
    resolution: float = 0.0,
    notes: tuple[str, ...] = (),
    level: float = LEVEL,
) -> Difference:
    """Difference of means of two groups of seeds (one value per distinct seed: see
    `seed_values`). With dicts keyed by seed, the seeds both sides ran are compared pairwise
    (when there are >= 2 of them); seeds only one side ran are then left out, and named."""
    notes = tuple(notes)
    if isinstance(run_side, dict) and isinstance(base_side, dict):
        common = [
            k
            for k in run_side
            if k is not None
            and k in base_side
            and np.isfinite(run_side[k])
            and np.isfinite(base_side[k])
        ]
        if len(common) >= 2:
            left = sorted({str(k) for k in (*run_side, *base_side) if k not in common})
            if left:
                notes += (
                    ", ".join(f"seed {k}" for k in left)
                    + ": left out of the paired comparison (a value on one side only)",
                )
            return _paired(run_side, base_side, common, resolution, notes, level)
        run_side, base_side = list(run_side.values()), list(base_side.values())
    a, b = _finite(list(run_side)), _finite(list(base_side))
    if a.size == 0 or b.size == 0:
        return Difference(float("nan"), notes=notes, reason="no value to compare")
    est = float(a.mean() - b.mean())
    n, n_max = int(min(a.size, b.size)), int(max(a.size, b.size))
    kw = {"mean": float(a.mean()), "base_mean": float(b.mean()), "resolution": resolution}
    if a.size < 2 and b.size < 2:
        return _no_interval(est, n, n_max, reason=ONE_EACH, notes=notes, **kw)
    if a.size < 2 or b.size < 2:  # one run against a group: the group's spread stands for both
        group = a if a.size >= 2 else b
        sd = float(group.std(ddof=1))
        if _no_spread(sd, group):
            return _no_interval(est, n, n_max, reason=NO_SPREAD, notes=notes, **kw)
        se = sd * math.sqrt(1.0 + 1.0 / group.size)
        t = _tcrit(group.size - 1, level)
        return Difference(
            est,
            est - t * se,
            est + t * se,
            n,
            ONE_VS_GROUP,
            n_max,
            se=se,
            df=group.size - 1,
            unit_sd=sd * math.sqrt(2.0),
            notes=notes,
            **kw,
        )
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    if _no_spread(math.sqrt(va + vb), a, b):
        return _no_interval(est, n, n_max, reason=NO_SPREAD, notes=notes, **kw)
    # Welch's standard error with the conservative degrees of freedom min(n_a, n_b) - 1
    # (Satterthwaite's are too generous with 2 seeds on one side: 9% false claims, 2 vs 8)
    df = min(a.size, b.size) - 1
    se = math.sqrt(va + vb)
    t = _tcrit(df, level)
    unit = math.sqrt(float(a.var(ddof=1)) + float(b.var(ddof=1)))
    return Difference(
        est,
        est - t * se,
        est + t * se,
        n,
        UNPAIRED,
        n_max,
        se=se,
        df=df,
        unit_sd=unit,
        notes=notes,
        **kw,
    )


def _paired(run_side, base_side, common, resolution, notes, level=LEVEL) -> Difference:
    a = np.array([run_side[k] for k in common], dtype=np.float64)
    b = np.array([base_side[k] for k in common], dtype=np.float64)
    d = a - b
    est, n = float(d.mean()), len(common)
    kw = {"mean": float(a.mean()), "base_mean": float(b.mean()), "resolution": resolution}
    sd = float(d.std(ddof=1))
    if not math.isfinite(sd) or _no_spread(sd, a, b):
        return _no_interval(est, n, n, reason=NO_SPREAD, notes=notes, method=PAIRED, **kw)
    low, high = _paired_interval(d, level)
    return Difference(
        est,
        low,
        high,
        n,
        PAIRED,
        n,
        se=sd / math.sqrt(n),
        df=n - 1,
        unit_sd=sd,
        notes=notes,
        **kw,
    )


def _paired_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    """The interval of stats.ttest_rel(a, b).confidence_interval(level), d = a - b, by the same
    operations in the same order (equal bit for bit): mean(d) + stdtrit(n - 1, p) * se, with
    se = sqrt(mean((d - mean)**2) * (n / (n - 1)) / n), without importing scipy.stats."""
    n = np.float64(d.size)
    mean = np.mean(d)
    var = np.mean((d - mean) ** 2) * (n / (n - 1))
    se = np.sqrt(var / n)
    tail = (1 - level) / 2
    q = special.stdtrit(d.size - 1, np.array([tail, 1 - tail]))
    return float(q[0] * se + mean), float(q[1] * se + mean)


def from_spread(
    mean_a: float, sd_a: float, n_a: float, mean_b: float, sd_b: float, n_b: float
) -> Difference:
    """Welch's interval for mean_a - mean_b from each side's mean, standard deviation and count
    (e.g. one run each, with the per-batch spread of its evaluation loss)."""
    est = mean_a - mean_b
    kw = {"mean": mean_a, "base_mean": mean_b}
    vals = (mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    if not all(v is not None and math.isfinite(v) for v in vals) or n_a < 2 or n_b < 2:
        return Difference(est if math.isfinite(est) else float("nan"), reason=ONE_EACH, **kw)
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(est, method=WITHIN_RUN, reason=NO_SPREAD, **kw)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    t = _tcrit(df)
    return Difference(est, est - t * se, est + t * se, 1, WITHIN_RUN, se=se, df=df, **kw)


def from_samples(a, b) -> Difference:
    """Welch's interval for mean(a) - mean(b) from two samples of one run each (e.g. per-step
    optimizer times)."""
    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2:
        est = float(a.mean() - b.mean()) if a.size and b.size else float("nan")
        return Difference(est, reason=ONE_EACH)
    return from_spread(
        float(a.mean()), float(a.std(ddof=1)), a.size, float(b.mean()), float(b.std(ddof=1)), b.size
    )

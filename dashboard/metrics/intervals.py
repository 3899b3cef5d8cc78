"""The one rule for every claim: a difference with its 95% interval, or an explicit "cannot tell".

- N >= 2 runs on each side: a t-interval across seeds, paired when both sides ran the same seeds
  (same initialisation and batches), Welch's otherwise;
- one run against a group of N >= 2 seeds: the group's spread across seeds stands for the single
  run's too (t with N - 1 degrees of freedom);
- one run each, with a per-run spread (per-batch evaluation losses, per-step times): Welch's
  interval from the two means, standard deviations and counts;
- otherwise no interval: "one run each: cannot tell an effect from noise".

A word such as better / worse / faster / steadier may be used only when `Difference.detected`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
PAIRED, UNPAIRED, WITHIN_RUN, NONE = "paired", "across seeds", "within run", "none"
ONE_VS_GROUP = "one run against a group"


@dataclass(frozen=True)
class Difference:
    """`estimate` = run side minus baseline side, with its 95% interval [low, high]."""

    estimate: float
    low: float = float("nan")
    high: float = float("nan")
    n: int = 1  # runs (or pairs) on the smaller side
    method: str = NONE
    n_max: int = 1  # runs on the larger side

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def detected(self) -> bool:
        """The interval excludes zero (no difference)."""
        return self.has_interval and (self.low > 0 or self.high < 0)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_interval else float("nan")


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def across_seeds(
    run_side: dict[object, float] | list[float],
    base_side: dict[object, float] | list[float],
) -> Difference:
    """Difference of means of two groups of runs. With dicts keyed by seed, the seeds both sides
    ran are compared pairwise (when there are >= 2 of them)."""
    if isinstance(run_side, dict) and isinstance(base_side, dict):
        common = [
            k
            for k in run_side
            if k in base_side and np.isfinite(run_side[k]) and np.isfinite(base_side[k])
        ]
        if len(common) >= 2:
            a = np.array([run_side[k] for k in common], dtype=np.float64)
            b = np.array([base_side[k] for k in common], dtype=np.float64)
            d = a - b
            est = float(d.mean())
            if np.ptp(d) == 0:  # identical differences: the interval is the point
                return Difference(est, est, est, len(common), PAIRED)
            ci = stats.ttest_rel(a, b).confidence_interval(LEVEL)
            return Difference(est, float(ci.low), float(ci.high), len(common), PAIRED)
        run_side, base_side = list(run_side.values()), list(base_side.values())
    a, b = _finite(list(run_side)), _finite(list(base_side))
    if a.size == 0 or b.size == 0:
        return Difference(float("nan"))
    est = float(a.mean() - b.mean())
    n, n_max = int(min(a.size, b.size)), int(max(a.size, b.size))
    if a.size < 2 and b.size < 2:
        return Difference(est, n=n, n_max=n_max)
    if a.size < 2 or b.size < 2:  # one run against a group: the group's spread stands for both
        group = a if a.size >= 2 else b
        sd = float(group.std(ddof=1))
        se = sd * math.sqrt(1.0 + 1.0 / group.size)
        t = float(stats.t.ppf(0.5 + LEVEL / 2, group.size - 1))
        return Difference(est, est - t * se, est + t * se, n, ONE_VS_GROUP, n_max)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Difference(est, est, est, n, UNPAIRED, n_max)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    return Difference(est, float(ci.low), float(ci.high), n, UNPAIRED, n_max)


def from_spread(
    mean_a: float, sd_a: float, n_a: float, mean_b: float, sd_b: float, n_b: float
) -> Difference:
    """Welch's interval for mean_a - mean_b from each side's mean, standard deviation and count
    (e.g. one run each, with the per-batch spread of its evaluation loss)."""
    est = mean_a - mean_b
    vals = (mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    if not all(v is not None and math.isfinite(v) for v in vals) or n_a < 2 or n_b < 2:
        return Difference(est if math.isfinite(est) else float("nan"))
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(est, est, est, 1, WITHIN_RUN)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    t = float(stats.t.ppf(0.5 + LEVEL / 2, df))
    return Difference(est, est - t * se, est + t * se, 1, WITHIN_RUN)


def from_samples(a, b) -> Difference:
    """Welch's interval for mean(a) - mean(b) from two samples of one run each (e.g. per-step
    optimizer times)."""
    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2:
        return Difference(float(a.mean() - b.mean()) if a.size and b.size else float("nan"))
    return from_spread(
        float(a.mean()), float(a.std(ddof=1)), a.size, float(b.mean()), float(b.std(ddof=1)), b.size
    )

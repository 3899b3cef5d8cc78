"""Why a layer's factors move: the spread rule, the EMA's pull and the bounds, step by step.

The spread (MDA, METHOD.md) of a group is the median distance of its weights' momentum from the
mean momentum of their layer; the whole model's spread D is the same median over every clustered
weight. At a re-cluster SGG sets each group's target r = D / D_c, clamped to the bounds, and moves
the factor S a fraction (1 - beta3) of the way toward it: S_new - S_old = (1 - beta3) * (r -
S_old). So a factor falls exactly when its target is below it, and all of a layer's factors fall
together when every group lies farther from its layer's mean than the model's typical weight does
(relative to the factor already in force). With the clamp, a factor near 1 has far more room to
rise than to fall (`reach`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.metrics.settings import info_of
from runformat.run_info import SGGOptions

DEFAULT_BOUNDS = (0.1, 10.0)


def sgg_options(meta: dict) -> SGGOptions | None:
    """The clustering's options, applied (`optimizer.sgg`) or a shadow's, as the run's typed
    description reads them (None: the run recorded no clustering)."""
    return info_of(meta).sgg if isinstance(meta, dict) else None


def ema_rate(meta: dict) -> float:
    """1 - beta3, the share of the gap to its target a factor moves per re-cluster (NaN when
    run.json names no scale_decay)."""
    sgg = sgg_options(meta)
    d = sgg.scale_decay if sgg is not None else None
    return 1.0 - float(d) if isinstance(d, int | float) and 0 <= d < 1 else float("nan")


def bounds(meta: dict) -> tuple[float, float]:
    """The clamp of the target, from run.json (the paper's [0.1, 10] when not recorded)."""
    sgg = sgg_options(meta)
    b = sgg.scale_bounds if sgg is not None else None
    if b is not None and len(b) == 2 and all(isinstance(x, int | float) for x in b):
        return float(b[0]), float(b[1])
    return DEFAULT_BOUNDS


def same_clustering(a: dict, b: dict) -> bool:
    """Whether two runs clustered with the same options, applied or a shadow (a decay-0.9 SGG
    is not the decay-0.99 shadow)."""
    return _compared_options(a) == _compared_options(b)


COMPARED_OPTIONS = ("n_clusters", "recluster_interval", "scale_decay", "scale_bounds",
                    "cluster_on", "global_mda", "clamp")  # fmt: skip


def _compared_options(meta: dict) -> dict:
    sgg = sgg_options(meta)
    return {k: getattr(sgg, k) for k in COMPARED_OPTIONS} if sgg is not None else {}


@dataclass(frozen=True)
class Reach:
    """How far the EMA and the clamp let a factor move from 1: the most it can rise or fall at
    one re-cluster (`rate` of the way to a bound), and where it can be after `reclusters`."""

    rate: float
    lower: float
    upper: float
    reclusters: int
    rise: float  # the largest rise from 1 at one re-cluster: rate * (upper - 1)
    fall: float  # the largest fall from 1: rate * (1 - lower)
    highest: float  # the largest factor after `reclusters` re-clusters: upper - (upper - 1) q^n
    lowest: float  # the smallest: lower + (1 - lower) q^n, q = 1 - rate


def reach(rate: float, lower: float, upper: float, reclusters: int) -> Reach | None:
    """Why the factors are lopsided: with targets clamped to [lower, upper] and the EMA moving a
    factor `rate` of the way at each re-cluster, a factor at 1 can rise by up to rate * (upper
    - 1) but fall by at most rate * (1 - lower) (1% of the way: +9% against -0.9% with [0.1,
    10]). None when the rate is not recorded."""
    if not (math.isfinite(rate) and 0 < rate <= 1 and 0 < lower <= 1 <= upper):
        return None
    q = (1 - rate) ** max(reclusters, 0)
    return Reach(rate, lower, upper, reclusters, rate * (upper - 1), rate * (1 - lower),
                 upper - (upper - 1) * q, lower + (1 - lower) * q)  # fmt: skip


def factor_options(meta: dict, reclusters: int) -> tuple[float, float, float, Reach | None]:
    """(EMA rate, lower bound, upper bound, their reach after `reclusters`) from run.json."""
    rate = ema_rate(meta)
    lower, upper = bounds(meta)
    return rate, lower, upper, reach(rate, lower, upper, reclusters)


STEP_COLS = ["step", "cluster", "prev", "factor", "target", "mda", "global_mda", "move", "pull",
             "share", "prev_share", "prev_target", "prev_mda", "prev_global_mda"]  # fmt: skip


def factor_steps(clusters: pd.DataFrame, layer: str) -> pd.DataFrame:
    """One layer's groups per re-cluster: the factor before (`prev`, 1 before the first
    re-cluster) and after, the target, the group's and the model's spread, the move and the
    pull (target - prev: the direction the EMA moves the factor), the group's share of the
    layer's weights, and the same group's share, target and spreads at the re-cluster before
    (NaN at the first): a target that moved is traced to what moved under it."""
    if clusters is None or clusters.empty:
        return pd.DataFrame(columns=STEP_COLS)
    c = clusters[clusters["layer"] == layer].sort_values(["cluster", "step"])
    if c.empty:
        return pd.DataFrame(columns=STEP_COLS)
    c = c.assign(
        factor=c["factor"].astype(float),
        target=c["raw_factor"].astype(float),
        mda=c["mda"].astype(float),
        global_mda=c["global_mda"].astype(float),
        share=c["size"].astype(float) / c.groupby("step")["size"].transform("sum").astype(float),
    )
    g = c.groupby("cluster")
    c["prev"] = g["factor"].shift().fillna(1.0)
    for col in ("share", "target", "mda", "global_mda"):
        c[f"prev_{col}"] = g[col].shift()
    c["move"] = c["factor"] - c["prev"]
    c["pull"] = c["target"] - c["prev"]
    return c[STEP_COLS].sort_values(["step", "cluster"]).reset_index(drop=True)


@dataclass(frozen=True)
class Fall:
    """A re-cluster at which every group of a layer lost factor, and why."""

    step: int
    groups: int
    lowest_move: float  # relative moves (S_new / S_old - 1), the largest fall
    highest_move: float  # and the smallest
    target_low: float  # the groups' targets
    target_high: float
    spread_ratio_low: float  # group spread / model spread
    spread_ratio_high: float
    at_lower_bound: int  # groups whose target sits at the lower bound
    prev_step: int | None
    model_spread_change: float  # model spread now / at prev_step - 1 (NaN at the first)
    group_spread_change: tuple[float, float]  # min, max of group spread now / before - 1
    target_fell: bool  # every target is below its value at prev_step


def _range(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(x.min()), float(x.max())) if x.size else (float("nan"), float("nan"))


def falls_together(steps: pd.DataFrame, lower: float = DEFAULT_BOUNDS[0]) -> list[Fall]:
    """The re-clusters at which every group's factor fell (from `factor_steps`)."""
    out: list[Fall] = []
    if steps is None or steps.empty:
        return out
    order = sorted(steps["step"].unique())
    for i, step in enumerate(order):
        g = steps[steps["step"] == step]
        if len(g) < 2 or not bool((g["move"] < 0).all()):
            continue
        prev = steps[steps["step"] == order[i - 1]] if i else None
        rel = (g["factor"] / g["prev"] - 1).to_numpy()
        ratio = (g["mda"] / g["global_mda"]).to_numpy()
        if prev is not None:
            p = prev.set_index("cluster")
            now = g.set_index("cluster")
            model = float(now["global_mda"].iloc[0] / p["global_mda"].iloc[0] - 1)
            gch = (now["mda"] / p["mda"].reindex(now.index) - 1).to_numpy()
            fell = bool((now["target"] < p["target"].reindex(now.index)).all())
        else:
            model, gch, fell = float("nan"), np.array([]), False
        out.append(
            Fall(
                step=int(step),
                groups=len(g),
                lowest_move=float(rel.min()),
                highest_move=float(rel.max()),
                target_low=float(g["target"].min()),
                target_high=float(g["target"].max()),
                spread_ratio_low=_range(ratio)[0],
                spread_ratio_high=_range(ratio)[1],
                at_lower_bound=int((g["target"] <= lower * (1 + 1e-4)).sum()),
                prev_step=int(order[i - 1]) if i else None,
                model_spread_change=model,
                group_spread_change=_range(gch),
                target_fell=fell,
            )
        )
    return out


@dataclass(frozen=True)
class MeanMove:
    """A layer's mean factor (weighted by group size) across one re-cluster, and why it moved:
    the groups' factors moved, and weights changed groups (a layer's mean can fall although no
    factor fell, when weights move into a group with a lower factor)."""

    step: int
    before: float  # after the previous re-cluster (1 before the first)
    after: float
    from_factors: float  # sum(size now * (factor now - factor before)) / weights
    from_groups: float  # sum((size now - size before) * factor before) / weights


def mean_move(clusters: pd.DataFrame, layer: str, step: int) -> MeanMove | None:
    """The layer's MeanMove at the re-cluster `step` (None when not recorded)."""
    if clusters is None or clusters.empty:
        return None
    c = clusters[clusters["layer"] == layer]
    now = c[c["step"] == step].set_index("cluster")
    if now.empty or now["size"].sum() <= 0:
        return None
    earlier = c[c["step"] < step]
    if earlier.empty:
        prev = now.assign(factor=1.0)
    else:
        prev = earlier[earlier["step"] == earlier["step"].max()].set_index("cluster")
    size = now["size"].astype(float)
    f_now = now["factor"].astype(float)
    f_prev = prev["factor"].astype(float).reindex(now.index).fillna(1.0)
    s_prev = prev["size"].astype(float).reindex(now.index).fillna(0.0)
    n = float(size.sum())
    before = float((prev["size"] * prev["factor"].astype(float)).sum() / prev["size"].sum())
    after = float((size * f_now).sum() / n)
    from_factors = float((size * (f_now - f_prev)).sum() / n)
    from_groups = float(((size - s_prev) * f_prev).sum() / n)
    return MeanMove(int(step), before, after, from_factors, from_groups)

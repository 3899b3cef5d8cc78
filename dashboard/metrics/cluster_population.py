"""Populations, not positions: the recorded sample of weights followed through re-clusters.

Group numbers are ranks of the momentum (group 0 holds the lowest momentum of its layer), so a
"group 2" line follows a position, not a set of weights: at every re-cluster k-means sorts every
weight again. The `membership` table records a fixed random sample of positions per layer; joined
with the factors in `clusters`, it tells what happened to the same weights over time: how many
changed group (churn), how many changed between bigger, about AdamW's and smaller steps, and how
long a weight, once given a bigger step, keeps it. Each sampled weight stands for its layer's
parameter count divided by the layer's sample size, so the model-wide numbers are weighted by
parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.metrics.cluster_effect import UP, factor_class, mean_interval
from dashboard.metrics.intervals import Difference

HISTORY = ["layer", "position", "step", "cluster", "factor", "effect", "weight"]


def sampled_history(
    membership: pd.DataFrame | None, clusters: pd.DataFrame | None, sizes: dict[str, int]
) -> pd.DataFrame:
    """Per (layer, sampled position, re-cluster): its group, the factor in force on it, its
    effect class and the weights it stands for (ordered by layer, position, step)."""
    if membership is None or membership.empty or clusters is None or clusters.empty:
        return pd.DataFrame(columns=HISTORY)
    f = clusters[["step", "layer", "cluster", "factor"]].astype({"factor": float})
    m = membership[["step", "layer", "position", "cluster"]].merge(
        f, on=["step", "layer", "cluster"], how="left"
    )
    m["effect"] = factor_class(m["factor"])
    numel = clusters.groupby(["step", "layer"])["size"].sum().groupby("layer").max()
    numel = pd.Series({**numel.to_dict(), **{k: v for k, v in sizes.items() if k in numel}})
    sampled = m.groupby("layer")["position"].nunique()
    m["weight"] = m["layer"].map(numel / sampled).astype(float)
    return m.sort_values(["layer", "position", "step"]).reset_index(drop=True)[HISTORY]


def _with_previous(h: pd.DataFrame) -> pd.DataFrame:
    g = h.groupby(["layer", "position"], sort=False)
    return h.assign(prev_cluster=g["cluster"].shift(), prev_effect=g["effect"].shift()).dropna(
        subset=["prev_cluster"]
    )


def churn(history: pd.DataFrame, layer: str | None = None) -> pd.DataFrame:
    """Per re-cluster after the first: the share of the sampled weights (weighted by parameter
    count) that changed group, and the share that changed effect class; `n` sampled weights."""
    h = history if layer is None else history[history["layer"] == layer]
    cols = ["step", "changed_group", "changed_effect", "n"]
    if h.empty:
        return pd.DataFrame(columns=cols)
    p = _with_previous(h)
    if p.empty:
        return pd.DataFrame(columns=cols)
    p = p.assign(
        g=(p["cluster"] != p["prev_cluster"]) * p["weight"],
        e=(p["effect"] != p["prev_effect"]) * p["weight"],
    )
    s = p.groupby("step", sort=True)
    out = pd.DataFrame(
        {
            "changed_group": s["g"].sum() / s["weight"].sum(),
            "changed_effect": s["e"].sum() / s["weight"].sum(),
            "n": s.size(),
        }
    )
    return out.reset_index()[cols]


@dataclass(frozen=True)
class Stays:
    """How the sample's sped-up weights behaved over time."""

    sampled: int  # sampled weights followed
    reclusters: int
    interval: float  # median steps between re-clusters
    changed_group: float  # median churn per re-cluster (share of weights that changed group)
    changed_effect: float  # the same for the effect class
    ever_up: float  # share of the weights sped up at one re-cluster or more
    persistence: float  # of the weights sped up at one re-cluster, the share still sped up next
    median_spell: float  # re-clusters in a row a weight stays sped up (median over spells)
    open_spells: float  # share of those spells still going at the last re-cluster


def _spells(h: pd.DataFrame) -> pd.DataFrame:
    """Each run of consecutive sped-up re-clusters of one sampled weight (rows of `h` ordered
    by layer, position, step): its length, whether it was still going at the weight's last
    re-cluster, and the weights it stands for."""
    up = (h["effect"] == UP).to_numpy()
    key = pd.MultiIndex.from_frame(h[["layer", "position"]]).codes
    weight_id = key[0].astype(np.int64) * (int(key[1].max()) + 1) + key[1]
    new_weight = np.r_[True, weight_id[1:] != weight_id[:-1]]
    start = up & (new_weight | ~np.r_[False, up[:-1]])
    spell = np.cumsum(start)
    last_of_weight = np.r_[weight_id[1:] != weight_id[:-1], True]
    df = pd.DataFrame({"spell": spell[up], "last": last_of_weight[up],
                       "weight": h["weight"].to_numpy()[up]})  # fmt: skip
    g = df.groupby("spell")
    return pd.DataFrame(
        {"length": g.size(), "open": g["last"].any(), "weight": g["weight"].first()}
    )


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    if values.size == 0:
        return float("nan")
    o = np.argsort(values, kind="stable")
    cw = np.cumsum(weights[o])
    return float(values[o][np.searchsorted(cw, cw[-1] / 2)])


def stays(history: pd.DataFrame, layer: str | None = None) -> Stays | None:
    """The sample's summary (the whole model, or one layer)."""
    h = history if layer is None else history[history["layer"] == layer]
    if h.empty:
        return None
    steps = np.sort(h["step"].unique())
    c = churn(h)
    p = _with_previous(h)
    was_up = p[p["prev_effect"] == UP]
    persistence = (
        float((was_up["effect"] == UP).mul(was_up["weight"]).sum() / was_up["weight"].sum())
        if not was_up.empty
        else float("nan")
    )
    per_weight = h.assign(up=h["effect"] == UP).groupby(["layer", "position"], sort=False)
    first = per_weight["weight"].first()
    ever = float((per_weight["up"].any() * first).sum())
    total = float(first.sum())
    sp = _spells(h)
    lengths, weights = sp["length"].to_numpy(float), sp["weight"].to_numpy(float)
    open_w = float(sp.loc[sp["open"], "weight"].sum())
    return Stays(
        sampled=int(per_weight.ngroups),
        reclusters=len(steps),
        interval=float(np.median(np.diff(steps))) if len(steps) > 1 else float("nan"),
        changed_group=float(c["changed_group"].median()) if not c.empty else float("nan"),
        changed_effect=float(c["changed_effect"].median()) if not c.empty else float("nan"),
        ever_up=ever / total if total else float("nan"),
        persistence=persistence,
        median_spell=_weighted_median(lengths, weights),
        open_spells=open_w / weights.sum() if weights.size else float("nan"),
    )


def raster(history: pd.DataFrame, layer: str) -> pd.DataFrame:
    """One layer's sampled weights (rows: most often sped up first) x re-clusters: the effect
    class, group and factor of each, long form with a `row` number."""
    h = history[history["layer"] == layer]
    if h.empty:
        return h.assign(row=pd.Series(dtype=int))
    score = h.assign(u=(h["effect"] == UP).astype(int)).groupby("position")["u"].sum()
    mean_f = h.groupby("position")["factor"].mean()
    order = (
        pd.DataFrame({"u": score, "f": mean_f})
        .sort_values(["u", "f"], ascending=False, kind="stable")
        .index
    )
    rows = {p: i for i, p in enumerate(order)}
    return h.assign(row=h["position"].map(rows)).sort_values(["row", "step"])


@dataclass(frozen=True)
class StaysAcross:
    """`Stays` over the seeds of a group: each number's mean over seeds with its 95% interval
    (one seed: no interval, with the reason)."""

    n: int  # seeds
    sampled: int  # sampled weights per run (the first seed's)
    reclusters: int
    interval: float
    changed_group: Difference
    changed_effect: Difference
    ever_up: Difference
    persistence: Difference
    median_spell: Difference


STAY_FIELDS = ("changed_group", "changed_effect", "ever_up", "persistence", "median_spell")


def stays_across(per_seed: list[tuple[object, Stays | None]]) -> StaysAcross | None:
    """(seed, `stays` of that seed's sample) -> the StaysAcross (None when no seed has one)."""
    have = [(seed, s) for seed, s in per_seed if s is not None]
    if not have:
        return None
    d = {f: mean_interval([(seed, getattr(s, f)) for seed, s in have]) for f in STAY_FIELDS}
    first = have[0][1]
    return StaysAcross(
        n=max(x.n for x in d.values()),
        sampled=first.sampled,
        reclusters=min(s.reclusters for _, s in have),
        interval=first.interval,
        **d,
    )


def class_moves(history: pd.DataFrame, layer: str | None, step: int) -> pd.DataFrame:
    """At one re-cluster: the sampled weights (of `layer`, or all) that changed class, by
    (from, to), as a share of the sampled weights (weighted by parameter count), largest
    first: what a spike of the churn chart was."""
    h = history if layer is None else history[history["layer"] == layer]
    p = _with_previous(h) if not h.empty else h
    if p.empty or step not in set(p["step"]):
        return pd.DataFrame(columns=["from", "to", "share"])
    p = p[p["step"] == step]
    total = float(p["weight"].sum())
    moved = p[p["effect"] != p["prev_effect"]]
    out = moved.groupby(["prev_effect", "effect"])["weight"].sum() / total
    return (
        out.rename("share")
        .reset_index()
        .rename(columns={"prev_effect": "from", "effect": "to"})
        .sort_values("share", ascending=False, kind="stable")
        .reset_index(drop=True)
    )

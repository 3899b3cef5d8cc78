"""Cluster maths for SGG's groups: shares, size-weighted factors, moves, histogram densities."""

from __future__ import annotations

import numpy as np
import pandas as pd


def moved_share(transitions: pd.DataFrame) -> pd.DataFrame:
    """Per (step, layer): the share of elements that changed cluster at that re-cluster."""
    if transitions is None or transitions.empty:
        return pd.DataFrame(columns=["step", "layer", "moved"])
    t = transitions.assign(
        moved=np.where(
            transitions["from_cluster"] != transitions["to_cluster"], transitions["count"], 0
        )
    )
    return _ratio_per_step_layer(t, "moved", "count", "moved")


def size_weighted_factor(clusters: pd.DataFrame) -> pd.DataFrame:
    """Per (step, layer): the scale factor averaged over the layer's elements."""
    if clusters is None or clusters.empty:
        return pd.DataFrame(columns=["step", "layer", "factor"])
    c = clusters.assign(w=clusters["size"] * clusters["factor"].astype(float))
    return _ratio_per_step_layer(c, "w", "size", "factor")


def _ratio_per_step_layer(df: pd.DataFrame, num: str, den: str, out: str) -> pd.DataFrame:
    """Per (step, layer): sum of `num` over sum of `den` (NaN where that is 0), named `out`."""
    g = df.groupby(["step", "layer"], sort=True)[[num, den]].sum().reset_index()
    g[out] = g[num] / g[den].where(g[den] > 0)
    return g[["step", "layer", out]]


def histogram_density(h: pd.DataFrame) -> pd.DataFrame:
    """Add `center` and `density` (share of elements per unit of x, log10 x for adaptive lr)."""
    if h is None or h.empty:
        return pd.DataFrame(columns=["cluster", "center", "density"])
    h = h.copy()
    log = h["quantity"].astype(str).eq("adaptive_lr").to_numpy()
    left = h["bin_left"].to_numpy(dtype=float)
    right = h["bin_right"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(log, np.log10(right) - np.log10(left), right - left)
        h["center"] = np.where(log, np.sqrt(left * right), (left + right) / 2)
    total = h.groupby("cluster")["count"].transform("sum").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h["share"] = h["count"].to_numpy(dtype=float) / total
        h["density"] = h["share"] / width
    return h


def layer_order(meta: dict) -> list[str]:
    """The model's layer names in model order, from run.json's `model.layers` (empty if absent)."""
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    layers = model.get("layers") if isinstance(model.get("layers"), list) else []
    return [str(x.get("name")) for x in layers if isinstance(x, dict) and x.get("name")]


def layer_groups(clusters: pd.DataFrame, layer: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One layer's groups over time with each group's `share` of the layer's weights, and the
    model-wide spread (`mda`) per re-cluster step."""
    c = clusters[clusters["layer"] == layer].copy()
    tot = c.groupby("step")["size"].transform("sum")
    c["share"] = c["size"] / tot.where(tot > 0)
    g = (
        c.groupby("step", as_index=False)["global_mda"]
        .first()
        .rename(columns={"global_mda": "mda"})
    )
    return c, g


def factor_overview(clusters: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Layers (rows, model order) x re-cluster steps of the size-weighted scale factor."""
    overview = size_weighted_factor(clusters)
    piv = overview.pivot_table(index="layer", columns="step", values="factor", sort=False)
    rows = [n for n in order if n in piv.index] or list(piv.index)
    return piv.reindex(rows)


def top_bin_share(h: pd.DataFrame) -> float:
    """The share of all counted values that sit in the highest bin of a histogram (columns
    bin_right, count): a pile at the right edge of the adaptive learning rate is the largest
    step AdamW can give, lr / eps, to weights whose gradient has been zero so far."""
    if h is None or h.empty or "count" not in h or "bin_right" not in h:
        return float("nan")
    total = float(h["count"].sum())
    if total <= 0:
        return float("nan")
    top = h["bin_right"].max()
    return float(h.loc[h["bin_right"] >= top * (1 - 1e-9), "count"].sum()) / total


# within this factor of lr / eps a weight's gradient is zero or nearly (sqrt(v) < ~100 eps)
CEILING_NEAR = 100.0
PILE_GAP_BINS = 2  # without lr / eps: empty bins that set a right-edge pile apart


def _pile(b: pd.DataFrame, ceiling: float) -> np.ndarray:
    """Which bins hold the pile at lr / eps (or, without it, a right-edge pile after a gap)."""
    if np.isfinite(ceiling) and ceiling > 0:
        return (b["bin_left"] >= ceiling / CEILING_NEAR).to_numpy()
    near = np.zeros(len(b), dtype=bool)
    filled = np.flatnonzero(b["count"].to_numpy() > 0)
    gaps = np.diff(filled) - 1 if filled.size > 1 else np.array([], dtype=int)
    cut = np.flatnonzero(gaps >= PILE_GAP_BINS)
    if cut.size:
        near[filled[cut[-1] + 1] :] = True
    return near


def alr_view(h: pd.DataFrame, ceiling: float = float("nan")) -> tuple[float, float, float]:
    """(lo, hi, share left off) for an adaptive-learning-rate histogram (columns bin_left,
    bin_right, count; all groups share the edges): the range of the weights whose step is not
    within CEILING_NEAR of `ceiling` (lr / eps, the step AdamW gives a weight whose gradient has
    been zero), so that a pile at lr / eps does not stretch the axis to 1e5; the share of that
    pile is said beside the chart."""
    nan = float("nan")
    if h is None or h.empty:
        return nan, nan, 0.0
    b = h.groupby(["bin_left", "bin_right"], sort=True)["count"].sum().reset_index()
    total = float(b["count"].sum())
    if total <= 0:
        return nan, nan, 0.0
    near = _pile(b, ceiling)
    rest = b[~near & (b["count"] > 0)]
    if rest.empty:  # everything at the ceiling: show it all
        return float(b["bin_left"].min()), float(b["bin_right"].max()), 0.0
    pile = float(b.loc[near, "count"].sum()) / total
    return float(rest["bin_left"].min()), float(rest["bin_right"].max()), pile

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

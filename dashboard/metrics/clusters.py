"""Cluster maths for SGG's groups: shares, size-weighted factors, moves, histogram densities."""

from __future__ import annotations

from dataclasses import dataclass

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


def shown_layers(meta: dict, clusters: pd.DataFrame) -> list[str]:
    """The clustered layers in model order, then any the model's list does not name."""
    order = layer_order(meta)
    have = list(dict.fromkeys(clusters["layer"]))
    return [n for n in order if n in set(have)] + [n for n in have if n not in set(order)]


def factor_at(clusters: pd.DataFrame, layer: str, step: int) -> float | None:
    """The layer's size-weighted mean factor at the last re-cluster up to `step` (None: none)."""
    f = size_weighted_factor(clusters)
    at = f[(f["layer"] == layer) & (f["step"] <= step)]
    return None if at.empty else float(at.loc[at["step"].idxmax(), "factor"])


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


@dataclass(frozen=True)
class AlrView:
    """What an adaptive-learning-rate axis shows: [lo, hi] holds the weights not piled near
    lr / eps; `pile` is the share of the layer's weights left off to the right, all at
    `pile_from` or above (within CEILING_NEAR of lr / eps: hi <= pile_from, bins do not overlap)."""

    lo: float
    hi: float
    pile: float
    pile_from: float


def alr_view(h: pd.DataFrame, ceiling: float = float("nan")) -> AlrView:
    """The AlrView of an adaptive-learning-rate histogram (columns bin_left, bin_right, count;
    all groups share the edges): the range of the weights whose step is not within
    CEILING_NEAR of `ceiling` (lr / eps, the step AdamW gives a weight whose gradient has been
    zero), so that a pile at lr / eps does not stretch the axis to 1e5; the share of that pile
    and where it starts are said beside the chart."""
    nan = float("nan")
    if h is None or h.empty:
        return AlrView(nan, nan, 0.0, nan)
    b = h.groupby(["bin_left", "bin_right"], sort=True)["count"].sum().reset_index()
    total = float(b["count"].sum())
    if total <= 0:
        return AlrView(nan, nan, 0.0, nan)
    near = _pile(b, ceiling)
    rest = b[~near & (b["count"] > 0)]
    if rest.empty:  # everything at the ceiling: show it all
        return AlrView(float(b["bin_left"].min()), float(b["bin_right"].max()), 0.0, nan)
    piled = b[near & (b["count"] > 0)]
    pile = float(piled["count"].sum()) / total
    start = float(piled["bin_left"].min()) if not piled.empty else nan
    return AlrView(float(rest["bin_left"].min()), float(rest["bin_right"].max()), pile, start)


def lr_at(steps: pd.DataFrame | None, step: int) -> float:
    """The learning rate in force at `step` (the last logged at or before it; NaN if none)."""
    if steps is None or steps.empty or "lr" not in steps:
        return float("nan")
    at = steps.loc[steps["step"] <= step, "lr"].dropna()
    return float(at.iloc[-1]) if not at.empty else float("nan")


def whole_layer_counts(hist: pd.DataFrame | None, layer: str, quantity: str, step: int):
    """One layer's histogram (bin_left, bin_right, count) at the last recorded step at or
    before `step`: the whole-layer rows (cluster -1) when recorded, else the groups' summed
    (they share the edges); (DataFrame, the step) or (None, None)."""
    if hist is None or hist.empty:
        return None, None
    sub = hist[(hist["layer"] == layer) & (hist["quantity"] == quantity) & (hist["step"] <= step)]
    if sub.empty:
        return None, None
    at = int(sub["step"].max())
    sub = sub[sub["step"] == at]
    whole = sub[sub["cluster"] < 0]
    part = whole if not whole.empty else sub
    b = part.groupby(["bin_left", "bin_right"], sort=True)["count"].sum().reset_index()
    return b, at


def barely_training(
    hist: pd.DataFrame | None,
    layers: list[str],
    step: int,
    steps: pd.DataFrame | None,
    eps: float,
) -> tuple[float, int | None]:
    """The share of the weights of `layers` that barely train at the last histogram at or
    before `step`: their AdamW step size lies within CEILING_NEAR of lr / eps (lr from the
    `steps` table at that step), i.e. the square root of their second moment stayed below about
    CEILING_NEAR x eps: a gradient of zero, or nearly, so far (e.g. an embedding row of a byte
    the text does not contain). (share, the histogram step); (NaN, None) when not recorded."""
    nan = float("nan"), None
    if hist is None or hist.empty or not (isinstance(eps, int | float) and eps > 0):
        return nan
    recorded = hist.loc[(hist["quantity"] == "adaptive_lr") & (hist["step"] <= step), "step"]
    if recorded.empty:
        return nan
    at = int(recorded.max())
    ceiling = lr_at(steps, at) / eps
    if not (np.isfinite(ceiling) and ceiling > 0):
        return nan
    pile = total = 0.0
    for layer in layers:
        b, _ = whole_layer_counts(hist, layer, "adaptive_lr", at)
        if b is None:
            continue
        total += float(b["count"].sum())
        pile += float(b.loc[_pile(b, ceiling), "count"].sum())
    return (pile / total, at) if total > 0 else nan


def transition_shares(matrix: pd.DataFrame | None) -> pd.DataFrame:
    """From one re-cluster's transitions (from_cluster, to_cluster, count): every (from, to)
    pair of the groups with the share of the layer's weights that made that move, and each
    group's share before (`from_share`) and after (`to_share`)."""
    cols = ["from_cluster", "to_cluster", "share", "from_share", "to_share"]
    if matrix is None or matrix.empty or matrix["count"].sum() <= 0:
        return pd.DataFrame(columns=cols)
    total = float(matrix["count"].sum())
    ks = sorted(set(matrix["from_cluster"]) | set(matrix["to_cluster"]))
    grid = pd.MultiIndex.from_product([ks, ks], names=["from_cluster", "to_cluster"])
    m = matrix.groupby(["from_cluster", "to_cluster"])["count"].sum().reindex(grid, fill_value=0)
    out = (m / total).rename("share").reset_index()
    out["from_share"] = out["from_cluster"].map(out.groupby("from_cluster")["share"].sum())
    out["to_share"] = out["to_cluster"].map(out.groupby("to_cluster")["share"].sum())
    return out[cols]

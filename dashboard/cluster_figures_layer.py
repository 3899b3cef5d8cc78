"""Pure Plotly builders for the Clusters tab's per-layer part: the layers' overview, the same
weights through the re-clusters, why a layer's factors move, its groups and their histograms.
Styled as `cluster_figures_manager` says (its `finish`, `mark_not_applied`, `end_marker`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette
from dashboard.cluster_figures_manager import (
    EFFECT_LABELS,
    STACK_LEGEND,
    end_marker,
    finish,
    mark_not_applied,
)
from dashboard.cluster_words_manager import share
from dashboard.figures import apply_log_ticks, empty_figure
from dashboard.metrics.cluster_effect import BIGGER, DOWN, SAME, UP

REF_FILL = "rgba(158,158,158,0.35)"  # the reference histogram: a grey area behind the groups


CHURN_STYLES = {
    ("model", "changed_group"): ("#333333", "solid", "circle"),
    ("model", "changed_effect"): ("#333333", "dot", "square"),
    ("layer", "changed_group"): ("#D95F02", "solid", "diamond"),
    ("layer", "changed_effect"): ("#D95F02", "dot", "triangle-up"),
}
SPIKE_RATIO = 2.0  # a point this many times the next largest value is clipped off the axis


def spike(values: np.ndarray) -> tuple[int | None, float]:
    """(index of a lone spike, the axis top that leaves it off) or (None, NaN): a point more
    than SPIKE_RATIO times the next largest would set the axis alone and alarm the reader."""
    v = np.asarray(values, float)
    ok = np.flatnonzero(np.isfinite(v))
    if ok.size < 3:
        return None, float("nan")
    order = ok[np.argsort(v[ok])]
    top, second = v[order[-1]], v[order[-2]]
    if top > 0.1 and top > SPIKE_RATIO * max(second, 0.02):
        return int(order[-1]), float(max(second * 1.35, 0.1))
    return None, float("nan")


def _churn_lines(model: pd.DataFrame, layer: pd.DataFrame, layer_name: str) -> list[tuple]:
    """(name, who, column, frame) of the churn chart's four lines, in drawing order."""
    out = []
    for who, df in (("model", model), ("layer", layer)):
        if df is None or df.empty:
            continue
        for col, what in (("changed_group", "changed group"),
                          ("changed_effect", "changed step class")):  # fmt: skip
            out.append((f"{'whole model' if who == 'model' else layer_name}: {what}", who, col, df))
    return out


def churn_spike(model: pd.DataFrame, layer: pd.DataFrame, layer_name: str) -> tuple | None:
    """(step, value, line name, 'model' or 'layer') of the lone spike the churn chart clips,
    or None (the view says what it was beside the chart)."""
    lines = _churn_lines(model, layer, layer_name)
    pts = [(s, float(v), name, who) for name, who, col, df in lines
           for s, v in zip(df["step"], df[col], strict=True)]  # fmt: skip
    i, _ = spike(np.array([p[1] for p in pts]))
    return pts[i] if i is not None else None


def churn_figure(
    model: pd.DataFrame, layer: pd.DataFrame, layer_name: str, *, title: str = ""
) -> go.Figure:
    """Per re-cluster, the share of the sampled weights that changed group and the share that
    changed step class, for the whole model and one layer (from `cluster_population.churn`):
    four lines, each its own colour, dash and marker. A lone spike (`churn_spike`) is clipped
    off the axis, its value written at the top."""
    title = title or "Changed at each re-cluster"
    lines = _churn_lines(model, layer, layer_name)
    if not lines:
        return empty_figure("No membership sample recorded, or only one re-cluster.", title)
    fig = go.Figure()
    for name, who, col, df in lines:
        color, dash, symbol = CHURN_STYLES[(who, col)]
        fig.add_trace(go.Scatter(
            x=df["step"], y=df[col], mode="lines+markers", name=name,
            line={"color": color, "dash": dash, "width": 2},
            marker={"symbol": symbol, "size": 8, "color": color},
            hovertemplate=f"{name}<br>step %{{x:,}}: %{{y:.1%}}<extra></extra>",
        ))  # fmt: skip
    fig = finish(fig, title, "Re-cluster step", "Share of the sampled weights")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    values = np.array([float(v) for _, _, col, df in lines for v in df[col]])
    i, top = spike(values)
    if i is not None:
        step, value, _, _ = churn_spike(model, layer, layer_name)
        fig.update_yaxes(range=[0, top])
        fig.add_annotation(x=step, y=top, yref="y", text=f"{value:.0%} ↑ (off the axis)",
                           showarrow=False, yanchor="top", font={"size": 12, "color": "#B2182B"},
                           bgcolor="rgba(255,255,255,0.85)")  # fmt: skip
    return fig


def raster_figure(r: pd.DataFrame, layer_name: str, *, title: str = "") -> go.Figure:
    """One layer's sampled weights (rows) at each re-cluster (columns), coloured by the step
    class the factor gave each (from `cluster_population.raster`); hover names the group and
    factor."""
    title = title or "The same weights, re-cluster by re-cluster"
    if r is None or r.empty:
        return empty_figure("No membership sample recorded for this layer.", title)
    code = {DOWN: 0, SAME: 1, UP: 2}
    steps = sorted(r["step"].unique())
    piv = r.pivot_table(index="row", columns="step", values="effect", aggfunc="first")
    z = piv.apply(lambda s: s.map(code)).reindex(columns=steps).to_numpy(dtype=float)
    info = r.assign(
        text=[
            f"weight {p:,}: group {g}, factor {f:.4g} ({e})"
            for p, g, f, e in zip(
                r["position"], r["cluster"], r["factor"], r["effect"], strict=True
            )
        ]
    ).pivot_table(index="row", columns="step", values="text", aggfunc="first")
    colors = [palette.EFFECT_COLORS[c] for c in (DOWN, SAME, UP)]
    scale = [[0, colors[0]], [1 / 3, colors[0]], [1 / 3, colors[1]], [2 / 3, colors[1]],
             [2 / 3, colors[2]], [1, colors[2]]]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{s:,}" for s in steps],
            y=list(piv.index),
            customdata=info.reindex(columns=steps).to_numpy(dtype=object),
            zmin=-0.5,
            zmax=2.5,
            colorscale=scale,
            showscale=False,
            xgap=1,
            hovertemplate="step %{x}<br>%{customdata}<extra></extra>",
        )
    )
    for cls in (UP, SAME, DOWN):  # a legend for the three colours (top of the list first)
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"symbol": "square", "size": 12, "color": palette.EFFECT_COLORS[cls]},
                name=EFFECT_LABELS[cls],
            )
        )
    fig = finish(fig, title, "Re-cluster step", f"{len(piv)} sampled weights", height=420)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_layout(hovermode="closest")
    return fig


# --------------------------------------------------------------------------- why factors move

MAX_GROUP_COLUMNS = 5  # more groups than this share one column (each its own colour and dash)


def _group_title(c: int, k: int) -> str:
    if k > 1 and c == 0:
        return f"group {c} (lowest momentum)"
    if k > 1 and c == k - 1:
        return f"group {c} (highest momentum)"
    return f"group {c}"


def factor_explain_figure(
    steps: pd.DataFrame,
    *,
    layer_name: str,
    bounds: tuple[float, float],
    rate: float,
    applied: bool = True,
) -> go.Figure:
    """Why this layer's factors move, one column per group (rows of `cluster_factors.
    factor_steps`): 1. the group's spread as a multiple of the whole model's (1 = as far from
    its layer's mean as the model's typical weight); 2. the target that gives (model / group,
    clamped to the bounds, drawn); 3. the factor applied (or that SGG would have applied), a
    triangle down where the moving average pulled it down toward a lower target, up where up."""
    title = f"Why the factors move: {layer_name}"
    if steps is None or steps.empty:
        return empty_figure("No clustering recorded for this layer.", title)
    groups = sorted(int(c) for c in steps["cluster"].unique())
    k = len(groups)
    cols = k if k <= MAX_GROUP_COLUMNS else 1
    fig = make_subplots(
        rows=3,
        cols=cols,
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.07,
        horizontal_spacing=0.03,
        row_heights=[0.3, 0.3, 0.4],
        subplot_titles=[_group_title(c, k) for c in groups] if cols > 1 else None,
    )
    pct = f"{rate:.0%}" if np.isfinite(rate) else "(1 - beta3)"
    for c in groups:
        g = steps[steps["cluster"] == c]
        col = groups.index(c) + 1 if cols > 1 else 1
        st = palette.group_style(c)
        _explain_group(fig, g, st, f"group {c}", col, pct=pct)
        if col > 1 or c == groups[0]:
            _bound_lines(fig, bounds, col, cols)
        for row in (1, 3):
            fig.add_hline(y=1, line={"color": "#888", "dash": "dash", "width": 1.5}, row=row,
                          col=col)  # fmt: skip
    fig = finish(fig, title, "", "", height=760)
    _explain_axes(fig, steps, bounds, applied)
    if not applied:
        mark_not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


def _bound_lines(fig: go.Figure, bounds: tuple[float, float], col: int, cols: int) -> None:
    """The clamp of the target, drawn in row 2 (named in the first column)."""
    for b, word in ((bounds[0], "lower"), (bounds[1], "upper")):
        fig.add_hline(y=b, line={"color": "#888", "dash": "dot", "width": 1.5}, row=2, col=col)
        if col == 1:
            fig.add_annotation(
                text=f"{word} bound {b:g}",
                x=0,
                xref=f"x{cols + 1} domain",
                y=np.log10(b),
                yref=f"y{cols + 1}",
                showarrow=False,
                xanchor="left",
                yanchor="bottom" if word == "lower" else "top",
                font={"size": 11, "color": "#666"},
            )


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    return [t for t in (0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000, 100_000) if lo <= t <= hi]


def _explain_axes(
    fig: go.Figure, steps: pd.DataFrame, bounds: tuple[float, float], applied: bool
) -> None:
    """Readable ticks: '10x' for spreads, 1-2-5 for targets, the factors' own range."""
    r = (steps["mda"] / steps["global_mda"]).to_numpy(float)
    r = r[np.isfinite(r) & (r > 0)]
    rlo = min(float(r.min()) if r.size else 1.0, 1.0) / 2
    rhi = max(float(r.max()) if r.size else 1.0, 1.0) * 2
    rt = _ratio_ticks(rlo, rhi)
    fig.update_yaxes(type="log", range=[np.log10(rlo), np.log10(rhi)], tickvals=rt,
                     ticktext=[f"{t:,g}x" for t in rt], row=1)  # fmt: skip
    t = steps["target"].to_numpy(float)
    t = t[np.isfinite(t) & (t > 0)]
    lo = min(float(t.min()) if t.size else bounds[0], bounds[0]) / 1.5
    hi = max(float(t.max()) if t.size else bounds[1], bounds[1]) * 1.5
    ticks = [
        t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if lo <= t <= hi
    ]
    fig.update_yaxes(type="log", range=[np.log10(lo), np.log10(hi)], tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks], row=2)  # fmt: skip
    f = np.concatenate([steps["factor"].to_numpy(float), steps["prev"].to_numpy(float), [1.0]])
    f = f[np.isfinite(f)]
    pad = max(0.02, 0.12 * float(f.max() - f.min()))
    fig.update_yaxes(range=[float(f.min()) - pad, float(f.max()) + pad], row=3)
    fig.update_yaxes(title_text="1. spread ÷ model's", row=1, col=1)
    fig.update_yaxes(title_text="2. target", row=2, col=1)
    what = "3. factor applied" if applied else "3. would-be factor (not applied)"
    fig.update_yaxes(title_text=what, row=3, col=1)
    fig.update_xaxes(title_text="Re-cluster step", row=3)
    fig.update_layout(hovermode="closest")


def _explain_group(fig, g, st, name, col, *, pct: str) -> None:
    lg = {"legendgroup": name}
    r = (g["mda"] / g["global_mda"]).to_numpy(float)
    fig.add_trace(
        go.Scatter(
            x=g["step"], y=r, mode="lines+markers", name=name,
            line={"color": st["color"], "dash": st["dash"], "width": 2},
            marker={"symbol": st["symbol"], "size": 6},
            customdata=np.stack([g["mda"], g["global_mda"]], axis=-1),
            hovertemplate=f"{name}, step %{{x:,}}: spread %{{y:.3g}}x the model's "
            "(%{customdata[0]:.3g} against %{customdata[1]:.3g})<extra></extra>", **lg,
        ),
        row=1, col=col,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=g["step"], y=g["target"], mode="markers+lines", name=f"{name}: target",
            line={"color": st["color"], "dash": "dot", "width": 1.5},
            marker={"symbol": "circle-open", "size": 8, "color": st["color"]},
            customdata=1 / r,
            hovertemplate=f"{name}, step %{{x:,}}: target %{{y:.3g}} (model / group spread "
            "%{customdata:.3g}, clamped)<extra></extra>", showlegend=False, **lg,
        ),
        row=2, col=col,
    )  # fmt: skip
    down = g["move"] < 0
    fig.add_trace(
        go.Scatter(
            x=g["step"], y=g["factor"], mode="lines+markers", name=f"{name}: factor",
            line={"color": st["color"], "dash": st["dash"], "width": 2.5},
            marker={"symbol": np.where(down, "triangle-down", "triangle-up"), "size": 9,
                    "color": st["color"]},
            customdata=np.stack([g["prev"], g["target"]], axis=-1),
            hovertemplate=f"{name}, step %{{x:,}}: factor %{{y:.4g}} (was %{{customdata[0]:.4g}}"
            f"), moved {pct} of the way to its target %{{customdata[1]:.3g}}<extra></extra>",
            showlegend=False, **lg,
        ),
        row=3, col=col,
    )  # fmt: skip


# --------------------------------------------------------------------------- all layers

# a diverging scale around 1 (white) that leaves white quickly, so 0.95x and 1.05x are visibly
# coloured; the heatmap maps log(factor) through a square root (`_squash`), symmetric in log space
DIVERGING = [
    [0.0, "#67001F"],
    [0.2, "#B2182B"],
    [0.38, "#E7876F"],
    [0.47, "#FAD9C9"],
    [0.5, "#F7F7F7"],
    [0.53, "#D0E3F0"],
    [0.62, "#6BAED6"],
    [0.8, "#2166AC"],
    [1.0, "#053061"],
]
FACTOR_TICKS = (0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 1, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10)


def _squash(f, m: float) -> np.ndarray:
    """log(factor) / m through a signed square root, in [-1, 1]: f and 1/f equally far from 0,
    small moves from 1 stretched (0.95x reaches a quarter of the way, not a twentieth)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(np.asarray(f, float)) / m
    return np.sign(z) * np.sqrt(np.minimum(np.abs(z), 1.0))


def factor_color_ticks(lo: float, hi: float, m: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks covering the data: nice factors within the range, and the data's own
    lowest and highest factor (labelled so), none crowding another."""
    out = {round(lo, 4): f"{lo:.3g}x lowest", round(hi, 4): f"{hi:.3g}x highest"}
    taken = [float(_squash(lo, m)), float(_squash(hi, m))]
    for t in FACTOR_TICKS:
        if np.exp(-m) <= t <= np.exp(m):
            z = float(_squash(t, m))
            if all(abs(z - x) > 0.09 for x in taken):
                out[t] = f"{t:g}x"
                taken.append(z)
    vals = sorted(out)
    return [float(_squash(v, m)) for v in vals], [out[v] for v in vals]


def overview_heatmap(piv: pd.DataFrame, names: dict[str, str], *, title: str) -> go.Figure:
    """All layers (humane names; the raw name on hover) x re-clusters: the size-weighted factor,
    coloured on a diverging scale around 1 that is symmetric in log space and spans the data
    (the colour bar's ticks include its lowest and highest factor)."""
    if piv is None or piv.empty:
        return empty_figure("Nothing recorded.", title)
    raw = piv.to_numpy(dtype=float)
    finite = raw[np.isfinite(raw) & (raw > 0)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (1.0, 1.0)
    m = max(abs(np.log(lo)), abs(np.log(hi)), np.log(BIGGER))
    z = _squash(raw, m)
    tv, tt = factor_color_ticks(lo, hi, m)

    def rows(a):
        return [[None if not np.isfinite(v) else float(v) for v in r] for r in a]

    fig = go.Figure(
        go.Heatmap(
            z=rows(z), customdata=rows(raw), text=[[n] * piv.shape[1] for n in piv.index],
            x=[float(c) for c in piv.columns], y=[names.get(n, n) for n in piv.index],
            colorscale=DIVERGING, zmin=-1, zmax=1, zmid=0,
            colorbar={"title": {"text": "mean factor", "side": "right"}, "tickvals": tv,
                      "ticktext": tt, "len": 1, "y": 0.5},
            hovertemplate="step %{x}<br>%{y}<br>raw name: %{text}<br>mean factor "
            "%{customdata:.3g}x<extra></extra>",
        )
    )  # fmt: skip
    fig = finish(fig, title, "Step", "", height=max(260, min(900, 80 + 18 * len(piv))))
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


# --------------------------------------------------------------------------- one layer's groups


def cluster_lines(
    df: pd.DataFrame,
    y: str,
    *,
    title: str,
    y_title: str,
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    log_y: bool = False,
    stacked: bool = False,
) -> go.Figure:
    """One line per group over re-cluster steps (columns step, cluster, y), each its own colour,
    dash and marker (groups with equal values stay two lines) and an X where a group's line
    stops before the others; an optional dashed reference line (columns step, y); `stacked`
    draws shares as stacked areas with the legend in stack order (top first)."""
    if df is None or df.empty:
        return empty_figure("No clustering recorded for this layer.", title)
    fig = go.Figure()
    last = df["step"].max()
    for c, g in df.groupby("cluster", sort=True):
        st = palette.group_style(int(c))
        g = g[np.isfinite(g[y].to_numpy(dtype=float))]
        kw = {"stackgroup": "one"} if stacked else {}
        fig.add_trace(
            go.Scatter(
                x=g["step"],
                y=g[y],
                mode="lines" if stacked else "lines+markers",
                line={"color": st["color"], "width": 2, "dash": "solid" if stacked else st["dash"]},
                marker={"size": 7, "symbol": st["symbol"]},
                name=f"group {int(c)}",
                **kw,
            )
        )
        if not stacked and len(g) and g["step"].iloc[-1] < last:
            end_marker(fig, g["step"].iloc[-1], g[y].iloc[-1], st["color"],
                        f"group {int(c)}: no value after step {g['step'].iloc[-1]:,}")  # fmt: skip
    if reference is not None and not reference.empty:
        fig.add_trace(
            go.Scatter(
                x=reference["step"],
                y=reference[y],
                mode="lines",
                line={"color": "black", "dash": "dash", "width": 2},
                name=reference_name,
            )
        )
    if log_y:  # a log axis only helps when the values span a wide range
        v = df[y].to_numpy(dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        log_y = bool(v.size and v.max() / v.min() > 3)
    fig = finish(fig, title, "Step", y_title, log_y=log_y)
    if stacked:
        fig.update_yaxes(tickformat=".0%", range=[0, 1])
        fig.update_layout(legend=STACK_LEGEND, margin={"r": 110})
    return apply_log_ticks(fig) if log_y else fig


def transition_figure(
    shares: pd.DataFrame,
    *,
    title: str,
    empty: str = "No membership changes recorded at this re-cluster.",
) -> go.Figure:
    """Where the weights went at one re-cluster, as a table of colour (from `clusters.
    transition_shares`): rows the groups before, columns the groups after, each cell the share
    of the layer's weights that made that move, written in every cell (the diagonal: stayed);
    each group's share before and after in its row and column label, in the sentences' format
    (`share`: a group of 0.1% never reads 0%, one of 99.7% never 100%)."""
    if shares is None or shares.empty:
        return empty_figure(empty, title)
    ks = sorted(set(shares["from_cluster"]) | set(shares["to_cluster"]))
    m = shares.pivot_table(index="from_cluster", columns="to_cluster", values="share",
                           aggfunc="sum").reindex(index=ks, columns=ks, fill_value=0.0)  # fmt: skip
    before = shares.groupby("from_cluster")["from_share"].first().reindex(ks, fill_value=0.0)
    after = shares.groupby("to_cluster")["to_share"].first().reindex(ks, fill_value=0.0)
    z = m.to_numpy(float)
    text = [[_cell(v) for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[f"group {k}<br>({share(after[k])} after)" for k in ks],
            y=[f"group {k} ({share(before[k])} before)" for k in ks], text=text,
            texttemplate="%{text}", textfont={"size": 13}, colorscale="Blues", zmin=0,
            zmax=max(float(z.max()), 1e-9), showscale=False, xgap=2, ygap=2,
            hovertemplate="%{y} → %{x}: %{z:.2%} of the layer's weights<extra></extra>",
        )
    )  # fmt: skip
    fig = finish(fig, title, "after: group", "before: group", height=300 + 20 * len(ks))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(hovermode="closest")  # cell text: Plotly picks black or white by contrast
    return fig


def _cell(v: float) -> str:
    """'41%', '0.4%', '<0.1%' (a move of a few weights is not 0), '0' for none."""
    if not np.isfinite(v) or v <= 0:
        return "0"
    if v < 0.001:
        return "<0.1%"
    return f"{v:.1%}" if v < 0.01 else f"{v:.0%}"


# --------------------------------------------------------------------------- histograms


def histogram_panels(
    h: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    log_x: bool,
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    x_range: tuple[float, float] | None = None,
) -> go.Figure:
    """One panel per group (so no group's curve hides another's), each its density (columns
    cluster, center, share) as a coloured line over the reference (e.g. an AdamW run's whole
    layer) as a grey area; `x_range` (data units) clips the axis (the caption says what is
    left off)."""
    if (h is None or h.empty) and (reference is None or reference.empty):
        return empty_figure("No histogram recorded at this step.", title)
    groups = sorted(int(c) for c in h["cluster"].unique()) if h is not None and not h.empty else []
    cols = max(len(groups), 1)
    fig = make_subplots(rows=1, cols=cols, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"group {c}" for c in groups] or [""])  # fmt: skip
    for i, c in enumerate(groups or [None]):
        if reference is not None and not reference.empty:
            fig.add_trace(
                go.Scatter(x=reference["center"], y=reference["share"], mode="lines",
                           line_shape="hvh", name=reference_name, fill="tozeroy",
                           line={"color": "#9E9E9E", "width": 1}, fillcolor=REF_FILL,
                           showlegend=i == 0, legendgroup="ref"),
                row=1, col=i + 1,
            )  # fmt: skip
        if c is None:
            continue
        g = h[h["cluster"] == c]
        st = palette.group_style(c)
        fig.add_trace(
            go.Scatter(x=g["center"], y=g["share"], mode="lines", line_shape="hvh",
                       name=f"group {c}", line={"color": st["color"], "width": 2.5},
                       hovertemplate=f"group {c}: %{{y:.1%}} at %{{x:.3g}}<extra></extra>"),
            row=1, col=i + 1,
        )  # fmt: skip
    fig = finish(fig, title, "", "", height=360)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(title_text="Share of the group's weights", row=1, col=1)
    fig.update_xaxes(title_text=x_title, row=1, col=(cols + 1) // 2)
    if log_x:
        fig.update_xaxes(type="log")
        apply_log_ticks(fig, "x")
    if (
        x_range
        and all(np.isfinite(x_range))
        and x_range[1] > x_range[0] > (0 if log_x else -np.inf)
    ):
        lo, hi = x_range
        fig.update_xaxes(range=[np.log10(lo), np.log10(hi)] if log_x else [lo, hi])
    return fig

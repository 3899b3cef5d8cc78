"""Pure Plotly builders for the Clusters tab: long-form DataFrames in, `go.Figure` out.

Readable at 1,280 px: every group and every run gets its own colour, dash and marker
(`palette`), so lines with equal values stay two lines; stacked charts list their legend in
stack order (top of the stack first); layers carry humane names with the raw name on hover; a
shadow clustering's "what SGG would have done" is hatched and labelled "not applied".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette
from dashboard.figures import _layout, _rgba, apply_log_ticks, empty_figure, heatmap_figure
from dashboard.metrics.cluster_effect import CLASSES, DOWN, SAME, SLOWED, SPED_UP, UP

EFFECT_LABELS = {
    UP: f"sped up (> {SPED_UP:g}x)",
    SAME: "about unchanged",
    DOWN: f"slowed down (< {SLOWED:.2f}x)",
}
NOT_APPLIED_TEXT = "NOT APPLIED: what SGG would have done (shadow clustering, observe only)"
HATCH = {"shape": "/", "fgcolor": "white", "solidity": 0.35}
STACK_LEGEND = {  # vertical, top of the stack first: legend order = stack order
    "orientation": "v",
    "traceorder": "reversed",
    "yref": "paper",
    "y": 1,
    "yanchor": "top",
    "x": 1.02,
    "xanchor": "left",
}


def _not_applied(fig: go.Figure) -> None:
    fig.add_annotation(
        text=f"<b>{NOT_APPLIED_TEXT}</b>",
        x=0.5,
        y=1.0,
        xref="paper",
        yref="paper",
        yanchor="bottom",
        yshift=28,
        showarrow=False,
        font={"color": "#8A4B00", "size": 13},
        bgcolor="#FFF1DC",
        bordercolor="#E08A00",
        borderwidth=1.5,
        borderpad=4,
    )


def effect_figure(
    over: pd.DataFrame, types: pd.DataFrame, *, title: str, applied: bool, step: int
) -> go.Figure:
    """The manager's chart. Top: the share of the model's weights sped up / about unchanged /
    slowed down at each re-cluster (stacked, from `cluster_effect.over_time`); bottom: the same
    per layer type at `step` (from `cluster_effect.by_type`), labelled with each share and its
    mean factor. Both stack in one order, the legend's (top of the stack first)."""
    if over is None or over.empty:
        return empty_figure("No clustering recorded.", title)
    fig = make_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.2,
        subplot_titles=(
            "Share of the model's weights at each re-cluster",
            f"Where: share of each layer type's weights, at step {step:,}",
        ),
    )
    pattern = {} if applied else {"fillpattern": HATCH}
    for cls in CLASSES:  # bottom of the stack first
        color = palette.EFFECT_COLORS[cls]
        f = over[f"factor_{cls}"].to_numpy(dtype=float)
        fig.add_trace(
            go.Scatter(
                x=over["step"],
                y=over[f"share_{cls}"],
                customdata=np.where(np.isfinite(f), f, np.nan),
                mode="lines",
                line={"color": color, "width": 1, "shape": "hv"},
                fillcolor=_rgba(color, 0.85),
                stackgroup="share",
                name=EFFECT_LABELS[cls],
                legendgroup=cls,
                hovertemplate=f"step %{{x:,}}: %{{y:.1%}} {cls}, on average "
                "%{customdata:.3g}x AdamW's step<extra></extra>",
                **pattern,
            ),
            row=1,
            col=1,
        )
        _type_bars(fig, types, cls, color, applied)
    fig = _layout(fig, title, "Step", "Share of the weights", height=640)
    fig.update_xaxes(title_text="Layer type (its share of the model)", row=2, col=1)
    fig.update_yaxes(title_text="Share of the type", row=2, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(barmode="stack", legend=STACK_LEGEND, hovermode="closest")
    fig.update_layout(margin={"r": 180, "t": 120 if not applied else 80})
    if not applied:
        _not_applied(fig)
    return fig


def _type_bars(fig: go.Figure, types: pd.DataFrame, cls: str, color: str, applied: bool) -> None:
    if types is None or types.empty:
        return
    x = [f"{t}<br>({s:.0%})" if s >= 0.01 else f"{t}<br>({s:.1%})"
         for t, s in zip(types["type"], types["share_of_model"], strict=True)]  # fmt: skip
    y = types[f"share_{cls}"].to_numpy(dtype=float)
    f = types[f"factor_{cls}"].to_numpy(dtype=float)
    text = [
        f"{v:.0%} · {fv:#.3g}x" if v >= 0.12 and np.isfinite(fv) else ""
        for v, fv in zip(y, f, strict=True)
    ]
    marker = {"color": _rgba(color, 0.85)}
    if not applied:
        marker["pattern"] = HATCH
    fig.add_trace(
        go.Bar(
            x=x,
            y=y,
            text=text,
            textposition="inside",
            insidetextanchor="middle",
            textangle=0,
            insidetextfont={"size": 11},
            marker=marker,
            customdata=f,
            name=EFFECT_LABELS[cls],
            legendgroup=cls,
            showlegend=False,
            hovertemplate=f"%{{x}}: %{{y:.1%}} {cls}, on average %{{customdata:.3g}}x "
            "AdamW's step<extra></extra>",
        ),
        row=2,
        col=1,
    )


def effect_lines_figure(
    series: dict[str, pd.DataFrame], *, ended: dict[str, str] | None = None, title: str
) -> go.Figure:
    """The sped-up and slowed-down shares over training, one line per run or seed group (each
    its own colour, dash and marker; `ended[name]` marks a line that stops early)."""
    if not series:
        return empty_figure("No clustering recorded.", title)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=False,
        horizontal_spacing=0.08,
        subplot_titles=(f"Share {EFFECT_LABELS[UP]}", f"Share {EFFECT_LABELS[DOWN]}"),
    )
    for i, (name, t) in enumerate(series.items()):
        st = palette.line_style(i)
        for col, cls in ((1, UP), (2, DOWN)):
            fig.add_trace(
                go.Scatter(
                    x=t["step"],
                    y=t[f"share_{cls}"],
                    mode="lines+markers",
                    line={"color": st["color"], "dash": st["dash"], "width": 2},
                    marker={"symbol": st["symbol"], "size": 7, "color": st["color"]},
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    hovertemplate=f"{name}<br>step %{{x:,}}: %{{y:.1%}} {cls}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            if ended and name in ended and len(t):
                _end_marker(fig, t["step"].iloc[-1], t[f"share_{cls}"].iloc[-1], st["color"],
                            f"{name}: {ended[name]}", row=1, col=col)  # fmt: skip
    fig = _layout(fig, title, "Step", "Share of the model's weights", height=400)
    fig.update_xaxes(title_text="Step")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return fig


def _end_marker(fig: go.Figure, x, y, color: str, text: str, **where) -> None:
    """A large X where a line stops early (a diverged or stopped run), named on hover."""
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[y],
            mode="markers",
            marker={"symbol": "x-thin", "size": 16, "line": {"width": 3, "color": color}},
            name=text,
            showlegend=False,
            hovertemplate=f"{text}<extra></extra>",
        ),
        **where,
    )


def churn_figure(model: pd.DataFrame, layer: pd.DataFrame, layer_name: str) -> go.Figure:
    """Per re-cluster, the share of the sampled weights that changed group and the share that
    changed effect class, for the whole model and for one layer (from `cluster_population.
    churn`): four lines, each its own dash and marker."""
    title = "Changed at each re-cluster"
    if (model is None or model.empty) and (layer is None or layer.empty):
        return empty_figure("No membership sample recorded, or only one re-cluster.", title)
    fig = go.Figure()
    lines = [
        (model, "changed_group", "whole model: changed group", 0),
        (model, "changed_effect", "whole model: changed sped up / unchanged / slowed", 1),
        (layer, "changed_group", f"{layer_name}: changed group", 2),
        (layer, "changed_effect", f"{layer_name}: changed sped up / unchanged / slowed", 3),
    ]
    for df, col, name, i in lines:
        if df is None or df.empty:
            continue
        st = palette.line_style(i)
        fig.add_trace(
            go.Scatter(
                x=df["step"],
                y=df[col],
                mode="lines+markers",
                line={"color": st["color"], "dash": st["dash"], "width": 2},
                marker={"symbol": st["symbol"], "size": 7},
                name=name,
                hovertemplate=f"{name}<br>step %{{x:,}}: %{{y:.1%}}<extra></extra>",
            )
        )
    fig = _layout(fig, title, "Re-cluster step", "Share of the sampled weights")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return fig


def raster_figure(r: pd.DataFrame, layer_name: str) -> go.Figure:
    """One layer's sampled weights (rows) at each re-cluster (columns), coloured by what the
    factor did to each (from `cluster_population.raster`); hover names the group and factor."""
    title = "The same weights, re-cluster by re-cluster"
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
    fig = _layout(fig, title, "Re-cluster step", f"{len(piv)} sampled weights", height=420)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_layout(hovermode="closest")
    return fig


MAX_GROUP_COLUMNS = 5  # more groups than this share one column (each its own colour and dash)


def _group_title(c: int, k: int) -> str:
    if k > 1 and c == 0:
        return f"group {c} (lowest momentum)"
    if k > 1 and c == k - 1:
        return f"group {c} (highest momentum)"
    return f"group {c}"


def factor_explain_figure(
    steps: pd.DataFrame, *, layer_name: str, bounds: tuple[float, float], rate: float
) -> go.Figure:
    """Why this layer's factors move, one column per group (rows of `cluster_factors.
    factor_steps`): 1. the group's spread against the whole model's; 2. the target those give
    (model / group, clamped to the bounds, drawn); 3. the factor in force, a triangle down where
    the EMA pulled it down toward a lower target, up where up."""
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
    model = steps.groupby("step", as_index=False)["global_mda"].first()
    pct = f"{rate:.0%}" if np.isfinite(rate) else "(1 - beta3)"
    for c in groups:
        g = steps[steps["cluster"] == c]
        col = groups.index(c) + 1 if cols > 1 else 1
        st = palette.group_style(c)
        name = f"group {c}"
        _explain_group(fig, g, model, st, name, col, first=c == groups[0], pct=pct)
        if col > 1 or c == groups[0]:
            _bound_lines(fig, bounds, col, cols)
        fig.add_hline(y=1, line={"color": "#BBB", "dash": "dash", "width": 1}, row=3, col=col)
    fig = _layout(fig, title, "", "", height=760)
    _explain_axes(fig, steps, bounds)
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


def _explain_axes(fig: go.Figure, steps: pd.DataFrame, bounds: tuple[float, float]) -> None:
    """Readable ticks: powers of ten for spreads, 1-2-5 for targets, the factors' own range."""
    fig.update_yaxes(type="log", exponentformat="power", dtick=1, row=1)
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
    fig.update_yaxes(title_text="1. spread (MDA)", row=1, col=1)
    fig.update_yaxes(title_text="2. target", row=2, col=1)
    fig.update_yaxes(title_text="3. factor in force", row=3, col=1)
    fig.update_xaxes(title_text="Re-cluster step", row=3)
    fig.update_layout(hovermode="closest")


def _explain_group(fig, g, model, st, name, col, *, first: bool, pct: str) -> None:
    lg = {"legendgroup": name}
    fig.add_trace(
        go.Scatter(
            x=g["step"], y=g["mda"], mode="lines+markers", name=name,
            line={"color": st["color"], "dash": st["dash"], "width": 2},
            marker={"symbol": st["symbol"], "size": 6},
            hovertemplate=f"{name}, step %{{x:,}}: spread %{{y:.3g}}<extra></extra>", **lg,
        ),
        row=1, col=col,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=model["step"], y=model["global_mda"], mode="lines", name="whole model's spread",
            line={"color": "black", "dash": "dash", "width": 2}, legendgroup="model",
            showlegend=first,
            hovertemplate="whole model, step %{x:,}: spread %{y:.3g}<extra></extra>",
        ),
        row=1, col=col,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=g["step"], y=g["target"], mode="markers+lines", name=f"{name}: target",
            line={"color": st["color"], "dash": "dot", "width": 1.5},
            marker={"symbol": "circle-open", "size": 8, "color": st["color"]},
            customdata=(g["global_mda"] / g["mda"]).to_numpy(),
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


def overview_heatmap(piv: pd.DataFrame, names: dict[str, str], *, title: str) -> go.Figure:
    """All layers (humane names; the raw name on hover) x re-clusters: the size-weighted
    factor, coloured on a log scale centred on 1 (`figures.heatmap_figure`)."""
    shown = piv.rename(index=lambda n: names.get(n, n))
    fig = heatmap_figure(
        shown, title=title, x_title="Step", z_title="factor", log_z=False, colorscale="RdBu",
        multiplier=True,
    )  # fmt: skip
    if fig.data and isinstance(fig.data[0], go.Heatmap):
        raw = [[n] * piv.shape[1] for n in piv.index]
        fig.data[0].update(
            text=raw,
            hovertemplate="step %{x}<br>%{y}<br>%{text}<br>mean factor %{customdata:.3g}x"
            "<extra></extra>",
        )
    return fig


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
            _end_marker(fig, g["step"].iloc[-1], g[y].iloc[-1], st["color"],
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
    fig = _layout(fig, title, "Step", y_title, log_y=log_y)
    if stacked:
        fig.update_yaxes(tickformat=".0%", range=[0, 1])
        fig.update_layout(legend=STACK_LEGEND, margin={"r": 110})
    return apply_log_ticks(fig) if log_y else fig


SANKEY_LABEL_MIN_SHARE = 0.04


def transition_sankey(
    matrix: pd.DataFrame,
    *,
    title: str,
    empty: str = "No membership changes recorded at this re-cluster.",
) -> go.Figure:
    """`matrix`: columns from_cluster, to_cluster, count (one re-cluster); `empty`: what to say
    when there is nothing to draw."""
    if matrix is None or matrix.empty or matrix["count"].sum() == 0:
        return empty_figure(empty, title)
    ks = sorted(set(matrix["from_cluster"]) | set(matrix["to_cluster"]))
    pos = {k: i for i, k in enumerate(ks)}
    m = matrix[matrix["count"] > 0]
    total = float(m["count"].sum())
    before = m.groupby("from_cluster")["count"].sum()
    after = m.groupby("to_cluster")["count"].sum()
    names = [f"before: group {k}, {before.get(k, 0) / total:.0%} of the weights" for k in ks] + [
        f"after: group {k}, {after.get(k, 0) / total:.0%} of the weights" for k in ks
    ]
    shares = [before.get(k, 0) / total for k in ks] + [after.get(k, 0) / total for k in ks]
    # short labels (the two columns are named above them: long labels met in the middle); a node
    # under 4% is a few pixels tall, its label would print over its neighbours' (hover names it)
    short = [f"group {k} · {sh:.0%}" for k, sh in zip(ks * 2, shares, strict=True)]
    labels = [
        t if sh >= SANKEY_LABEL_MIN_SHARE else "" for t, sh in zip(short, shares, strict=True)
    ]
    fig = go.Figure(
        go.Sankey(
            node={
                "label": labels,
                "customdata": names,
                "hovertemplate": "%{customdata}<extra></extra>",
                "color": [palette.group_color(k) for k in ks] * 2,
                "pad": 18,
            },
            link={
                "source": [pos[a] for a in m["from_cluster"]],
                "target": [len(ks) + pos[b] for b in m["to_cluster"]],
                "value": m["count"].astype(float).tolist(),
                "color": [_rgba(palette.group_color(a), 0.35) for a in m["from_cluster"]],
                "customdata": [
                    f"group {a} to group {b}"
                    for a, b in zip(m["from_cluster"], m["to_cluster"], strict=True)
                ],
                "hovertemplate": "%{value:,} weights: %{customdata}<extra></extra>",
            },
        )
    )
    for x, text, anchor in ((0, "before", "left"), (1, "after", "right")):
        fig.add_annotation(x=x, y=1.06, xref="paper", yref="paper", text=f"<b>{text}</b>",
                           showarrow=False, xanchor=anchor)  # fmt: skip
    return _layout(fig, title, "", "")


def histogram_compare_figure(
    h: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    log_x: bool,
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    x_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Density per group (columns cluster, center, share), each its own colour and dash, and a
    reference (e.g. AdamW's whole layer) as a dashed black line; `x_range` (data units) clips
    the axis (the caption says what is left off)."""
    if (h is None or h.empty) and (reference is None or reference.empty):
        return empty_figure("No histogram recorded at this step.", title)
    fig = go.Figure()
    if h is not None and not h.empty:
        for c, g in h.groupby("cluster", sort=True):
            st = palette.group_style(int(c))
            name = "whole layer" if int(c) < 0 else f"group {int(c)}"
            fig.add_trace(
                go.Scatter(x=g["center"], y=g["share"], mode="lines", line_shape="hvh", name=name,
                           line={"color": st["color"], "width": 2, "dash": st["dash"]})
            )  # fmt: skip
    if reference is not None and not reference.empty:
        fig.add_trace(
            go.Scatter(x=reference["center"], y=reference["share"], mode="lines",
                       line_shape="hvh", name=reference_name,
                       line={"color": "black", "dash": "dash", "width": 2})
        )  # fmt: skip
    fig = _layout(fig, title, x_title, "Share of the group's elements")
    fig.update_layout(hovermode="closest")
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

"""Pure Plotly builders for the Clusters tab: long-form DataFrames in, `go.Figure` out.

Readable at 1,280 px: every group and every run gets its own colour, dash and marker
(`palette`), so lines with equal values stay two lines; lines over training carry the band the
sidebar chooses (min to max over seeds, or mean ± 1 sd); groups that would draw over each other
get a panel each; stacked charts list their legend in stack order (top of the stack first);
layers carry humane names with the raw name on hover; an axis that one point would stretch is
clipped, with the point named; the title leaves room above it for Plotly's toolbar; a shadow
clustering's "what SGG would have done" is hatched and labelled "not applied".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette
from dashboard.figures import _layout, _rgba, apply_log_ticks, empty_figure
from dashboard.metrics.cluster_effect import BIGGER, CLASSES, DOWN, SAME, SMALLER, UP, band

EFFECT_LABELS = {
    UP: f"bigger steps (> {BIGGER:g}x)",
    SAME: "about AdamW's step",
    DOWN: f"smaller steps (< {SMALLER:.2f}x)",
}
NOT_APPLIED_TEXT = "NOT APPLIED: what SGG would have done (shadow clustering, observe only)"
TOOLBAR_ROOM = 34  # px above a title where Plotly's toolbar sits (it covered titles)
# a shadow clustering: a light fill hatched in the class's own colour, so dark labels stay
# readable on it (white labels on white hatching were not)
SHADOW_FILL_ALPHA = 0.35
LABEL_DARK, LABEL_LIGHT = "#1A1A1A", "white"
REF_FILL = "rgba(158,158,158,0.35)"  # the reference histogram: a grey area behind the groups
STACK_LEGEND = {  # vertical, top of the stack first: legend order = stack order
    "orientation": "v",
    "traceorder": "reversed",
    "yref": "paper",
    "y": 1,
    "yanchor": "top",
    "x": 1.02,
    "xanchor": "left",
}


def hatch(color: str) -> dict:
    """The 'not applied' pattern: thin lines of the class's colour on its light fill."""
    return {"shape": "/", "fgcolor": color, "solidity": 0.3, "size": 8}


def _finish(fig: go.Figure, title: str, x_title: str, y_title: str, **kw) -> go.Figure:
    """`figures._layout`, and the title moved down below the toolbar's row (the toolbar
    appears on hover at the top right and covered titles)."""
    fig = _layout(fig, title, x_title, y_title, **kw)
    top = fig.layout.margin.t or 50
    fig.update_layout(
        title={"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": TOOLBAR_ROOM}},
        margin={"t": top + TOOLBAR_ROOM},
        height=(fig.layout.height or 420) + TOOLBAR_ROOM,
    )
    return fig


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


def _band(fig: go.Figure, x, lo, hi, color: str, group: str, **where) -> None:
    """A filled band between `lo` and `hi` (nothing where one seed: NaN)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    if not np.isfinite(lo).any() or np.allclose(lo, hi, equal_nan=True):
        return
    common = {"mode": "lines", "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip",
              "legendgroup": group}  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=lo, **common), **where)
    fig.add_trace(go.Scatter(x=x, y=hi, fill="tonexty", fillcolor=_rgba(color, 0.18), **common),
                  **where)  # fmt: skip


# --------------------------------------------------------------------------- the manager's answer


def effect_figure(over: pd.DataFrame, *, title: str, applied: bool) -> go.Figure:
    """The share of the model's weights given bigger steps / about AdamW's / smaller steps at
    each re-cluster, stacked (from `cluster_effect.over_time` or its mean over seeds), the legend
    in stack order (top first); hatched when not applied."""
    if over is None or over.empty:
        return empty_figure("No clustering recorded.", title)
    fig = go.Figure()
    for cls in CLASSES:  # bottom of the stack first
        color = palette.EFFECT_COLORS[cls]
        f = over[f"factor_{cls}"].to_numpy(dtype=float)
        fill = _rgba(color, 0.85 if applied else SHADOW_FILL_ALPHA)
        fig.add_trace(
            go.Scatter(
                x=over["step"], y=over[f"share_{cls}"], customdata=f,
                mode="lines", line={"color": color, "width": 1, "shape": "hv"}, fillcolor=fill,
                stackgroup="share", name=EFFECT_LABELS[cls], legendgroup=cls,
                hovertemplate=f"step %{{x:,}}: %{{y:.1%}} {cls}, on average "
                "%{customdata:.3g}x AdamW's step<extra></extra>",
                **({} if applied else {"fillpattern": hatch(color)}),
            )
        )  # fmt: skip
    fig = _finish(fig, title, "Step", "Share of the model's weights", height=340)
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(legend=STACK_LEGEND, hovermode="closest", margin={"r": 190})
    if not applied:
        _not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


def _bar_text(v: float, lo: float, hi: float, f: float) -> str:
    """A segment's label, as long as its width allows: '96% (95-97%) · 1.84x', '34% · 1.15x',
    '8%'; '' below 3% (a few pixels; hover names it)."""
    if not np.isfinite(v) or v < 0.03:
        return ""
    pct = f"{v:.0%}"
    ci = f" ({max(lo, 0):.0%}–{min(hi, 1):.0%})" if np.isfinite(lo) and np.isfinite(hi) else ""
    fx = f" · {f:#.3g}x" if np.isfinite(f) else ""
    if v >= 0.3:
        return pct + ci + fx
    if v >= 0.12:
        return pct + fx
    return pct


def type_bars_figure(types: pd.DataFrame, *, title: str, applied: bool) -> go.Figure:
    """Per layer type (rows, model order; its share of the model in the label): the shares of
    its weights given bigger steps / about AdamW's / smaller steps, 100% stacked horizontally,
    every segment of 3% or more labelled with its share, its interval across seeds and its
    mean factor (as room allows); the rest on hover."""
    if types is None or types.empty:
        return empty_figure("No clustering recorded.", title)
    y = [f"{t} ({s:.0%} of the model)" if s >= 0.01 else f"{t} ({s:.1%} of the model)"
         for t, s in zip(types["type"], types["share_of_model"], strict=True)]  # fmt: skip
    fig = go.Figure()
    for cls in CLASSES:
        color = palette.EFFECT_COLORS[cls]
        v = types[f"share_{cls}"].to_numpy(float)
        lo = types.get(f"share_{cls}_low", pd.Series(np.nan, index=types.index)).to_numpy(float)
        hi = types.get(f"share_{cls}_high", pd.Series(np.nan, index=types.index)).to_numpy(float)
        f = types[f"factor_{cls}"].to_numpy(float)
        text = [_bar_text(*x) for x in zip(v, lo, hi, f, strict=True)]
        dark = cls == SAME or not applied
        marker = {"color": _rgba(color, 0.9 if applied else SHADOW_FILL_ALPHA)}
        if not applied:
            marker["pattern"] = hatch(color)
        fig.add_trace(
            go.Bar(
                y=y, x=v, orientation="h", text=text, textposition="inside",
                insidetextanchor="middle", textangle=0, cliponaxis=False,
                textfont={"size": 12, "color": LABEL_DARK if dark else LABEL_LIGHT},
                marker=marker, customdata=np.stack([f, lo, hi], axis=-1), name=EFFECT_LABELS[cls],
                legendgroup=cls,
                hovertemplate=f"%{{y}}: %{{x:.1%}} {cls} (interval %{{customdata[1]:.1%}} to "
                "%{customdata[2]:.1%}), on average %{customdata[0]:.3g}x AdamW's step"
                "<extra></extra>",
            )
        )  # fmt: skip
    fig = _finish(fig, title, "Share of the type's weights", "", height=90 + 46 * len(types))
    fig.update_layout(barmode="stack", hovermode="closest", legend={"traceorder": "normal"})
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    if not applied:
        _not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


def kind_factor_figure(
    kinds: pd.DataFrame, order: list[str], *, title: str, band_kind: str, applied: bool
) -> go.Figure:
    """The mean factor of each kind of layer over training, one small panel per kind (so no
    line hides another), each on its own log axis that holds at least the "about AdamW's step"
    zone (shaded), so a slow 1-10% cut shows as a fall, not a flat line beside the embeddings'
    1.8x: the mean over seeds with the sidebar's band, 1 dashed, the last value and its 95%
    interval written in the corner (from `cluster_effect.seed_stats` of `kind_over_time`)."""
    if kinds is None or kinds.empty or not order:
        return empty_figure("No clustering recorded.", title)
    cols = 3
    rows = -(-len(order) // cols)
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, subplot_titles=order,
                        vertical_spacing=0.12 / max(rows - 1, 1) + 0.05,
                        horizontal_spacing=0.07)  # fmt: skip
    for i, kind in enumerate(order):
        r, c = i // cols + 1, i % cols + 1
        k = kinds[kinds["kind"] == kind].sort_values("step")
        color = palette.SERIES_COLORS[0]
        lo, hi = band(k, "factor", band_kind)
        _band(fig, k["step"], lo, hi, color, kind, row=r, col=c)
        fig.add_trace(
            go.Scatter(x=k["step"], y=k["factor"], mode="lines+markers", name=kind,
                       line={"color": color, "width": 2}, marker={"size": 5}, showlegend=False,
                       hovertemplate=f"{kind}, step %{{x:,}}: mean factor %{{y:.4g}}x"
                       "<extra></extra>"),
            row=r, col=c,
        )  # fmt: skip
        # shapes after the traces: plotly skips a subplot that has no trace yet
        fig.add_hrect(y0=SMALLER, y1=BIGGER, fillcolor="#9E9E9E", opacity=0.18, line_width=0,
                      layer="below", row=r, col=c)  # fmt: skip
        fig.add_hline(y=1, line={"color": "#777", "dash": "dash", "width": 1}, row=r, col=c)
        last = k.iloc[-1]
        ci = ""
        if np.isfinite(last.get("factor_low", np.nan)):
            ci = f" ({last['factor_low']:.3g}–{last['factor_high']:.3g})"
        ax = "" if i == 0 else str(i + 1)
        fig.add_annotation(text=f"step {int(last['step']):,}: {last['factor']:#.3g}x{ci}",
                           x=0.02, xref=f"x{ax} domain", y=0.98, yref=f"y{ax} domain",
                           xanchor="left", yanchor="top", showarrow=False,
                           font={"size": 11, "color": "#1A1A1A"})  # fmt: skip
        _kind_axis(fig, k, lo, hi, r, c)
    fig = _finish(fig, title, "", "", height=60 + 190 * rows)
    fig.update_layout(hovermode="closest")
    if not applied:
        _not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


KIND_TICKS = (0.5, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10)


def _kind_axis(fig: go.Figure, k: pd.DataFrame, lo, hi, row: int, col: int) -> None:
    """One panel's log axis: its data and band, and at least the 'about AdamW's step' zone;
    room at the top for the corner label."""
    v = np.concatenate([k["factor"].to_numpy(float), np.asarray(lo, float), np.asarray(hi, float),
                        [SMALLER * 0.99, BIGGER * 1.01]])  # fmt: skip
    v = v[np.isfinite(v) & (v > 0)]
    a, b = float(v.min()), float(v.max())
    top = b * (b / a) ** 0.35  # the label's room
    gap = np.log10(top / a) / 7  # ticks at least a seventh of the axis apart: 1 first
    ticks = [1.0]
    for t in sorted((t for t in KIND_TICKS if a <= t <= b), key=lambda t: abs(np.log(t))):
        if all(abs(np.log10(t / k)) >= gap for k in ticks):
            ticks.append(t)
    ticks.sort()
    fig.update_yaxes(type="log", range=[np.log10(a / 1.01), np.log10(top)], tickvals=ticks,
                     ticktext=[f"{t:g}x" for t in ticks], row=row, col=col)  # fmt: skip


def effect_lines_figure(
    series: dict[str, pd.DataFrame],
    *,
    ended: dict[str, str] | None = None,
    title: str,
    band_kind: str = "minmax",
) -> go.Figure:
    """The bigger-step and smaller-step shares over training, one line per run or seed group
    (each its own colour, dash and marker, with the sidebar's band across its seeds;
    `ended[name]` marks a line that stops early)."""
    if not series:
        return empty_figure("No clustering recorded.", title)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=False,
        horizontal_spacing=0.08,
        subplot_titles=(f"Share with {EFFECT_LABELS[UP]}", f"Share with {EFFECT_LABELS[DOWN]}"),
    )
    for i, (name, t) in enumerate(series.items()):
        st = palette.line_style(i)
        for col, cls in ((1, UP), (2, DOWN)):
            if f"share_{cls}_min" in t:
                lo, hi = band(t, f"share_{cls}", band_kind)
                _band(fig, t["step"], lo, hi, st["color"], name, row=1, col=col)
            fig.add_trace(
                go.Scatter(
                    x=t["step"], y=t[f"share_{cls}"], mode="lines+markers",
                    line={"color": st["color"], "dash": st["dash"], "width": 2},
                    marker={"symbol": st["symbol"], "size": 8, "color": st["color"]},
                    name=name, legendgroup=name, showlegend=col == 1,
                    hovertemplate=f"{name}<br>step %{{x:,}}: %{{y:.1%}} {cls}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
            if ended and name in ended and len(t):
                _end_marker(fig, t["step"].iloc[-1], t[f"share_{cls}"].iloc[-1], st["color"],
                            f"{name}: {ended[name]}", row=1, col=col)  # fmt: skip
    fig = _finish(fig, title, "Step", "Share of the model's weights", height=400)
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


# --------------------------------------------------------------------------- the same weights

# whole model grey-black, this layer in colour; changed group solid with circles, changed class
# dotted with squares: four lines that differ in two ways each
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
    fig = _finish(fig, title, "Re-cluster step", "Share of the sampled weights")
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
    fig = _finish(fig, title, "Re-cluster step", f"{len(piv)} sampled weights", height=420)
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
    fig = _finish(fig, title, "", "", height=760)
    _explain_axes(fig, steps, bounds, applied)
    if not applied:
        _not_applied(fig)
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
    fig = _finish(fig, title, "Step", "", height=max(260, min(900, 80 + 18 * len(piv))))
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
    fig = _finish(fig, title, "Step", y_title, log_y=log_y)
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
    each group's share before and after in its row and column label."""
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
            z=z, x=[f"group {k}<br>({after[k]:.0%} after)" for k in ks],
            y=[f"group {k} ({before[k]:.0%} before)" for k in ks], text=text,
            texttemplate="%{text}", textfont={"size": 13}, colorscale="Blues", zmin=0,
            zmax=max(float(z.max()), 1e-9), showscale=False, xgap=2, ygap=2,
            hovertemplate="%{y} → %{x}: %{z:.2%} of the layer's weights<extra></extra>",
        )
    )  # fmt: skip
    fig = _finish(fig, title, "after: group", "before: group", height=300 + 20 * len(ks))
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
    fig = _finish(fig, title, "", "", height=360)
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

"""Pure Plotly builders for the Clusters tab: long-form DataFrames in, `go.Figure` out. This
module: the manager's figures (the whole model, over training and across runs) and the style
every Clusters figure shares (`finish`, `hatch`, `mark_not_applied`, `end_marker`);
`cluster_figures_layer` draws one layer.

Readable at 1,280 px: every group and every run gets its own colour, dash and marker
(`palette`), so lines with equal values stay two lines; lines over training carry the band the
sidebar chooses (min to max over seeds, or mean ± 1 sd); groups that would draw over each other
get a panel each; stacked charts list their legend in stack order (top of the stack first);
layers carry humane names with the raw name on hover; an axis that one point would stretch is
clipped, with the point named; the title leaves room above it for Plotly's toolbar; a shadow
clustering's "what SGG would have done" is hatched and labelled "not applied".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette
from dashboard.cluster_words_manager import share
from dashboard.figures import _layout, _rgba, empty_figure
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


def finish(fig: go.Figure, title: str, x_title: str, y_title: str, **kw) -> go.Figure:
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


def mark_not_applied(fig: go.Figure) -> None:
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


def effect_figure(
    over: pd.DataFrame, *, title: str, applied: bool, at_step: int | None = None
) -> go.Figure:
    """The share of the model's weights given bigger steps / about AdamW's / smaller steps at
    each re-cluster (from `cluster_effect.over_time` or its mean over seeds): one stacked bar
    per re-cluster, so the last re-cluster's shares are a bar of their own (a step-shaped area
    held the one before it up to the right edge: 27% beside a sentence's 30%); the legend in
    stack order (top first); hatched when not applied. `at_step`: the re-cluster the page's
    sentences describe, its shares written above its bar."""
    if over is None or over.empty:
        return empty_figure("No clustering recorded.", title)
    fig = go.Figure()
    steps = over["step"].to_numpy(dtype=float)
    gap = float(np.diff(steps).min()) if len(steps) > 1 else 1.0
    for cls in CLASSES:  # bottom of the stack first
        color = palette.EFFECT_COLORS[cls]
        marker = {"color": _rgba(color, 0.85 if applied else SHADOW_FILL_ALPHA),
                  "line": {"width": 0}}  # fmt: skip
        if not applied:
            marker["pattern"] = hatch(color)
        fig.add_trace(
            go.Bar(
                x=over["step"], y=over[f"share_{cls}"], width=0.8 * gap, marker=marker,
                customdata=over[f"factor_{cls}"].to_numpy(dtype=float),
                name=EFFECT_LABELS[cls], legendgroup=cls,
                hovertemplate=f"re-cluster at step %{{x:,}}: %{{y:.1%}} {cls}, on average "
                "%{customdata:.3g}x AdamW's step<extra></extra>",
            )
        )  # fmt: skip
    fig = finish(fig, title, "Re-cluster step", "Share of the model's weights", height=340)
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(barmode="stack", bargap=0, legend=STACK_LEGEND, hovermode="closest",
                      margin={"r": 190})  # fmt: skip
    if at_step is not None and (over["step"] == at_step).any():
        _label_step(fig, over[over["step"] == at_step].iloc[0], at_step)
    if not applied:
        mark_not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


def _label_step(fig: go.Figure, row: pd.Series, step: int) -> None:
    """The shares of the re-cluster the sentences describe, above its bar ('step 600: 30%
    bigger steps, 4% smaller steps'), in the sentences' own format."""
    parts = [f"{share(float(row[f'share_{c}']))} {c}" for c in (UP, DOWN)]
    fig.add_annotation(
        text=f"step {step:,}: " + ", ".join(parts) + " ▼", x=step, y=1, xref="x", yref="paper",
        xanchor="right", yanchor="bottom", xshift=6, showarrow=False,
        font={"size": 12, "color": LABEL_DARK},
    )  # fmt: skip


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
    fig = finish(fig, title, "Share of the type's weights", "", height=90 + 46 * len(types))
    fig.update_layout(barmode="stack", hovermode="closest", legend={"traceorder": "normal"})
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    if not applied:
        mark_not_applied(fig)
        fig.update_layout(margin={"t": (fig.layout.margin.t or 0) + 30})
    return fig


def kind_factor_figure(
    kinds: pd.DataFrame,
    order: list[str],
    *,
    title: str,
    band_kind: str,
    applied: bool,
    style: Mapping[str, str] | None = None,
) -> go.Figure:
    """The mean factor of each kind of layer over training, one small panel per kind (so no
    line hides another), each on its own log axis that holds at least the "about AdamW's step"
    zone (shaded), so a slow 1-10% cut shows as a fall, not a flat line beside the embeddings'
    1.8x: the mean over seeds with the sidebar's band, 1 dashed, the last value and its 95%
    interval written in the corner (from `cluster_effect.seed_stats` of `kind_over_time`);
    drawn in the series' own colour and dash (`style`, as on every other tab)."""
    if kinds is None or kinds.empty or not order:
        return empty_figure("No clustering recorded.", title)
    cols = 3
    rows = -(-len(order) // cols)
    st = series_style(0, style)
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, subplot_titles=order,
                        vertical_spacing=0.12 / max(rows - 1, 1) + 0.05,
                        horizontal_spacing=0.07)  # fmt: skip
    for i, kind in enumerate(order):
        r, c = i // cols + 1, i % cols + 1
        k = kinds[kinds["kind"] == kind].sort_values("step")
        color, dash = st["color"], st["dash"]
        lo, hi = band(k, "factor", band_kind)
        _band(fig, k["step"], lo, hi, color, kind, row=r, col=c)
        fig.add_trace(
            go.Scatter(x=k["step"], y=k["factor"], mode="lines+markers", name=kind,
                       line={"color": color, "width": 2, "dash": dash},
                       marker={"size": 5, "symbol": st["symbol"]}, showlegend=False,
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
    fig = finish(fig, title, "", "", height=60 + 190 * rows)
    fig.update_layout(hovermode="closest")
    if not applied:
        mark_not_applied(fig)
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
    styles: Mapping[str, Mapping[str, str]] | None = None,
) -> go.Figure:
    """The bigger-step and smaller-step shares over training, one line per run or seed group
    with the sidebar's band across its seeds; `ended[name]` marks a line that stops early.
    `styles[name]`: the series' colour and dash on every other tab (`dashboard.styles`), so
    SGG and AdamW are not swapped here; without it each line its own (`palette.line_style`)."""
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
        st = series_style(i, (styles or {}).get(name))
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
                end_marker(fig, t["step"].iloc[-1], t[f"share_{cls}"].iloc[-1], st["color"],
                            f"{name}: {ended[name]}", row=1, col=col)  # fmt: skip
    fig = finish(fig, title, "Step", "Share of the model's weights", height=400)
    fig.update_xaxes(title_text="Step")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return fig


def series_style(i: int, given: Mapping[str, str] | None) -> dict[str, str]:
    """A line's colour, dash and marker: `given` (the page's style of the series: colour and
    dash) with the Loss tab's markers (diamonds on a dashed line, circles otherwise); else the
    i-th of `palette.line_style`."""
    if not given:
        return palette.line_style(i)
    dash = given.get("dash") or "solid"
    symbol = given.get("symbol") or ("diamond" if dash == "dash" else "circle")
    return {"color": given["color"], "dash": dash, "symbol": symbol}


def end_marker(fig: go.Figure, x, y, color: str, text: str, **where) -> None:
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

"""Pure Plotly figure builders: long-form DataFrames in, `go.Figure` out, nothing rendered.

Colours and dashes come in with the data ({line name: colour}, from `styles`, the same on every
chart of the page); `run_colors` colours runs in order when there is no page (the baseline blue,
then palette order). The Clusters tab's figures (groups, layers) live in `cluster_figures_manager`
(the whole model) and `cluster_figures_layer` (one layer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import palette
from dashboard.metrics.settings import ADAMW, SGG

# the page's 24 series colours (`palette`): the baseline's first; `styles` gives each series its
# colour, by setting, for every chart of the page
BASELINE_COLOR = palette.SERIES_COLORS[0]  # blue
PALETTE = palette.SERIES_COLORS[1:]
TEMPLATE = "plotly_white"
HOVER_Y = ".4g"  # hover values at 4 significant figures
HOVER_X = ",.4~r"
OPTIMIZER_DASHES = {ADAMW: "solid", SGG: "dash"}
# a second cue besides the dash, so that two optimizers at one setting (one colour) never hide
# each other: SGG's lines are wider
OPTIMIZER_WIDTHS = {"solid": 2.0, "dash": 3.0}
HEIGHT = 420


def run_colors(names: list[str], baseline: str | None) -> dict[str, str]:
    """Baseline blue, the others in selection order from PALETTE."""
    out: dict[str, str] = {}
    if baseline is not None:
        out[baseline] = BASELINE_COLOR
    i = 0
    for n in names:
        if n not in out:
            out[n] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


LEGEND_ROW = 22  # px per row of legend entries
LEGEND_CHARS_PER_ROW = 110  # about what one row holds at 1,280 px


def legend_rows(fig: go.Figure) -> int:
    """How many rows the horizontal legend needs (entries wrap at the figure's width)."""
    names = [
        str(t.name)
        for t in fig.data
        if "showlegend" in t and t.showlegend is not False and t.name is not None
    ]
    if not names:
        return 0
    rows, used = 1, 0
    for n in names:
        width = len(n) + 6  # the line sample and the gap
        if used and used + width > LEGEND_CHARS_PER_ROW:
            rows, used = rows + 1, 0
        used += width
    return rows


def _layout(
    fig: go.Figure,
    title: str,
    x_title: str,
    y_title: str,
    *,
    log_y: bool = False,
    height: int = HEIGHT,
) -> go.Figure:
    rows = legend_rows(fig)
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.0, "xanchor": "left"},
        # the legend sits below the x-axis title and the figure grows with it, so that many
        # entries never squash the plot
        height=height + LEGEND_ROW * rows,
        margin={"l": 60, "r": 20, "t": 50, "b": 60 + LEGEND_ROW * rows},
        legend={
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0,
            "xanchor": "left",
            "x": 0,
        },
        hovermode="x unified",
    )
    fig.update_xaxes(title_text=x_title, hoverformat=HOVER_X)
    fig.update_yaxes(title_text=y_title, hoverformat=HOVER_Y)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 tick values covering [lo, hi] (both > 0), at most ~12 of them."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= 0:
        return []
    e0, e1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    for mults in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in range(e0, e1 + 1) for m in mults]
        ticks = [t for t in ticks if lo / 1.25 <= t <= hi * 1.25]
        if len(ticks) <= 12:
            return ticks
    return [10.0**e for e in range(e0, e1 + 1, max(1, (e1 - e0) // 10))]


def apply_log_ticks(fig: go.Figure, axis: str = "y") -> go.Figure:
    """Readable labels on a log axis (plotly's default labels minor ticks with a bare digit)."""
    vals = []
    for t in fig.data:
        v = getattr(t, axis, None)
        if v is not None:
            a = np.asarray(v, dtype=float)
            vals.append(a[np.isfinite(a) & (a > 0)])
    allv = np.concatenate(vals) if vals else np.array([])
    if allv.size:
        ticks = log_ticks(float(allv.min()), float(allv.max()))
        if len(ticks) >= 3:  # otherwise plotly's own ticks are better
            upd = fig.update_yaxes if axis == "y" else fig.update_xaxes
            upd(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 14, "color": "#666"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height=220)


def line_figure(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    colors: dict[str, str],
    *,
    raw: pd.DataFrame | None = None,
    bands: pd.DataFrame | None = None,
    dashes: dict[str, str] | None = None,
    ended: dict[str, str] | None = None,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    log_y: bool = False,
    markers: bool = False,
) -> go.Figure:
    """One line per value of `color`; `raw` (same columns) drawn faintly behind each line,
    `bands` (columns lo, hi) shaded around it; `dashes` gives each line its style (by
    optimizer); `ended[name]` marks the end of a curve that stopped early (with that text)."""
    fig = go.Figure()
    if df is None or df.empty:
        return empty_figure("Nothing recorded for the selected runs.", title)
    for name, g in df.groupby(color, sort=False):
        c = colors.get(name, "#333")
        r = raw[raw[color] == name] if raw is not None and not raw.empty else None
        if r is not None and not r.empty:
            fig.add_trace(_raw_trace(r[x], r[y], c, str(name)))
        b = bands[bands[color] == name] if bands is not None and not bands.empty else None
        if b is not None and not b.empty:
            _band(fig, b, x, c, str(name))
        fig.add_trace(_line_trace(g[x], g[y], c, str(name), (dashes or {}).get(name), markers))
        if ended and name in ended and len(g):
            fig.add_trace(_end_trace(g[x].iloc[-1], g[y].iloc[-1], c, str(name), ended[name]))
    fig = _layout(fig, title, x_title, y_title, log_y=log_y)
    return apply_log_ticks(fig) if log_y else fig


def _raw_trace(x, y, c: str, name: str) -> go.Scatter:
    """A line's raw values, faint, without a legend entry or hover."""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        line={"color": c, "width": 1},
        opacity=0.25,
        name=f"{name} (raw)",
        legendgroup=name,
        showlegend=False,
        hoverinfo="skip",
    )


def _line_trace(x, y, c: str, name: str, dash: str | None, markers: bool) -> go.Scatter:
    """The line itself: its optimizer's dash and width, diamonds for SGG's markers."""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines+markers" if markers else "lines",
        line={
            "color": c,
            "width": OPTIMIZER_WIDTHS.get(dash or "solid", 2.0),
            "dash": dash or "solid",
        },
        marker={"size": 6, "symbol": "diamond" if dash == "dash" else "circle"},
        name=name,
        legendgroup=name,
    )


def _end_trace(x, y, c: str, name: str, text: str) -> go.Scatter:
    """A square where a curve that stopped early ends, with `text` beside it."""
    return go.Scatter(
        x=[x],
        y=[y],
        mode="markers+text",
        marker={"symbol": "square", "size": 10, "color": c},
        text=[text],
        textposition="top left",
        name=f"{name}: {text}",
        legendgroup=name,
        showlegend=False,
    )


def _band(fig: go.Figure, b: pd.DataFrame, x: str, c: str, name: str) -> None:
    """A shaded band between columns lo and hi."""
    fig.add_trace(
        go.Scatter(
            x=b[x],
            y=b["hi"],
            mode="lines",
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
            legendgroup=name,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=b[x],
            y=b["lo"],
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor=_rgba(c, 0.18),
            showlegend=False,
            hoverinfo="skip",
            legendgroup=name,
        )
    )


def _placeable(t) -> bool:
    """False for a scatter whose x values are all missing (a run that did not record the
    axis's quantity): it would be a legend entry with no line."""
    x = getattr(t, "x", None) if isinstance(t, go.Scatter) else None
    if x is None:
        return True
    values = list(x)
    return not values or not pd.isna(pd.Series(values, dtype=object)).all()


def stacked(figs: list[go.Figure], *, height_each: int = 340) -> go.Figure:
    """Figures stacked as rows of one figure with a shared x axis: zooming one zooms all."""
    from plotly.subplots import make_subplots

    titles = [f.layout.title.text or "" for f in figs]
    out = make_subplots(
        rows=len(figs), cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=titles
    )
    seen: set[str] = set()
    for i, f in enumerate(figs, start=1):
        for t in f.data:
            t = go.Scatter(t) if isinstance(t, go.Scatter) else t
            if not _placeable(t):
                continue  # no point on this axis (not recorded): said under the chart instead
            if t.showlegend is not False and t.name in seen:
                t.showlegend = False
            if t.showlegend is not False and t.name:
                seen.add(t.name)
            out.add_trace(t, row=i, col=1)
        ax = f.layout.yaxis
        out.update_yaxes(
            title_text=ax.title.text,
            type=ax.type,
            tickvals=ax.tickvals,
            ticktext=ax.ticktext,
            hoverformat=HOVER_Y,
            row=i,
            col=1,
        )
        for shape in f.layout.shapes or ():
            out.add_hline(y=shape.y0, line=shape.line, row=i, col=1)
    x_title = figs[-1].layout.xaxis.title.text if figs else ""
    out.update_xaxes(title_text=x_title, row=len(figs), col=1)
    out.update_xaxes(hoverformat=HOVER_X)
    out.update_layout(
        template=TEMPLATE,
        height=height_each * len(figs) + 60,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        hovermode="x unified",
    )
    for a in out.layout.annotations:  # subplot titles on the left, like the single charts
        a.update(x=0, xanchor="left", font={"size": 14})
    return out


def with_heatmap(top: go.Figure, heat: go.Figure, *, heat_height: int = 620) -> go.Figure:
    """A line chart above a heatmap on one shared x axis (zoom one, both follow); the top
    chart keeps its legend, axis type and ticks, the heatmap its colour bar beside it."""
    from plotly.subplots import make_subplots

    top_h = int(top.layout.height or HEIGHT)
    total = top_h + heat_height
    share = heat_height / total
    out = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=60 / total,
        row_heights=[1 - share, share],
        subplot_titles=[top.layout.title.text or "", heat.layout.title.text or ""],
    )
    for t in top.data:
        out.add_trace(t, row=1, col=1)
    for t in heat.data:
        if isinstance(t, go.Heatmap):
            t = go.Heatmap(t)
            t.colorbar.update(y=share / 2, len=share, yanchor="middle")
        out.add_trace(t, row=2, col=1)
    ax = top.layout.yaxis
    out.update_yaxes(
        title_text=ax.title.text, type=ax.type, tickvals=ax.tickvals, ticktext=ax.ticktext, row=1
    )
    out.update_yaxes(autorange="reversed", row=2, col=1)
    out.update_xaxes(hoverformat=HOVER_X)
    out.update_xaxes(title_text=top.layout.xaxis.title.text, row=2, col=1)
    out.update_layout(
        template=TEMPLATE,
        height=total,
        margin=top.layout.margin,
        legend=top.layout.legend,
        hovermode="closest",
    )
    for a in out.layout.annotations:
        a.update(x=0, xanchor="left", font={"size": 14})
    return out


SPIKE_MARKERS = (
    {"symbol": "x", "size": 9, "line": {"width": 1, "color": "black"}},
    {"symbol": "circle-open", "size": 15, "line": {"width": 2}},
    {"symbol": "diamond-open", "size": 19, "line": {"width": 2}},
    {"symbol": "square-open", "size": 23, "line": {"width": 2}},
)


def grad_norm_figure(
    lines: pd.DataFrame,
    bands: pd.DataFrame,
    spikes: pd.DataFrame,
    x: str,
    colors: dict[str, str],
    *,
    log_y: bool = True,
    x_title: str = "",
    dashes: dict[str, str] | None = None,
    runs_per_line: dict[str, int] | None = None,
) -> go.Figure:
    """Global gradient norm per run: the line, a shaded band (10-90% of the run's values, or
    the spread over seeds), and a marker at every spike (one shape per line)."""
    title = "Gradient size over training (shaded: typical range; markers: spikes)"
    if lines is None or lines.empty:
        return empty_figure("No gradient norms recorded.", title)
    fig = go.Figure()
    for i, (name, g) in enumerate(lines.groupby("run", sort=False)):
        c = colors.get(name, "#333")
        b = bands[bands["run"] == name] if bands is not None and not bands.empty else None
        if b is not None and not b.empty:
            _band(fig, b, x, c, name)
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g["grad_norm"],
                mode="lines",
                name=name,
                line={"color": c, "width": 1.5, "dash": (dashes or {}).get(name, "solid")},
                legendgroup=name,
            )
        )
        s = spikes[spikes["run"] == name] if spikes is not None and not spikes.empty else None
        if s is not None and not s.empty:
            fig.add_trace(
                go.Scatter(
                    x=s[x],
                    y=s["grad_norm"],
                    mode="markers",
                    # one marker shape per line, each larger than the last: two runs that spike
                    # at the same step (SGG and AdamW of one seed before the first re-cluster)
                    # both stay visible instead of one cross hiding the other
                    marker=SPIKE_MARKERS[i % len(SPIKE_MARKERS)] | {"color": c},
                    name=_spike_label(name, len(s), (runs_per_line or {}).get(name, 1)),
                    legendgroup=name,
                )
            )
    fig = _layout(fig, title, x_title, "Gradient norm (L2)", log_y=log_y)
    return apply_log_ticks(fig) if log_y else fig


def _spike_label(name: str, count: int, runs: int) -> str:
    """'sgg, lr 4e-3 (3 seeds): gradient spikes, 1.33 per run (4 in 3 runs)'."""
    if runs <= 1:
        return f"{name}: gradient spikes, {count} per run"
    return f"{name}: gradient spikes, {count / runs:.3g} per run ({count} in {runs} runs)"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _histogram_line(h: pd.DataFrame, line: dict, name: str, **kw) -> go.Scatter:
    """A histogram (columns center, share) drawn as a step line."""
    return go.Scatter(
        x=h["center"], y=h["share"], mode="lines", line_shape="hvh", line=line, name=name, **kw
    )


def _closest_hover(fig: go.Figure, *, log_x: bool = False) -> go.Figure:
    """Hover the nearest point (not the whole x column); optionally a log x axis."""
    fig.update_layout(hovermode="closest")
    if log_x:
        fig.update_xaxes(type="log")
        apply_log_ticks(fig, "x")
    return fig


def heatmap_figure(
    pivot: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    z_title: str,
    log_z: bool = True,
    colorscale: str = "Viridis",
    zmid: float | None = None,
    multiplier: bool = False,
    height: int | None = None,
) -> go.Figure:
    """Rows = layers, columns = steps (already binned).

    ``multiplier=True`` colours a factor on a log2 scale centred on 1, so x0.5 and x2 are equally
    far from "unchanged" and the colour bar never shows impossible negative factors."""
    if pivot is None or pivot.empty:
        return empty_figure("Nothing recorded.", title)
    raw = pivot.to_numpy(dtype=np.float64)
    z = raw
    text = z_title
    colorbar: dict = {"title": {"text": text, "side": "right"}}
    if multiplier or log_z:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(raw > 0, (np.log2 if multiplier else np.log10)(raw), np.nan)
    if multiplier:
        zmid = 0.0
        span = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        span = max(span, np.log2(1.1))
        ticks = [t for t in (0.1, 0.25, 0.5, 0.8, 1, 1.25, 2, 4, 10) if abs(np.log2(t)) <= span]
        colorbar.update(
            tickvals=[float(np.log2(t)) for t in ticks], ticktext=[f"x{t:g}" for t in ticks]
        )
    elif log_z:
        text = f"log10 {z_title}"
        colorbar["title"]["text"] = text
    # nested lists with None for gaps (small: the columns are already binned)
    z_list = [[None if not np.isfinite(v) else float(v) for v in row] for row in z]
    raw_list = [[None if not np.isfinite(v) else float(v) for v in row] for row in raw]
    extra = {"zmin": -span, "zmax": span} if multiplier else {}
    fig = go.Figure(
        go.Heatmap(
            z=z_list,
            customdata=raw_list,
            x=[float(c) for c in pivot.columns],
            y=[str(i) for i in pivot.index],
            colorscale=colorscale,
            zmid=zmid,
            colorbar=colorbar,
            hovertemplate="step %{x}<br>%{y}<br>" + z_title + " %{customdata:.3g}<extra></extra>",
            **extra,
        )
    )
    h = height or max(260, min(900, 80 + 18 * len(pivot.index)))
    fig = _layout(fig, title, x_title, "", height=h)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


def distribution_figure(
    hist: pd.DataFrame, colors: dict[str, str], *, title: str, x_title: str
) -> go.Figure:
    """Overlaid histograms (columns run, center, share), e.g. per-layer gradient norms."""
    if hist is None or hist.empty:
        return empty_figure("Nothing recorded.", title)
    fig = go.Figure()
    for name, g in hist.groupby("run", sort=False):
        c = colors.get(name, "#333")
        fig.add_trace(
            _histogram_line(
                g, {"color": c, "width": 2}, name, fill="tozeroy", fillcolor=_rgba(c, 0.2)
            )
        )
    fig = _layout(fig, title, x_title, "Share of values")
    return _closest_hover(fig, log_x=True)


def sweep_figure(
    df: pd.DataFrame,
    *,
    key: str,
    colors_by_optimizer: dict[str, str] | None = None,
    log_x: bool = True,
) -> go.Figure:
    """Final loss against a hyperparameter (columns optimizer, value, final_loss, name);
    diverged runs (NaN loss) are drawn as crosses at the top."""
    title = f"Loss at the end against {key} (lower is better; x = diverged)"
    if df is None or df.empty:
        return empty_figure("No runs to compare.", title)
    fig = go.Figure()
    finite = df["final_loss"][np.isfinite(df["final_loss"])]
    top = float(finite.max() * 1.05) if not finite.empty else 1.0
    pal = dict(colors_by_optimizer or {})
    for i, (opt, g) in enumerate(df.sort_values("value").groupby("optimizer", sort=True)):
        c = pal.get(opt, ([*PALETTE, BASELINE_COLOR])[i % (len(PALETTE) + 1)])
        ok = g[np.isfinite(g["final_loss"])]
        bad = g[~np.isfinite(g["final_loss"])]
        spread = {}
        if {"lo", "hi"} <= set(ok.columns) and (ok.get("n", pd.Series([1])) > 1).any():
            spread = {
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": (ok["hi"] - ok["final_loss"]).to_numpy(),
                    "arrayminus": (ok["final_loss"] - ok["lo"]).to_numpy(),
                    "color": c,
                    "thickness": 1.5,
                }
            }
        n = sorted(set(ok["n"].astype(int))) if "n" in ok and len(ok) else []
        bars = "; bars: lowest to highest seed" if spread else ""
        label = opt + (f" (N = {'/'.join(map(str, n))} per point{bars})" if n else "")
        fig.add_trace(
            go.Scatter(
                x=ok["value"],
                y=ok["final_loss"],
                mode="lines+markers",
                line={"color": c, "width": 2, "dash": OPTIMIZER_DASHES.get(str(opt), "dot")},
                marker={"size": 9},
                name=label,
                text=ok["name"],
                hovertemplate="%{text}<br>%{x:.3g}: %{y:.4g}<extra></extra>",
                **spread,
            )
        )
        if not bad.empty:
            fig.add_trace(
                go.Scatter(
                    x=bad["value"],
                    y=[top] * len(bad),
                    mode="markers",
                    marker={"symbol": "x", "size": 13, "color": c},
                    name=f"{opt}: diverged",
                    text=bad["name"],
                    hovertemplate="%{text}: diverged",
                )
            )
    fig = _layout(fig, title, key, "Loss")
    return _closest_hover(fig, log_x=log_x)


def bar_figure(
    df: pd.DataFrame,
    x: str,
    y: str,
    colors: dict[str, str],
    *,
    title: str,
    y_title: str,
    fmt: str = ".3g",
) -> go.Figure:
    """One bar per run (column x = run name), coloured by run."""
    if df is None or df.empty:
        return empty_figure("Nothing to show.", title)
    fig = go.Figure(
        go.Bar(
            x=df[x],
            y=df[y],
            marker_color=[colors.get(n, "#333") for n in df[x]],
            text=[("n/a" if not np.isfinite(v) else f"{v:{fmt}}") for v in df[y]],
            textposition="outside",
        )
    )
    fig = _layout(fig, title, "", y_title, height=320)
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig

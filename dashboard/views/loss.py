"""The Loss page: train and validation loss of the selected runs or seed groups, and the gap
to the baseline, stacked on one shared step axis (zooming one chart zooms all)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import figures, narrative, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics import health
from dashboard.metrics.statistics import eval_series

STEP_COLUMNS = ("wall_time", "loss", "tokens", "grad_norm")
EVAL_COLUMNS = ("wall_time", "loss", "tokens")


def ended_marks(ctx: Ctx) -> dict[str, str]:
    """{series name: 'stopped' or 'failed'} for single runs that ended without finishing."""
    out = {}
    for name, members in ctx.series:
        states = {ctx.status(r) for r in members}
        if len(members) == 1 and states & {health.STOPPED, health.FAILED}:
            out[name] = "stopped" if health.STOPPED in states else "failed"
    return out


def series_means(ctx: Ctx, tables: dict[str, list], columns: tuple[str, ...], key) -> dict:
    """{series name: its table} with a group's table the mean over its seeds (cached); a
    single run's table is passed through as it is (no copy)."""
    groups = {n: dfs for n, dfs in tables.items() if len(dfs) > 1}
    means = cached(prepare.group_mean_tables, key, groups, columns) if groups else {}
    return {n: means.get(n, dfs[0] if dfs else None) for n, dfs in tables.items()}


def evals_by_series(ctx: Ctx) -> dict[str, list]:
    return {
        name: [e for df in dfs if (e := eval_series(df)) is not None]
        for name, dfs in ctx.series_tables("evals").items()
    }


def loss_figures(ctx: Ctx, smoothing: float | None = None) -> tuple[go.Figure, go.Figure]:
    """(training loss, validation loss) of every series: the mean of a seed group with its
    band, a single run with its raw curve faintly behind."""
    return train_figure(ctx, smoothing), eval_figure(ctx)


def train_figure(ctx: Ctx, smoothing: float | None = None) -> go.Figure:
    o = ctx.opts
    sm = o["smoothing"] if smoothing is None else smoothing
    col, xlabel = prepare.X_AXES[o["x"]]
    key = (ctx.key("steps", ctx.series_rels()), tuple(map(str, ctx.series)), o["x"], sm)
    steps = ctx.series_tables("steps")
    means = series_means(ctx, steps, STEP_COLUMNS, key)
    smooth, raw = cached(prepare.loss_lines, key, means, o["x"], sm)
    raw = raw[raw["run"].isin([n for n, m in ctx.series if len(m) == 1])]
    bands = cached(prepare.group_bands, (key, o["band"]), steps, o["x"], "loss", sm, o["band"])
    return figures.line_figure(
        smooth,
        col,
        "loss",
        "run",
        ctx.colors,
        raw=raw,
        bands=bands,
        dashes=ctx.dashes,
        ended=ended_marks(ctx),
        log_y=o["log_y"],
        x_title=xlabel,
        y_title="Training loss",
        title=f"Training loss (smoothing {sm:g})",
    )


def eval_figure(ctx: Ctx) -> go.Figure:
    o = ctx.opts
    col, xlabel = prepare.X_AXES[o["x"]]
    ekey = (ctx.key("evals", ctx.series_rels()), tuple(map(str, ctx.series)), o["x"], o["band"])
    evals = evals_by_series(ctx)
    emeans = series_means(ctx, evals, EVAL_COLUMNS, ekey)
    ev = cached(prepare.eval_lines, ekey, emeans, o["x"])
    ebands = cached(prepare.group_bands, ekey, evals, o["x"], "loss", 0.0, o["band"])
    return figures.line_figure(
        ev,
        col,
        "loss",
        "run",
        ctx.colors,
        bands=ebands,
        dashes=ctx.dashes,
        ended=ended_marks(ctx),
        log_y=o["log_y"],
        markers=True,
        x_title=xlabel,
        y_title="Validation loss",
        title="Validation loss (held-out data)",
    )


def page(ctx: Ctx) -> None:
    band = prepare.BANDS[ctx.opts["band"]]
    st.caption(
        "Lower is better. Colour = setting, line style = optimizer (solid AdamW, dashed SGG). "
        f"A group of seeds is drawn as its mean with a band ({band}); a single run as its "
        "smoothed curve with the raw values faintly behind. A square marks where a run "
        "stopped early. The charts share one axis: zoom one and all follow."
    )
    train, ev = loss_figures(ctx)
    figs = [train, ev]
    if len(ctx.series) > 1:
        o = ctx.opts
        col, xlabel = prepare.X_AXES[o["x"]]
        sm = max(o["smoothing"], 0.9)
        key = (ctx.key("steps", ctx.series_rels()), tuple(map(str, ctx.series)), o["x"], sm)
        means = series_means(ctx, ctx.series_tables("steps"), STEP_COLUMNS, key)
        base = ctx.series[0][0]
        diff = cached(prepare.loss_difference, (key, base), means, base, o["x"], sm)
        fig = figures.line_figure(
            diff,
            col,
            "diff",
            "run",
            ctx.colors,
            dashes=ctx.dashes,
            x_title=xlabel,
            y_title="difference",
            title=f"Training loss minus the baseline's (smoothed; below 0 = ahead of {base})",
        )
        fig.add_hline(y=0, line={"color": "#555", "dash": "dash"})
        figs.append(fig)
    drawn = [f for f in figs if f.data]
    if len(drawn) < len(figs):
        st.info("Some of these runs recorded no validation loss; only what exists is drawn.")
    if drawn:
        st.plotly_chart(figures.stacked(drawn), key="loss_stack")
        if len(figs) > 2:
            st.caption(narrative.TRAIN_VS_VALIDATION)

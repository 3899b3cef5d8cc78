"""The charts more than one view draws, from a `Ctx`: each series' loss (the Summary and the Loss
tab) and each series' mean table (the Loss and Gradient stability tabs).

Data from `prepare` (pure, cached on the tables' fingerprints and the chart options), figures
from `figures` (pure); this module only wires the page's selection, styles and options in.
"""

from __future__ import annotations

import plotly.graph_objects as go

from dashboard import figures, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics.statistics import eval_series
from dashboard.tables import TableReader

STEP_COLUMNS = ("wall_time", "loss", "tokens", "grad_norm")
EVAL_COLUMNS = ("wall_time", "loss", "tokens")


def series_means(tables: dict[str, list], columns: tuple[str, ...], key: tuple) -> dict:
    """{series name: its table} with a group's table the mean over its seeds (cached on
    `key`); a single run's table is passed through as it is (no copy)."""
    groups = {n: dfs for n, dfs in tables.items() if len(dfs) > 1}
    means = cached(prepare.group_mean_tables, key, groups, columns) if groups else {}
    return {n: means.get(n, dfs[0] if dfs else None) for n, dfs in tables.items()}


def evals_by_series(reader: TableReader) -> dict[str, list]:
    """{series name: each run's evaluations (rows with a loss)}."""
    return {
        name: [e for df in dfs if (e := eval_series(df)) is not None]
        for name, dfs in reader.series_tables("evals").items()
    }


def ended(ctx: Ctx) -> dict[str, str]:
    """{series name: 'stopped' or 'failed'} for the runs drawn alone that ended early."""
    return prepare.ended_marks(ctx.selection.series, ctx.selection.statuses())


def train_figure(ctx: Ctx, smoothing: float | None = None) -> go.Figure:
    """Training loss of every series: a seed group's mean with its band, a single run's
    smoothed curve with its raw values faintly behind (smoothing: the sidebar's unless given)."""
    o, read = ctx.options, ctx.reader
    sm = o.smoothing if smoothing is None else smoothing
    key = read.series_key("steps", o.x, sm)
    steps = read.series_tables("steps")
    means = series_means(steps, STEP_COLUMNS, key)
    smooth, raw = cached(prepare.loss_lines, key, means, o.x, sm)
    raw = raw[raw["run"].isin([n for n, m in ctx.selection.series if len(m) == 1])]
    bands = cached(prepare.group_bands, (key, o.band), steps, o.x, "loss", sm, o.band)
    return figures.line_figure(
        smooth,
        o.x_column,
        "loss",
        "run",
        ctx.styles.colors,
        raw=raw,
        bands=bands,
        dashes=ctx.styles.dashes,
        ended=ended(ctx),
        log_y=o.log_y,
        x_title=o.x_title,
        y_title="Training loss",
        title=f"Training loss (smoothing {sm:g})",
    )


def eval_figure(ctx: Ctx) -> go.Figure:
    """Validation loss of every series, a point per evaluation; a group's mean with its band."""
    o, read = ctx.options, ctx.reader
    key = read.series_key("evals", o.x, o.band)
    evals = evals_by_series(read)
    means = series_means(evals, EVAL_COLUMNS, key)
    lines = cached(prepare.eval_lines, key, means, o.x)
    bands = cached(prepare.group_bands, key, evals, o.x, "loss", 0.0, o.band)
    return figures.line_figure(
        lines,
        o.x_column,
        "loss",
        "run",
        ctx.styles.colors,
        bands=bands,
        dashes=ctx.styles.dashes,
        ended=ended(ctx),
        log_y=o.log_y,
        markers=True,
        x_title=o.x_title,
        y_title="Validation loss",
        title="Validation loss (held-out data)",
    )

"""The Loss page: train and validation loss of the selected runs, and the gap to the baseline."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import figures, prepare
from dashboard.cache import cached
from dashboard.context import Ctx


def loss_figures(ctx: Ctx, smoothing: float | None = None) -> tuple[go.Figure, go.Figure]:
    """(training loss, validation loss) figures of the selected runs."""
    o = ctx.opts
    sm = o["smoothing"] if smoothing is None else smoothing
    col, xlabel = prepare.X_AXES[o["x"]]
    smooth, raw = cached(
        prepare.loss_lines, (ctx.key("steps"), o["x"], sm), ctx.tables("steps"), o["x"], sm
    )
    train = figures.line_figure(
        smooth,
        col,
        "loss",
        "run",
        ctx.colors,
        raw=raw,
        log_y=o["log_y"],
        x_title=xlabel,
        y_title="Training loss",
        title=f"Training loss (smoothing {sm:g}; faint: raw)",
    )
    ev = cached(prepare.eval_lines, (ctx.key("evals"), o["x"]), ctx.tables("evals"), o["x"])
    evf = figures.line_figure(
        ev,
        col,
        "loss",
        "run",
        ctx.colors,
        log_y=o["log_y"],
        markers=True,
        x_title=xlabel,
        y_title="Validation loss",
        title="Validation loss (held-out data)",
    )
    return train, evf


def page(ctx: Ctx) -> None:
    st.caption(
        "Lower is better. The faint lines are the raw values; the bold ones are smoothed "
        "(change the smoothing and the axis in the sidebar)."
    )
    train, ev = loss_figures(ctx)
    st.plotly_chart(train, key="loss_train")
    st.plotly_chart(ev, key="loss_eval")
    if len(ctx.selected) < 2:
        return
    o = ctx.opts
    col, xlabel = prepare.X_AXES[o["x"]]
    sm = max(o["smoothing"], 0.9)
    diff = cached(
        prepare.loss_difference,
        (ctx.key("steps"), ctx.base_name, o["x"], sm),
        ctx.tables("steps"),
        ctx.base_name,
        o["x"],
        sm,
    )
    fig = figures.line_figure(
        diff,
        col,
        "diff",
        "run",
        ctx.colors,
        x_title=xlabel,
        y_title=f"loss minus {ctx.base_name}'s",
        title=f"Difference from the baseline's training loss (smoothed; below 0 = ahead "
        f"of {ctx.base_name})",
    )
    fig.add_hline(y=0, line={"color": figures.BASELINE_COLOR, "dash": "dash"})
    st.plotly_chart(fig, key="loss_diff")

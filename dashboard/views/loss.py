"""The Loss page: train and validation loss of the selected runs or seed groups, and the gap
to the baseline, stacked on one shared step axis (zooming one chart zooms all)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import figures, narrative, prepare, styles
from dashboard.cache import cached
from dashboard.charts import STEP_COLUMNS, eval_figure, series_means, train_figure
from dashboard.context import Ctx
from dashboard.difference import (
    TRAIN_DIFFERENCE_NOTE,
    difference_caption,
    difference_figure,
    train_difference_figure,
)
from dashboard.metrics import groups

__all__ = ["difference_caption", "page"]


def page(ctx: Ctx) -> None:
    _intro(ctx)
    figs = [train_figure(ctx), eval_figure(ctx)]
    note = ""
    if len(ctx.selection.series) > 1:
        fig, note = _difference(ctx)
        figs.append(fig)
    _stack(figs, note)
    _not_drawn(ctx)


def _not_drawn(ctx: Ctx) -> None:
    """Which series this axis cannot place, and why (a line that is missing is said)."""
    missing = prepare.not_on_axis(ctx.reader.series_tables("steps"), ctx.options.x)
    if missing:
        st.caption(
            "Not drawn on this axis: "
            + "; ".join(f"{name} ({why})" for name, why in missing.items())
            + "."
        )


def _intro(ctx: Ctx) -> None:
    st.caption(
        f"Lower is better. {styles.legend_words(ctx.styles)} "
        f"A group of seeds is drawn as its mean with a band ({ctx.options.band_words}); a "
        "single run as its smoothed curve with the raw values faintly behind. A square marks "
        "where a run stopped early. The charts share one axis: zoom one and all follow."
    )


def _difference(ctx: Ctx) -> tuple[go.Figure, str]:
    """The validation-loss difference to the baseline with its 95% band across seeds; the
    training loss's, without a band, when no two series share an evaluation step."""
    made = _eval_difference(ctx)
    if made is not None:
        return made
    return (
        _train_difference(ctx),
        f"{TRAIN_DIFFERENCE_NOTE} {narrative.TRAIN_VS_VALIDATION}",
    )


def _eval_difference(ctx: Ctx) -> tuple[go.Figure, str] | None:
    sel, o, read, style = ctx.selection, ctx.options, ctx.reader, ctx.styles
    base = sel.series[0][0]
    tables = {name: [read.df(r, "evals") for r in members] for name, members in sel.series}
    seeds = {name: [groups.seed_of(sel.meta(r)) for r in members] for name, members in sel.series}
    key = read.series_key("evals", o.x)
    diff = cached(prepare.paired_eval_difference, key, tables, seeds, base, o.x)
    if diff.empty:
        return None
    fig = difference_figure(diff, o.x_column, style.colors, style.dashes, o.x_title)
    words = [difference_caption(diff, base, o.x)]
    for name, members in sel.series[1:]:
        words += _before_recluster(ctx, name, members, diff[diff["run"] == name], seeds)
    return fig, "  \n".join(words)


def _before_recluster(
    ctx: Ctx, name: str, members: list[str], diff: pd.DataFrame, seeds: dict[str, list]
) -> list[str]:
    """Why an SGG series' paired difference to an AdamW baseline is 0 up to its first
    re-cluster (factor 1 until then: AdamW's update on the same seeds and batches), said only
    where the data is that close to 0 there (`prepare.near_zero_before`)."""
    sel = ctx.selection
    base_name, base_members = sel.series[0]
    metas = [sel.meta(r) for r in members]
    own = {s for s in seeds[name]}
    if not (
        all(groups.applies_sgg(m) for m in metas)
        and all(groups.is_adamw(sel.meta(r)) for r in base_members)
        and None not in own
        and own <= set(seeds[base_name])
    ):
        return []
    interval = {getattr(groups.info_of(m).sgg, "recluster_interval", None) for m in metas}
    t = interval.pop() if len(interval) == 1 else None
    if not isinstance(t, int) or t <= 0:
        return []
    steps, top = prepare.near_zero_before(diff, t)
    if not steps:
        return []
    joint = " and " if len(steps) == 2 else " to "
    at = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}{joint}{steps[-1]}"
    size = f"at most {top:.1g}" if top >= 1e-4 else "below 0.0001"
    band = ", and its band narrows to 0 there" if diff["lo"].notna().any() else ""
    return [
        f"{name}: before SGG's first re-cluster (step {t}, its recorded re-cluster interval) "
        "every factor is 1, so its update is AdamW's on the same seed and batches: the paired "
        f"difference at {at} is 0 up to floating-point rounding ({size}){band}. That is not "
        "an effect of SGG."
    ]


def _train_difference(ctx: Ctx) -> go.Figure:
    o, read = ctx.options, ctx.reader
    sm = o.headline_smoothing
    key = read.series_key("steps", o.x, sm)
    means = series_means(read.series_tables("steps"), STEP_COLUMNS, key)
    base = ctx.selection.series[0][0]
    diff = cached(prepare.loss_difference, (key, base), means, base, o.x, sm)
    return train_difference_figure(
        diff, o.x_column, ctx.styles.colors, ctx.styles.dashes, o.x_title
    )


def _stack(figs: list[go.Figure], note: str) -> None:
    """The charts that have data, on one shared axis, and the difference panel's words."""
    drawn = [f for f in figs if f.data]
    if len(drawn) < len(figs):
        st.info("Some of these runs recorded no validation loss; only what exists is drawn.")
    if drawn:
        st.plotly_chart(figures.stacked(drawn), key="loss_stack")
        if note and figs[-1].data:
            st.caption(note)

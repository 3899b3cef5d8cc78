"""The Gradient stability page: global gradient norm with spikes, per-layer norms, layer map."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import figures, narrative, prepare
from dashboard.cache import cached
from dashboard.charts import STEP_COLUMNS, series_means
from dashboard.context import Ctx
from dashboard.metrics.clusters import layer_order
from dashboard.narrative import not_recorded_note
from dashboard.prepare import runs_without

__all__ = ["not_recorded_note", "page", "runs_without"]

LAYER_CAPTION = (
    "Rows: the model's layers by their names in the code (embed_tokens: the word embeddings; "
    "self_attn q/k/v/o_proj: attention; mlp gate/up/down_proj: the feed-forward block; "
    "layernorm and norm: normalisation; lm_head: the output layer)."
)


def page(ctx: Ctx) -> None:
    _notes(ctx)
    grad_fig = _grad_figure(ctx)
    band_note = _band_note(ctx)
    if not any(ctx.reader.series_tables("layers").values()):
        st.plotly_chart(grad_fig, key="grad_global")
        st.caption(band_note)
        st.info("None of the selected runs recorded per-layer statistics.")
        return
    _layer_map(ctx, grad_fig, band_note)
    _layer_distribution(ctx)


def _notes(ctx: Ctx) -> None:
    """What the words mean, and which runs cannot be drawn or compared here."""
    sel, read = ctx.selection, ctx.reader
    st.caption(
        f"Gradient norm: {narrative.definition('gradient norm')} "
        f"Spike: {narrative.definition('spike')}"
    )
    rels = sel.series_rels()
    missing = runs_without({sel.labels[r]: read.df(r, "steps") for r in rels}, "grad_norm")
    if missing:
        st.info(not_recorded_note(missing, "gradient norm"))
    apart = narrative.grad_norms_apart(
        [(name, [sel.meta(r) for r in members]) for name, members in sel.series]
    )
    if apart:  # norms before and after clipping: the same rule as the Summary's
        st.warning(apart)


def _grad_figure(ctx: Ctx) -> go.Figure:
    """Each series' gradient norm: a group's band is the spread over seeds, its markers every
    seed's spikes."""
    sel, o, read, style = ctx.selection, ctx.options, ctx.reader, ctx.styles
    key = read.series_key("steps", o.x)
    steps = read.series_tables("steps")
    means = series_means(steps, STEP_COLUMNS, key)
    pooled = [n for n, m in sel.series if len(m) > 1]
    lines, bands, spikes = cached(
        prepare.grad_chart, (key, o.band), means, steps, pooled, o.x, o.band
    )
    return figures.grad_norm_figure(
        lines,
        bands,
        spikes,
        o.x_column,
        style.colors,
        x_title=o.x_title,
        dashes=style.dashes,
        runs_per_line={n: len(m) for n, m in sel.series},
    )


def _band_note(ctx: Ctx) -> str:
    return (
        "Shaded: for a single run, where 80% of its values lie (10th to 90th percentile); for a "
        f"group of seeds, the {ctx.options.band_words}. Spikes: one marker shape per line (a "
        "cross, then rings), each at the spike's peak."
    )


def _layer_map(ctx: Ctx, grad_fig: go.Figure, band_note: str) -> None:
    """One run's gradient norm per layer over training, under the global chart on one step
    axis (zoom one, both follow) when the axis is the step."""
    sel, read = ctx.selection, ctx.reader
    rels = sel.series_rels()
    no_layers = runs_without({sel.labels[r]: read.df(r, "layers") for r in rels})
    damaged = {sel.labels[r] for r in rels if read.table(r, "layers").n_chunks} & set(no_layers)
    missing = [n for n in no_layers if n not in damaged]
    if missing:
        st.info(not_recorded_note(missing, "per-layer gradient norm"))
    for name in [n for n in no_layers if n in damaged]:  # recorded, but no file could be read
        st.warning(
            f"{name}: its per-layer gradient norms were recorded but could not be read (a "
            "damaged file, named at the top); left out here."
        )
    runs = [r for r in rels if read.df(r, "layers") is not None]
    where = (
        "the lower panel of the chart below" if ctx.options.x == "step" else "the 2nd chart below"
    )
    rel = st.selectbox(
        f"Run shown in the layer map ({where})",
        runs,
        format_func=sel.labels.get,
        key="heat_run",
    )
    order = layer_order(sel.meta(rel))
    pivot = cached(
        prepare.layer_pivot,
        (read.key("layers", [rel]), tuple(order)),
        read.df(rel, "layers"),
        "grad_norm",
        order=order or None,
    )
    heat = figures.heatmap_figure(
        pivot,
        title=f"{sel.labels[rel]}: gradient norm per layer (rows) over training (columns)",
        x_title="Step",
        z_title="gradient norm",
    )
    if ctx.options.x == "step" and heat.data and isinstance(heat.data[0], go.Heatmap):
        st.plotly_chart(figures.with_heatmap(grad_fig, heat), key="grad_global")
        st.caption(f"{band_note} The layer map below shares the step axis. {LAYER_CAPTION}")
    else:
        st.plotly_chart(grad_fig, key="grad_global")
        st.caption(band_note)
        st.plotly_chart(heat, key="grad_heat")
        st.caption(LAYER_CAPTION)


def _layer_distribution(ctx: Ctx) -> None:
    """How large the per-layer gradients are, per series (a group pools its seeds' layers)."""
    read = ctx.reader
    per_series = {n: dfs for n, dfs in read.series_tables("layers").items() if dfs}
    pooled = {n: dfs[0] if len(dfs) == 1 else pd.concat(dfs) for n, dfs in per_series.items()}
    hist = cached(prepare.layer_norm_hist, read.series_key("layers"), pooled)
    st.plotly_chart(
        figures.distribution_figure(
            hist,
            ctx.styles.colors,
            x_title="Per-layer gradient norm (log scale)",
            title="How large are the gradients of individual layers? (second half of training; "
            "a narrower hump = more uniform layers)",
        ),
        key="grad_dist",
    )

"""The Gradient stability page: global gradient norm with spikes, per-layer norms, layer map."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import figures, narrative, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics.clusters import layer_order
from dashboard.views.loss import STEP_COLUMNS, series_means

NOT_RECORDED = "{run}: {what} not recorded in this run."


def runs_without(tables: dict[str, pd.DataFrame | None], column: str | None = None) -> list[str]:
    """The runs (display names) whose table is missing, or holds no value of `column`: what
    the page says is "not recorded in this run" rather than leaving the run out silently."""

    def lacks(df: pd.DataFrame | None) -> bool:
        if df is None or df.empty:
            return True
        return column is not None and (column not in df or not df[column].notna().any())

    return [name for name, df in tables.items() if lacks(df)]


def not_recorded_note(runs: list[str], what: str) -> str:
    """One line per run: "<run>: gradient norm not recorded in this run." """
    return "\n\n".join(NOT_RECORDED.format(run=r, what=what) for r in runs)


def page(ctx: Ctx) -> None:
    st.caption(
        f"Gradient norm: {narrative.definition('gradient norm')} "
        f"Spike: {narrative.definition('spike')}"
    )
    rels = ctx.series_rels()
    missing = runs_without({ctx.labels[r]: ctx.df(r, "steps") for r in rels}, "grad_norm")
    if missing:
        st.info(not_recorded_note(missing, "gradient norm"))
    apart = narrative.grad_norms_apart(
        [(name, [ctx.by_rel[r].meta for r in members]) for name, members in ctx.series]
    )
    if apart:  # norms before and after clipping: the same rule as the Summary's
        st.warning(apart)
    o = ctx.opts
    col, xlabel = prepare.X_AXES[o["x"]]
    key = (ctx.key("steps", ctx.series_rels()), tuple(map(str, ctx.series)), o["x"])
    steps = ctx.series_tables("steps")
    means = series_means(ctx, steps, STEP_COLUMNS, key)
    lines, bands, spikes = cached(prepare.grad_lines, key, means, o["x"])
    pooled = [n for n, m in ctx.series if len(m) > 1]
    if pooled:  # a group: its band is the spread over seeds, its crosses every seed's spikes
        seed_bands = cached(
            prepare.group_bands, (key, o["band"]), steps, o["x"], "grad_norm", 0.0, o["band"]
        )
        bands = pd.concat([bands[~bands["run"].isin(pooled)], seed_bands], ignore_index=True)
        per_run = {f"{n}\x00{i}": df for n in pooled for i, df in enumerate(steps[n])}
        _, _, member_spikes = cached(prepare.grad_lines, (key, "members"), per_run, o["x"])
        member_spikes = member_spikes.assign(run=member_spikes["run"].str.split("\x00").str[0])
        spikes = pd.concat([spikes[~spikes["run"].isin(pooled)], member_spikes], ignore_index=True)
    grad_fig = figures.grad_norm_figure(
        lines,
        bands,
        spikes,
        col,
        ctx.colors,
        x_title=xlabel,
        dashes=ctx.dashes,
        runs_per_line={n: len(m) for n, m in ctx.series},
    )
    band_note = (
        "Shaded: for a single run, where 80% of its values lie (10th to 90th percentile); for a "
        f"group of seeds, the {prepare.BANDS[o['band']]}. Spikes: one marker shape per line (a "
        "cross, then rings), each at the spike's peak."
    )
    per_series = {n: dfs for n, dfs in ctx.series_tables("layers").items() if dfs}
    if not per_series:
        st.plotly_chart(grad_fig, key="grad_global")
        st.caption(band_note)
        st.info("None of the selected runs recorded per-layer statistics.")
        return
    runs = [r for r in rels if ctx.df(r, "layers") is not None]
    no_layers = runs_without({ctx.labels[r]: ctx.df(r, "layers") for r in rels})
    if no_layers:
        st.info(not_recorded_note(no_layers, "per-layer gradient norm"))
    rel = st.selectbox("Run for the layer map", runs, format_func=ctx.labels.get, key="heat_run")
    order = layer_order(ctx.by_rel[rel].meta)
    pivot = cached(
        prepare.layer_pivot,
        (ctx.key("layers", [rel]), tuple(order)),
        ctx.df(rel, "layers"),
        "grad_norm",
        order=order or None,
    )
    heat = figures.heatmap_figure(
        pivot,
        title=f"{ctx.labels[rel]}: gradient norm per layer (rows) over training (columns)",
        x_title="Step",
        z_title="gradient norm",
    )
    layer_caption = (
        "Rows: the model's layers by their names in the code (embed_tokens: the word "
        "embeddings; self_attn q/k/v/o_proj: attention; mlp gate/up/down_proj: the feed-forward "
        "block; layernorm and norm: normalisation; lm_head: the output layer)."
    )
    if o["x"] == "step" and heat.data and isinstance(heat.data[0], go.Heatmap):
        # one figure, one step axis: zooming the gradient norm zooms the layer map too
        st.plotly_chart(figures.with_heatmap(grad_fig, heat), key="grad_global")
        st.caption(f"{band_note} The layer map below shares the step axis. {layer_caption}")
    else:
        st.plotly_chart(grad_fig, key="grad_global")
        st.caption(band_note)
        st.plotly_chart(heat, key="grad_heat")
        st.caption(layer_caption)
    # a group's distribution pools its seeds' layers
    pooled = {n: dfs[0] if len(dfs) == 1 else pd.concat(dfs) for n, dfs in per_series.items()}
    hist = cached(
        prepare.layer_norm_hist, (ctx.key("layers", rels), tuple(map(str, ctx.series))), pooled
    )
    st.plotly_chart(
        figures.distribution_figure(
            hist,
            ctx.colors,
            x_title="Per-layer gradient norm (log scale)",
            title="How large are the gradients of individual layers? (second half of training; "
            "a narrower hump = more uniform layers)",
        ),
        key="grad_dist",
    )

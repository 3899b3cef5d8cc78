"""The Gradient stability page: global gradient norm with spikes, per-layer norms, layer map."""

from __future__ import annotations

import streamlit as st

from dashboard import figures, narrative, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics.clusters import layer_order


def page(ctx: Ctx) -> None:
    st.caption(
        f"Gradient norm: {narrative.definition('gradient norm')} "
        f"Spike: {narrative.definition('spike')}"
    )
    o = ctx.opts
    col, xlabel = prepare.X_AXES[o["x"]]
    lines, bands, spikes = cached(
        prepare.grad_lines, (ctx.key("steps"), o["x"]), ctx.tables("steps"), o["x"]
    )
    st.plotly_chart(
        figures.grad_norm_figure(lines, bands, spikes, col, ctx.colors, x_title=xlabel),
        key="grad_global",
    )
    layer_tabs = ctx.tables("layers")
    if not layer_tabs:
        st.info("None of the selected runs recorded per-layer statistics.")
        return
    hist = cached(prepare.layer_norm_hist, ctx.key("layers"), layer_tabs)
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
    names = list(layer_tabs)
    pick = st.selectbox("Run for the layer map", names, key="heat_run")
    rel = next(r for r in ctx.selected if ctx.labels[r] == pick)
    order = layer_order(ctx.by_rel[rel].meta)
    pivot = cached(
        prepare.layer_pivot,
        (ctx.key("layers", [rel]), tuple(order)),
        layer_tabs[pick],
        "grad_norm",
        order=order or None,
    )
    st.plotly_chart(
        figures.heatmap_figure(
            pivot,
            title=f"{pick}: gradient norm per layer (rows) over training (columns)",
            x_title="Step",
            z_title="gradient norm",
        ),
        key="grad_heat",
    )

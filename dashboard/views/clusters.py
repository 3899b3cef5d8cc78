"""The Clusters page: SGG's groups per layer over time, how weights move, what groups look like."""

from __future__ import annotations

import streamlit as st

from dashboard import figures, narrative, prepare
from dashboard.context import Ctx
from dashboard.metrics import clusters


def page(ctx: Ctx) -> None:
    st.caption(
        "SGG sorts the weights of every layer into a few groups by their momentum (the running "
        "average of their gradients) and multiplies each group's learning rate by a scale factor: "
        "noisy groups are slowed down (factor < 1), calm groups sped up (factor > 1). The groups "
        "are recomputed every T steps ('re-cluster')."
    )
    clustered = [r for r in ctx.selected if ctx.table(r, "clusters").df is not None]
    without = [r for r in ctx.selected if r not in clustered]
    plain = [ctx.labels[r] for r in without if ctx.by_rel[r].optimizer.lower() != "sgg"]
    missing = [ctx.labels[r] for r in without if ctx.by_rel[r].optimizer.lower() == "sgg"]
    if plain:
        st.info(
            f"**{', '.join(plain)}**: plain AdamW, recorded without shadow clustering, so "
            "no groups. Their histograms, if any, are the reference below."
        )
    if missing:
        st.info(f"**{', '.join(missing)}**: no cluster table was recorded.")
    if not clustered:
        st.info(
            "None of the selected runs has groups to show. Select an SGG run (or an AdamW "
            "run recorded with shadow clustering)."
        )
        return
    sgg_first = sorted(clustered, key=lambda r: ctx.by_rel[r].optimizer.lower() != "sgg")
    pick = st.selectbox("Run", sgg_first, format_func=lambda r: ctx.labels[r], key="cl_run")
    cl = ctx.df(pick, "clusters")
    if bool(cl["shadow"].fillna(False).all()):
        st.info(
            "These groups come from a *shadow* clustering: computed for comparison only, "
            "they did not change this run's training."
        )
    piv = clusters.factor_overview(cl, clusters.layer_order(ctx.by_rel[pick].meta))
    st.plotly_chart(
        figures.heatmap_figure(
            piv,
            title="All layers: average learning-rate multiplier "
            "(blue: sped up, red: slowed down, white: unchanged)",
            x_title="Step",
            z_title="scale factor",
            log_z=False,
            colorscale="RdBu",
            multiplier=True,
        ),
        key="cl_overview",
    )
    layers = list(dict.fromkeys(piv.index))
    layer = st.selectbox("Layer", layers, key="cl_layer")
    c, g = clusters.layer_groups(cl, layer)
    a, b = st.columns(2)
    a.plotly_chart(
        figures.cluster_lines(
            c,
            "factor",
            title="Learning-rate multiplier of each group",
            y_title="scale factor",
            log_y=True,
        ),
        key="cl_factor",
    )
    b.plotly_chart(
        figures.cluster_lines(
            c,
            "share",
            title="Share of the layer's weights in each group",
            y_title="share",
            stacked=True,
        ),
        key="cl_share",
    )
    a, b = st.columns(2)
    a.plotly_chart(
        figures.cluster_lines(
            c, "center", title="Group centres (typical momentum of the group)", y_title="momentum"
        ),
        key="cl_center",
    )
    b.plotly_chart(
        figures.cluster_lines(
            c,
            "mda",
            title="How spread out each group's momentum is",
            y_title="spread (median distance)",
            reference=g,
            reference_name="whole model: below it, a group's factor is pulled above 1",
            log_y=True,
        ),
        key="cl_mda",
    )
    steps = sorted(c["step"].unique().tolist())
    if not steps:
        return
    step = st.select_slider(
        "Re-cluster step",
        steps,
        value=steps[-1],
        key="cl_step",
        help="Which regrouping the charts below show: the groups are recomputed every T steps.",
    )
    tr = ctx.table(pick, "transitions").df
    a, b = st.columns(2)
    moved = clusters.moved_share(tr[tr["layer"] == layer] if tr is not None else None)
    a.plotly_chart(
        figures.cluster_lines(
            moved.assign(cluster=0).rename(columns={"moved": "share"})
            if not moved.empty
            else moved,
            "share",
            title="Share of weights that changed group at each re-cluster",
            y_title="share of the layer's weights",
        ).update_yaxes(tickformat=".0%", rangemode="tozero"),
        key="cl_moved",
    )
    mat = tr[(tr["layer"] == layer) & (tr["step"] == step)] if tr is not None else None
    before = max((s for s in steps if s < step), default=None)
    span = f"from step {before:,} to step {step:,}" if before is not None else f"at step {step:,}"
    b.plotly_chart(
        figures.transition_sankey(mat, title=f"Where the weights went, {span}"),
        key="cl_sankey",
    )
    hist = ctx.table(pick, "histograms").df
    ref_rel = next(
        (
            r
            for r in ctx.selected
            if r != pick
            and ctx.by_rel[r].optimizer.lower() != "sgg"
            and ctx.table(r, "histograms").df is not None
        ),
        None,
    )
    ref = ctx.table(ref_rel, "histograms").df if ref_rel else None
    ref_name = f"{ctx.labels[ref_rel]}: whole layer" if ref_rel else ""
    st.caption(
        "How the values inside this layer are distributed, per group (each curve adds up to 1, "
        "so small groups stay visible). The adaptive learning rate is the step size AdamW "
        "gives each weight; SGG multiplies it by the group's factor."
        + (f" Dashed black: {ref_name} (AdamW, no groups)." if ref_rel else "")
    )
    a, b = st.columns(2)
    for col, qty, label, log_x in (
        (a, "momentum", "Momentum", False),
        (b, "adaptive_lr", "Adaptive learning rate (log)", True),
    ):
        h = prepare.histogram_at(hist, layer, qty, step)
        r = (
            prepare.histogram_at(ref, layer, qty, step, whole_layer=True)
            if ref is not None
            else None
        )
        col.plotly_chart(
            figures.histogram_compare_figure(
                h,
                title=f"{label} per group at step {step:,}",
                x_title=label,
                log_x=log_x,
                reference=r,
                reference_name=ref_name,
            ),
            key=f"cl_hist_{qty}",
        )
        if qty == "adaptive_lr":
            note = narrative.pileup_note(clusters.top_bin_share(h))
            if note:
                col.caption(note)

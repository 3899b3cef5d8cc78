"""The Sweep page: final loss against the setting that was varied, per optimizer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import figures, narrative
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics import statistics, sweep

UNFINISHED = ("running", "stalled / probably killed")


def page(ctx: Ctx) -> None:
    use_all = st.toggle(
        "Use every run in the folder (not only the selected ones)", value=True, key="sweep_all"
    )
    rels = [r.rel for r in ctx.all_runs if r.readable] if use_all else ctx.selected
    metas = {rel: ctx.by_rel[rel].meta for rel in rels}
    keys = sweep.varying_hyperparameters(metas)
    if not keys:
        st.info(
            "These runs do not differ in any numeric setting, so there is no sweep to show. "
            "A sweep is a set of runs that differ in one setting, e.g. the learning rate."
        )
        return
    hp = st.selectbox(
        "Setting that was varied",
        keys,
        key="sweep_key",
        format_func=lambda k: f"{sweep.plain_name(k)} ({k})",
    )
    members = sweep.sweep_members(metas, hp)
    left_out = [r for r in rels if r not in members]
    if left_out:
        st.caption(
            "Compared: the runs whose other settings are identical. Left out (they differ "
            "in more than this setting): " + ", ".join(ctx.labels[r] for r in left_out)
        )
    unfinished = [r for r in members if ctx.status(r) in UNFINISHED]
    if unfinished:
        st.caption(
            "Still training (or stopped mid-way), so their final loss would mislead; left out: "
            + ", ".join(f"{ctx.labels[r]} ({ctx.status(r)})" for r in unfinished)
        )
    rels = [r for r in members if r not in unfinished]
    if len({sweep.hyperparameter_value(metas[r], hp) for r in rels}) < 2:
        st.info("No group of runs differs only in this setting.")
        return
    ctx.prefetch(("steps", "evals"), rels)
    data = {r: (ctx.df(r, "steps"), ctx.df(r, "evals")) for r in rels}
    infos = {
        r: {"name": ctx.labels[r], "optimizer": ctx.by_rel[r].optimizer, "status": ctx.status(r)}
        for r in rels
    }
    sums = cached(
        statistics.summarize_runs, ctx.key(("steps", "evals"), rels), data, infos, rels[0]
    )
    df = sweep.sweep_frame(
        {r: metas[r] for r in rels},
        {r: ctx.by_rel[r].optimizer for r in rels},
        dict(zip(rels, sums, strict=True)),
        hp,
    )
    opt_colors = {ctx.by_rel[ctx.baseline].optimizer: figures.BASELINE_COLOR}
    opt_colors.setdefault("sgg", figures.PALETTE[0])
    st.plotly_chart(
        figures.sweep_figure(
            df,
            key=sweep.plain_name(hp),
            colors_by_optimizer=opt_colors,
            log_x=sweep.wants_log_axis(df["value"]),
        ),
        key="sweep_fig",
    )
    tol = sweep.tolerance(df)
    for line in narrative.tolerance_sentences(tol, hp):
        st.markdown(f"- {line}")
    st.dataframe(
        df.assign(result=np.where(np.isfinite(df["final_loss"]), "", "diverged")).rename(
            columns={"value": hp, "final_loss": "final loss"}
        ),
        hide_index=True,
        key="sweep_table",
    )

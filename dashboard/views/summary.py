"""The Summary page: for stakeholders, how each run compares with the baseline, on one screen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import figures, narrative, report
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics import statistics
from dashboard.views.loss import loss_figures


def page(ctx: Ctx) -> None:
    ctx.prefetch(("steps", "evals"))
    data = {r: (ctx.df(r, "steps"), ctx.df(r, "evals")) for r in ctx.selected}
    infos = {
        r: {
            "name": ctx.labels[r],
            "optimizer": ctx.by_rel[r].optimizer,
            "status": ctx.status(r),
            "shadow": ctx.by_rel[r].shadow,
        }
        for r in ctx.selected
    }
    sums = cached(statistics.summarize_runs, ctx.key(("steps", "evals")), data, infos, ctx.baseline)
    base = sums[0]
    st.subheader(f"How do the runs compare with {ctx.base_name}?")
    st.caption(
        "Each run trained the same kind of model; they differ in the optimizer (the rule that "
        f"updates the model's weights) or its settings. **{ctx.base_name}** is the reference. "
        "SGG is an add-on to the standard AdamW optimizer that gives groups of similar weights "
        "their own learning-rate multiplier. Lower loss is better; fewer steps to reach the "
        "same loss means faster training."
    )
    for s in sums[1:]:
        loss_kind = "eval" if s.target_kind == "eval" else "train"
        loss = s.final_eval_loss if loss_kind == "eval" else s.final_train_loss
        bloss = base.final_eval_loss if loss_kind == "eval" else base.final_train_loss
        c0, c1, c2, c3, c4 = st.columns([2, 2, 2, 2, 2])
        c0.markdown(f"#### :material/trending_down: {s.name}")
        c1.metric(
            "Speed-up vs baseline",
            f"{s.speedup_steps:.2f}x" if np.isfinite(s.speedup_steps) else "never",
            help="How many times fewer steps this run needed to reach the baseline's final "
            "loss ('never': it did not reach it).",
        )
        delta = loss - bloss if np.isfinite(loss) and np.isfinite(bloss) else None
        c2.metric(
            f"Final {'validation' if loss_kind == 'eval' else 'training'} loss",
            f"{loss:.4g}" if np.isfinite(loss) else "n/a",
            delta=None if delta is None else f"{delta:+.3g} vs baseline",
            delta_color="inverse" if delta else "off",
        )
        spikes = s.loss_spikes - base.loss_spikes
        c3.metric(
            "Loss spikes",
            f"{s.loss_spikes}",
            delta=f"{spikes:+d} vs baseline",
            delta_color="inverse" if spikes else "off",
        )
        cv = s.grad_norm_cv - base.grad_norm_cv
        c4.metric(
            "Gradient-size variation (CV)",
            f"{s.grad_norm_cv:.0%}" if np.isfinite(s.grad_norm_cv) else "n/a",
            delta=(
                f"{(s.grad_norm_cv - base.grad_norm_cv) * 100:+.0f} pts vs baseline"
                if np.isfinite(s.grad_norm_cv) and np.isfinite(base.grad_norm_cv)
                else None
            ),
            delta_color="inverse" if np.isfinite(cv) and round(cv * 100) else "off",
        )
    text = narrative.sentences(sums, base.name)
    if len(sums) == 1:
        st.info("Pick one or more runs to compare in the sidebar.")
    for line in text:
        st.markdown(f"- {line}")
    table = statistics.summary_table(sums)
    st.dataframe(
        table,
        hide_index=True,
        key="summary_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4g")
            for c in table.columns
            if table[c].dtype.kind == "f"
        },
    )
    train_fig, eval_fig = loss_figures(ctx, smoothing=max(ctx.opts["smoothing"], 0.9))
    has_eval = any(np.isfinite(s.final_eval_loss) for s in sums)
    main_fig = eval_fig if has_eval else train_fig
    bars = pd.DataFrame({"run": [s.name for s in sums], "steps": [s.steps_to_target for s in sums]})
    bar_fig = figures.bar_figure(
        bars,
        "run",
        "steps",
        ctx.colors,
        title="Steps to reach the baseline's final loss<br><sup>fewer = faster</sup>",
        y_title="Steps",
        fmt=",.0f",
    )
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(main_fig, key="summary_loss")
    c2.plotly_chart(bar_fig, key="summary_bars")
    with st.expander("What the numbers mean"):
        st.markdown(narrative.definitions_markdown())

    def make_report() -> str:
        notes = [f"{term}: {text}" for term, text in narrative.DEFINITIONS]
        return report.build_report(
            f"Training runs compared with {ctx.base_name}",
            table,
            text,
            [main_fig, bar_fig, train_fig],
            notes,
        )

    st.download_button(
        "Download this summary as a report (HTML, opens offline)",
        make_report,
        file_name="sgg-summary.html",
        mime="text/html",
        key="report_download",
        on_click="ignore",
    )

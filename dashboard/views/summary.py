"""The Summary page: for stakeholders, whether each run or seed group beats the baseline, with
the uncertainty of every claim, on one screen."""

from __future__ import annotations

import streamlit as st

from dashboard import loader, narrative, report, verdicts
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.metrics import compare, groups, statistics
from dashboard.metrics.compare import Comparison
from dashboard.views import sweep as sweep_view
from dashboard.views.loss import eval_figure, train_figure

CARDS_UP_TO = 2  # beyond this many compared groups: one table and a short paragraph


def comparisons(ctx: Ctx) -> list[Comparison]:
    """Every compared series against the baseline series (the same objects the Sweep uses)."""
    ctx.prefetch(("steps", "evals"), ctx.series_rels())
    base_name, base_members = ctx.series[0]
    base = [ctx.facts(r) for r in base_members]
    return [
        compare.compare([ctx.facts(r) for r in members], base, name, base_name)
        for name, members in ctx.series[1:]
    ]


def _delta(d, lower: str, higher: str, base: str, fmt=verdicts.signed) -> dict:
    """The card's delta: the verdict, coloured (with an arrow) only when the interval excludes
    zero, grey otherwise; the baseline's value beside it."""
    word = narrative.TABLE_WORDS.get(*(2 * [narrative.verdict_word(d, lower, higher)]))
    out = {"delta_description": f"vs {base}"}
    if d.detected:
        return {**out, "delta": f"{fmt(d.estimate)}: {word}", "delta_color": "inverse"}
    # the badge is narrow at 1,280 px: its reason is in the sentences below the cards
    return {**out, "delta": word.split(" (")[0], "delta_color": "off", "delta_arrow": "off"}


def cards(c: Comparison) -> None:
    st.markdown(f"#### {c.name}")
    # two cards a row: at 1,280 px four in a row left no room for the baseline's value
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    c1.metric(
        f"Loss at step {c.at_step:,}",
        narrative.num(c.loss),
        **_delta(c.loss_diff, "better", "worse", narrative.num(c.base_loss)),
        help=f"{c.kind.capitalize()} loss. {narrative.definition('95% interval')}",
        border=True,
    )
    if c.reached_k:
        reached = verdicts.reached_text(c.reached_k, c.n)
        c2.metric(
            "Steps to match",
            narrative.steps_text(c.steps_to_target),
            **_delta(
                c.steps_diff,
                "faster",
                "slower",
                narrative.steps_text(c.base_steps_to_target),
                lambda v: f"{v:+,.0f}",
            ),
            help=f"Steps to reach the baseline's loss: {reached}; steps over the seeds that "
            "reached it on both sides. " + narrative.definition("steps to the baseline's loss"),
            border=True,
        )
    else:
        c2.metric(
            "Steps to match",
            f"> {c.lengths[0]:,}",
            delta=f"{c.end_gap:+.1%} at the end" if c.end_gap == c.end_gap else "not reached",
            help=f"The baseline's loss was not reached in {c.lengths[0]:,} steps "
            f"({verdicts.reached_text(0, c.n)}); below the value: the gap of the "
            "run's (mean) loss at its last evaluation to the baseline's loss.",
            delta_color="off",
            delta_arrow="off",
            border=True,
        )
    # gradient norms before and after clipping: the card counts (and compares) loss spikes only
    apart = (
        f" Gradient spikes: {narrative.CANNOT_TELL}: {c.grad_mismatch}." if c.grad_mismatch else ""
    )
    c3.metric(
        "Loss spikes per run" if c.grad_mismatch else "Spikes per run",
        narrative.count(c.spikes),
        **_delta(c.spikes_diff, "fewer", "more", narrative.count(c.base_spikes)),
        help=narrative.definition("spike") + apart,
        border=True,
    )
    c4.metric(
        "Gradient-size variation",
        narrative.pct(c.cv),
        **_delta(
            c.cv_diff,
            "steadier",
            "less steady",
            narrative.pct(c.base_cv),
            lambda v: f"{v * 100:+.0f} pts",
        ),
        help=narrative.definition("gradient-size variation (CV)"),
        border=True,
    )


def verify_ui(ctx: Ctx) -> None:
    """Check every chunk of the runs on show whole, once, before anything is read (a damaged
    chunk in a table or column no view reads is then named at the top like any other); a
    caption while large runs are still being checked."""
    runs = [ctx.by_rel[r] for r in ctx.series_rels()]
    checked, total = loader.verify_runs(runs, ctx.root)
    if checked < total:
        st.caption(
            f"Data files checked for damage so far: {checked:,} of the {total:,} of the runs "
            "on show (the rest as the page is used); damage found is named at the top."
        )


def page(ctx: Ctx) -> None:
    verify_ui(ctx)
    comps = comparisons(ctx)
    base_name = narrative.heading_name(ctx.series[0][0])
    st.subheader(f"How do the runs compare with {base_name}?")
    st.caption(
        f"**{base_name}** is the reference. Lower loss is better; fewer steps to reach the "
        "same loss means faster training. "
        "A verdict (better, worse, faster, steadier) is given only when the 95% interval of "
        "the difference excludes zero."
    )
    if not comps:
        st.info("Pick one or more runs to compare in the sidebar.")
    unpooled = narrative.unpooled_note(ctx.series, ctx.groups, ctx.group_of)
    if not ctx.opts.get("pool", True) and unpooled:
        st.info(unpooled)
    text: list[str] = []
    if len(comps) <= CARDS_UP_TO:
        for c in comps:
            lines = narrative.comparison_sentences(c)
            text += lines
            note = narrative.like_for_like(c)
            if note:
                st.warning(note)
            cards(c)
            for line in lines:
                if line != note:
                    st.markdown(f"- {line}")
    else:
        text = [narrative.overview(comps)]
        st.markdown(text[0])
    table = narrative.comparison_table(comps, comps[0] if comps else None)
    if comps:
        # static tables (text wraps): every column visible at 1,280 px
        st.table(table, hide_index=True)
        st.markdown("**The optimizer's cost, and what is not like for like**")
        st.table(narrative.cost_table(comps, comps[0]), hide_index=True)
        st.markdown("**Speed and steadiness**")
        st.table(narrative.detail_table(comps, comps[0]), hide_index=True)
        st.caption(f"{narrative.STEPS_NOTE} {narrative.SPIKES_NOTE}")
    main_fig = (
        eval_figure(ctx)
        if comps and comps[0].kind == "validation"
        else train_figure(ctx, smoothing=max(ctx.opts["smoothing"], 0.9))
    )
    st.plotly_chart(main_fig, key="summary_loss")
    runs = [r for _, members in ctx.series for r in members]
    sums = cached(
        statistics.summarize_runs,
        ctx.key(("steps", "evals"), runs),
        {r: (ctx.df(r, "steps"), ctx.df(r, "evals")) for r in runs},
        {
            r: {
                "name": ctx.labels[r],
                "optimizer": groups.optimizer_name(ctx.by_rel[r].meta),
                "status": ctx.status(r),
                "shadow": ctx.by_rel[r].shadow,
            }
            for r in runs
        },
        ctx.baseline,
    )
    per_run = statistics.summary_table(sums)
    with st.expander(f"Every run's numbers ({len(sums)} runs)"):
        st.dataframe(
            per_run,
            hide_index=True,
            key="summary_table",
            column_config={
                c: st.column_config.NumberColumn(format="%.4g")
                for c in per_run.columns
                if per_run[c].dtype.kind == "f"
            },
        )
        apart = narrative.grad_norms_apart(
            [(name, [ctx.by_rel[r].meta for r in members]) for name, members in ctx.series]
        )
        if apart:  # each run's own count, side by side: not a comparison
            st.caption(apart)

    def make_report() -> str:
        sections = []
        if comps:
            sections.append(("Speed and steadiness", narrative.detail_table(comps, comps[0]), []))
        head, sweep_table, sweep_lines = sweep_view.answer(ctx)
        if head:
            sections.append((head, sweep_table, [*sweep_lines, narrative.SWEEP_RESULT_NOTE]))
        return report.build_report(
            f"Training runs compared with {base_name}",
            table.merge(narrative.cost_table(comps, comps[0]), on="Group") if comps else per_run,
            text,
            [main_fig],
            [f"{term}: {what}" for term, what in narrative.DEFINITIONS],
            sections,
        )

    st.download_button(
        "Download this summary as a report (HTML, opens offline)",
        make_report,
        file_name="sgg-summary.html",
        mime="text/html",
        key="report_download",
        on_click="ignore",
    )

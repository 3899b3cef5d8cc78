"""The Summary page: for stakeholders, whether each run or seed group beats the baseline, with
the uncertainty of every claim, on one screen."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import cards, loader, narrative, report, sweep_report
from dashboard.cache import cached
from dashboard.charts import eval_figure, train_figure
from dashboard.context import Ctx
from dashboard.metrics import compare, statistics
from dashboard.metrics.compare import Comparison

CARDS_UP_TO = 2  # beyond this many compared groups: one table and a short paragraph


def page(ctx: Ctx) -> None:
    _verify(ctx)
    comps = comparisons(ctx)
    base_name = narrative.heading_name(ctx.selection.series[0][0])
    _headline(ctx, comps, base_name)
    text = _verdicts(comps)
    _tables(comps)
    fig = _loss_chart(ctx, comps)
    per_run = _every_run(ctx)
    _download(ctx, comps, base_name, text, fig, per_run)


def comparisons(ctx: Ctx) -> list[Comparison]:
    """Every compared series against the baseline series (the same objects the Sweep uses)."""
    sel, read = ctx.selection, ctx.reader
    read.prefetch(("steps", "evals"), sel.series_rels())
    base_name, base_members = sel.series[0]
    base = [read.facts(r) for r in base_members]
    return [
        compare.compare([read.facts(r) for r in members], base, name, base_name)
        for name, members in sel.series[1:]
    ]


def _verify(ctx: Ctx) -> None:
    """Check every chunk of the runs on show whole, once (a damaged chunk in a table or column
    no view reads is then named at the top like any other): what the Summary reads now, the
    rest in the background; a caption says how far the check is, and what it found (the page
    redraws when it is done)."""
    sel = ctx.selection
    shown = [sel.by_rel[r] for r in sel.series_rels()]
    ours = [r for r in shown if r.readable and not r.meta.get("source")]  # what verify_runs checks
    checked, total = loader.verify_runs(ours, sel.root)
    if total:
        text = damage_check_text(checked, total, len(ours), _damaged_files(ours))
        if len(ours) < len(shown):
            text += f" {len(shown) - len(ours)} other run(s) on show: {FOREIGN_CHECK}"
        st.caption(text)


FOREIGN_CHECK = "read from another tool's logs, which are checked as they are read."


def _damaged_files(runs: list[loader.Run]) -> int:
    return len({d for r in runs for d in (*r.damage, *loader.damage_found(r))})


def damage_check_text(checked: int, total: int, runs: int, damaged: int) -> str:
    """Where the damage check of the runs on show stands, in files (not runs)."""
    of = f"{total:,} data file{'s' if total != 1 else ''} of the {runs:,} run(s) on show"
    found = (
        f"{damaged:,} damaged file{'s' if damaged != 1 else ''}, named at the top (the rows "
        "in them are left out of every number)"
        if damaged
        else "none of them damaged so far"
        if checked < total
        else "none of them damaged"
    )
    if checked < total:
        return (
            f"Checked for damage so far: {checked:,} of the {of} ({found}). Every number on "
            "this page comes from checked files (the steps and evaluations of each run on "
            "show); the rest are checked in the background, and the page redraws when done."
        )
    return f"All {of} checked for damage: {found}."


def _headline(ctx: Ctx, comps: list[Comparison], base_name: str) -> None:
    """The question, how to read the answers, and what is not pooled."""
    sel = ctx.selection
    st.subheader(f"How do the runs compare with {base_name}?")
    st.caption(
        f"**{base_name}** is the reference. Lower loss is better; fewer steps to reach the "
        "same loss means faster training. "
        "A verdict (better, worse, faster, steadier) is given only when the 95% interval of "
        "the difference excludes zero."
    )
    if not comps:
        st.info("Pick one or more runs to compare in the sidebar.")
    unpooled = narrative.unpooled_note(sel.series, sel.groups, sel.group_of)
    if not ctx.options.pool and unpooled:
        st.info(unpooled)


def _verdicts(comps: list[Comparison]) -> list[str]:
    """Cards and sentences per comparison, or, beyond CARDS_UP_TO, one paragraph; the text
    shown (the report repeats it)."""
    if len(comps) > CARDS_UP_TO:
        text = narrative.overview(comps)
        st.markdown(text)
        return [text]
    shown: list[str] = []
    for c in comps:
        lines = narrative.comparison_sentences(c)
        shown += lines
        note = narrative.like_for_like(c)
        if note:
            st.warning(note)
        _cards(c)
        for line in lines:
            if line != note:
                st.markdown(f"- {line}")
    return shown


def _cards(c: Comparison) -> None:
    st.markdown(f"#### {c.name}")
    # two cards a row: at 1,280 px four in a row left no room for the baseline's value
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    for col, card in zip((c1, c2, c3, c4), cards.comparison_cards(c), strict=True):
        col.metric(card.label, card.value, help=card.help, border=True, **card.delta)


def _tables(comps: list[Comparison]) -> None:
    """The comparison, cost and detail tables (static: text wraps, every column visible at
    1,280 px)."""
    if not comps:
        return
    st.table(narrative.comparison_table(comps, comps[0]), hide_index=True)
    st.markdown("**The optimizer's cost, and what is not like for like**")
    st.table(narrative.cost_table(comps, comps[0]), hide_index=True)
    st.markdown("**Speed and steadiness**")
    st.table(narrative.detail_table(comps, comps[0]), hide_index=True)
    st.caption(f"{narrative.STEPS_NOTE} {narrative.SPIKES_NOTE}")


def _loss_chart(ctx: Ctx, comps: list[Comparison]) -> go.Figure:
    """The loss the verdicts read: validation when every run has it, else training (smoothed
    at least as much as a headline needs)."""
    if comps and comps[0].kind == "validation":
        fig = eval_figure(ctx)
    else:
        fig = train_figure(ctx, smoothing=ctx.options.headline_smoothing)
    st.plotly_chart(fig, key="summary_loss")
    return fig


def _every_run(ctx: Ctx) -> pd.DataFrame:
    """Every run's own numbers, in an expander; the table (the report falls back on it)."""
    sel, read = ctx.selection, ctx.reader
    runs = sel.series_rels()
    sums = cached(
        statistics.summarize_runs,
        read.key(("steps", "evals"), runs),
        {r: (read.df(r, "steps"), read.df(r, "evals")) for r in runs},
        {r: _run_info(ctx, r) for r in runs},
        sel.baseline,
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
            [(name, [sel.meta(r) for r in members]) for name, members in sel.series]
        )
        if apart:  # each run's own count, side by side: not a comparison
            st.caption(apart)
    return per_run


def _run_info(ctx: Ctx, rel: str) -> dict:
    """What the per-run table says of a run besides its numbers."""
    sel = ctx.selection
    run = sel.by_rel[rel]
    return {
        "name": sel.labels[rel],
        "optimizer": run.optimizer,
        "status": sel.status(rel),
        "shadow": run.shadow,
    }


def _download(
    ctx: Ctx,
    comps: list[Comparison],
    base_name: str,
    text: list[str],
    fig: go.Figure,
    per_run: pd.DataFrame,
) -> None:
    """The summary as an offline HTML report (built only when the button is clicked)."""

    def make_report() -> str:
        sections = []
        if comps:
            sections.append(("Speed and steadiness", narrative.detail_table(comps, comps[0]), []))
        head, sweep_table, sweep_lines = sweep_report.answer(ctx.selection, ctx.reader)
        if head:
            sections.append((head, sweep_table, [*sweep_lines, narrative.SWEEP_RESULT_NOTE]))
        table = narrative.comparison_table(comps, comps[0]) if comps else None
        return report.build_report(
            f"Training runs compared with {base_name}",
            table.merge(narrative.cost_table(comps, comps[0]), on="Group") if comps else per_run,
            text,
            [fig],
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

"""The Sweep page: does SGG help across the settings tried, and which optimizer is easier to tune?

Loss at the end against the varied setting per optimizer (seed groups pooled: the mean over
distinct seeds, a repeat of a seed counted once and named; bars from the lowest to the highest
seed),
SGG against the other optimizer at every value (win / tie / loss with intervals, the same
comparison as the Summary), the range within 5% of each optimizer's best, edge warnings.
Numbers and words from `sweep_report` (which the Summary's report uses too).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import figures, narrative, sweep_report
from dashboard.context import Ctx
from dashboard.metrics import sweep, sweep_groups
from dashboard.styles import OPTIMIZER_COLORS


def page(ctx: Ctx) -> None:
    picked = _pick_setting(ctx)
    if picked is None:
        return
    rels, hp = picked
    ctx.reader.prefetch(("steps", "evals"), rels)
    facts = {r: ctx.reader.facts(r) for r in rels}
    df = sweep_report.sweep_frame(facts, hp)
    _chart(df, hp)
    _head_to_head(facts, hp)
    _tolerance(facts, df, hp)
    _points(df, hp)


def _pick_setting(ctx: Ctx) -> tuple[list[str], str] | None:
    """(runs compared, the varied setting) as the reader picks them, the runs left out said;
    None (and why) when there is no sweep to show."""
    sel = ctx.selection
    use_all = st.toggle(
        "Use every run in the folder (not only the selected ones)", value=True, key="sweep_all"
    )
    rels = [r.rel for r in sel.runs if r.readable] if use_all else sel.selected
    keys = sweep.varying_hyperparameters({rel: sel.meta(rel) for rel in rels})
    if not keys:
        st.info(
            "These runs do not differ in any numeric setting, so there is no sweep to show. "
            "A sweep is a set of runs that differ in one setting, e.g. the learning rate."
        )
        return None
    hp = st.selectbox(
        "Setting that was varied", keys, key="sweep_key", format_func=sweep.plain_name
    )
    rels, left_out, unfinished = sweep_report.sweep_runs(sel, rels, hp)
    differ, unchecked = sweep_report.left_out_reasons(sel, left_out, rels + unfinished, hp)
    if differ:
        st.caption(
            "Compared: the runs whose other settings are identical (any seed). Left out (they "
            "differ in more than this setting): " + ", ".join(sel.labels[r] for r in differ)
        )
    if unchecked:
        st.caption(
            "Left out, as they cannot be checked to differ in this setting alone (they do not "
            "record settings the compared runs have; the Runs tab lists which): "
            + ", ".join(sel.labels[r] for r in unchecked)
        )
    if unfinished:
        st.caption(
            "Still training or stopped mid-way, so their loss at the end would mislead; left "
            "out: " + ", ".join(f"{sel.labels[r]} ({sel.status(r)})" for r in unfinished)
        )
    if len({sweep.hyperparameter_value(sel.meta(r), hp) for r in rels}) < 2:
        st.info("No group of runs differs only in this setting.")
        return None
    return rels, hp


def _chart(df: pd.DataFrame, hp: str) -> None:
    name = sweep.plain_name(hp)
    kind, at = (df["kind"].iloc[0], int(df["at_step"].iloc[0])) if len(df) else ("", 0)
    fig = figures.sweep_figure(
        df,
        key=name,
        colors_by_optimizer=OPTIMIZER_COLORS,
        log_x=sweep.wants_log_axis(df["value"], hp),
    )
    fig.update_layout(title={"text": f"{kind.capitalize()} loss at step {at:,} against {name}"})
    st.plotly_chart(fig, key="sweep_fig")


def _head_to_head(facts: dict, hp: str) -> None:
    """SGG against AdamW at every value both ran, and the reference groups the setting does
    not apply to."""
    name = sweep.plain_name(hp)
    pairs = sweep_groups.head_to_head(facts, hp)
    if pairs:
        st.markdown(f"**SGG against AdamW at each {name}**")
        notes = sweep_report.head_to_head_notes(facts, hp)
        st.table(sweep_report.head_to_head_table(pairs, hp, notes), hide_index=True)
        st.caption(narrative.SWEEP_RESULT_NOTE)
    refs = sweep_groups.references(facts, hp)
    if refs:
        st.caption(
            f"{', '.join(refs)} does not use {name}: its runs' {name} only configured an "
            "observe-only shadow clustering, so they are one reference group at every value, "
            "not points of the sweep."
        )


def _tolerance(facts: dict, df: pd.DataFrame, hp: str) -> None:
    for line in sweep_report.tolerance_lines(facts, hp):
        st.markdown(f"- {line}")
    for warning in sweep_report.edge_warnings(df, hp):
        st.warning(warning)


def _points(df: pd.DataFrame, hp: str) -> None:
    st.dataframe(
        sweep_report.points_table(df, hp),
        hide_index=True,
        key="sweep_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4g")
            for c in ("mean loss (over seeds)", "lowest seed", "highest seed")
        },
    )

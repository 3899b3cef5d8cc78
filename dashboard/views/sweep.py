"""The Sweep page: does SGG help across the settings tried, and which optimizer is easier to tune?

Loss at the end against the varied setting per optimizer (seed groups pooled, min-max bars),
SGG against the other optimizer at every value (win / tie / loss with intervals, the same
comparison as the Summary), the range within 5% of each optimizer's best, edge warnings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import figures, narrative, verdicts
from dashboard.context import Ctx
from dashboard.metrics import groups, health, sweep, sweep_groups

WITHIN = 0.05


def _result(c, word: str) -> str:
    """The Summary's verdict word for the same pair of groups (one vocabulary)."""
    if c.diverged_at is not None:
        return verdicts.failed_text(c.diverged_at, "SGG")
    if c.base_diverged_at is not None:
        return verdicts.failed_text(c.base_diverged_at, "AdamW")
    return word


def head_to_head_table(pairs, key: str = "") -> pd.DataFrame:
    """One row per value: both groups' loss, the difference with its interval, the result."""
    rows = []
    for v, c in pairs:
        word = narrative.verdict_word(c.loss_diff, "better", "worse")
        d = c.loss_diff
        failed = c.diverged_at is not None or c.base_diverged_at is not None
        rows.append(
            {
                "setting": groups.fmt_lr(v) if key.rsplit(".", 1)[-1] == "lr" else f"{v:g}",
                "SGG": "diverged" if c.diverged_at is not None else narrative.num(c.loss),
                "AdamW": "diverged"
                if c.base_diverged_at is not None
                else narrative.num(c.base_loss),
                "SGG - AdamW (± 95% interval)": "" if failed else narrative.diff_text(d),
                "seeds (SGG / AdamW)": f"{c.n} / {c.n_base}",
                "result for SGG": _result(c, word),
                "smallest detectable (80% power)": "" if failed else verdicts.detectable_text(d),
            }
        )
    return pd.DataFrame(rows)


def _value_text(v: float, key: str) -> str:
    return groups.fmt_lr(v) if key.rsplit(".", 1)[-1] == "lr" else f"{v:g}"


def sweep_runs(ctx: Ctx, rels: list[str], hp: str) -> tuple[list[str], list[str], list[str]]:
    """(runs compared, runs left out because they differ in more than `hp`, unfinished runs
    left out): the one selection the page and the report use."""
    metas = {rel: ctx.by_rel[rel].meta for rel in rels}
    members = sweep.sweep_members(metas, hp)
    left_out = [r for r in rels if r not in members]
    unfinished = [r for r in members if ctx.status(r) in (health.RUNNING, health.STOPPED)]
    return [r for r in members if r not in unfinished], left_out, unfinished


def answer(ctx: Ctx, hp: str | None = None) -> tuple[str, pd.DataFrame, list[str]]:
    """The Sweep's answer for the report: (heading, SGG vs AdamW per value, tolerance
    sentences) over every readable run, for `hp` (default: the first varied setting)."""
    rels = [r.rel for r in ctx.all_runs if r.readable]
    keys = sweep.varying_hyperparameters({r: ctx.by_rel[r].meta for r in rels})
    hp = hp or (keys[0] if keys else None)
    if hp is None:
        return "", pd.DataFrame(), []
    rels, _, _ = sweep_runs(ctx, rels, hp)
    facts = {r: ctx.facts(r) for r in rels}
    table = head_to_head_table(sweep_groups.head_to_head(facts, hp), hp)
    lines = narrative.tolerance_sentences(
        sweep_groups.tolerance_claims(facts, hp, within=WITHIN), hp, within=WITHIN
    )
    return f"Sweep: SGG against AdamW at each {sweep.plain_name(hp)}", table, lines


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
        format_func=sweep.plain_name,
    )
    rels, left_out, unfinished = sweep_runs(ctx, rels, hp)
    if left_out:
        st.caption(
            "Compared: the runs whose other settings are identical (any seed). Left out (they "
            "differ in more than this setting): " + ", ".join(ctx.labels[r] for r in left_out)
        )
    if unfinished:
        st.caption(
            "Still training or stopped mid-way, so their loss at the end would mislead; left "
            "out: " + ", ".join(f"{ctx.labels[r]} ({ctx.status(r)})" for r in unfinished)
        )
    if len({sweep.hyperparameter_value(metas[r], hp) for r in rels}) < 2:
        st.info("No group of runs differs only in this setting.")
        return
    ctx.prefetch(("steps", "evals"), rels)
    facts = {r: ctx.facts(r) for r in rels}
    df = sweep_groups.sweep_frame(facts, hp)
    name = sweep.plain_name(hp)
    opt_colors = {"adamw": figures.BASELINE_COLOR, "sgg": figures.PALETTE[0]}
    kind, at = (df["kind"].iloc[0], int(df["at_step"].iloc[0])) if len(df) else ("", 0)
    fig = figures.sweep_figure(
        df, key=name, colors_by_optimizer=opt_colors, log_x=sweep.wants_log_axis(df["value"], hp)
    )
    fig.update_layout(title={"text": f"{kind.capitalize()} loss at step {at:,} against {name}"})
    st.plotly_chart(fig, key="sweep_fig")
    pairs = sweep_groups.head_to_head(facts, hp)
    if pairs:
        st.markdown(f"**SGG against AdamW at each {name}**")
        st.table(head_to_head_table(pairs, hp), hide_index=True)
        st.caption(narrative.SWEEP_RESULT_NOTE)
    refs = sweep_groups.references(facts, hp)
    if refs:
        st.caption(
            f"{', '.join(refs)} does not use {name}: its runs' {name} only configured an "
            "observe-only shadow clustering, so they are one reference group at every value, "
            "not points of the sweep."
        )
    tol = sweep.tolerance(df, within=WITHIN)
    for line in narrative.tolerance_sentences(
        sweep_groups.tolerance_claims(facts, hp, within=WITHIN), hp, within=WITHIN
    ):
        st.markdown(f"- {line}")
    tried = df.groupby("optimizer")["value"].nunique()
    for opt, best in sweep.edge_warnings(tol, df["value"]):
        if tried.get(opt, 0) < 2:  # one value tried: it is not an edge of a range
            continue
        st.warning(
            f"The best {name} for **{opt}** ({_value_text(best, hp)}) is at the edge of the "
            "range tried: a better value may lie outside it, so its best result may be "
            "understated."
        )
    st.dataframe(
        df.assign(result=np.where(df["diverged"] > 0, "diverged", ""))
        .drop(columns=["kind", "at_step"])
        .rename(
            columns={
                "value": name,
                "final_loss": "mean loss",
                "lo": "min",
                "hi": "max",
                "n": "seeds",
                "name": "runs",
            }
        ),
        hide_index=True,
        key="sweep_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4g") for c in ("mean loss", "min", "max")
        },
    )

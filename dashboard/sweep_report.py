"""The Sweep's answer: SGG against AdamW at each value of a varied setting, and how widely each
optimizer's setting can vary. The Sweep tab draws it and the Summary's report carries it, from
the same functions (one selection of runs, one table, one set of sentences).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard import narrative, verdicts
from dashboard.metrics import groups, health, sweep, sweep_groups
from dashboard.metrics.compare import Comparison
from dashboard.selection import Selection
from dashboard.tables import TableReader

WITHIN = 0.05  # "within 5% of the best loss": the tolerance the Sweep reports


def value_text(v: float, key: str) -> str:
    """A value of the swept setting as the page writes it (a learning rate as 4e-3)."""
    return groups.fmt_lr(v) if key.rsplit(".", 1)[-1] == "lr" else f"{v:g}"


def _result(c: Comparison, word: str) -> str:
    """The Summary's verdict word for the same pair of groups (one vocabulary)."""
    if c.diverged_at is not None:
        return verdicts.failed_text(c.diverged_at, "SGG")
    if c.base_diverged_at is not None:
        return verdicts.failed_text(c.base_diverged_at, "AdamW")
    return word


def head_to_head_table(pairs: list[tuple[float, Comparison]], key: str = "") -> pd.DataFrame:
    """One row per value: both groups' loss, the difference with its interval, the result."""
    rows = []
    for v, c in pairs:
        word = narrative.verdict_word(c.loss_diff, "better", "worse")
        d = c.loss_diff
        failed = c.diverged_at is not None or c.base_diverged_at is not None
        rows.append(
            {
                "setting": value_text(v, key),
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


def sweep_runs(sel: Selection, rels: list[str], hp: str) -> tuple[list[str], list[str], list[str]]:
    """(runs compared, runs left out because they differ in more than `hp`, unfinished runs
    left out): the one selection the page and the report use."""
    metas = {rel: sel.meta(rel) for rel in rels}
    members = sweep.sweep_members(metas, hp)
    left_out = [r for r in rels if r not in members]
    unfinished = [r for r in members if sel.status(r) in (health.RUNNING, health.STOPPED)]
    return [r for r in members if r not in unfinished], left_out, unfinished


def left_out_reasons(
    sel: Selection, left_out: list[str], members: list[str], hp: str
) -> tuple[list[str], list[str]]:
    """(runs left out that differ from the compared runs in another setting both record, runs
    left out that cannot be checked: they do not record a setting the compared runs have).
    A setting one run does not record is neither the same nor a difference, so such a run is
    not said to differ."""
    hp_name = sweep.plain_name(hp)
    differ, unchecked = [], []
    for r in left_out:
        found = [
            [d for d in groups.differing_settings(sel.meta(r), sel.meta(m)) if d[0] != hp_name]
            for m in members
        ]
        (differ if not members or all(found) else unchecked).append(r)
    return differ, unchecked


def tolerance_lines(facts: dict, hp: str) -> list[str]:
    """The sentences on how widely each optimizer's `hp` can vary within WITHIN of its best."""
    claims = sweep_groups.tolerance_claims(facts, hp, within=WITHIN)
    return narrative.tolerance_sentences(claims, hp, within=WITHIN)


def answer(sel: Selection, reader: TableReader, hp: str | None = None) -> tuple:
    """(heading, SGG vs AdamW per value, tolerance sentences) over every readable run, for
    `hp` (default: the first varied setting); ("", empty, []) when nothing was varied."""
    rels = [r.rel for r in sel.runs if r.readable]
    keys = sweep.varying_hyperparameters({r: sel.meta(r) for r in rels})
    hp = hp or (keys[0] if keys else None)
    if hp is None:
        return "", pd.DataFrame(), []
    rels, _, _ = sweep_runs(sel, rels, hp)
    facts = {r: reader.facts(r) for r in rels}
    table = head_to_head_table(sweep_groups.head_to_head(facts, hp), hp)
    lines = tolerance_lines(facts, hp)
    return f"Sweep: SGG against AdamW at each {sweep.plain_name(hp)}", table, lines


def edge_warnings(df: pd.DataFrame, hp: str) -> list[str]:
    """A warning per optimizer whose best value (`sweep_groups.sweep_frame` rows) is at the
    edge of the range tried, when it tried two values or more."""
    name = sweep.plain_name(hp)
    tried = df.groupby("optimizer")["value"].nunique()
    out = []
    for opt, best in sweep.edge_warnings(sweep.tolerance(df, within=WITHIN), df["value"]):
        if tried.get(opt, 0) < 2:  # one value tried: it is not an edge of a range
            continue
        out.append(
            f"The best {name} for **{opt}** ({value_text(best, hp)}) is at the edge of the "
            "range tried: a better value may lie outside it, so its best result may be "
            "understated."
        )
    return out


def points_table(df: pd.DataFrame, hp: str) -> pd.DataFrame:
    """The sweep's points (`sweep_groups.sweep_frame`) as the page lists them."""
    return (
        df.assign(result=np.where(df["diverged"] > 0, "diverged", ""))
        .drop(columns=["kind", "at_step"])
        .rename(
            columns={
                "value": sweep.plain_name(hp),
                "final_loss": "mean loss",
                "lo": "min",
                "hi": "max",
                "n": "seeds",
                "name": "runs",
            }
        )
    )

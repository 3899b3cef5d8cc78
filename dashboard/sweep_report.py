"""The Sweep's answer: SGG against AdamW at each value of a varied setting, and how widely each
optimizer's setting can vary. The Sweep tab draws it and the Summary's report carries it, from
the same functions (one selection of runs, one table, one set of sentences).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard import narrative, verdicts
from dashboard.metrics import groups, health, intervals, sweep, sweep_groups
from dashboard.metrics.compare import (
    Comparison,
    RunFacts,
    common_step,
    diff_by_seed,
    loss_at,
    loss_kind,
    seed_key,
)
from dashboard.metrics.intervals import Difference
from dashboard.metrics.sweep_groups import Tolerance
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


NO_REPEATS = "none: every run is a seed of its own"


def head_to_head_table(
    pairs: list[tuple[float, Comparison]], key: str = "", notes: dict[float, str] | None = None
) -> pd.DataFrame:
    """One row per value: both groups' loss (each the mean over distinct seeds), the difference
    with its interval, the result, and beside the seeds the runs not counted as seeds of their
    own (`notes`: {value: text}, `head_to_head_notes`)."""
    rows = []
    for v, c in pairs:
        word = narrative.verdict_word(c.loss_diff, "better", "worse")
        d = c.loss_diff
        failed = c.diverged_at is not None or c.base_diverged_at is not None
        row = {
            "setting": value_text(v, key),
            "SGG": "diverged" if c.diverged_at is not None else narrative.num(c.loss),
            "AdamW": "diverged" if c.base_diverged_at is not None else narrative.num(c.base_loss),
            "SGG - AdamW (± 95% interval)": "" if failed else narrative.diff_text(d),
            "seeds (SGG / AdamW)": f"{c.n} / {c.n_base}",
        }
        if notes is not None:
            row["runs not counted as seeds"] = notes.get(v) or NO_REPEATS
        row["result for SGG"] = _result(c, word)
        row["smallest detectable (80% power)"] = "" if failed else verdicts.detectable_text(d)
        rows.append(row)
    return pd.DataFrame(rows)


def repeat_notes(fs: list[RunFacts]) -> list[str]:
    """The runs of a group not counted as a seed of their own, named: a repeat of a seed
    already in the group (counted once with it: their mean), a run without a recorded seed."""
    first: dict[str, str] = {}
    out, unseeded = [], []
    for f in fs:
        k = seed_key(f)
        if k is None:
            unseeded.append(f.name)
        elif k in first:
            out.append(f"{f.name} repeats seed {k} of {first[k]}: counted once with it, their mean")
        else:
            first[k] = f.name
    if unseeded and first:
        out.append(f"{', '.join(unseeded)}: no recorded seed, left out (may repeat a seed)")
    elif len(unseeded) > 1:
        out.append(f"{', '.join(unseeded)}: no recorded seed, counted as one seed (their mean)")
    return out


def head_to_head_notes(facts: dict[str, RunFacts], hp: str) -> dict[float, str]:
    """{value: the runs of SGG's and AdamW's groups at it not counted as seeds, named}."""
    points = sweep_groups.sweep_points(facts, hp)
    refs = sweep_groups.references(facts, hp)
    out: dict[float, str] = {}
    fixed = [n for rids in refs.values() for n in repeat_notes([facts[r] for r in rids])]
    for v in sorted({v for _, v in points}):
        groups_at = [rids for (_, x), rids in sorted(points.items()) if x == v]
        found = [n for rids in groups_at for n in repeat_notes([facts[r] for r in rids])]
        out[v] = "; ".join(found + fixed)
    return out


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


def point_losses(
    facts: dict[str, RunFacts], hp: str
) -> dict[tuple[str, float], tuple[list[RunFacts], list[float]]]:
    """{(optimizer, value): (its runs, their loss at the step every run of the sweep reached,
    NaN for a diverged run)}: what `sweep_groups` reads for the frame and the tolerance."""
    points = sweep_groups.sweep_points(facts, hp)
    everyone = [facts[r] for rids in points.values() for r in rids]
    if not everyone:
        return {}
    kind = loss_kind(everyone)
    healthy = [f for f in everyone if f.first_nan_step is None]
    at = common_step(healthy or everyone, kind)
    out = {}
    for p, rids in points.items():
        fs = [facts[r] for r in rids]
        out[p] = (
            fs,
            [math.nan if f.first_nan_step is not None else loss_at(f, at, kind)[0] for f in fs],
        )
    return out


def tolerance_lines(facts: dict, hp: str) -> list[str]:
    """The sentences on how widely each optimizer's `hp` can vary within WITHIN of its best:
    each value's gap to the best in % with its 95% interval, and the words the interval
    allows ('cannot tell' only when it holds gaps both under and over WITHIN, and why)."""
    claims = sweep_groups.tolerance_claims(facts, hp, within=WITHIN)
    losses = point_losses(facts, hp)
    out = [_tolerance_line(t, losses, hp) for t in claims]
    ok = [
        t for t in claims if np.isfinite(t.best_loss) and len(t.within + t.unsure + t.outside) > 1
    ]
    if len(ok) == 2:
        out.append(_wider_range(ok, hp))
    return out


def _wider_range(ok: list[Tolerance], hp: str) -> str:
    """'X tolerates the wider range' only when X's sure range is wider than anything the
    other's could be."""
    name = sweep.plain_name(hp)
    a, b = ok
    for x, y in ((a, b), (b, a)):
        if x.sure_width > y.possible_width:
            return (
                f"**{x.optimizer}** tolerates a wider range of {name} than {y.optimizer}: "
                f"{x.sure_width:.3g}x beyond noise, against at most {y.possible_width:.3g}x."
            )
    return (
        f"Which optimizer tolerates the wider range of {name} cannot be told from these seeds: "
        "their ranges overlap once the values that cannot be told apart from the best are counted."
    )


def _pct(x: float, sign: bool = True) -> str:
    """A share in % at two significant figures: +18%, -0.026%."""
    if abs(x) >= 10:
        return f"{x:+.0f}%" if sign else f"{x:.0f}%"
    return f"{x:+.2g}%" if sign else f"{x:.2g}%"


def _tolerance_line(t: Tolerance, losses: dict, hp: str) -> str:
    """One optimizer's sentence: its best value, then every other value's gap to it."""
    name = sweep.plain_name(hp)
    if not np.isfinite(t.best_loss):
        return f"**{t.optimizer}**: every value tried diverged."
    tried = sorted(t.within + t.unsure + t.outside + t.diverged)
    best = value_text(t.best_value, hp)
    if len(tried) < 2:
        return (
            f"**{t.optimizer}** was tried at one {name} only ({best}): how far it could vary "
            "cannot be told."
        )
    bfs, bvals = losses[(t.optimizer, t.best_value)]
    parts = []
    for v in tried:
        if v == t.best_value:
            continue
        fs, vals = losses[(t.optimizer, v)]
        where = f"at {value_text(v, hp)}"
        if v in t.diverged:
            parts.append(f"diverged {where}")
            continue
        d = diff_by_seed(fs, vals, bfs, bvals)
        verdict = "within" if v in t.within else "outside" if v in t.outside else "unsure"
        own = seed_gaps(fs, vals, bfs, bvals) if d.method == "paired" else []
        said = gap_words(d, t.best_loss, verdict, best, own)
        parts.append(" ".join([where, said, *(f"[{n}]" for n in repeat_notes(fs))]))
    seeds = len(intervals.seed_values([(seed_key(f), 0.0) for f in bfs])[0])
    head = f"**{t.optimizer}**: lowest loss {narrative.num(t.best_loss)} at {name} {best}"
    head += f" ({seeds} seed{'s' if seeds != 1 else ''}"
    head += "".join(f"; {n}" for n in repeat_notes(bfs)) + ")"
    return head + ". Against it, in % of that loss (95% interval): " + "; ".join(parts) + "."


def seed_gaps(fs: list, vals: list, bfs: list, bvals: list) -> list[float]:
    """Each seed's loss minus the same seed's at the best value (the paired differences)."""
    a = intervals.seed_values([(seed_key(f), v) for f, v in zip(fs, vals, strict=True)])[0]
    b = intervals.seed_values([(seed_key(f), v) for f, v in zip(bfs, bvals, strict=True)])[0]
    return [a[k] - b[k] for k in a if k in b and k is not None]


def gap_words(
    d: Difference, best_loss: float, verdict: str, best: str, own: list[float] = ()
) -> str:
    """A value's gap to the best value in % with its interval, and what the interval allows
    (`verdict` from `sweep_groups.tolerance_claims`: within, outside or unsure); `own`: the
    seeds' paired gaps, said when the interval cannot tell (they show why it is wide)."""
    lim = f"{WITHIN:.0%}"
    scale = 100 / abs(best_loss)
    if not d.has_interval:
        why = d.reason or "no spread between seeds to measure the noise with"
        return f"{_pct(d.estimate * scale)}: {narrative.CANNOT_TELL} whether within {lim} ({why})"
    gap = f"{_pct(d.estimate * scale)} ± {_pct(d.half_width * scale, sign=False)}"
    if verdict == "within":
        return f"{gap}: within {lim} (at most {_pct(d.high * scale)})"
    if verdict == "outside":
        return f"{gap}: more than {lim} worse (at least {_pct(d.low * scale)})"
    span = f"{_pct(d.low * scale)} to {_pct(d.high * scale)}"
    why = f"its interval, {span}, holds gaps both under and over {lim} with {d.n} seeds"
    if own and (min(own) > 0 or max(own) < 0):  # every seed on one side, yet no verdict
        each = ", ".join(_pct(g * scale) for g in sorted(own))
        why += f"; the seeds' own gaps, each against the same seed at {best}: {each}"
    return f"{gap}: {narrative.CANNOT_TELL} whether within {lim} ({why})"


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
    pairs = sweep_groups.head_to_head(facts, hp)
    table = head_to_head_table(pairs, hp, head_to_head_notes(facts, hp))
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


def sweep_frame(facts: dict[str, RunFacts], hp: str) -> pd.DataFrame:
    """`sweep_groups.sweep_frame` with each point's mean, lowest and highest taken over its
    distinct seeds (a repeat of a seed counts once, the mean of its runs), as the head-to-head
    and the Summary count them, and a `note` naming the runs not counted as seeds."""
    df = sweep_groups.sweep_frame(facts, hp)
    losses = point_losses(facts, hp)
    mean, lo, hi, notes = [], [], [], []
    for opt, v in zip(df["optimizer"], df["value"], strict=True):
        fs, vals = losses[(opt, v)]
        per_seed = np.asarray(
            list(
                intervals.seed_values([(seed_key(f), x) for f, x in zip(fs, vals, strict=True)])[
                    0
                ].values()
            ),
            dtype=float,
        )
        ok = per_seed[np.isfinite(per_seed)]
        whole = all(map(math.isfinite, vals)) and ok.size > 0
        mean.append(float(ok.mean()) if whole else np.nan)
        lo.append(float(ok.min()) if ok.size else np.nan)
        hi.append(float(ok.max()) if ok.size else np.nan)
        gone = [
            f"{f.name} diverged: no mean"
            for f, x in zip(fs, vals, strict=True)
            if not math.isfinite(x)
        ]
        notes.append("; ".join(repeat_notes(fs) + gone) or NO_REPEATS)
    return df.assign(final_loss=mean, lo=lo, hi=hi, note=notes)


def points_table(df: pd.DataFrame, hp: str) -> pd.DataFrame:
    """The sweep's points (`sweep_frame`) as the page lists them: the runs of each point, and
    beside the seeds the runs not counted as seeds of their own."""
    if "note" not in df:
        df = df.assign(note=NO_REPEATS)
    return df.drop(columns=["kind", "at_step"]).rename(
        columns={
            "value": sweep.plain_name(hp),
            "final_loss": "mean loss (over seeds)",
            "lo": "lowest seed",
            "hi": "highest seed",
            "n": "seeds",
            "diverged": "runs diverged",
            "note": "runs not counted as seeds",
            "name": "runs",
        }
    )[
        [
            "optimizer",
            sweep.plain_name(hp),
            "mean loss (over seeds)",
            "lowest seed",
            "highest seed",
            "seeds",
            "runs not counted as seeds",
            "runs diverged",
            "runs",
        ]
    ]

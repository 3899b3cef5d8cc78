"""What SGG's factors did to the model, whatever the groups are called: shares of weights.

SGG multiplies the step AdamW would take for each weight by its group's factor. A manager's
question is not "what did group 2 do" (group numbers are ranks of the momentum and their members
change at every re-cluster) but "how much of the model trained faster or slower, by how much,
where". So every weight is classed by the factor in force on it: sped up (factor above SPED_UP),
slowed down (below SLOWED), about unchanged; shares are weighted by parameter count (group sizes
from the `clusters` table, 1-D weights SGG never scales from run.json's `model.layers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from dashboard.layer_names import TYPES, layer_type
from dashboard.metrics.intervals import LEVEL, NO_SPREAD, UNPAIRED, Difference, seed_values

SPED_UP = 1.1  # a factor above this speeds a weight's step up noticeably
SLOWED = 1 / 1.1  # below this (0.909...) slows it down: the same distance from 1 on a log scale
UP, SAME, DOWN = "sped up", "about unchanged", "slowed down"
CLASSES = (UP, SAME, DOWN)
ONE_SEED = "one seed, so how much this moves from seed to seed cannot be measured"


def layer_sizes(meta: dict) -> dict[str, int]:
    """{layer: parameter count} from run.json's `model.layers` (empty when not recorded)."""
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    out: dict[str, int] = {}
    for x in model.get("layers") or []:
        if isinstance(x, dict) and x.get("name") and isinstance(x.get("numel"), int | float):
            out[str(x["name"])] = int(x["numel"])
    return out


def factor_class(factor) -> np.ndarray:
    """UP / SAME / DOWN for each factor (NaN counts as unchanged: nothing was applied)."""
    f = np.asarray(factor, dtype=float)
    return np.select([f > SPED_UP, f < SLOWED], [UP, DOWN], SAME).astype(object)


def weight_rows(clusters: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """Per (step, layer, group): weights, factor, effect class and layer type; the layers SGG
    does not cluster (in `sizes`, not in the step's rows) as one group with factor 1."""
    cols = ["step", "layer", "cluster", "weights", "factor", "effect", "type"]
    if clusters is None or clusters.empty:
        return pd.DataFrame(columns=cols)
    c = clusters[["step", "layer", "cluster", "size", "factor"]].rename(columns={"size": "weights"})
    c = c.assign(
        factor=c["factor"].astype(float),
        weights=c["weights"].astype(float),
        layer=c["layer"].astype(object),
    )
    parts = [c]
    if sizes:
        # every (step, layer of the model) that the step's rows lack: one unscaled group
        steps = np.sort(c["step"].unique())
        grid = pd.MultiIndex.from_product([steps, list(sizes)], names=["step", "layer"])
        have = pd.MultiIndex.from_frame(c[["step", "layer"]].drop_duplicates())
        rest = grid.difference(have).to_frame(index=False)
        if not rest.empty:
            parts.append(
                rest.assign(cluster=-1, weights=rest["layer"].map(sizes).astype(float), factor=1.0)
            )
    rows = pd.concat(parts, ignore_index=True)
    rows["effect"] = factor_class(rows["factor"])
    kinds = {n: layer_type(n) for n in rows["layer"].unique()}
    rows["type"] = rows["layer"].map(kinds)
    return rows[cols]


def _class_table(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per `by`: weights, share_<class> and factor_<class> (weighted mean factor)."""
    r = rows.assign(wf=rows["weights"] * rows["factor"])
    g = r.groupby([*by, "effect"], sort=True)[["weights", "wf"]].sum().unstack("effect")
    w, wf = g["weights"].fillna(0.0), g["wf"].fillna(0.0)
    out = pd.DataFrame({"weights": w.sum(axis=1)})
    for cls in CLASSES:
        cw = w[cls] if cls in w else pd.Series(0.0, index=w.index)
        out[f"share_{cls}"] = cw / out["weights"]
        out[f"factor_{cls}"] = (wf[cls] / cw.where(cw > 0)) if cls in wf else np.nan
    return out.reset_index()


def over_time(rows: pd.DataFrame) -> pd.DataFrame:
    """Per re-cluster step: each class's share of the weights and mean factor, the smallest,
    largest and mean factor over all weights."""
    if rows is None or rows.empty:
        cols = ["step", "weights", "low", "high", "mean"]
        return pd.DataFrame(
            columns=cols + [f"{p}_{c}" for c in CLASSES for p in ("share", "factor")]
        )
    out = _class_table(rows, ["step"])
    g = rows.assign(wf=rows["weights"] * rows["factor"]).groupby("step", sort=True)
    out["low"] = g["factor"].min().to_numpy()
    out["high"] = g["factor"].max().to_numpy()
    out["mean"] = (g["wf"].sum() / g["weights"].sum()).to_numpy()
    return out


def by_type(rows: pd.DataFrame, step: int) -> pd.DataFrame:
    """At one re-cluster: per layer type (model order), its share of the model and each class's
    share of the type's weights and mean factor."""
    r = rows[rows["step"] == step]
    if r.empty:
        return pd.DataFrame(columns=["type", "weights", "share_of_model"])
    out = _class_table(r, ["type"])
    out["share_of_model"] = out["weights"] / out["weights"].sum()
    out["order"] = out["type"].map({t: i for i, t in enumerate(TYPES)})
    return out.sort_values("order").drop(columns="order").reset_index(drop=True)


@dataclass(frozen=True)
class Effect:
    """One run's answer at one re-cluster (`step`) and at its first (`first_step`)."""

    step: int
    first_step: int
    share: dict[str, float]
    first_share: dict[str, float]
    factor: dict[str, float]  # each class's mean factor (weighted by parameter count)
    low: float  # the smallest factor in force
    high: float  # the largest
    where: dict[str, list[tuple[str, float]]]  # class -> [(layer type, share of its weights)]
    weights: int
    whole_model: bool  # the model's weights (run.json) or only the clustered ones
    applied: bool  # False: a shadow clustering, never applied
    reclusters: int


def applied(clusters: pd.DataFrame) -> bool:
    """Whether the factors changed training (False for an observe-only, shadow clustering)."""
    if clusters is None or clusters.empty or "shadow" not in clusters:
        return True
    return not bool(clusters["shadow"].fillna(False).astype(bool).all())


def _where(types: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """Per class: the layer types it reached, by the share of each type's weights, largest
    first (a manager asks "which parts of the model", not "which group")."""
    out = {}
    for cls in CLASSES:
        s = types[types[f"share_{cls}"] > 0].sort_values(f"share_{cls}", ascending=False,
                                                         kind="stable")  # fmt: skip
        out[cls] = [(str(k), float(v)) for k, v in zip(s["type"], s[f"share_{cls}"], strict=True)]
    return out


def _effect(over: pd.DataFrame, types: pd.DataFrame, step: int, **kw) -> Effect:
    last, first = over[over["step"] == step].iloc[0], over.iloc[0]
    return Effect(
        step=int(step),
        first_step=int(first["step"]),
        share={c: float(last[f"share_{c}"]) for c in CLASSES},
        first_share={c: float(first[f"share_{c}"]) for c in CLASSES},
        factor={c: float(last[f"factor_{c}"]) for c in CLASSES},
        low=float(last["low"]),
        high=float(last["high"]),
        where=_where(types),
        weights=int(last["weights"]),
        reclusters=int((over["step"] <= step).sum()),
        **kw,
    )


@dataclass(frozen=True)
class RunTables:
    """One run's weight rows and shares over time, computed once for every question asked."""

    rows: pd.DataFrame
    over: pd.DataFrame
    whole_model: bool
    applied: bool

    def step_at(self, at_step: int | None = None) -> int:
        """The last re-cluster at or before `at_step` (default: the last one)."""
        steps = self.over["step"].to_numpy()
        return int(steps[steps <= at_step].max()) if at_step is not None else int(steps.max())

    def effect(self, at_step: int | None = None, types: pd.DataFrame | None = None) -> Effect:
        """The Effect at the re-cluster `at_step` (`types`: its `by_type`, when known)."""
        step = self.step_at(at_step)
        typ = by_type(self.rows, step) if types is None else types
        return _effect(self.over, typ, step, whole_model=self.whole_model, applied=self.applied)


def run_tables(clusters: pd.DataFrame, meta: dict) -> RunTables | None:
    """A run's RunTables (None without clusters)."""
    sizes = layer_sizes(meta)
    rows = weight_rows(clusters, sizes)
    if rows.empty:
        return None
    whole = bool(sizes) and set(clusters["layer"]) <= set(sizes)
    return RunTables(rows, over_time(rows), whole, applied(clusters))


def run_effect(clusters: pd.DataFrame, meta: dict, at_step: int | None = None) -> Effect | None:
    """The Effect at the re-cluster `at_step` (default: the last one), None without clusters."""
    t = run_tables(clusters, meta)
    return t.effect(at_step) if t is not None else None


def mean_interval(pairs: list[tuple[object, float]]) -> Difference:
    """The mean over distinct seeds of (seed, value) pairs with its 95% t-interval
    (`Difference.estimate` = the mean, `n` = distinct seeds; no interval for one seed or no
    spread, with the reason). Repeats of a seed count once, by intervals' seed rule."""
    per_seed, notes = seed_values(pairs)
    x = np.array([v for v in per_seed.values() if math.isfinite(v)], dtype=float)
    if x.size == 0:
        return Difference(float("nan"), reason="no value", notes=notes)
    mean = float(x.mean())
    if x.size < 2:
        return Difference(mean, n=1, mean=mean, reason=ONE_SEED, notes=notes)
    sd = float(x.std(ddof=1))
    if sd <= 1e-9 * max(1.0, float(np.abs(x).max())):
        return Difference(mean, n=x.size, n_max=x.size, mean=mean, reason=NO_SPREAD, notes=notes)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return Difference(mean, mean - half, mean + half, x.size, UNPAIRED, x.size, mean=mean,
                      se=sd / math.sqrt(x.size), df=x.size - 1, notes=notes)  # fmt: skip


@dataclass(frozen=True)
class GroupEffect:
    """A seed group's answer at the last re-cluster every seed reached."""

    step: int
    share: dict[str, Difference]  # the mean share over seeds with its 95% interval
    spread: dict[str, tuple[float, float]]  # min and max over seeds
    factor: dict[str, float]  # mean over seeds of each class's mean factor
    effects: list[tuple[object, Effect]] = field(default_factory=list)  # (seed, at `step`)

    @property
    def n(self) -> int:
        """Distinct seeds (repeats of one seed count once)."""
        return max((d.n for d in self.share.values()), default=0)


def _prepared(runs: list[tuple[object, pd.DataFrame, dict]]) -> list[tuple[object, RunTables]]:
    return [
        (seed, t)
        for seed, c, meta in runs
        if c is not None and not c.empty and (t := run_tables(c, meta)) is not None
    ]


def group_effect(runs: list[tuple[object, pd.DataFrame, dict]]) -> GroupEffect | None:
    """(seed, clusters, meta) per run of a seed group -> the group's shares across seeds, all
    taken at the last re-cluster every run reached (like for like)."""
    return _group_effect(_prepared(runs))


def _group_effect(tables: list[tuple[object, RunTables]]) -> GroupEffect | None:
    if not tables:
        return None
    step = min(int(t.over["step"].max()) for _, t in tables)
    return _group_effect_at(tables, step, [by_type(t.rows, t.step_at(step)) for _, t in tables])


def _group_effect_at(
    tables: list[tuple[object, RunTables]], step: int, types: list[pd.DataFrame]
) -> GroupEffect:
    effects = [(seed, t.effect(step, ty)) for (seed, t), ty in zip(tables, types, strict=True)]
    share, spread, factor = {}, {}, {}
    for cls in CLASSES:
        vals = [(s, e.share[cls]) for s, e in effects]
        share[cls] = mean_interval(vals)
        spread[cls] = (min(v for _, v in vals), max(v for _, v in vals))
        f = [e.factor[cls] for _, e in effects if math.isfinite(e.factor[cls])]
        factor[cls] = float(np.mean(f)) if f else float("nan")
    return GroupEffect(step, share, spread, factor, effects)


def _mean_tables(tables: list[pd.DataFrame], by: str) -> pd.DataFrame:
    t = pd.concat([x for x in tables if x is not None and not x.empty], ignore_index=True)
    if t.empty:
        return t
    g = t.groupby(by, sort=False)
    out = g[[c for c in t.columns if c != by and pd.api.types.is_numeric_dtype(t[c])]].mean()
    if "low" in out:
        out["low"], out["high"] = g["low"].min(), g["high"].max()
    out["n"] = g.size()
    return out.reset_index()


@dataclass(frozen=True)
class SeriesEffect:
    """What one run or seed group shows: the mean Effect over its runs at the last re-cluster
    all reached (the sentence), the spread across seeds, and the two tables of the figure."""

    effect: Effect
    seeds: GroupEffect
    over: pd.DataFrame  # mean shares per re-cluster step, with `n` runs
    types: pd.DataFrame  # mean shares per layer type at `effect.step`


def series_effect(runs: list[tuple[object, pd.DataFrame, dict]]) -> SeriesEffect | None:
    """(seed, clusters, meta) per run -> the SeriesEffect (None without clusters)."""
    tables = _prepared(runs)
    if not tables:
        return None
    step = min(int(t.over["step"].max()) for _, t in tables)
    types = [by_type(t.rows, t.step_at(step)) for _, t in tables]
    seeds = _group_effect_at(tables, step, types)
    overs = [t.over for _, t in tables]
    over = _mean_tables(overs, "step").sort_values("step", kind="stable").reset_index(drop=True)
    typ = _mean_tables(types, "type")
    typ["share_of_model"] = typ["weights"] / typ["weights"].sum()
    eff = _effect(over[over["step"] <= seeds.step], typ, seeds.step,
                  whole_model=all(e.whole_model for _, e in seeds.effects),
                  applied=seeds.effects[0][1].applied)  # fmt: skip
    return SeriesEffect(eff, seeds, over, typ)

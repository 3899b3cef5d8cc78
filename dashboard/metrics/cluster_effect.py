"""What SGG set for the model's step sizes, whatever the groups are called: shares of weights.

SGG multiplies the step AdamW would take for each weight by its group's factor. A manager's
question is not "what did group 2 do" (group numbers are ranks of the momentum and their members
change at every re-cluster) but "how much of the model got a bigger or a smaller step than AdamW
would have given it, by how much, where". So every weight is classed by the factor in force on
it: bigger steps (factor above BIGGER), smaller steps (below SMALLER), about AdamW's step; shares
are weighted by parameter count (group sizes from the `clusters` table, 1-D weights SGG never
scales from run.json's `model.layers`). These are settings, not outcomes: whether they helped is
the loss's question (the Summary). A seed group's numbers carry their spread across seeds
(`seed_stats`): the mean, min, max, standard deviation and a 95% t-interval per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard.layer_names import TYPES, layer_kind, layer_type
from dashboard.metrics import cluster_factors, groups
from dashboard.metrics.intervals import (
    LEVEL,
    NO_SPREAD,
    UNPAIRED,
    Difference,
    across_seeds,
    seed_values,
    t_quantile,
)

BIGGER = 1.1  # a factor above this gives a noticeably bigger step than AdamW's
SMALLER = 1 / 1.1  # below this (0.909...): the same distance from 1 on a log scale
UP, SAME, DOWN = "bigger steps", "about AdamW's step", "smaller steps"
CLASSES = (UP, SAME, DOWN)
ONE_SEED = "one seed, so how much this moves from seed to seed cannot be measured"
NO_SEED = "(no seed)"  # the key of runs without a recorded seed in `seed_stats`


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
    return np.select([f > BIGGER, f < SMALLER], [UP, DOWN], SAME).astype(object)


def weight_rows(clusters: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """Per (step, layer, group): weights, factor, effect class, layer type and kind (the layer
    without its block number); the layers SGG does not cluster (in `sizes`, not in the step's
    rows) as one group (-1) with factor 1."""
    cols = ["step", "layer", "cluster", "weights", "factor", "effect", "type", "kind"]
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
    names = rows["layer"].unique()
    rows["type"] = rows["layer"].map({n: layer_type(n) for n in names})
    rows["kind"] = rows["layer"].map({n: layer_kind(n) for n in names})
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
    """Per re-cluster step: each class's share of the weights and mean factor, the smallest
    (`lowest`), largest (`highest`) and mean factor over all weights."""
    if rows is None or rows.empty:
        cols = ["step", "weights", "lowest", "highest", "mean"]
        return pd.DataFrame(
            columns=cols + [f"{p}_{c}" for c in CLASSES for p in ("share", "factor")]
        )
    out = _class_table(rows, ["step"])
    g = rows.assign(wf=rows["weights"] * rows["factor"]).groupby("step", sort=True)
    out["lowest"] = g["factor"].min().to_numpy()
    out["highest"] = g["factor"].max().to_numpy()
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
    return _type_order(out)


def _type_order(t: pd.DataFrame) -> pd.DataFrame:
    order = t["type"].map({k: i for i, k in enumerate(TYPES)})
    return (
        t.assign(_o=order)
        .sort_values("_o", kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def kind_over_time(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (re-cluster step, kind of layer SGG scales): the mean factor over its weights
    (weighted by parameter count), the shares of its weights given bigger and smaller steps,
    its weights and its type. A slow, steady fall that stays inside the "about AdamW's step"
    band is visible here, not in the class shares."""
    cols = ["step", "kind", "type", "weights", "factor", f"share_{UP}", f"share_{DOWN}"]
    r = rows[rows["cluster"] >= 0] if rows is not None and not rows.empty else None
    if r is None or r.empty:
        return pd.DataFrame(columns=cols)
    r = r.assign(
        wf=r["weights"] * r["factor"],
        wu=r["weights"] * (r["effect"] == UP),
        wd=r["weights"] * (r["effect"] == DOWN),
    )
    out = r.groupby(["step", "kind"], sort=False)[["weights", "wf", "wu", "wd"]].sum()
    out = out.reset_index()
    out["factor"] = out["wf"] / out["weights"]
    out[f"share_{UP}"] = out["wu"] / out["weights"]
    out[f"share_{DOWN}"] = out["wd"] / out["weights"]
    out["type"] = out["kind"].map(r.drop_duplicates("kind").set_index("kind")["type"])
    return out[cols]


def kind_order(kinds: pd.DataFrame) -> list[str]:
    """Kinds in model order: by type (embeddings, attention, MLP, ...), then first seen."""
    if kinds is None or kinds.empty:
        return []
    first = kinds.drop_duplicates("kind").reset_index(drop=True)
    rank = {k: i for i, k in enumerate(TYPES)}
    first["_r"] = first["type"].map(rank).fillna(len(TYPES))
    return list(first.sort_values("_r", kind="stable")["kind"])


def _seed_key(seed: object) -> str:
    return NO_SEED if seed is None else str(seed)


def seed_stats(
    frames: list[tuple[object, pd.DataFrame]], by: list[str], cols: list[str]
) -> pd.DataFrame:
    """Per `by`: for each of `cols` the mean over distinct seeds (`col`), `col_min`, `col_max`,
    `col_sd` and the 95% t-interval `col_low`, `col_high` (NaN for one seed or no spread: no
    interval is not certainty); `n` seeds. Repeats of a seed count once (their mean); runs
    without a seed are left out beside runs with one (the intervals' seed rule)."""
    parts = [df[[*by, *cols]].assign(_seed=_seed_key(seed))
             for seed, df in frames if df is not None and not df.empty]  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=[*by, *cols, "n"])
    t = pd.concat(parts, ignore_index=True)
    if (t["_seed"] != NO_SEED).any():
        t = t[t["_seed"] != NO_SEED]
    per = t.groupby([*by, "_seed"], sort=False)[cols].mean()
    g = per.groupby(level=list(range(len(by))), sort=False)
    mean, sd, cnt = g.mean(), g.std(ddof=1), g.count()
    lo, hi = g.min(), g.max()
    out = mean.copy()
    for c in cols:
        n = cnt[c].to_numpy(dtype=float)
        s = sd[c].to_numpy(dtype=float)
        m = mean[c].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            half = t_quantile(0.5 + LEVEL / 2, np.maximum(n - 1, 1)) * s / np.sqrt(n)
        ok = (n >= 2) & np.isfinite(s) & (s > 1e-9 * np.maximum(1.0, np.abs(m)))
        out[f"{c}_min"], out[f"{c}_max"], out[f"{c}_sd"] = lo[c], hi[c], sd[c]
        out[f"{c}_low"] = np.where(ok, m - half, np.nan)
        out[f"{c}_high"] = np.where(ok, m + half, np.nan)
    out["n"] = g.size()
    return out.reset_index()


def band(df: pd.DataFrame, col: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The band drawn around `col`'s mean: 'minmax' (min to max over seeds) or 'sd' (mean
    ± 1 standard deviation), the sidebar's choice; NaN where one seed."""
    if kind == "sd":
        m, s = df[col].to_numpy(float), df[f"{col}_sd"].to_numpy(float)
        return m - s, m + s
    return df[f"{col}_min"].to_numpy(float), df[f"{col}_max"].to_numpy(float)


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
        low=float(last["lowest"]),
        high=float(last["highest"]),
        where=_where(types),
        weights=round(float(last["weights"])),
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
    half = t_quantile(0.5 + LEVEL / 2, x.size - 1) * sd / math.sqrt(x.size)
    return Difference(mean, mean - half, mean + half, x.size, UNPAIRED, x.size, mean=mean,
                      se=sd / math.sqrt(x.size), df=x.size - 1, notes=notes)  # fmt: skip


@dataclass(frozen=True)
class GroupEffect:
    """A seed group's answer at the last re-cluster every seed reached."""

    step: int
    share: dict[str, Difference]  # the mean share over seeds with its 95% interval
    spread: dict[str, tuple[float, float]]  # min and max over seeds
    factor: dict[str, Difference]  # each class's mean factor: the mean over seeds, its interval
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
    tables = _prepared(runs)
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
        factor[cls] = mean_interval([(s, e.factor[cls]) for s, e in effects
                                     if math.isfinite(e.factor[cls])])  # fmt: skip
    return GroupEffect(step, share, spread, factor, effects)


def compare_share(a: GroupEffect, b: GroupEffect, cls: str = UP) -> Difference:
    """`a`'s share of `cls` minus `b`'s, seed by seed where both ran the same seeds (e.g. SGG
    against the AdamW seeds that only recorded what SGG would have done), with its 95%
    interval (`intervals.across_seeds`)."""
    side = {}
    for g, name in ((a, "a"), (b, "b")):
        side[name] = {seed: e.share[cls] for seed, e in g.effects}
    return across_seeds(side["a"], side["b"])


@dataclass(frozen=True)
class SeriesEffect:
    """What one run or seed group shows: the mean Effect over its runs at the last re-cluster
    all reached (the sentence), the spread across seeds, and the tables of the figures, each
    with its spread across seeds (`seed_stats` columns)."""

    effect: Effect
    seeds: GroupEffect
    over: pd.DataFrame  # per re-cluster step: shares and factors over seeds, `n` seeds
    types: pd.DataFrame  # per layer type at `effect.step`
    kinds: pd.DataFrame  # per (re-cluster step, kind of layer): the mean factor over seeds


OVER_COLS = [f"{p}_{c}" for c in CLASSES for p in ("share", "factor")] + ["weights", "mean"]


def series_effect(runs: list[tuple[object, pd.DataFrame, dict]]) -> SeriesEffect | None:
    """(seed, clusters, meta) per run -> the SeriesEffect (None without clusters)."""
    tables = _prepared(runs)
    if not tables:
        return None
    step = min(int(t.over["step"].max()) for _, t in tables)
    types = [by_type(t.rows, t.step_at(step)) for _, t in tables]
    seeds = _group_effect_at(tables, step, types)
    over = seed_stats([(s, t.over) for s, t in tables], ["step"], [*OVER_COLS, "lowest", "highest"])
    over = over.sort_values("step", kind="stable").reset_index(drop=True)
    over["lowest"], over["highest"] = over["lowest_min"], over["highest_max"]
    tcols = [f"{p}_{c}" for c in CLASSES for p in ("share", "factor")] + ["weights"]
    typ = _type_order(seed_stats([(s, t) for (s, _), t in zip(tables, types, strict=True)],
                                 ["type"], tcols))  # fmt: skip
    typ["share_of_model"] = typ["weights"] / typ["weights"].sum()
    kinds = seed_stats([(s, kind_over_time(t.rows)) for s, t in tables], ["step", "kind"],
                       ["factor", f"share_{UP}", f"share_{DOWN}"])  # fmt: skip
    if not kinds.empty:
        first = kind_over_time(tables[0][1].rows).drop_duplicates("kind").set_index("kind")
        kinds["type"] = kinds["kind"].map(first["type"])
    eff = _effect(over[over["step"] <= seeds.step], typ, seeds.step,
                  whole_model=all(e.whole_model for _, e in seeds.effects),
                  applied=seeds.effects[0][1].applied)  # fmt: skip
    return SeriesEffect(eff, seeds, over, typ, kinds)


def shadow_pairs(
    effects: dict[str, tuple[SeriesEffect, dict]],
) -> list[tuple[str, SeriesEffect, str, SeriesEffect]]:
    """(SGG's name, its effect, the shadow's name, its effect) for each SGG series and the first
    shadow clustering of an AdamW series with the same settings and the same clustering options
    (a decay-0.9 SGG is not compared with a decay-0.99 shadow)."""
    out = []
    applied = [(n, se, m) for n, (se, m) in effects.items() if se.effect.applied]
    shadow = [(n, se, m) for n, (se, m) in effects.items() if not se.effect.applied]
    for an, a, am in applied:
        match = next((x for x in shadow if not groups.differing_settings(am, x[2])
                      and cluster_factors.same_clustering(am, x[2])), None)  # fmt: skip
        if match is not None:
            out.append((an, a, match[0], match[1]))
    return out

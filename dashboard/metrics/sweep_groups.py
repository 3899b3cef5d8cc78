"""A sweep as seed groups: mean final loss per (optimizer, value) and SGG vs the other per value.

Uses the same `compare` as the Summary, so the Sweep's win / tie / loss and the Summary's
verdict for the same pair of groups cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard.metrics import groups
from dashboard.metrics.compare import (
    Comparison,
    RunFacts,
    common_step,
    compare,
    diff_by_seed,
    loss_at,
    loss_kind,
    n_seeds,
    side_mean,
)
from dashboard.metrics.settings import ADAMW, SGG, names_sgg
from dashboard.metrics.sweep import hyperparameter_value


def _optimizer(f: RunFacts) -> str:
    return groups.optimizer_name(f.meta)  # the typed description's (run.json may say "adamw")


def applies(key: str, optimizer: str) -> bool:
    """Whether `key` is a setting of `optimizer`'s training: SGG's own options (K, T, beta3)
    in an AdamW run only configured an observe-only shadow clustering."""
    return names_sgg(optimizer) or not groups.sgg_only(key)


def sweep_points(facts: dict[str, RunFacts], key: str) -> dict[tuple[str, float], list[str]]:
    """{(optimizer, value): run ids} of the runs for which `key` is a training setting."""
    out: dict[tuple[str, float], list[str]] = {}
    for rid, f in facts.items():
        v = hyperparameter_value(f.meta, key)
        if v is not None and applies(key, _optimizer(f)):
            out.setdefault((_optimizer(f), v), []).append(rid)
    return out


def references(facts: dict[str, RunFacts], key: str) -> dict[str, list[str]]:
    """{optimizer: run ids} of the runs for which `key` does not apply (AdamW when SGG's
    beta3 is swept): one reference group each, the same at every value."""
    out: dict[str, list[str]] = {}
    for rid, f in facts.items():
        if not applies(key, _optimizer(f)):
            out.setdefault(_optimizer(f), []).append(rid)
    return out


def sweep_frame(facts: dict[str, RunFacts], key: str) -> pd.DataFrame:
    """One row per (optimizer, value): mean, min and max of the runs' loss at the step all of
    them reached (NaN for a diverged run), the number of seeds and the run names."""
    points = sweep_points(facts, key)
    everyone = [facts[r] for rids in points.values() for r in rids]
    kind = loss_kind(everyone)
    healthy = [f for f in everyone if f.first_nan_step is None]
    at = common_step(healthy or everyone, kind)  # a diverged run must not shorten the others
    rows = []
    for (opt, v), rids in sorted(points.items()):
        losses = []
        for r in rids:
            f = facts[r]
            diverged = f.first_nan_step is not None
            losses.append(np.nan if diverged else loss_at(f, at, kind)[0])
        arr = np.asarray(losses, dtype=float)
        ok = arr[np.isfinite(arr)]
        rows.append(
            {
                "optimizer": opt,
                "value": v,
                "final_loss": float(ok.mean()) if ok.size == arr.size and ok.size else np.nan,
                "lo": float(ok.min()) if ok.size else np.nan,
                "hi": float(ok.max()) if ok.size else np.nan,
                "n": n_seeds([facts[r] for r in rids]),  # distinct seeds, not runs
                "diverged": int(arr.size - ok.size),
                "name": ", ".join(facts[r].name for r in rids),
            }
        )
    cols = ["optimizer", "value", "final_loss", "lo", "hi", "n", "diverged", "name"]
    return pd.DataFrame(rows, columns=cols).assign(kind=kind, at_step=at)


def head_to_head(
    facts: dict[str, RunFacts], key: str, challenger: str = SGG, baseline: str = ADAMW
) -> list[tuple[float, Comparison]]:
    """(value, challenger group compared with the baseline group) at every value both ran."""
    points = sweep_points(facts, key)
    fixed = references(facts, key).get(baseline)
    out = []
    for v in sorted({v for _, v in points}):
        a, b = points.get((challenger, v)), fixed or points.get((baseline, v))
        if a and b:
            c = compare(
                [facts[r] for r in a],
                [facts[r] for r in b],
                f"{challenger} at {v:g}",
                f"{baseline} at {v:g}",
            )
            out.append((v, c))
    return out


@dataclass
class Tolerance:
    """Which values of the swept setting keep an optimizer's loss within `within` of its best,
    judged with the 95% interval of each value's loss minus the best value's (paired by seed)."""

    optimizer: str
    best_value: float
    best_loss: float
    within: list[float] = field(default_factory=list)  # within beyond noise (the best included)
    unsure: list[float] = field(default_factory=list)  # cannot tell
    outside: list[float] = field(default_factory=list)  # worse by more than `within`
    diverged: list[float] = field(default_factory=list)

    def width(self, values: list[float]) -> float:
        """max / min of the values (a ratio: learning rates span decades)."""
        v = [x for x in values if x > 0]
        return max(v) / min(v) if v else float("nan")

    @property
    def sure_width(self) -> float:
        return self.width(self.within)

    @property
    def possible_width(self) -> float:
        return self.width(self.within + self.unsure)


def tolerance_claims(facts: dict[str, RunFacts], key: str, within: float = 0.05) -> list[Tolerance]:
    """Per optimizer, the values of `key` whose loss at the common step is within `within`
    (relative) of the best value's, beyond noise, not, or cannot tell."""
    points = sweep_points(facts, key)
    everyone = [facts[r] for rids in points.values() for r in rids]
    if not everyone:
        return []
    kind = loss_kind(everyone)
    healthy = [f for f in everyone if f.first_nan_step is None]
    at = common_step(healthy or everyone, kind)
    out = []
    for opt in sorted({o for o, _ in points}):
        loss: dict[float, tuple[list[RunFacts], list[float]]] = {}
        for (o, v), rids in points.items():
            if o == opt:
                fs = [facts[r] for r in rids]
                loss[v] = (
                    fs,
                    [
                        math.nan if f.first_nan_step is not None else loss_at(f, at, kind)[0]
                        for f in fs
                    ],
                )
        ok = {v: side_mean(*fl) for v, fl in loss.items() if all(map(math.isfinite, fl[1]))}
        if not ok:
            out.append(Tolerance(opt, math.nan, math.nan, diverged=sorted(loss)))
            continue
        best = min(ok, key=ok.get)
        t = Tolerance(opt, best, ok[best], within=[best])
        limit = within * abs(ok[best])
        for v in sorted(loss):
            if v == best:
                continue
            if v not in ok:
                t.diverged.append(v)
                continue
            d = diff_by_seed(*loss[v], *loss[best])
            if d.has_interval and d.high <= limit:
                t.within.append(v)
            elif d.has_interval and d.low > limit:
                t.outside.append(v)
            else:
                t.unsure.append(v)
        t.within.sort()
        out.append(t)
    return out

"""A sweep as seed groups: mean final loss per (optimizer, value) and SGG vs the other per value.

Uses the same `compare` as the Summary, so the Sweep's win / tie / loss and the Summary's
verdict for the same pair of groups cannot disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.metrics.compare import Comparison, RunFacts, common_step, compare, loss_at, loss_kind
from dashboard.metrics.sweep import hyperparameter_value


def sweep_points(facts: dict[str, RunFacts], key: str) -> dict[tuple[str, float], list[str]]:
    """{(optimizer, value): run ids} of the runs that have a value for `key`."""
    out: dict[tuple[str, float], list[str]] = {}
    for rid, f in facts.items():
        v = hyperparameter_value(f.meta, key)
        if v is not None:
            opt = str((f.meta.get("optimizer") or {}).get("name") or "?").lower()
            out.setdefault((opt, v), []).append(rid)
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
                "n": len(rids),
                "diverged": int(arr.size - ok.size),
                "name": ", ".join(facts[r].name for r in rids),
            }
        )
    cols = ["optimizer", "value", "final_loss", "lo", "hi", "n", "diverged", "name"]
    return pd.DataFrame(rows, columns=cols).assign(kind=kind, at_step=at)


def head_to_head(
    facts: dict[str, RunFacts], key: str, challenger: str = "sgg", baseline: str = "adamw"
) -> list[tuple[float, Comparison]]:
    """(value, challenger group compared with the baseline group) at every value both ran."""
    points = sweep_points(facts, key)
    out = []
    for v in sorted({v for _, v in points}):
        a, b = points.get((challenger, v)), points.get((baseline, v))
        if a and b:
            c = compare(
                [facts[r] for r in a],
                [facts[r] for r in b],
                f"{challenger} at {v:g}",
                f"{baseline} at {v:g}",
            )
            out.append((v, c))
    return out

"""The numbers in sample_runs/README.md: paired SGG - AdamW differences with 95% t-intervals.

    .venv/bin/python sample_runs/summarize.py [sample_runs]

Runs are matched by seed (same seed: same initial weights and batches for both optimizers), so
each difference is taken within a seed and the interval is over the seeds' differences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def read_table(run: Path, table: str) -> pd.DataFrame:
    """A finished run's table (compacted: one file; any duplicates are dropped by the caller)."""
    files = sorted((run / "tables" / table).glob("*.parquet"))
    if not files:  # e.g. `clusters` of a run without any clustering
        return pd.DataFrame(columns=["step", "factor"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load(root: Path) -> pd.DataFrame:
    """One row per finished run: its settings and final numbers."""
    rows = []
    for run in sorted(p.parent for p in root.glob("*/run.json")):
        meta = json.loads((run / "run.json").read_text())
        cfg = meta.get("config") or {}
        if (
            meta.get("status") != "finished"
            or "seed" not in cfg
            or not run.name.endswith(f"-s{cfg['seed']}")
        ):
            continue
        evals = read_table(run, "evals").drop_duplicates("step", keep="last").sort_values("step")
        steps = read_table(run, "steps").drop_duplicates("step", keep="last").sort_values("step")
        clusters = read_table(run, "clusters")
        last = clusters[clusters["step"] == clusters["step"].max()] if len(clusters) else None
        rows.append(
            {
                "run": run.name,
                "optimizer": cfg["optimizer"],
                "variant": "decay0.9" if cfg["scale_decay"] != 0.99 else "",
                "lr": cfg["lr"],
                "seed": cfg["seed"],
                "val": float(evals["loss"].iloc[-1]),
                "val_step": int(evals["step"].iloc[-1]),
                "train_end": float(steps["loss"].iloc[-20:].mean()),
                "factor_min": float(last["factor"].min()) if last is not None else np.nan,
                "factor_max": float(last["factor"].max()) if last is not None else np.nan,
                "seconds": float(steps["wall_time"].iloc[-1]) if "wall_time" in steps else np.nan,
            }
        )
    return pd.DataFrame(rows)


def interval(diffs: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of paired differences."""
    mean = float(np.mean(diffs))
    half = float(stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * stats.sem(diffs))
    return mean, mean - half, mean + half


def unpaired(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> float:
    """Half-width of Welch's interval for mean(a) - mean(b), for comparison."""
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return float((ci.high - ci.low) / 2)


def verdict(mean: float, lo: float, hi: float) -> str:
    """The one rule: a direction (lower loss = better) only when the interval excludes 0."""
    if lo <= 0 <= hi:
        return f"no detectable difference (±{(hi - lo) / 2:.3f})"
    return f"{'better' if mean < 0 else 'worse'} by {abs(mean):.3f}"


def compare(df: pd.DataFrame, a: dict, b: dict) -> dict | None:
    """Paired (by seed) difference of final val loss, a - b."""
    sel = [df[np.logical_and.reduce([df[k] == v for k, v in d.items()])] for d in (a, b)]
    m = sel[0].merge(sel[1], on="seed", suffixes=("_a", "_b"))
    if len(m) < 2:
        return None
    d = (m["val_a"] - m["val_b"]).to_numpy()
    mean, lo, hi = interval(d)
    return {
        "n": len(m),
        "a": m["val_a"].mean(),
        "b": m["val_b"].mean(),
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "unpaired": unpaired(m["val_a"].to_numpy(), m["val_b"].to_numpy()),
        "verdict": verdict(mean, lo, hi),
    }


def groups_table(df: pd.DataFrame) -> str:
    """Markdown: one row per setting (runs that differ only in the seed)."""
    lines = [
        "| lr | optimizer | N | val loss at the end: mean (min–max) | train loss, last 20 steps "
        "| factors at the end (min–max over seeds' min / max) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    keys = ["lr", "optimizer", "variant"]
    for (lr, opt, var), g in df.sort_values(keys).groupby(keys, sort=False):
        name = {"sgg": "SGG", "adamw": "AdamW"}[opt] + (" β3 0.9" if var else "")
        factors = (
            f"{g['factor_min'].min():.2f}–{g['factor_min'].max():.2f} / "
            f"{g['factor_max'].min():.2f}–{g['factor_max'].max():.2f}"
            if g["factor_min"].notna().all()
            else "—"
        )
        lines.append(
            f"| {lr:g} | {name} | {len(g)} | {g['val'].mean():.4f} ({g['val'].min():.4f}–"
            f"{g['val'].max():.4f}) | {g['train_end'].mean():.4f} | {factors} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else Path(__file__).parent)
    df = load(root)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(df.drop(columns=["run"]).sort_values(["lr", "optimizer", "variant", "seed"]).round(4))
    print()
    print(groups_table(df))
    print()
    print(
        "| comparison | lr | N | mean val loss (a / b) | paired a − b | 95% interval | "
        "unpaired ± | reading |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    sgg = {"optimizer": "sgg", "variant": ""}
    pairs = [("SGG − AdamW", sgg, {"optimizer": "adamw"}, lr) for lr in sorted(df["lr"].unique())]
    abl = {"optimizer": "sgg", "variant": "decay0.9"}
    pairs += [("SGG β3 0.9 − SGG β3 0.99", abl, sgg, 4e-3)]
    pairs += [("SGG β3 0.9 − AdamW", abl, {"optimizer": "adamw"}, 4e-3)]
    for label, a, b, lr in pairs:
        r = compare(df, {**a, "lr": lr}, {**b, "lr": lr})
        if r is None:
            continue
        print(
            f"| {label} | {lr:g} | {r['n']} | {r['a']:.4f} / {r['b']:.4f} | {r['mean']:+.4f} | "
            f"{r['lo']:+.4f} .. {r['hi']:+.4f} | ±{r['unpaired']:.3f} | {r['verdict']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

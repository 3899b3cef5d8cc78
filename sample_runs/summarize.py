"""The numbers in sample_runs/README.md: paired SGG - AdamW differences with 95% t-intervals, and
the main comparison's power (the smallest difference its seeds detect).

    .venv/bin/python sample_runs/summarize.py [sample_runs]

Runs are read through the dashboard's loader (every folder with a run.json below the root) and
matched by seed (same seed: same initial weights and batches for both optimizers), so each
difference is taken within a seed and the interval is over the seeds' differences
(`dashboard.metrics.intervals.across_seeds`, the rule the dashboard applies). The 200-step runs
are the learning-rate sweep; runs of any other length form the main comparison.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # run from anywhere: the dashboard package is next door

from dashboard import loader  # noqa: E402
from dashboard.metrics.intervals import Difference, across_seeds  # noqa: E402

SWEEP_STEPS = 200  # the learning-rate sweep; other lengths are the main comparison
CURVE_EVERY = 100  # steps between the rows of the main comparison's curve table
NAMES = {"sgg": "SGG", "adamw": "AdamW"}


def read(run: loader.Run, root: Path, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """One table of a run through the loader (sorted by step, duplicates resolved)."""
    df = loader.read_table(run, table, root, columns).df
    return df if df is not None else pd.DataFrame(columns=["step", *columns])


def load(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per finished run (its settings and final numbers), and every run's eval curve."""
    found = loader.discover_runs(root)
    rows, curves = [], []
    for run in found.runs:
        cfg = run.meta.get("config") or {}
        if not run.readable or run.status != "finished" or "seed" not in cfg:
            continue
        evals = read(run, found.root, "evals", ("loss",))
        steps = read(run, found.root, "steps", ("loss", "wall_time"))
        clusters = read(run, found.root, "clusters", ("factor",))
        last = clusters[clusters["step"] == clusters["step"].max()] if len(clusters) else None
        key = {
            "run": run.rel,
            "optimizer": cfg["optimizer"],
            "variant": "decay0.9" if cfg["scale_decay"] != 0.99 else "",
            "lr": cfg["lr"],
            "steps": int(cfg["steps"]),
            "seed": cfg["seed"],
        }
        rows.append(
            key
            | {
                "val": float(evals["loss"].iloc[-1]),
                "val_step": int(evals["step"].iloc[-1]),
                "train_end": float(steps["loss"].iloc[-20:].mean()),
                "factor_min": float(last["factor"].min()) if last is not None else np.nan,
                "factor_max": float(last["factor"].max()) if last is not None else np.nan,
                "seconds": float(steps["wall_time"].iloc[-1]),
            }
        )
        curves.append(evals[["step", "loss"]].assign(**key))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def unpaired(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> float:
    """Half-width of Welch's interval for mean(a) - mean(b), for comparison."""
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return float((ci.high - ci.low) / 2)


def verdict(d: Difference) -> str:
    """The one rule: a direction (lower loss = better) only when the interval excludes 0."""
    if not d.detected:
        return f"no detectable difference (±{d.half_width:.3f})"
    return f"{'better' if d.estimate < 0 else 'worse'} by {abs(d.estimate):.3f}"


def paired(df: pd.DataFrame, a: dict, b: dict, value: str = "val") -> tuple[Difference, dict]:
    """Paired (by seed) difference a - b of `value`, and each side's {seed: value}."""
    sides = []
    for sel in (a, b):
        g = df[np.logical_and.reduce([df[k] == v for k, v in sel.items()])]
        sides.append(dict(zip(g["seed"], g[value], strict=True)))
    return across_seeds(sides[0], sides[1]), {"a": sides[0], "b": sides[1]}


def compare(df: pd.DataFrame, a: dict, b: dict) -> dict | None:
    """Paired (by seed) difference of final val loss, a - b, for the comparison table."""
    d, sides = paired(df, a, b)
    if d.method != "paired":
        return None
    seeds = [s for s in sides["a"] if s in sides["b"]]
    va = np.array([sides["a"][s] for s in seeds])
    vb = np.array([sides["b"][s] for s in seeds])
    return {
        "n": d.n,
        "a": d.mean,
        "b": d.base_mean,
        "mean": d.estimate,
        "lo": d.low,
        "hi": d.high,
        "unpaired": unpaired(va, vb),
        "mdd": d.detectable(),
        "verdict": verdict(d),
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
        name = NAMES[opt] + (" β3 0.9" if var else "")
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


def sweep_report(df: pd.DataFrame) -> str:
    """The 200-step sweep: the settings table and the paired comparisons (README 'Results')."""
    out = [groups_table(df), ""]
    out.append(
        "| comparison | lr | N | mean val loss (a / b) | paired a − b | 95% interval | "
        "unpaired ± | detectable (80%) | reading |"
    )
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sgg = {"optimizer": "sgg", "variant": ""}
    pairs = [("SGG − AdamW", sgg, {"optimizer": "adamw"}, lr) for lr in sorted(df["lr"].unique())]
    abl = {"optimizer": "sgg", "variant": "decay0.9"}
    pairs += [("SGG β3 0.9 − SGG β3 0.99", abl, sgg, 4e-3)]
    pairs += [("SGG β3 0.9 − AdamW", abl, {"optimizer": "adamw"}, 4e-3)]
    for label, a, b, lr in pairs:
        r = compare(df, {**a, "lr": lr}, {**b, "lr": lr})
        if r is None:
            continue
        out.append(
            f"| {label} | {lr:g} | {r['n']} | {r['a']:.4f} / {r['b']:.4f} | {r['mean']:+.4f} | "
            f"{r['lo']:+.4f} .. {r['hi']:+.4f} | ±{r['unpaired']:.3f} | {r['mdd']:.3f} "
            f"({100 * r['mdd'] / r['b']:.0f}%) | {r['verdict']} |"
        )
    return "\n".join(out)


def sd_upper(sd: float, n: int, level: float = 0.90) -> float:
    """One-sided upper confidence bound of a standard deviation from n values (chi-square):
    the pilot-style caution that a sd from few seeds may be an underestimate."""
    return sd * math.sqrt((n - 1) / stats.chi2.ppf(1 - level, n - 1))


def power_lines(d: Difference, final: float) -> list[str]:
    """What the comparison can detect (80% power, two-sided 5%): in nats and % of the final loss,
    and the seeds that 1%, 2%, 3% of the final loss would need with the measured sd."""
    mdd = d.detectable()
    hi_sd = sd_upper(d.unit_sd, d.n)
    mdd_hi = Difference(
        d.estimate, se=hi_sd / math.sqrt(d.n), df=d.df, unit_sd=hi_sd, method=d.method, n=d.n
    ).detectable()
    lines = [
        f"- per-seed differences: mean {d.estimate:+.4f}, sd {d.unit_sd:.4f} nats over {d.n} pairs "
        f"(90% upper bound {hi_sd:.4f})",
        f"- smallest difference detected with 80% power (two-sided 5%, noncentral t, "
        f"{d.n} pairs): {mdd:.4f} nats = {100 * mdd / final:.2f}% of AdamW's final loss "
        f"{final:.4f} (with the sd's 90% upper bound: {mdd_hi:.4f} = "
        f"{100 * mdd_hi / final:.2f}%)",
    ]
    upper = Difference(d.estimate, unit_sd=hi_sd, method=d.method)
    for pct in (0.5, 1, 2, 3):
        delta = pct / 100 * final
        n, n_hi = d.seeds_needed(delta), upper.seeds_needed(delta)
        lines.append(
            f"- seeds (pairs) needed for {pct:g}% ({delta:.4f} nats) at 80% power: "
            f"{n or 'over 1000'} with the measured sd, {n_hi or 'over 1000'} with its upper bound"
        )
    return lines


def main_report(df: pd.DataFrame, curves: pd.DataFrame, steps: int) -> str:
    """The main comparison (SGG vs AdamW at one lr, `steps` long): per seed, paired, its power,
    and the curve of the paired difference over training."""
    sgg, adamw = {"optimizer": "sgg", "variant": ""}, {"optimizer": "adamw"}
    out = []
    for lr in sorted(df["lr"].unique()):
        d, sides = paired(df[df["lr"] == lr], sgg, adamw)
        if d.method != "paired":
            continue
        seeds = sorted(s for s in sides["a"] if s in sides["b"])
        final = d.base_mean  # AdamW's mean final loss: the baseline the % refers to
        out += [f"### SGG − AdamW, lr {lr:g}, {steps} steps, {d.n} paired seeds", ""]
        out += ["| seed | SGG | AdamW | SGG − AdamW |", "| --- | --- | --- | --- |"]
        for s in seeds:
            a, b = sides["a"][s], sides["b"][s]
            out.append(f"| {s} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
        out.append(
            f"| mean | {d.mean:.4f} | {d.base_mean:.4f} | {d.estimate:+.4f} "
            f"({d.low:+.4f} .. {d.high:+.4f}) |"
        )
        out += ["", f"- reading: {verdict(d)}"]
        out += power_lines(d, final)
        g = df[df["lr"] == lr]
        for opt, what in (("sgg", "applied"), ("adamw", "shadow, never applied")):
            f = g[g["optimizer"] == opt]
            if f["factor_min"].notna().all():
                out.append(
                    f"- {NAMES[opt]} cluster factors at the end ({what}): smallest "
                    f"{f['factor_min'].min():.2f}–{f['factor_min'].max():.2f}, largest "
                    f"{f['factor_max'].min():.2f}–{f['factor_max'].max():.2f} over the seeds"
                )
        for opt in ("sgg", "adamw"):
            sec = g[g["optimizer"] == opt]["seconds"]
            out.append(
                f"- {NAMES[opt]} wall time per run: {sec.mean():.0f} s ({sec.min():.0f}–"
                f"{sec.max():.0f}), {sec.mean() / steps:.2f} s/step (a shared, loaded machine: "
                "not a speed comparison)"
            )
        c = curves[(curves["lr"] == lr) & curves["seed"].isin(seeds)]
        out += [
            "",
            "| step | SGG mean (min–max) | AdamW mean (min–max) | paired SGG − AdamW | "
            "95% interval | reading |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        marks = sorted({*range(CURVE_EVERY, steps + 1, CURVE_EVERY), steps})
        for step in marks:
            at = c[c["step"] == step].rename(columns={"loss": "val"})
            dd, _ = paired(at, sgg, adamw)
            cells = []
            for opt in ("sgg", "adamw"):
                v = at[at["optimizer"] == opt]["val"]
                cells.append(f"{v.mean():.4f} ({v.min():.4f}–{v.max():.4f})")
            out.append(
                f"| {step} | {cells[0]} | {cells[1]} | {dd.estimate:+.4f} | "
                f"{dd.low:+.4f} .. {dd.high:+.4f} | {verdict(dd)} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else ROOT
    df, curves = load(root)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(df.drop(columns=["run"]).sort_values(["steps", "lr", "optimizer", "variant", "seed"]))
    print()
    sweep = df[df["steps"] == SWEEP_STEPS]
    if len(sweep):
        print(f"## The learning-rate sweep ({SWEEP_STEPS} steps)\n")
        print(sweep_report(sweep))
        print()
    for steps in sorted(set(df["steps"]) - {SWEEP_STEPS}):
        print(f"## The main comparison ({steps} steps)\n")
        print(main_report(df[df["steps"] == steps], curves[curves["steps"] == steps], steps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

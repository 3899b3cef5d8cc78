"""Pure data preparation for the figures: smoothing first, then downsampling, long-form out.

Every function takes `{run name: DataFrame}` (tables as the loader returns them) and returns a
long-form DataFrame with a `run` column that a builder in `figures.py` draws as is.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from dashboard import metrics
from dashboard.downsample import DEFAULT_POINTS, bin_max, downsample_frame
from dashboard.metrics import health, intervals

X_AXES = {
    "step": ("step", "Step"),
    "tokens": ("tokens", "Tokens seen"),
    "wall_time": ("wall_time_h", "Wall time (hours)"),
}


def not_on_axis(tables: dict[str, list], x: str) -> dict[str, str]:
    """{series name: why it is not drawn} for the series whose runs did not record the axis's
    quantity (tokens, wall time): "not recorded in this run", or "k of n runs did not record
    it" for a group, so that a missing line is said, never silently absent."""
    if x == "step":
        return {}
    col = "wall_time" if x == "wall_time" else x
    what = "wall time" if x == "wall_time" else x
    out: dict[str, str] = {}
    for name, dfs in tables.items():
        missing = sum(
            1
            for df in dfs
            if df is None or col not in df or not np.isfinite(df[col].astype(float)).any()
        )
        if not missing:
            continue
        if len(dfs) == 1:
            out[name] = f"{what} not recorded in this run"
        else:
            out[name] = f"{missing} of {len(dfs)} runs did not record {what}"
    return out


def ended_marks(series: list[tuple[str, list[str]]], statuses: dict[str, str]) -> dict[str, str]:
    """{series name: 'stopped' or 'failed'} for the series drawn as one run that ended without
    finishing (`statuses`: {run id: status}); a group's runs are said apart, not marked."""
    out = {}
    for name, members in series:
        states = {statuses.get(r) for r in members}
        if len(members) == 1 and states & {health.STOPPED, health.FAILED}:
            out[name] = "stopped" if health.STOPPED in states else "failed"
    return out


def runs_without(tables: dict[str, pd.DataFrame | None], column: str | None = None) -> list[str]:
    """The runs (display names) whose table is missing, or holds no value of `column`: what
    a page says is "not recorded in this run" rather than leaving the run out silently."""

    def lacks(df: pd.DataFrame | None) -> bool:
        if df is None or df.empty:
            return True
        return column is not None and (column not in df or not df[column].notna().any())

    return [name for name, df in tables.items() if lacks(df)]


def with_x(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Add the x column of the chosen axis (wall time in hours)."""
    col = X_AXES[x][0]
    if col == "wall_time_h" and "wall_time" in df:
        df = df.assign(wall_time_h=df["wall_time"].astype(float) / 3600.0)
    return df


def loss_lines(
    tables: dict[str, pd.DataFrame], x: str, smoothing: float, n_out: int = DEFAULT_POINTS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(smoothed, raw) long-form frames with columns run, <x>, loss; smoothing is applied to the
    full series before either is downsampled."""
    col = X_AXES[x][0]
    smooth_parts, raw_parts = [], []
    for name, df in tables.items():
        if df is None or df.empty or "loss" not in df:
            continue
        df = with_x(df[[c for c in ("step", "tokens", "wall_time", "loss") if c in df]], x)
        if col not in df:
            continue
        base = pd.DataFrame(
            {
                col: df[col].to_numpy(),
                "loss": df["loss"].to_numpy(dtype=np.float64, na_value=np.nan),
            }
        )
        sm = base.assign(loss=metrics.ema(base["loss"].to_numpy(), smoothing))
        smooth_parts.append(downsample_frame(sm, col, "loss", n_out).assign(run=name))
        if smoothing > 0:
            raw_parts.append(downsample_frame(base, col, "loss", n_out).assign(run=name))
    cols = ["run", col, "loss"]
    smooth = (
        pd.concat(smooth_parts, ignore_index=True) if smooth_parts else pd.DataFrame(columns=cols)
    )
    raw = pd.concat(raw_parts, ignore_index=True) if raw_parts else pd.DataFrame(columns=cols)
    return smooth, raw


def eval_lines(tables: dict[str, pd.DataFrame], x: str) -> pd.DataFrame:
    col = X_AXES[x][0]
    parts = []
    for name, ev in tables.items():
        ev = metrics.eval_series(ev)
        if ev is None:
            continue
        ev = with_x(ev, x)
        if col in ev:
            parts.append(downsample_frame(ev, col, "loss").assign(run=name))
    if not parts:
        return pd.DataFrame(columns=["run", col, "loss"])
    return pd.concat(parts, ignore_index=True)


def grad_lines(
    tables: dict[str, pd.DataFrame], x: str, n_out: int = DEFAULT_POINTS, n_bands: int = 300
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(lines, bands, spikes) of the global gradient norm: the downsampled line, the 10-90%
    range per block of steps, and the first step of every spike."""
    col = X_AXES[x][0]
    lines, bands, spikes = [], [], []
    for name, df in tables.items():
        if df is None or df.empty or "grad_norm" not in df:
            continue
        df = with_x(df, x)
        if col not in df:
            continue
        g = df["grad_norm"].to_numpy(dtype=np.float64, na_value=np.nan)
        xv = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
        base = pd.DataFrame({col: xv, "grad_norm": g})
        lines.append(downsample_frame(base, col, "grad_norm", n_out).assign(run=name))
        mask = metrics.spike_mask(g, metrics.GRAD_SPIKE_FACTOR)
        spikes.append(base[mask].assign(run=name))
        bands.append(block_band(xv, g, n_bands).rename(columns={"x": col}).assign(run=name))

    def cat(p, c):
        return pd.concat(p, ignore_index=True) if p else pd.DataFrame(columns=c)

    return (
        cat(lines, ["run", col, "grad_norm"]),
        cat(bands, ["run", col, "lo", "hi"]),
        cat(spikes, ["run", col, "grad_norm"]),
    )


def grad_chart(
    means: dict[str, pd.DataFrame | None],
    tables: dict[str, list[pd.DataFrame]],
    pooled: list[str],
    x: str,
    band: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(lines, bands, spikes) of the gradient norm per series (`grad_lines` of `means`, each
    series' table); for a seed group (named in `pooled`, its runs' tables in `tables`) the band
    is the spread over its seeds (`band`) and the markers are every seed's own spikes."""
    lines, bands, spikes = grad_lines(means, x)
    if not pooled:
        return lines, bands, spikes
    seed_bands = group_bands(tables, x, "grad_norm", 0.0, band)
    bands = pd.concat([bands[~bands["run"].isin(pooled)], seed_bands], ignore_index=True)
    per_run = {f"{n}\x00{i}": df for n in pooled for i, df in enumerate(tables[n])}
    _, _, member_spikes = grad_lines(per_run, x)
    member_spikes = member_spikes.assign(run=member_spikes["run"].str.split("\x00").str[0])
    spikes = pd.concat([spikes[~spikes["run"].isin(pooled)], member_spikes], ignore_index=True)
    return lines, bands, spikes


def block_band(
    x: np.ndarray, y: np.ndarray, n_blocks: int = 300, lo: float = 0.1, hi: float = 0.9
) -> pd.DataFrame:
    """The lo..hi quantile range of y in n_blocks consecutive blocks (x at block centres)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 10:
        return pd.DataFrame(columns=["x", "lo", "hi"])
    n_blocks = min(n_blocks, max(1, x.size // 10))
    size = x.size // n_blocks
    m = size * n_blocks
    xb = x[:m].reshape(n_blocks, size)
    yb = y[:m].reshape(n_blocks, size)
    q = np.quantile(yb, [lo, hi], axis=1)
    return pd.DataFrame({"x": xb.mean(axis=1), "lo": q[0], "hi": q[1]})


def layer_pivot(
    layers: pd.DataFrame | None,
    z: str = "grad_norm",
    n_bins: int = 300,
    order: list[str] | None = None,
) -> pd.DataFrame:
    """layers x binned steps, max of z per bin, rows in model order."""
    if layers is None or layers.empty or z not in layers:
        return pd.DataFrame()
    p = bin_max(layers, "step", "layer", z, n_bins)
    names = order or list(dict.fromkeys(layers["layer"].astype(str)))
    return p.reindex([n for n in names if n in p.index])


def layer_norm_hist(
    tables: dict[str, pd.DataFrame], n_bins: int = 50, last_fraction: float = 0.5
) -> pd.DataFrame:
    """Distribution of per-layer gradient norms over the last `last_fraction` of each run, on
    shared log-spaced bins (the paper's Fig. 2c)."""
    vals = {}
    for name, df in tables.items():
        if df is None or df.empty or "grad_norm" not in df:
            continue
        cut = df["step"].max() * (1 - last_fraction)
        v = df.loc[df["step"] >= cut, "grad_norm"].to_numpy(dtype=np.float64, na_value=np.nan)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            vals[name] = v
    if not vals:
        return pd.DataFrame(columns=["run", "center", "share"])
    allv = np.concatenate(list(vals.values()))
    lo, hi = np.quantile(np.log10(allv), [0.001, 0.999])
    if hi <= lo:
        hi = lo + 1
    edges = np.linspace(lo, hi, n_bins + 1)
    parts = []
    for name, v in vals.items():
        c, _ = np.histogram(np.clip(np.log10(v), lo, hi), edges)
        parts.append(
            pd.DataFrame(
                {
                    "run": name,
                    "center": 10 ** ((edges[:-1] + edges[1:]) / 2),
                    "share": c / max(1, c.sum()),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def histogram_at(
    h: pd.DataFrame | None, layer: str, quantity: str, step: int, whole_layer: bool = False
) -> pd.DataFrame:
    """One (layer, quantity) histogram at the recorded step nearest to `step`, with share."""
    if h is None or h.empty:
        return pd.DataFrame()
    sub = h[(h["layer"] == layer) & (h["quantity"] == quantity)]
    sub = sub[sub["cluster"] < 0] if whole_layer else sub[sub["cluster"] >= 0]
    if sub.empty:
        return pd.DataFrame()
    steps = np.unique(sub["step"].to_numpy())
    nearest = steps[np.argmin(np.abs(steps - step))]
    sub = sub[sub["step"] == nearest]
    # each group normalised to its own size, so the shapes compare (the paper's Fig. 2a/2b)
    return metrics.histogram_density(sub)


def loss_difference(
    tables: dict[str, pd.DataFrame],
    baseline: str,
    x: str,
    smoothing: float,
    n_out: int = DEFAULT_POINTS,
) -> pd.DataFrame:
    """Smoothed train loss of each run minus the baseline's at the same step (below 0: the run
    is ahead). Columns run, <x>, diff."""
    col = X_AXES[x][0]
    base = tables.get(baseline)
    if base is None or base.empty or "loss" not in base:
        return pd.DataFrame(columns=["run", col, "diff"])
    b = pd.DataFrame(
        {
            "step": base["step"].to_numpy(),
            "b": metrics.ema(base["loss"].to_numpy(dtype=np.float64, na_value=np.nan), smoothing),
        }
    )
    parts = []
    for name, df in tables.items():
        if name == baseline or df is None or df.empty or "loss" not in df:
            continue
        df = with_x(df, x)
        if col not in df:
            continue
        r = pd.DataFrame(
            {
                "step": df["step"].to_numpy(),
                col: df[col].to_numpy(),
                "r": metrics.ema(df["loss"].to_numpy(dtype=np.float64, na_value=np.nan), smoothing),
            }
        )
        if col == "step":
            r = r.drop(columns=[col]).assign(step=df["step"].to_numpy())
        m = r.merge(b, on="step", how="inner")
        m["diff"] = m["r"] - m["b"]
        parts.append(downsample_frame(m[[col, "diff"]], col, "diff", n_out).assign(run=name))
    if not parts:
        return pd.DataFrame(columns=["run", col, "diff"])
    return pd.concat(parts, ignore_index=True)


BANDS = {"minmax": "min to max over seeds", "sd": "mean ± 1 standard deviation"}


def group_bands(
    groups: dict[str, list[pd.DataFrame]],
    x: str,
    y: str,
    smoothing: float,
    band: str = "minmax",
    n_out: int = DEFAULT_POINTS,
) -> pd.DataFrame:
    """The band of column `y` around each group's mean (groups of two or more runs): each run
    is smoothed first, the runs are aligned on the steps all of them logged; the band is
    min..max or mean ± 1 sd (`band`). Columns run, <x>, lo, hi."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {sorted(BANDS)}, got {band!r}")
    col = X_AXES[x][0]
    bands = []
    for name, dfs in groups.items():
        parts = []
        for i, df in enumerate(dfs):
            if df is None or df.empty or y not in df:
                continue
            d = with_x(df, x)
            if col not in d:
                continue
            v = metrics.ema(d[y].to_numpy(dtype=np.float64, na_value=np.nan), smoothing)
            parts.append(
                pd.DataFrame({"step": d["step"].to_numpy(), f"x{i}": d[col].to_numpy(), f"y{i}": v})
                .drop_duplicates("step")
                .set_index("step")
            )
        if len(parts) < 2:
            continue
        m = pd.concat(parts, axis=1, join="inner").sort_index()
        if m.empty:
            continue
        ys = m[[c for c in m.columns if c.startswith("y")]].to_numpy(dtype=np.float64)
        xs = m[[c for c in m.columns if c.startswith("x")]].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if band == "sd":
                mean, sd = np.nanmean(ys, axis=1), np.nanstd(ys, axis=1, ddof=1)
                lo, hi = mean - sd, mean + sd
            else:
                lo, hi = np.nanmin(ys, axis=1), np.nanmax(ys, axis=1)
        xv = np.nanmean(xs, axis=1) if col != "step" else m.index.to_numpy(dtype=np.float64)
        keep = np.unique(np.linspace(0, len(xv) - 1, min(len(xv), n_out)).astype(int))
        bands.append(pd.DataFrame({col: xv[keep], "lo": lo[keep], "hi": hi[keep]}).assign(run=name))
    if not bands:
        return pd.DataFrame(columns=["run", col, "lo", "hi"])
    return pd.concat(bands, ignore_index=True)


def group_mean_tables(
    groups: dict[str, list[pd.DataFrame]], columns: tuple[str, ...]
) -> dict[str, pd.DataFrame]:
    """{name: one table whose `columns` are the mean over the group's runs}, on the steps all
    of them logged (a group of one is its run's table). The mean of smoothed curves equals
    the smoothed mean, so the usual line builders apply to these tables unchanged."""
    out = {}
    for name, dfs in groups.items():
        dfs = [d for d in dfs if d is not None and not d.empty and "step" in d]
        if len(dfs) == 1:
            out[name] = dfs[0]
        elif dfs:
            cols = [c for c in columns if all(c in d for d in dfs)]
            parts = [
                d.drop_duplicates("step").set_index("step")[cols].astype(float).add_suffix(f"#{i}")
                for i, d in enumerate(dfs)
            ]
            m = pd.concat(parts, axis=1, join="inner").sort_index()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = pd.DataFrame(
                    {
                        c: np.nanmean(m[[f"{c}#{i}" for i in range(len(dfs))]].to_numpy(), axis=1)
                        for c in cols
                    },
                    index=m.index,
                )
            out[name] = mean.reset_index()
    return out


def _loss_by_run(dfs: list[pd.DataFrame | None]) -> pd.DataFrame:
    """Validation loss per step (rows) of each run (columns, by position in `dfs`); NaN where
    a run did not evaluate."""
    cols = {}
    for i, df in enumerate(dfs):
        ev = metrics.eval_series(df)
        if ev is None or "step" not in ev:
            continue
        loss = pd.to_numeric(ev["loss"], errors="coerce").astype(np.float64)
        cols[i] = loss.groupby(ev["step"].to_numpy()).mean()
    return pd.DataFrame(cols).sort_index() if cols else pd.DataFrame()


def _x_by_step(dfs: list[pd.DataFrame | None], x: str) -> pd.Series:
    """The mean <x> (tokens, wall time in hours) of one side's evaluations at each step."""
    col = X_AXES[x][0]
    parts = []
    for df in dfs:
        ev = metrics.eval_series(df)
        if ev is None or "step" not in ev:
            continue
        ev = with_x(ev, x)
        if col in ev:
            parts.append(pd.to_numeric(ev[col], errors="coerce").groupby(ev["step"]).mean())
    if not parts:
        return pd.Series(dtype=np.float64)
    return pd.concat(parts, axis=1).mean(axis=1)


DIFFERENCE_COLUMNS = ["run", "step", "diff", "lo", "hi", "n", "n_max", "method", "reason", "notes"]


def paired_eval_difference(
    tables: dict[str, list[pd.DataFrame | None]],
    seeds: dict[str, list[object]],
    baseline: str,
    x: str = "step",
    n_out: int = DEFAULT_POINTS,
) -> pd.DataFrame:
    """Validation loss of each series minus the baseline series', at every evaluation step both
    have, with a 95% band across seeds for all those steps at once (each step's interval at
    1 - 5%/steps, Bonferroni), by the rule every verdict uses
    (`intervals.seed_values` then `intervals.across_seeds`): repeats of one seed count once;
    with >= 2 seeds both sides ran, the mean of the per-seed differences and a paired
    t-interval (same initial weights and batches); else the difference of means with Welch's
    interval (or the group's spread for one seed against a group); one seed each: no interval.

    `tables[name]` holds the evaluation tables of a series' runs and `seeds[name]` their seeds
    (None when unknown), in the same order. lo/hi are NaN where no band can be drawn, also where
    every seed gave the same value (no spread is not certainty). Columns run, step, <x> (unless
    x is "step"), diff, lo, hi, n (seeds or pairs on the smaller side), n_max (on the larger
    side), method, reason (why no interval), notes (seeds merged or left out); below 0 the
    series is ahead of the baseline."""
    col = X_AXES[x][0]
    columns = [*DIFFERENCE_COLUMNS[:2], *([col] if col != "step" else []), *DIFFERENCE_COLUMNS[2:]]
    empty = pd.DataFrame(columns=columns)
    if baseline not in tables:
        return empty
    base = _loss_by_run(tables[baseline])
    base_seeds = _padded(seeds.get(baseline, []), len(tables[baseline]))
    parts = []
    for name, dfs in tables.items():
        run = _loss_by_run(dfs)
        if name == baseline or run.empty or base.empty:
            continue
        run_seeds = _padded(seeds.get(name, []), len(dfs))
        steps = run.index[run.notna().any(axis=1)].intersection(
            base.index[base.notna().any(axis=1)]
        )
        keep = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), n_out)).astype(int))
        # one band for the whole curve: 95% for all the steps drawn at once (Bonferroni), so
        # that "beyond noise at step N" is not one of twenty steps crossing 0 by chance
        level = 1 - (1 - intervals.LEVEL) / max(1, len(keep))
        rows = []
        for step in steps[keep] if len(steps) else []:
            a, na = _seed_values(run.loc[step], run_seeds, "compared run")
            b, nb = _seed_values(base.loc[step], base_seeds, "baseline")
            d = intervals.across_seeds(a, b, notes=na + nb, level=level)
            band = d.has_interval and d.high > d.low
            lo, hi = (d.low, d.high) if band else (np.nan, np.nan)
            rows.append((name, step, d.estimate, lo, hi, d.n, d.n_max, d.method, d.reason, d.notes))
        if not rows:
            continue
        part = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
        if col != "step":
            part.insert(2, col, part["step"].map(_x_by_step(dfs, x)).astype(np.float64))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[columns] if parts else empty


def _padded(seeds: list[object], n: int) -> list[object]:
    """Seeds not given are unknown (None)."""
    return [*seeds, *[None] * (n - len(seeds))][:n]


def _seed_values(row: pd.Series, seeds: list[object], side: str) -> tuple[dict, tuple]:
    """{seed: value} of one side at one step (finite values only), and the notes on merges."""
    pairs = [(seeds[i], float(v)) for i, v in row.items() if np.isfinite(v)]
    return intervals.seed_values(pairs, side)


def beyond_noise(diff: pd.DataFrame) -> pd.DataFrame:
    """The rows of a `paired_eval_difference` frame whose 95% band excludes 0, with `side`
    "ahead" (the band lies below 0) or "behind" (above 0); rows without a band never count."""
    if diff is None or diff.empty:
        return pd.DataFrame(columns=[*(diff.columns if diff is not None else []), "side"])
    ahead, behind = diff["hi"] < 0, diff["lo"] > 0
    out = diff[ahead | behind].copy()
    out["side"] = np.where(ahead[ahead | behind], "ahead", "behind")
    return out


def band_outline(diff: pd.DataFrame, col: str = "step") -> pd.DataFrame:
    """The 95% band of each series of a `paired_eval_difference` frame as closed outlines,
    one per run of consecutive steps that have a band, separated by NaN rows (a filled trace
    breaks there, so a step without a band is never bridged). A lone banded step gets no
    outline (it has no width to fill): `lone_bands` gives those. `col` is the frame's x column.
    Columns run, <col>, y."""
    parts = []
    for name, g in diff.groupby("run", sort=False):
        has = g["lo"].notna() & g["hi"].notna()
        seg_id = (has != has.shift()).cumsum()[has]
        for _, s in g[has].groupby(seg_id, sort=False):
            if len(s) < 2:
                continue
            xs = s[col].to_numpy(dtype=np.float64)
            ring = pd.DataFrame(
                {
                    col: [*xs, *xs[::-1], np.nan],
                    "y": [*s["hi"], *s["lo"].to_numpy()[::-1], np.nan],
                }
            )
            parts.append(ring.assign(run=name))
    if not parts:
        return pd.DataFrame(columns=["run", col, "y"])
    return pd.concat(parts, ignore_index=True)[["run", col, "y"]]


def lone_bands(diff: pd.DataFrame) -> pd.DataFrame:
    """The rows whose step has a band while both neighbouring steps of its series have none
    (drawn as an error bar: a band needs two steps to have width)."""
    out = []
    for _, g in diff.groupby("run", sort=False):
        has = g["lo"].notna() & g["hi"].notna()
        prev = has.shift(fill_value=False)
        nxt = has.shift(-1, fill_value=False)
        out.append(g[has & ~prev & ~nxt])
    return pd.concat(out) if out else diff.iloc[:0]


def near_zero_before(diff: pd.DataFrame, step: int, share: float = 0.05) -> tuple[list, float]:
    """([evaluation steps up to `step`], the largest |difference| or band end there) for a series'
    rows of `paired_eval_difference`, when all of them lie within `share` of the largest after
    it; ([], nan) otherwise. SGG applies factor 1 until its first re-cluster, so on AdamW's seeds
    and batches it differs from AdamW there by floating-point rounding only (main-600: at most
    0.0004 at steps 25 and 50 against 0.013 later): the caller says so only where the data shows
    it."""
    ends = diff[["diff", "lo", "hi"]].abs().max(axis=1, skipna=True)
    before, after = diff["step"] <= step, diff["step"] > step
    if not before.any() or not after.any():
        return [], float("nan")
    top, later = float(ends[before].max()), float(ends[after].max())
    if not (np.isfinite(top) and np.isfinite(later) and top <= share * later):
        return [], float("nan")
    return [int(s) for s in diff.loc[before, "step"]], top

"""Run statistics: smoothing, moving averages, variation, when a loss is reached, run summaries.

Every function takes arrays or DataFrames and returns plain values; nothing here knows
Streamlit or Plotly. The words that explain these numbers live in `dashboard.narrative`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from dashboard.metrics.logged import nonfinite_loss
from dashboard.metrics.spikes import GRAD_SPIKE_FACTOR, LOSS_SPIKE_FACTOR, spike_mask

FINAL_WINDOW = 100
WARMUP_FRACTION = 0.1


# --------------------------------------------------------------------------- smoothing


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average.

    s_t = sum_i weight^i x_{t-i} / sum_i weight^i over the finite values seen so far, which is
    exactly TensorBoard's `last = last*w + (1-w)*x; s = last / (1 - w^n)`. Non-finite values do
    not advance the average and stay non-finite in the output. `weight` in [0, 1).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got {weight!r}")
    x = np.asarray(values, dtype=np.float64)
    if weight == 0.0 or x.size == 0:
        return x.copy()
    finite = np.isfinite(x)
    s = pd.Series(np.where(finite, x, np.nan))
    out = s.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean().to_numpy(copy=True)
    out[~finite] = x[~finite]
    return out


def moving_average(values, window: int = FINAL_WINDOW) -> np.ndarray:
    """Mean of the last `window` finite values (NaN until `window` values were seen)."""
    x = np.asarray(values, dtype=np.float64)
    s = pd.Series(np.where(np.isfinite(x), x, np.nan))  # half the cost of Series.where
    return s.rolling(window, min_periods=window).mean().to_numpy()


# --------------------------------------------------------------------------- variation


def coefficient_of_variation(values, skip_fraction: float = WARMUP_FRACTION) -> float:
    """std / mean of the finite values after the first `skip_fraction` of them (NaN if none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[int(len(x) * skip_fraction) :]
    x = x[np.isfinite(x)]
    if x.size < 2 or x.mean() == 0:
        return float("nan")
    return float(x.std() / abs(x.mean()))


def first_reach(x, y, target: float) -> float:
    """The first x at which y <= target (NaN if never)."""
    y = np.asarray(y, dtype=np.float64)
    if not np.isfinite(target) or y.size == 0:
        return float("nan")
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(y <= target)
    return float(np.asarray(x)[hit[0]]) if hit.size else float("nan")


# --------------------------------------------------------------------------- summaries


def eval_series(evals: pd.DataFrame | None) -> pd.DataFrame | None:
    """The evaluation rows of one split ("val" when present, else the first split)."""
    if evals is None or evals.empty or "loss" not in evals:
        return None
    if "split" in evals:
        keep = _split_rows(evals["split"])
        if keep is not None:
            evals = evals[keep]
    return evals.reset_index(drop=True)


def _split_rows(split: pd.Series) -> np.ndarray | pd.Series | None:
    """Which rows belong to the chosen split (None: all of them). A text column (what the
    loader gives) is factorized once, and a single split is not filtered at all: the string
    comparisons cost ~1 ms a call, and the Summary asks for every run's series several times.
    Other columns are compared as text, as they always were."""
    if isinstance(split.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(split)  # in order of appearance; missing: -1
        names = list(uniques)
        if not names or (len(names) == 1 and codes.min() == 0):
            return None
        return codes == (names.index("val") if "val" in names else 0)
    if not split.notna().any():
        return None
    splits = list(dict.fromkeys(split.dropna().astype(str)))
    chosen = "val" if "val" in splits else splits[0]
    return split.astype(str) == chosen


@dataclass
class RunSummary:
    name: str
    optimizer: str
    status: str
    steps: int | None = None
    tokens: float = float("nan")
    wall_time_s: float = float("nan")
    final_train_loss: float = float("nan")
    best_train_loss: float = float("nan")
    final_eval_loss: float = float("nan")
    best_eval_loss: float = float("nan")
    final_eval_ppl: float = float("nan")
    final_train_ppl: float = float("nan")
    # None: not recorded in this run (no readable steps, or no gradient norm): never a 0
    loss_spikes: int | None = None
    grad_spikes: int | None = None
    grad_norm_cv: float = float("nan")
    nan_steps: int | None = None
    first_nan_step: int | None = None
    steps_to_target: float = float("nan")
    tokens_to_target: float = float("nan")
    speedup_steps: float = float("nan")
    speedup_tokens: float = float("nan")
    target_kind: str = ""  # "eval" or "train"
    shadow: bool = False  # an AdamW run that also computed an observe-only clustering
    baseline_steps_to_own: float = float("nan")  # when the baseline reached this run's loss
    steps_to_own: float = float("nan")  # when this run first reached its own final loss

    def as_dict(self) -> dict:
        return asdict(self)


def perplexity(v: float) -> float:
    """exp(loss), NaN when the loss is not finite or too large to exponentiate."""
    return math.exp(v) if np.isfinite(v) and v < 700 else float("nan")


def summarize(
    name: str, optimizer: str, status: str, steps: pd.DataFrame | None, evals: pd.DataFrame | None
) -> RunSummary:
    """One run's own numbers (no speed-ups: `add_speedups` needs every run)."""
    return _summarize(name, optimizer, status, steps, eval_series(evals))


def _summarize(
    name: str, optimizer: str, status: str, steps: pd.DataFrame | None, ev: pd.DataFrame | None
) -> RunSummary:
    """`summarize` from the run's `eval_series` (`ev`), which `summarize_runs` reads once."""
    s = RunSummary(name=name, optimizer=optimizer, status=status)
    if steps is not None and not steps.empty:
        s.steps = int(steps["step"].iloc[-1])
        if "tokens" in steps and steps["tokens"].notna().any():
            s.tokens = float(steps["tokens"].dropna().iloc[-1])
        if "wall_time" in steps and steps["wall_time"].notna().any():
            s.wall_time_s = float(steps["wall_time"].dropna().iloc[-1])
        loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(loss)  # NaN, or a step whose loss was not logged (null)
        s.nan_steps, s.first_nan_step = nonfinite_loss(steps)  # only logged NaN/inf count
        finite = loss[~bad]
        if finite.size:
            s.final_train_loss = float(finite[-FINAL_WINDOW:].mean())
            ma = moving_average(finite, min(FINAL_WINDOW, finite.size))
            s.best_train_loss = float(np.nanmin(ma))
            s.final_train_ppl = perplexity(s.final_train_loss)
        s.loss_spikes = int(spike_mask(loss, LOSS_SPIKE_FACTOR).sum())
        g = (
            steps["grad_norm"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "grad_norm" in steps
            else None
        )
        if g is not None and np.isfinite(g).any():
            s.grad_spikes = int(spike_mask(g, GRAD_SPIKE_FACTOR).sum())
            s.grad_norm_cv = coefficient_of_variation(g)
    if ev is not None:
        e = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        fin = e[np.isfinite(e)]
        if fin.size:
            s.final_eval_loss = float(fin[-1])
            s.best_eval_loss = float(fin.min())
            s.final_eval_ppl = perplexity(s.final_eval_loss)
    return s


# (step, tokens or None, loss) a target is read against; None: nothing to read
Curve = tuple[np.ndarray, np.ndarray | None, np.ndarray] | None


def _curve(steps: pd.DataFrame | None, ev: pd.DataFrame | None, kind: str) -> Curve:
    """The loss a run's target is read on, extracted once per run: the evaluation loss
    (`ev`, its `eval_series`), or the moving average over the last FINAL_WINDOW finite
    training losses, as in final_train_loss."""
    if kind == "eval":
        if ev is None:
            return None
        y = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        tok = ev["tokens"].to_numpy(dtype=np.float64, na_value=np.nan) if "tokens" in ev else None
        return ev["step"].to_numpy(), tok, y
    if steps is None or steps.empty:
        return None
    loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(loss)
    ma = np.full(loss.size, np.nan)
    if finite.any():
        ma_f = moving_average(loss[finite], min(FINAL_WINDOW, int(finite.sum())))
        ma[np.flatnonzero(finite)] = ma_f
    tok = steps["tokens"].to_numpy(dtype=np.float64, na_value=np.nan) if "tokens" in steps else None
    return steps["step"].to_numpy(), tok, ma


def _reach(curve: Curve, target: float) -> tuple[float, float]:
    """(step, tokens) at which this run's loss (its `_curve`) first reaches `target`."""
    if curve is None:
        return float("nan"), float("nan")
    step, tok, y = curve
    st = first_reach(step, y, target)
    return st, (first_reach(tok, y, target) if tok is not None else float("nan"))


def _has_evals(ev: pd.DataFrame | None) -> bool:
    """At least two finite evaluation losses in the run's `eval_series` (`ev`)."""
    return (
        ev is not None
        and int(np.isfinite(ev["loss"].to_numpy(dtype=float, na_value=np.nan)).sum()) >= 2
    )


def add_speedups(
    summaries: dict[str, RunSummary],
    data: dict[str, tuple],
    baseline: str,
    series: dict[str, pd.DataFrame | None] | None = None,
) -> None:
    """Fill steps/tokens-to-target and speed-ups (in place) relative to `baseline`.

    `data[key] = (steps_df, evals_df)`. Eval loss is used when every run has evaluations.
    `series[key]`: the run's `eval_series`, when the caller has it already.
    """
    if baseline not in summaries:
        return
    if series is None:
        series = {k: eval_series(data[k][1]) for k in summaries}
    kind = "eval" if all(_has_evals(series[k]) for k in summaries) else "train"
    b = summaries[baseline]
    target = b.final_eval_loss if kind == "eval" else b.final_train_loss
    if not np.isfinite(target):
        return
    curves = {k: _curve(data[k][0], series[k], kind) for k in summaries}
    for key, s in summaries.items():
        s.target_kind = kind
        s.steps_to_target, s.tokens_to_target = _reach(curves[key], target)
    bs, bt = b.steps_to_target, b.tokens_to_target
    for key, s in summaries.items():
        # the other way round: when did the baseline reach this run's final loss?
        own = s.final_eval_loss if kind == "eval" else s.final_train_loss
        if key != baseline and np.isfinite(own):
            s.baseline_steps_to_own, _ = _reach(curves[baseline], own)
            s.steps_to_own, _ = _reach(curves[key], own)
        if np.isfinite(bs) and np.isfinite(s.steps_to_target) and s.steps_to_target > 0:
            s.speedup_steps = bs / s.steps_to_target
        if np.isfinite(bt) and np.isfinite(s.tokens_to_target) and s.tokens_to_target > 0:
            s.speedup_tokens = bt / s.tokens_to_target


NOT_RECORDED = "not recorded"  # what a table cell says for a quantity the run did not log

SUMMARY_COLUMNS = {
    "name": "Run",
    "optimizer": "Optimizer",
    "status": "Status",
    "steps": "Steps",
    "final_train_loss": "Final train loss",
    "final_eval_loss": "Final eval loss",
    "best_eval_loss": "Best eval loss",
    "final_eval_ppl": "Final eval perplexity",
    "loss_spikes": "Loss spikes",
    "grad_spikes": "Gradient spikes",
    "grad_norm_cv": "Gradient-size variation (CV, %)",
    "nan_steps": "Steps with NaN loss",
    "wall_time_s": "Wall time (s)",
}


def summary_table(summaries: list[RunSummary]) -> pd.DataFrame:
    """Every run's numbers (the best train loss is left out: on a loss that still falls it is
    the final one; the variation is in percent, as on the Summary's cards)."""
    df = pd.DataFrame([s.as_dict() for s in summaries])
    if df.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS.values()))
    df["grad_norm_cv"] = df["grad_norm_cv"] * 100
    out = df[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS)
    for col in out.columns:  # a column with a gap is text, so that a cell can say so
        if out[col].isna().any():
            out[col] = [_cell(v) for v in out[col]]
    return out


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return NOT_RECORDED
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summarize_runs(
    data: dict[str, tuple[pd.DataFrame | None, pd.DataFrame | None]],
    infos: dict[str, dict],
    baseline: str,
) -> list[RunSummary]:
    """Summaries of every run in `data` ({id: (steps, evals)}), speed-ups relative to
    `baseline`. `infos[id]` holds name, optimizer, status and shadow."""
    series = {rid: eval_series(evals) for rid, (_, evals) in data.items()}  # once per run
    sums = {}
    for rid, (steps, _) in data.items():
        info = infos[rid]
        s = _summarize(info["name"], info["optimizer"], info["status"], steps, series[rid])
        s.shadow = bool(info.get("shadow"))
        sums[rid] = s
    add_speedups(sums, data, baseline, series)
    return list(sums.values())

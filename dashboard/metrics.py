"""Pure numbers behind the dashboard: smoothing, spikes, speed-ups, summaries and sentences.

Every function takes arrays or DataFrames and returns plain values; nothing here knows
Streamlit or Plotly. The definitions below are the ones the page explains to its readers:

- final train loss: mean of the last FINAL_WINDOW logged training losses (one noisy step does
  not decide); best train loss: the lowest FINAL_WINDOW-step moving average;
- final / best eval loss: the last / lowest evaluation loss (split "val" when present);
- perplexity: exp(loss);
- a spike: a logged value more than `factor` times the typical value (median) of the
  preceding ~SPIKE_WINDOW steps; consecutive spiking steps count as one spike;
- coefficient of variation (CV) of the gradient norm: standard deviation / mean, after the
  first WARMUP_FRACTION of the run;
- steps to the baseline's loss: the first step at which a run's loss (eval loss when both runs
  have evaluations, otherwise the FINAL_WINDOW-step moving average of the train loss) is at or
  below the baseline's final loss; speed-up = baseline's steps / run's steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

FINAL_WINDOW = 100
SPIKE_WINDOW = 200
LOSS_SPIKE_FACTOR = 1.25
GRAD_SPIKE_FACTOR = 3.0
WARMUP_FRACTION = 0.1
SAME_LOSS = 0.02  # final losses closer than this (relative) are called "practically the same"


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
    s = pd.Series(np.asarray(values, dtype=np.float64))
    s = s.where(np.isfinite(s))
    return s.rolling(window, min_periods=window).mean().to_numpy()


# --------------------------------------------------------------------------- spikes, CV


def typical_level(values, window: int = SPIKE_WINDOW) -> np.ndarray:
    """The median of roughly the preceding `window` values, for every position (NaN at first).

    Computed in blocks of window/4 (median per block, then the median of the four previous
    blocks' medians): close to a rolling median and ~20x cheaper on a million steps.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return x.copy()
    block = max(1, window // 4)
    nb = -(-n // block)
    padded = np.full(nb * block, np.nan)
    padded[:n] = np.where(np.isfinite(x), x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(padded.reshape(nb, block), axis=1)
    base = pd.Series(med).rolling(4, min_periods=2).median().shift(1).to_numpy()
    return np.repeat(base, block)[:n]


def spike_mask(values, factor: float, window: int = SPIKE_WINDOW) -> np.ndarray:
    """True at the first step of every spike (value > factor x typical level). Exceedances
    closer than window/4 steps to the previous one belong to the same spike."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    base = typical_level(x, window)
    with np.errstate(invalid="ignore"):
        above = np.isfinite(x) & np.isfinite(base) & (x > factor * base)
    idx = np.flatnonzero(above)
    start = np.zeros(x.size, dtype=bool)
    if idx.size:
        new_event = np.concatenate([[True], np.diff(idx) > max(1, window // 4)])
        start[idx[new_event]] = True
    return start


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
    if "split" in evals and evals["split"].notna().any():
        splits = list(dict.fromkeys(evals["split"].dropna().astype(str)))
        split = "val" if "val" in splits else splits[0]
        evals = evals[evals["split"].astype(str) == split]
    return evals.reset_index(drop=True)


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
    loss_spikes: int = 0
    grad_spikes: int = 0
    grad_norm_cv: float = float("nan")
    nan_steps: int = 0
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


def _exp(v: float) -> float:
    return math.exp(v) if np.isfinite(v) and v < 700 else float("nan")


def summarize(
    name: str, optimizer: str, status: str, steps: pd.DataFrame | None, evals: pd.DataFrame | None
) -> RunSummary:
    s = RunSummary(name=name, optimizer=optimizer, status=status)
    if steps is not None and not steps.empty:
        s.steps = int(steps["step"].iloc[-1])
        if "tokens" in steps and steps["tokens"].notna().any():
            s.tokens = float(steps["tokens"].dropna().iloc[-1])
        if "wall_time" in steps and steps["wall_time"].notna().any():
            s.wall_time_s = float(steps["wall_time"].dropna().iloc[-1])
        loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(loss)
        s.nan_steps = int(bad.sum())
        if bad.any():
            s.first_nan_step = int(steps["step"].iloc[int(np.argmax(bad))])
        finite = loss[~bad]
        if finite.size:
            s.final_train_loss = float(finite[-FINAL_WINDOW:].mean())
            ma = moving_average(finite, min(FINAL_WINDOW, finite.size))
            s.best_train_loss = float(np.nanmin(ma))
            s.final_train_ppl = _exp(s.final_train_loss)
        s.loss_spikes = int(spike_mask(loss, LOSS_SPIKE_FACTOR).sum())
        if "grad_norm" in steps:
            g = steps["grad_norm"].to_numpy(dtype=np.float64, na_value=np.nan)
            s.grad_spikes = int(spike_mask(g, GRAD_SPIKE_FACTOR).sum())
            s.grad_norm_cv = coefficient_of_variation(g)
    ev = eval_series(evals)
    if ev is not None:
        e = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        fin = e[np.isfinite(e)]
        if fin.size:
            s.final_eval_loss = float(fin[-1])
            s.best_eval_loss = float(fin.min())
            s.final_eval_ppl = _exp(s.final_eval_loss)
    return s


def _reach(steps, evals, target, kind) -> tuple[float, float]:
    """(step, tokens) at which this run's loss first reaches `target`."""
    if kind == "eval":
        ev = eval_series(evals)
        if ev is None:
            return float("nan"), float("nan")
        y = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        st = first_reach(ev["step"].to_numpy(), y, target)
        tok = (
            first_reach(ev["tokens"].to_numpy(dtype=np.float64, na_value=np.nan), y, target)
            if "tokens" in ev
            else float("nan")
        )
        return st, tok
    if steps is None or steps.empty:
        return float("nan"), float("nan")
    loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
    # the moving average over the last FINAL_WINDOW finite values, as in final_train_loss
    finite = np.isfinite(loss)
    ma = np.full(loss.size, np.nan)
    if finite.any():
        ma_f = moving_average(loss[finite], min(FINAL_WINDOW, int(finite.sum())))
        ma[np.flatnonzero(finite)] = ma_f
    st = first_reach(steps["step"].to_numpy(), ma, target)
    tok = (
        first_reach(steps["tokens"].to_numpy(dtype=np.float64, na_value=np.nan), ma, target)
        if "tokens" in steps
        else float("nan")
    )
    return st, tok


def _has_evals(evals) -> bool:
    ev = eval_series(evals)
    return (
        ev is not None
        and int(np.isfinite(ev["loss"].to_numpy(dtype=float, na_value=np.nan)).sum()) >= 2
    )


def add_speedups(summaries: dict[str, RunSummary], data: dict[str, tuple], baseline: str) -> None:
    """Fill steps/tokens-to-target and speed-ups (in place) relative to `baseline`.

    `data[key] = (steps_df, evals_df)`. Eval loss is used when every run has evaluations.
    """
    if baseline not in summaries:
        return
    kind = "eval" if all(_has_evals(data[k][1]) for k in summaries) else "train"
    b = summaries[baseline]
    target = b.final_eval_loss if kind == "eval" else b.final_train_loss
    if not np.isfinite(target):
        return
    for key, s in summaries.items():
        s.target_kind = kind
        s.steps_to_target, s.tokens_to_target = _reach(*data[key], target, kind)
    bs, bt = b.steps_to_target, b.tokens_to_target
    for key, s in summaries.items():
        # the other way round: when did the baseline reach this run's final loss?
        own = s.final_eval_loss if kind == "eval" else s.final_train_loss
        if key != baseline and np.isfinite(own):
            s.baseline_steps_to_own, _ = _reach(*data[baseline], own, kind)
            s.steps_to_own, _ = _reach(*data[key], own, kind)
        if np.isfinite(bs) and np.isfinite(s.steps_to_target) and s.steps_to_target > 0:
            s.speedup_steps = bs / s.steps_to_target
        if np.isfinite(bt) and np.isfinite(s.tokens_to_target) and s.tokens_to_target > 0:
            s.speedup_tokens = bt / s.tokens_to_target


SUMMARY_COLUMNS = {
    "name": "Run",
    "optimizer": "Optimizer",
    "status": "Status",
    "steps": "Steps",
    "final_train_loss": "Final train loss",
    "best_train_loss": "Best train loss",
    "final_eval_loss": "Final eval loss",
    "best_eval_loss": "Best eval loss",
    "final_eval_ppl": "Final eval perplexity",
    "steps_to_target": "Steps to baseline's final loss",
    "speedup_steps": "Speed-up (x)",
    "loss_spikes": "Loss spikes",
    "grad_spikes": "Gradient spikes",
    "grad_norm_cv": "Gradient-norm CV",
    "nan_steps": "Steps with NaN loss",
    "wall_time_s": "Wall time (s)",
}


def summary_table(summaries: list[RunSummary]) -> pd.DataFrame:
    df = pd.DataFrame([s.as_dict() for s in summaries])
    if df.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS.values()))
    return df[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- sentences


def _n(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def _int(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{round(v):,}"


def _dur(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sentences(summaries: list[RunSummary], baseline: str) -> list[str]:
    """A few plain-language sentences comparing every run with the baseline."""
    by = {s.name: s for s in summaries}
    if baseline not in by:
        return []
    b = by[baseline]
    out: list[str] = []
    kind = b.target_kind or "train"
    loss_word = "validation loss" if kind == "eval" else "training loss"
    b_loss = b.final_eval_loss if kind == "eval" else b.final_train_loss
    if b.first_nan_step is not None and not np.isfinite(b_loss):
        out.append(
            f"The baseline **{b.name}** broke down: its loss became not-a-number at step "
            f"{b.first_nan_step:,}, so the comparisons below are limited."
        )
    for s in summaries:
        if s.name == baseline:
            continue
        loss = s.final_eval_loss if kind == "eval" else s.final_train_loss
        out.append(verdict(s, b, loss, b_loss))
        if s.first_nan_step is not None:
            out.append(
                f"**{s.name}** diverged: its training loss became not-a-number (the numbers "
                f"blew up) at step {s.first_nan_step:,}."
            )
        if np.isfinite(s.speedup_steps):
            fewer = 1 - 1 / s.speedup_steps
            if s.speedup_steps >= 1.005:
                out.append(
                    f"**{s.name}** reached the baseline's final {loss_word} ({_n(b_loss)}) after "
                    f"{_int(s.steps_to_target)} steps instead of {_int(b.steps_to_target)}: "
                    f"{fewer:.0%} fewer steps, a **{s.speedup_steps:.2f}x speed-up**."
                )
            elif s.speedup_steps > 1 / 1.005:
                out.append(
                    f"**{s.name}** reached the baseline's final {loss_word} ({_n(b_loss)}) at "
                    f"the same point as the baseline (step {_int(s.steps_to_target)}): no "
                    f"speed-up, no slow-down."
                )
            else:
                out.append(
                    f"**{s.name}** needed {_int(s.steps_to_target)} steps to reach the baseline's "
                    f"final {loss_word} ({_n(b_loss)}), versus {_int(b.steps_to_target)} for the "
                    f"baseline: it is {1 / s.speedup_steps:.2f}x slower."
                )
        elif np.isfinite(b_loss):
            msg = f"**{s.name}** never reached the baseline's final {loss_word} ({_n(b_loss)})"
            if (
                np.isfinite(s.baseline_steps_to_own)
                and np.isfinite(s.steps_to_own)
                and s.baseline_steps_to_own < s.steps_to_own
            ):
                msg += (
                    f"; the other way round, the baseline reached {s.name}'s final "
                    f"{loss_word} ({_n(loss)}) after {_int(s.baseline_steps_to_own)} steps, "
                    f"versus {_int(s.steps_to_own)} for {s.name}"
                )
            out.append(msg + ".")
        if np.isfinite(loss) and np.isfinite(b_loss):
            ppl = (
                f"(perplexity {_n(_exp(loss))} vs {_n(_exp(b_loss))}; perplexity = e^loss, "
                "roughly how many equally likely next words the model hesitates between, lower "
                "is better)"
            )
            if abs(loss - b_loss) < SAME_LOSS * abs(b_loss):
                out.append(
                    f"Its final {loss_word} is {_n(loss)}, practically the same as the "
                    f"baseline's {_n(b_loss)}, less than {SAME_LOSS:.0%} apart {ppl}."
                )
            else:
                better = "lower (better)" if loss < b_loss else "higher (worse)"
                out.append(
                    f"Its final {loss_word} is {_n(loss)}, {better} than the baseline's "
                    f"{_n(b_loss)} {ppl}."
                )
        out.append(
            f"Stability: {s.loss_spikes} sudden loss jump(s) and {s.grad_spikes} gradient "
            f"spike(s), versus {b.loss_spikes} and {b.grad_spikes} for the baseline; the gradient "
            f"size varies by {_pct(s.grad_norm_cv)} around its average versus "
            f"{_pct(b.grad_norm_cv)} (coefficient of variation: lower means steadier training)."
        )
        if np.isfinite(s.wall_time_s) and np.isfinite(b.wall_time_s) and b.wall_time_s > 0:
            per_s = s.wall_time_s / max(1, s.steps or 1)
            per_b = b.wall_time_s / max(1, b.steps or 1)
            extra = per_s / per_b - 1
            cost = (
                "about the same time as the baseline's"
                if abs(extra) < 0.005
                else f"{abs(extra):.0%} {'more' if extra > 0 else 'less'} time than the baseline's"
            )
            out.append(
                f"Time: {_dur(s.wall_time_s)} for {_int(s.steps)} steps versus "
                f"{_dur(b.wall_time_s)} for {_int(b.steps)}; each step takes {cost}"
                + (
                    " (the baseline also computed a shadow clustering for comparison, which "
                    "costs time)."
                    if b.shadow
                    else "."
                )
            )
    return out


def verdict(s: RunSummary, b: RunSummary, loss: float, b_loss: float) -> str:
    """One 'in short' sentence: faster or not, better or not, steadier or not."""
    if s.first_nan_step is not None and not np.isfinite(loss):
        return f"**In short: {s.name} failed** (its loss blew up); {b.name} did not."
    if np.isfinite(s.speedup_steps) and s.speedup_steps >= 1.05:
        speed = f"reaches the baseline's result **{s.speedup_steps:.2f}x faster**"
    elif np.isfinite(s.speedup_steps) and s.speedup_steps <= 1 / 1.05:
        speed = f"is **{1 / s.speedup_steps:.2f}x slower** to reach the baseline's result"
    elif np.isfinite(s.speedup_steps) or (
        np.isfinite(loss) and np.isfinite(b_loss) and abs(loss - b_loss) < SAME_LOSS * abs(b_loss)
    ):
        speed = "learns about as fast as the baseline"
    else:
        speed = "never reaches the baseline's final loss"
    if np.isfinite(loss) and np.isfinite(b_loss):
        if abs(loss - b_loss) < SAME_LOSS * abs(b_loss):
            end = "ends level with it (final loss within 2%)"
        elif loss < b_loss:
            end = "ends **better** (lower final loss)"
        else:
            end = "ends **worse** (higher final loss)"
    else:
        end = "cannot be compared at the end"
    calmer = (s.loss_spikes + s.grad_spikes) - (b.loss_spikes + b.grad_spikes)
    cv_diff = (
        s.grad_norm_cv - b.grad_norm_cv
        if np.isfinite(s.grad_norm_cv) and np.isfinite(b.grad_norm_cv)
        else 0.0
    )
    if calmer < 0 or (calmer == 0 and cv_diff < -0.05):
        stab = "and trains **more steadily**"
    elif calmer > 0 or cv_diff > 0.05:
        stab = "but trains **less steadily**"
    else:
        stab = "and is as steady"
    return f"**In short: {s.name}** {speed}, {end}, {stab}."


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.0%}"


# --------------------------------------------------------------------------- sweeps, configs


def flatten(d, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their JSON-ish repr."""
    out: dict[str, object] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = str(v) if isinstance(v, list) else v
    return out


def config_table(metas: dict[str, dict]) -> pd.DataFrame:
    """Settings (rows) x runs (columns) with a `differs` column, from run.json."""
    cols = {}
    for name, meta in metas.items():
        sel = {k: meta.get(k) for k in ("optimizer", "config", "seed", "recording", "model")}
        opt = sel["optimizer"]
        if isinstance(opt, dict):  # SGG's options and a shadow clustering's side by side
            clus = opt.get("sgg") or opt.get("shadow")
            applied = (
                "yes (SGG)"
                if opt.get("sgg")
                else "no: observe-only shadow clustering"
                if opt.get("shadow")
                else "none"
            )
            sel["optimizer"] = {k: v for k, v in opt.items() if k not in ("sgg", "shadow")}
            sel["clustering"] = {"applied": applied, **(clus if isinstance(clus, dict) else {})}
        flat = flatten(sel)
        flat = {k: v for k, v in flat.items() if not k.startswith("model.layers")}
        cols[name] = flat
    df = pd.DataFrame(cols)
    if df.empty:
        return df
    df = df.astype(object).where(df.notna(), None)
    as_text = df.map(lambda v: "" if v is None else repr(v))
    df["differs"] = as_text.nunique(axis=1) > 1
    return df.sort_index()


def _num(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float) and np.isfinite(v):
        return float(v)
    return None


def sweepable_settings(meta: dict) -> dict[str, object]:
    """The settings a sweep can vary: the run's config (config.*); the optimizer's
    hyperparameters (hyperparameters.*) only when there is no config. The optimizer's `lr` is
    the scheduled value at the last flush, so its `initial_lr` stands in for it."""
    opt = meta.get("optimizer") if isinstance(meta.get("optimizer"), dict) else {}
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    if cfg:
        return flatten({"config": cfg})
    hp = dict(opt.get("hyperparameters") or {})
    if "initial_lr" in hp:
        hp["lr"] = hp.pop("initial_lr")
    return flatten({"hyperparameters": hp})


def varying_hyperparameters(metas: dict[str, dict]) -> list[str]:
    """Numeric settings that differ between runs (learning rate first)."""
    values: dict[str, set] = {}
    for meta in metas.values():
        flat = sweepable_settings(meta)
        for k, v in flat.items():
            if _num(v) is not None:
                values.setdefault(k, set()).add(_num(v))
    keys = [k for k, v in values.items() if len(v) >= 2]
    pref = ["hyperparameters.lr", "config.lr", "config.batch_size"]
    return sorted(keys, key=lambda k: (pref.index(k) if k in pref else len(pref), k))


def hyperparameter_value(meta: dict, key: str) -> float | None:
    return _num(sweepable_settings(meta).get(key))


_TWINS = {"hyperparameters.lr": "config.lr", "config.lr": "hyperparameters.lr"}
# settings that differ between the runs of one sweep without making them incomparable
_IGNORED_FOR_SWEEP = {
    "config.optimizer",
    "config.name",
    "config.run_name",
    "config.out",
    "config.out_dir",
    "config.output_dir",
    "config.shadow",
    "config.progress",
    "config.threads",
    "config.overwrite",
    "config.checkpoint_every",
}
PLAIN_NAMES = {
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "batch_size": "batch size",
    "seq_len": "sequence length",
    "steps": "training steps",
}


def plain_name(key: str) -> str:
    """ "hyperparameters.lr" -> "learning rate"."""
    last = key.rsplit(".", 1)[-1]
    return PLAIN_NAMES.get(last, last.replace("_", " "))


def sweep_members(metas: dict[str, dict], key: str) -> list[str]:
    """The runs that differ from each other only in `key` (and in the optimizer): the largest
    group of runs whose other settings are equal, so that a sweep compares like with like."""
    groups: dict[tuple, list[str]] = {}
    for rid, meta in metas.items():
        if hyperparameter_value(meta, key) is None:
            continue
        flat = sweepable_settings(meta)
        skip = {key, _TWINS.get(key, ""), *_IGNORED_FOR_SWEEP}
        sig = tuple(sorted((k, repr(v)) for k, v in flat.items() if k not in skip))
        groups.setdefault(sig, []).append(rid)
    if not groups:
        return []

    def score(members: list[str]) -> tuple[int, int]:
        values = {hyperparameter_value(metas[m], key) for m in members}
        return (len(values), len(members))

    return max(groups.values(), key=score)


def tolerance(sweep: pd.DataFrame, within: float = 0.05) -> pd.DataFrame:
    """Per optimizer: the range of the swept value whose final loss is within `within` (relative)
    of that optimizer's best. `sweep` has columns optimizer, value, final_loss."""
    rows = []
    for opt, g in sweep.groupby("optimizer", sort=True):
        ok = g[np.isfinite(g["final_loss"])]
        if ok.empty:
            rows.append(
                {
                    "optimizer": opt,
                    "best": np.nan,
                    "best_value": np.nan,
                    "low": np.nan,
                    "high": np.nan,
                    "width": np.nan,
                    "n": len(g),
                }
            )
            continue
        best = ok["final_loss"].min()
        good = ok[ok["final_loss"] <= best * (1 + within)]
        lo, hi = float(good["value"].min()), float(good["value"].max())
        rows.append(
            {
                "optimizer": opt,
                "best": float(best),
                "best_value": float(ok.loc[ok["final_loss"].idxmin(), "value"]),
                "low": lo,
                "high": hi,
                "width": hi / lo if lo > 0 else np.nan,
                "n": len(g),
            }
        )
    return pd.DataFrame(rows)


def tolerance_sentences(tol: pd.DataFrame, key: str, within: float = 0.05) -> list[str]:
    out = []
    for r in tol.itertuples():
        if not np.isfinite(r.best):
            out.append(f"**{r.optimizer}**: every run diverged.")
            continue
        where = (
            f"only at {plain_name(key)} {r.low:.3g} (of the values tried)"
            if r.low == r.high
            else f"for {plain_name(key)} from {r.low:.3g} to {r.high:.3g}"
            + (f" (a {r.width:.3g}x range)" if np.isfinite(r.width) and r.width > 1 else "")
        )
        out.append(
            f"**{r.optimizer}** stays within {within:.0%} of its best final loss ({r.best:.4g}) "
            f"{where}."
        )
    if len(tol) >= 2 and tol["width"].notna().any():
        w = tol.dropna(subset=["width"]).sort_values("width", ascending=False)
        if len(w) >= 2 and w["width"].iloc[0] > w["width"].iloc[1]:
            out.append(
                f"**{w['optimizer'].iloc[0]}** tolerates the wider range of {plain_name(key)}."
            )
    return out


# --------------------------------------------------------------------------- clusters


def moved_share(transitions: pd.DataFrame) -> pd.DataFrame:
    """Per (step, layer): the share of elements that changed cluster at that re-cluster."""
    if transitions is None or transitions.empty:
        return pd.DataFrame(columns=["step", "layer", "moved"])
    t = transitions.assign(
        moved=np.where(
            transitions["from_cluster"] != transitions["to_cluster"], transitions["count"], 0
        )
    )
    return _ratio_per_step_layer(t, "moved", "count", "moved")


def size_weighted_factor(clusters: pd.DataFrame) -> pd.DataFrame:
    """Per (step, layer): the scale factor averaged over the layer's elements."""
    if clusters is None or clusters.empty:
        return pd.DataFrame(columns=["step", "layer", "factor"])
    c = clusters.assign(w=clusters["size"] * clusters["factor"].astype(float))
    return _ratio_per_step_layer(c, "w", "size", "factor")


def _ratio_per_step_layer(df: pd.DataFrame, num: str, den: str, out: str) -> pd.DataFrame:
    """Per (step, layer): sum of `num` over sum of `den` (NaN where that is 0), named `out`."""
    g = df.groupby(["step", "layer"], sort=True)[[num, den]].sum().reset_index()
    g[out] = g[num] / g[den].where(g[den] > 0)
    return g[["step", "layer", out]]


def histogram_density(h: pd.DataFrame) -> pd.DataFrame:
    """Add `center` and `density` (share of elements per unit of x, log10 x for adaptive lr)."""
    if h is None or h.empty:
        return pd.DataFrame(columns=["cluster", "center", "density"])
    h = h.copy()
    log = h["quantity"].astype(str).eq("adaptive_lr").to_numpy()
    left = h["bin_left"].to_numpy(dtype=float)
    right = h["bin_right"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(log, np.log10(right) - np.log10(left), right - left)
        h["center"] = np.where(log, np.sqrt(left * right), (left + right) / 2)
    total = h.groupby("cluster")["count"].transform("sum").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h["share"] = h["count"].to_numpy(dtype=float) / total
        h["density"] = h["share"] / width
    return h

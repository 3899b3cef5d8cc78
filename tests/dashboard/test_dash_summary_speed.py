"""The Summary's cheaper numbers are the same numbers: `typical_level` without the block medians
on short runs, `_early_medians` in slices, `eval_series`' factorized split, the remembered spike
peaks, each run's eval series and target curve read once per `summarize_runs`. Each is compared
exactly (same values, NaN places and dtypes) with a copy of the code it replaced, on every run
under sample_runs/ and on synthetic series: long runs with spikes, NaNs, nulls, constants,
several evaluation splits, no split column."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dashboard.metrics import compare, spikes, statistics
from dashboard.metrics.logged import nonfinite_loss
from dashboard.metrics.spikes import GRAD_SPIKE_FACTOR, LOSS_SPIKE_FACTOR, MIN_HISTORY
from dashboard.metrics.statistics import FINAL_WINDOW, RunSummary
from runformat.chunks import live_chunks, table_dir

SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"
RUNS = sorted(p.parent for p in SAMPLES.rglob("run.json")) if SAMPLES.is_dir() else []
NAN = float("nan")

# ------------------------------------------------------------------ the code replaced (reference)


def ref_typical_level(values, window: int = spikes.SPIKE_WINDOW) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return x.copy()
    clean = np.where(np.isfinite(x), x, np.nan)
    block = max(1, window // 4)
    nb = -(-n // block)
    padded = np.full(nb * block, np.nan)
    padded[:n] = clean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(padded.reshape(nb, block), axis=1)
        base = np.repeat(
            pd.Series(med).rolling(4, min_periods=2).median().shift(1).to_numpy(), block
        )[:n]
        early = min(n, 4 * window)
        if early > MIN_HISTORY:
            base[MIN_HISTORY:early] = ref_early_medians(clean, early, window)
        base[:MIN_HISTORY] = np.nan
    return base


def ref_early_medians(clean: np.ndarray, early: int, window: int) -> np.ndarray:
    idx = np.arange(MIN_HISTORY, early)
    k = np.minimum(window, np.maximum(MIN_HISTORY, idx // 4))
    width = int(k.max())
    shifted = np.concatenate([np.full(width, np.nan), clean[: early - 1]])
    rows = sliding_window_view(shifted, width)[idx]
    older = np.arange(width)[None, :] < (width - k)[:, None]
    ordered = np.sort(np.where(older, np.nan, rows), axis=1)
    count = np.isfinite(ordered).sum(axis=1)
    r = np.arange(ordered.shape[0])
    lo = ordered[r, np.maximum(count - 1, 0) // 2]
    hi = ordered[r, np.minimum(count // 2, width - 1)]
    med = np.where(count % 2 == 1, lo, (lo + hi) / 2)
    return np.where(count > 0, med, np.nan)


def ref_spike_typical_level(values, factor: float, window: int = spikes.SPIKE_WINDOW):
    x = np.asarray(values, dtype=np.float64)
    plain = ref_typical_level(x, window)
    with np.errstate(invalid="ignore"):
        high = np.isfinite(plain) & (x > factor * plain)
    if not high.any():
        return plain
    robust = ref_typical_level(np.where(high, np.nan, x), window)
    return np.where(np.isfinite(robust), robust, plain)


def ref_spike_mask(values, factor: float, window: int = spikes.SPIKE_WINDOW) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    mask = np.zeros(x.size, dtype=bool)
    if not x.size:
        return mask
    base = ref_spike_typical_level(x, factor, window)
    with np.errstate(invalid="ignore"):
        above = np.isfinite(x) & np.isfinite(base) & (x > factor * base)
    idx = np.flatnonzero(above)
    if idx.size:
        groups = np.split(idx, np.flatnonzero(np.diff(idx) > spikes.MERGE_GAP + 1) + 1)
        mask[[g[int(np.argmax(x[g]))] for g in groups]] = True
    return mask


def ref_eval_series(evals: pd.DataFrame | None) -> pd.DataFrame | None:
    if evals is None or evals.empty or "loss" not in evals:
        return None
    if "split" in evals and evals["split"].notna().any():
        splits = list(dict.fromkeys(evals["split"].dropna().astype(str)))
        split = "val" if "val" in splits else splits[0]
        evals = evals[evals["split"].astype(str) == split]
    return evals.reset_index(drop=True)


def ref_moving_average(values, window: int = FINAL_WINDOW) -> np.ndarray:
    s = pd.Series(np.asarray(values, dtype=np.float64))
    s = s.where(np.isfinite(s))
    return s.rolling(window, min_periods=window).mean().to_numpy()


def _ref_train_numbers(s: RunSummary, steps: pd.DataFrame) -> None:
    s.steps = int(steps["step"].iloc[-1])
    if "tokens" in steps and steps["tokens"].notna().any():
        s.tokens = float(steps["tokens"].dropna().iloc[-1])
    if "wall_time" in steps and steps["wall_time"].notna().any():
        s.wall_time_s = float(steps["wall_time"].dropna().iloc[-1])
    loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
    s.nan_steps, s.first_nan_step = nonfinite_loss(steps)
    finite = loss[np.isfinite(loss)]
    if finite.size:
        s.final_train_loss = float(finite[-FINAL_WINDOW:].mean())
        ma = ref_moving_average(finite, min(FINAL_WINDOW, finite.size))
        s.best_train_loss = float(np.nanmin(ma))
        s.final_train_ppl = statistics.perplexity(s.final_train_loss)
    s.loss_spikes = int(ref_spike_mask(loss, LOSS_SPIKE_FACTOR).sum())
    g = steps["grad_norm"].to_numpy(np.float64, na_value=np.nan) if "grad_norm" in steps else None
    if g is not None and np.isfinite(g).any():
        s.grad_spikes = int(ref_spike_mask(g, GRAD_SPIKE_FACTOR).sum())
        s.grad_norm_cv = statistics.coefficient_of_variation(g)


def ref_summarize(name, optimizer, status, steps, evals) -> RunSummary:
    s = RunSummary(name=name, optimizer=optimizer, status=status)
    if steps is not None and not steps.empty:
        _ref_train_numbers(s, steps)
    ev = ref_eval_series(evals)
    if ev is not None:
        e = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        fin = e[np.isfinite(e)]
        if fin.size:
            s.final_eval_loss = float(fin[-1])
            s.best_eval_loss = float(fin.min())
            s.final_eval_ppl = statistics.perplexity(s.final_eval_loss)
    return s


def _ref_reach(steps, evals, target, kind) -> tuple[float, float]:
    reach = statistics.first_reach
    if kind == "eval":
        ev = ref_eval_series(evals)
        if ev is None:
            return NAN, NAN
        y = ev["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
        tok = ev["tokens"].to_numpy(np.float64, na_value=np.nan) if "tokens" in ev else None
        return reach(ev["step"].to_numpy(), y, target), (
            reach(tok, y, target) if tok is not None else NAN
        )
    if steps is None or steps.empty:
        return NAN, NAN
    loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(loss)
    ma = np.full(loss.size, np.nan)
    if finite.any():
        ma[np.flatnonzero(finite)] = ref_moving_average(
            loss[finite], min(FINAL_WINDOW, int(finite.sum()))
        )
    tok = steps["tokens"].to_numpy(np.float64, na_value=np.nan) if "tokens" in steps else None
    return reach(steps["step"].to_numpy(), ma, target), (
        reach(tok, ma, target) if tok is not None else NAN
    )


def _ref_has_evals(evals) -> bool:
    ev = ref_eval_series(evals)
    return (
        ev is not None and int(np.isfinite(ev["loss"].to_numpy(float, na_value=np.nan)).sum()) >= 2
    )


def ref_add_speedups(summaries: dict, data: dict, baseline: str) -> None:
    if baseline not in summaries:
        return
    kind = "eval" if all(_ref_has_evals(data[k][1]) for k in summaries) else "train"
    b = summaries[baseline]
    target = b.final_eval_loss if kind == "eval" else b.final_train_loss
    if not np.isfinite(target):
        return
    for key, s in summaries.items():
        s.target_kind = kind
        s.steps_to_target, s.tokens_to_target = _ref_reach(*data[key], target, kind)
    bs, bt = b.steps_to_target, b.tokens_to_target
    for key, s in summaries.items():
        own = s.final_eval_loss if kind == "eval" else s.final_train_loss
        if key != baseline and np.isfinite(own):
            s.baseline_steps_to_own, _ = _ref_reach(*data[baseline], own, kind)
            s.steps_to_own, _ = _ref_reach(*data[key], own, kind)
        if np.isfinite(bs) and np.isfinite(s.steps_to_target) and s.steps_to_target > 0:
            s.speedup_steps = bs / s.steps_to_target
        if np.isfinite(bt) and np.isfinite(s.tokens_to_target) and s.tokens_to_target > 0:
            s.speedup_tokens = bt / s.tokens_to_target


def ref_summarize_runs(data: dict, infos: dict, baseline: str) -> list[RunSummary]:
    sums = {}
    for rid, (steps, evals) in data.items():
        info = infos[rid]
        s = ref_summarize(info["name"], info["optimizer"], info["status"], steps, evals)
        s.shadow = bool(info.get("shadow"))
        sums[rid] = s
    ref_add_speedups(sums, data, baseline)
    return list(sums.values())


# ------------------------------------------------------------------ data


def _read(run: Path, table: str) -> pd.DataFrame | None:
    """A table of a sample run as the loader gives it: every live chunk, sorted by step."""
    folder = table_dir(run, table)
    names = live_chunks([p.name for p in folder.iterdir()]) if folder.is_dir() else []
    if not names:
        return None
    t = pa.concat_tables([pq.read_table(folder / n) for n in names], promote_options="permissive")
    return t.to_pandas().sort_values("step", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def sample_data() -> dict[str, tuple]:
    if not RUNS:
        pytest.skip("sample_runs/ not present")
    return {str(r.relative_to(SAMPLES)): (_read(r, "steps"), _read(r, "evals")) for r in RUNS}


def _series() -> dict[str, np.ndarray]:
    """Synthetic series: short and long (past 4 x window), spikes, NaN and inf, constants."""
    rng = np.random.default_rng(7)
    out = {}
    for n in (0, 1, 3, 4, 5, 6, 50, 199, 200, 201, 256, 260, 600, 799, 800, 801, 1000, 3000):
        x = np.exp(rng.normal(0.0, 0.05, n)) * np.linspace(3.0, 1.0, n)
        x[rng.integers(0, max(n, 1), n // 40)] *= rng.uniform(2.0, 30.0, n // 40)
        out[f"spiky-{n}"] = x
        y = x.copy()
        y[rng.integers(0, max(n, 1), n // 15)] = np.nan
        y[rng.integers(0, max(n, 1), n // 100)] = np.inf
        out[f"gaps-{n}"] = y
    out["constant-900"] = np.full(900, 2.5)
    out["constant-300"] = np.full(300, 2.5)
    out["all-nan-1200"] = np.full(1200, np.nan)
    out["nan-block-2000"] = np.where(np.arange(2000) % 500 < 120, np.nan, out["spiky-3000"][:2000])
    out["warmup-spikes-1500"] = np.concatenate([np.full(60, 5.0), np.exp(rng.normal(0, 0.1, 1440))])
    out["steps-of-level-5000"] = np.repeat([4.0, 1.0, 9.0, 2.0, 2.0], 1000) + rng.normal(
        0, 0.01, 5000
    )
    return out


SERIES = _series()
WINDOWS = (1, 2, 4, 7, 50, 200)


# ------------------------------------------------------------------ spikes


@pytest.mark.parametrize("window", WINDOWS)
def test_typical_level_is_the_replaced_code_exactly(window):
    for name, x in SERIES.items():
        new, ref = spikes.typical_level(x, window), ref_typical_level(x, window)
        assert new.dtype == ref.dtype and new.shape == ref.shape, name
        np.testing.assert_array_equal(new, ref, err_msg=name)
        robust_new = spikes.spike_typical_level(x, GRAD_SPIKE_FACTOR, window)
        np.testing.assert_array_equal(
            robust_new, ref_spike_typical_level(x, GRAD_SPIKE_FACTOR, window), err_msg=name
        )


@pytest.mark.parametrize("factor", [LOSS_SPIKE_FACTOR, GRAD_SPIKE_FACTOR])
@pytest.mark.parametrize("window", (7, 50, 200))
def test_spike_masks_are_the_replaced_code_exactly(factor, window):
    for name, x in SERIES.items():
        for _ in range(2):  # computed, then remembered
            new = spikes.spike_mask(x, factor, window)
            assert new.dtype == bool, name
            np.testing.assert_array_equal(new, ref_spike_mask(x, factor, window), err_msg=name)
        events = spikes.spike_events(x, factor, window)
        assert events["peak"].tolist() == np.flatnonzero(new).tolist(), name


def test_sample_runs_spike_masks_and_levels(sample_data):
    for rid, (steps, _) in sample_data.items():
        for col, factor in (("loss", LOSS_SPIKE_FACTOR), ("grad_norm", GRAD_SPIKE_FACTOR)):
            x = steps[col].to_numpy(dtype=np.float64, na_value=np.nan)
            np.testing.assert_array_equal(spikes.typical_level(x), ref_typical_level(x), rid)
            np.testing.assert_array_equal(spikes.spike_mask(x, factor), ref_spike_mask(x, factor))


def test_the_remembered_peaks_are_bounded_private_and_keyed_on_every_input():
    x = SERIES["spiky-600"].copy()
    first = spikes.spike_mask(x, GRAD_SPIKE_FACTOR)
    first[:] = True  # a caller's mask is its own
    again = spikes.spike_mask(x, GRAD_SPIKE_FACTOR)
    np.testing.assert_array_equal(again, ref_spike_mask(x, GRAD_SPIKE_FACTOR))
    x[300] = 1e6  # new content, new answer
    np.testing.assert_array_equal(
        spikes.spike_mask(x, GRAD_SPIKE_FACTOR), ref_spike_mask(x, GRAD_SPIKE_FACTOR)
    )
    for factor, window in ((LOSS_SPIKE_FACTOR, 200), (GRAD_SPIKE_FACTOR, 50)):
        np.testing.assert_array_equal(
            spikes.spike_mask(x, factor, window), ref_spike_mask(x, factor, window)
        )
    np.testing.assert_array_equal(  # a prefix is not the whole series
        spikes.spike_mask(x[:-1], GRAD_SPIKE_FACTOR), ref_spike_mask(x[:-1], GRAD_SPIKE_FACTOR)
    )
    for i in range(spikes._PEAKS_MAX + 50):
        spikes.spike_mask(np.full(8, float(i)), GRAD_SPIKE_FACTOR)
    assert len(spikes._PEAKS) <= spikes._PEAKS_MAX


def test_the_remembered_peaks_under_threads():
    """Several threads (as the dashboard's) asking for the same and other series at once."""
    items = list(SERIES.items())
    want = {name: ref_spike_mask(x, GRAD_SPIKE_FACTOR) for name, x in items}
    spikes._PEAKS.clear()
    errors: list[str] = []

    def work(shift: int) -> None:
        for name, x in items[shift:] + items[:shift]:
            if not np.array_equal(spikes.spike_mask(x, GRAD_SPIKE_FACTOR), want[name]):
                errors.append(name)

    threads = [threading.Thread(target=work, args=(i % len(items),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ------------------------------------------------------------------ eval series


def _evals(splits: list, dtype=None, n_per: int = 5, index=None) -> pd.DataFrame:
    rows = len(splits) * n_per
    df = pd.DataFrame(
        {
            "step": np.arange(rows, dtype=np.int64) * 25,
            "tokens": np.arange(rows, dtype=np.int64) * 51200,
            "split": pd.Series([s for s in splits for _ in range(n_per)], dtype=dtype),
            "loss": np.linspace(3.0, 1.0, rows),
            "n_batches": np.full(rows, 8, dtype=np.int64),
        }
    )
    if index is not None:
        df.index = index(rows)
    return df


def _eval_frames() -> dict[str, pd.DataFrame | None]:
    out: dict[str, pd.DataFrame | None] = {"none": None, "empty": _evals([])}
    cases = {
        "val": ["val"],
        "train-val-test": ["train", "val", "test"],
        "no-val": ["test", "train"],
        "with-null": ["train", None, "val"],
        "null-first": [None, "test", "train"],
        "all-null": [None],
        "empty-string": ["", "val"],
    }
    for dtype in ("str", "string", object, "category"):
        for name, splits in cases.items():
            out[f"{name}-{dtype}"] = _evals(splits, dtype)
    out["ints"] = _evals([1, 2])
    out["mixed-objects"] = _evals([1, "1", 1.0], object)
    out["interleaved"] = _evals(["train", "val"]).sample(frac=1.0, random_state=0)
    out["odd-index"] = _evals(["val", "test"], "str", index=lambda n: np.arange(n)[::-1] * 3)
    out["dup-index"] = _evals(["val", "test"], "str", index=lambda n: np.zeros(n, dtype=int))
    out["one-split-odd-index"] = _evals(["val"], "str", index=lambda n: np.arange(n) + 100)
    out["no-split"] = _evals(["val"]).drop(columns="split")
    out["no-loss"] = _evals(["val"]).drop(columns="loss")
    nullable = _evals(["val", "train"], "str")
    nullable["loss"] = pd.array([1.0, None] * 5, dtype="Float64")
    out["nullable-loss"] = nullable
    return out


def _same_frame(new: pd.DataFrame | None, ref: pd.DataFrame | None, name: str) -> None:
    assert (new is None) == (ref is None), name
    if ref is not None:
        pd.testing.assert_frame_equal(new, ref, check_exact=True, obj=name)
        assert list(new.dtypes) == list(ref.dtypes), name
        assert isinstance(new.index, pd.RangeIndex), name


def test_eval_series_is_the_replaced_code_exactly(sample_data):
    frames = _eval_frames()
    frames.update({f"sample {k}": ev for k, (_, ev) in sample_data.items()})
    for name, ev in frames.items():
        _same_frame(statistics.eval_series(ev), ref_eval_series(ev), name)


# ------------------------------------------------------------------ run summaries and facts


def _steps(n: int, seed: int, *, nan_at=(), null_at=(), grad=True, tokens=True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    loss = 4.0 * np.exp(-np.arange(n) / (n / 3 + 1)) + rng.normal(0, 0.02, n) + 1.0
    loss[rng.integers(0, n, n // 100)] *= 2.0
    loss[list(nan_at)] = np.nan
    cols = {"step": np.arange(1, n + 1, dtype=np.int64), "wall_time": np.arange(n) * 0.5}
    cols["loss"] = pd.array(np.where(np.isin(np.arange(n), null_at), None, loss), dtype="Float64")
    if tokens:
        cols["tokens"] = np.arange(1, n + 1, dtype=np.int64) * 2048
    if grad:
        g = np.exp(rng.normal(0, 0.1, n))
        g[rng.integers(0, n, n // 80)] *= 10
        cols["grad_norm"] = g
    cols["optimizer_time"] = np.full(n, 0.01)
    return pd.DataFrame(cols)


def _synthetic_data() -> dict[str, tuple]:
    ev3 = _evals(["train", "val", "test"], "str", n_per=12)
    return {
        "long": (_steps(1500, 1), ev3),
        "nan": (_steps(900, 2, nan_at=(400, 401, 899)), _evals(["val"], "str", n_per=9)),
        "null": (_steps(300, 3, null_at=(10, 11)), _evals(["test", "train"], "string")),
        "no-grad": (_steps(2500, 4, grad=False, tokens=False), _evals(["val"], object)),
        "no-split": (_steps(700, 5), _evals(["val"]).drop(columns="split")),
        "short": (_steps(3, 6), None),
        "empty": (_steps(0, 7), None),
        "none": (None, None),
    }


def _same_summaries(new: list[RunSummary], ref: list[RunSummary], label: str) -> None:
    a = pd.DataFrame([s.as_dict() for s in new])
    b = pd.DataFrame([s.as_dict() for s in ref])
    pd.testing.assert_frame_equal(a, b, check_exact=True, obj=label)


def _runs_sets(sample_data: dict) -> list[dict]:
    synthetic = _synthetic_data()
    with_evals = {k: v for k, v in synthetic.items() if k in ("long", "nan", "null", "no-split")}
    return [sample_data, synthetic, with_evals, {**sample_data, **with_evals}]


def test_summarize_runs_is_the_replaced_code_exactly(sample_data):
    for i, data in enumerate(_runs_sets(sample_data)):
        infos = {k: {"name": k, "optimizer": "o", "status": "finished", "shadow": 0} for k in data}
        for baseline in [*sorted(data)[:: max(1, len(data) // 5)], "absent"]:
            label = f"set {i}, baseline {baseline}"
            new = statistics.summarize_runs(data, infos, baseline)
            _same_summaries(new, ref_summarize_runs(data, infos, baseline), label)
            # the public pieces on their own, as other callers use them
            sums = {k: statistics.summarize(k, "o", "finished", *v) for k, v in data.items()}
            statistics.add_speedups(sums, data, baseline)
            refs = {k: ref_summarize(k, "o", "finished", *v) for k, v in data.items()}
            ref_add_speedups(refs, data, baseline)
            _same_summaries(list(sums.values()), list(refs.values()), label + " (pieces)")


def test_moving_average_is_the_replaced_code_exactly():
    for name, x in SERIES.items():
        for window in (1, 5, FINAL_WINDOW):
            new = statistics.moving_average(x, window)
            np.testing.assert_array_equal(new, ref_moving_average(x, window), err_msg=name)
            assert new.dtype == np.float64


def _same_facts(new: compare.RunFacts, ref: compare.RunFacts, label: str) -> None:
    for f in dataclasses.fields(compare.RunFacts):
        a, b = getattr(new, f.name), getattr(ref, f.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, (label, f.name)
            np.testing.assert_array_equal(a, b, err_msg=f"{label} {f.name}")
        elif isinstance(b, float) and math.isnan(b):
            assert isinstance(a, float) and math.isnan(a), (label, f.name)
        else:
            assert a == b and type(a) is type(b), (label, f.name)


def test_run_facts_are_the_replaced_code_exactly(sample_data, monkeypatch):
    metas = {k: json.loads((SAMPLES / k / "run.json").read_text()) for k in sample_data}
    cases = [(k, metas[k], *v) for k, v in sample_data.items()]
    cases += [(k, {}, *v) for k, v in _synthetic_data().items()]
    spikes._PEAKS.clear()
    new = [compare.run_facts(k, m, "finished", s, e) for k, m, s, e in cases]
    again = [compare.run_facts(k, m, "finished", s, e) for k, m, s, e in cases]  # remembered
    monkeypatch.setattr(compare, "spike_mask", ref_spike_mask)
    monkeypatch.setattr(compare, "eval_series", ref_eval_series)
    monkeypatch.setattr(compare, "moving_average", ref_moving_average)
    for (k, m, s, e), a, b in zip(cases, new, again, strict=True):
        ref = compare.run_facts(k, m, "finished", s, e)
        _same_facts(a, ref, k)
        _same_facts(b, ref, k + " (again)")

"""intervals and cluster_effect compute with scipy.special only (scipy.stats and scipy.optimize
cost ~0.65 s of every dashboard start): the t quantiles, power, minimum detectable difference,
seeds needed and paired intervals equal what scipy.stats / scipy.optimize gave (the references
below are the code they replace), on grids of inputs and on the sample runs."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from dashboard.metrics import cluster_effect as ce
from dashboard.metrics import intervals as iv

ROOT = Path(__file__).resolve().parents[2]
DFS = np.unique(np.concatenate([np.arange(1, 31), np.geomspace(1, 10_000, 60).round(), [10_000]]))
LEVELS = (0.8, 0.9, 0.95, 0.99, 0.999)
POWERS = (0.06, 0.1, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


# the code replaced (scipy.stats / scipy.optimize), kept here as the reference


def ref_tcrit(df: float, level: float = iv.LEVEL) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


def ref_power(delta: float, se: float, df: float, level: float = iv.LEVEL) -> float:
    nc, t = abs(delta) / se, ref_tcrit(df, level)
    upper = float(stats.nct.sf(t, df, nc))
    lower = float(stats.nct.cdf(-t, df, nc))
    return upper + (lower if math.isfinite(lower) else 0.0)


def ref_detectable(se: float, df: float, power: float = iv.POWER) -> float:
    if not (se > 0 and df > 0):
        return float("nan")
    hi = (ref_tcrit(df) + float(stats.t.ppf(power, df)) + 10) * se
    while ref_power(hi, se, df) < power:
        hi *= 2
    return float(optimize.brentq(lambda d: ref_power(d, se, df) - power, 0.0, hi, xtol=se * 1e-6))


def ref_paired_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision-loss warning
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)


def test_t_quantiles_are_stats_t_ppf_bit_for_bit():
    df = np.arange(1, 10_001, dtype=float)
    for q in (*(0.5 + lv / 2 for lv in LEVELS), *POWERS):
        assert np.array_equal(iv.t_quantile(q, df), stats.t.ppf(q, df))
    for d in (*DFS, 1.5, 2.7, 33.3, 9999.9, np.inf):
        for lv in LEVELS:
            assert iv._tcrit(d, lv) == ref_tcrit(d, lv)
            assert isinstance(iv._tcrit(d, lv), float)
    odd = np.array([np.nan, 0.0, -1.0, 1.0, 3.0])  # no degrees of freedom: NaN, as stats says
    assert np.array_equal(iv.t_quantile(0.975, odd), stats.t.ppf(0.975, odd), equal_nan=True)
    for d in (np.nan, 0, -1):
        assert math.isnan(iv.t_quantile(0.975, d)) and math.isnan(ref_tcrit(d))


def test_seed_stats_and_mean_interval_keep_their_t_quantiles():
    n = np.array([0.0, 1, 2, 3, 7, 40, 10_000])  # seed_stats' counts, np.maximum(n - 1, 1)
    assert np.array_equal(
        iv.t_quantile(0.975, np.maximum(n - 1, 1)), stats.t.ppf(0.975, np.maximum(n - 1, 1))
    )
    rng = np.random.default_rng(3)
    for size in (2, 3, 5, 30):
        x = rng.normal(2.0, 0.1, size)
        got = ce.mean_interval(list(enumerate(x)))
        half = ref_tcrit(size - 1) * float(x.std(ddof=1)) / math.sqrt(size)
        assert (got.low, got.high) == (float(x.mean()) - half, float(x.mean()) + half)
    frames = [(s, pd.DataFrame({"step": [1, 2], "v": rng.normal(0, 1, 2)})) for s in range(4)]
    got = ce.seed_stats(frames, ["step"], ["v"])
    per = pd.concat([f.assign(s=s) for s, f in frames]).groupby("step")["v"]
    half = stats.t.ppf(0.975, 3) * per.std(ddof=1).to_numpy() / 2
    assert np.allclose(got["v_high"] - got["v"], half, rtol=1e-12, atol=1e-15)


def test_power_equals_the_noncentral_t_of_scipy_stats():
    ncs = np.linspace(0, 60, 121)
    worst = 0.0
    for df in (*DFS, 1.5, 2.5, 77.7):
        for lv in (0.9, 0.95, 0.99):
            t = ref_tcrit(df, lv)
            up, low = stats.nct.sf(t, df, ncs), stats.nct.cdf(-t, df, ncs)
            ref = up + np.where(np.isfinite(low), low, 0.0)
            for se in (1e-3, 2.5):
                got = np.array([iv._power(nc * se, se, df, lv) for nc in ncs])
                worst = max(worst, float(np.max(np.abs(got - ref))))
    assert worst <= 1e-12
    assert iv._power(-0.7, 0.3, 5) == ref_power(-0.7, 0.3, 5)  # the sign of delta does not count


def test_detectable_difference_is_brentqs_within_its_tolerance():
    for df in DFS[::3]:
        for power in POWERS:
            for se in (1e-6, 0.013, 1.0, 4e3):
                ref = ref_detectable(se, df, power)
                got = iv.detectable_difference(se, df, power)
                assert abs(got - ref) <= se * 1e-6, (df, power, se, got, ref)
                # and it is the root itself, to far better than brentq's xtol
                assert abs(ref_power(got, se, df) - power) <= 1e-9, (df, power, se)
    for df in (1, 2, 3, 10, 10_000):  # the default power, every se the dashboard might see
        for se in np.geomspace(1e-8, 1e6, 8):
            ref, got = ref_detectable(se, df), iv.detectable_difference(se, df)
            assert abs(got - ref) <= se * 1e-6


def test_detectable_difference_edges_as_before():
    for se, df in ((0.0, 5), (-1.0, 5), (1.0, 0), (float("nan"), 3), (1.0, float("nan"))):
        assert math.isnan(iv.detectable_difference(se, df))
    for power in (0.01, 0.04):  # at or below the test's size (5%): no difference reaches it
        with pytest.raises(ValueError):
            ref_detectable(1.0, 5, power)
        with pytest.raises(ValueError):
            iv.detectable_difference(1.0, 5, power)
    d = iv.Difference(0.1, -0.2, 0.4, 3, iv.PAIRED, se=0.05, df=2, resolution=0.5)
    assert d.detectable() == 0.5  # the resolution still bounds it from below


def test_seeds_needed_as_with_scipy_stats():
    def ref_needed(unit_sd: float, delta: float, power: float) -> int | None:
        def enough(n: int) -> bool:  # the binary search seeds_needed did with scipy.stats
            return ref_power(delta, unit_sd / math.sqrt(n), n - 1) >= power

        lo, hi = 2, iv.MAX_SEEDS
        if not enough(hi):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
        return lo

    for unit_sd in (0.01, 0.3, 1.0):
        for delta in (0.003, 0.05, 0.2, 1.0, 5.0):
            for power in (0.5, 0.8, 0.95):
                d = iv.Difference(0.0, unit_sd=unit_sd)
                assert d.seeds_needed(delta, power) == ref_needed(unit_sd, delta, power)


def _paired_cases():
    rng = np.random.default_rng(7)
    yield [1.0, 2.0], [0.5, 0.7]  # n = 2
    yield [3.0, 1.0], [3.5, 2.0]  # n = 2, both differences negative
    yield [1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]  # ties
    yield [5.0, 5.0, 5.0, 6.0], [5.5, 5.5, 5.5, 5.5]  # ties, mixed signs
    yield [-3.0, -2.5, -4.0], [-1.0, -1.0, -1.5]  # negative values and differences
    yield list(1e4 + rng.normal(0, 1e-3, 5)), list(1e4 + rng.normal(0, 1e-3, 5))  # cancellation
    for n in (2, 3, 4, 5, 8, 16, 33, 100, 1000):
        a = rng.normal(2.0, 0.05, n)
        yield list(a), list(a - rng.normal(rng.normal(0, 0.02), 0.01, n))
    yield list(rng.normal(0, 1, 6).astype(np.float32).astype(float)), list(rng.normal(0, 1, 6))


def test_paired_interval_is_ttest_rels():
    for a, b in _paired_cases():
        for level in LEVELS:
            seeds = [f"s{i}" for i in range(len(a))]
            got = iv.across_seeds(
                dict(zip(seeds, a, strict=True)), dict(zip(seeds, b, strict=True)), level=level
            )
            assert got.method == iv.PAIRED and got.has_interval
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ci = stats.ttest_rel(np.array(a), np.array(b)).confidence_interval(level)
            scale = abs(got.estimate) + got.half_width
            assert abs(got.low - float(ci.low)) <= 1e-12 * scale, (a, b, level)
            assert abs(got.high - float(ci.high)) <= 1e-12 * scale, (a, b, level)


def test_sample_runs_report_unchanged(monkeypatch, capsys):
    """sample_runs/summarize.py (the dashboard's comparisons and their power) prints the same
    report with the scipy.stats / scipy.optimize code and with the scipy.special code."""
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "sample_runs/summarize.py")
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    assert summarize.main([]) == 0
    new = capsys.readouterr().out
    monkeypatch.setattr(iv, "_tcrit", ref_tcrit)
    monkeypatch.setattr(iv, "_power", ref_power)
    monkeypatch.setattr(iv, "detectable_difference", ref_detectable)
    monkeypatch.setattr(iv, "_paired_interval", ref_paired_interval)
    assert summarize.main([]) == 0
    old = capsys.readouterr().out
    assert "paired" in new and "detected with 80% power" in new
    assert new == old


def _loaded(statement: str) -> str:
    names = "'scipy.stats' in sys.modules, 'scipy.optimize' in sys.modules"
    code = f"{statement}; import sys; print({names})"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_intervals_and_cluster_effect_import_no_scipy_stats_or_optimize():
    assert _loaded("import dashboard.metrics.intervals, dashboard.metrics.cluster_effect") == (
        "False False"
    )


def test_the_dashboard_imports_no_scipy_stats_or_optimize():
    """~0.65 s of every dashboard start; nothing on its import path needs them."""
    assert _loaded("import dashboard.app") == "False False"

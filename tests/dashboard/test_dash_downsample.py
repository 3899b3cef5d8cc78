"""Downsampling keeps extremes and bounds the number of points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import downsample


@pytest.mark.parametrize("fn", ["lib", "fallback"])
def test_keeps_min_and_max(fn):
    rng = np.random.default_rng(0)
    y = rng.normal(size=100_000)
    y[12_345] = 50
    y[77_777] = -50
    x = np.arange(y.size)
    idx = (
        downsample.downsample_indices(x, y, 1000)
        if fn == "lib"
        else downsample.minmax_indices(y, 1000)
    )
    assert len(idx) <= 1100
    assert 12_345 in idx and 77_777 in idx
    assert np.all(np.diff(idx) > 0)


def test_small_series_untouched_and_frame_drops_nonfinite():
    assert downsample.downsample_indices(np.arange(5), np.ones(5), 100).tolist() == [0, 1, 2, 3, 4]
    df = pd.DataFrame({"step": [3, 1, 2, 4], "loss": [1.0, np.nan, 2.0, np.inf]})
    out = downsample.downsample_frame(df, "step", "loss", 100)
    assert out["step"].tolist() == [2, 3]


def test_bin_max_keeps_spikes():
    df = pd.DataFrame(
        {"step": np.tile(np.arange(10_000), 2), "layer": np.repeat(["a", "b"], 10_000), "g": 1.0}
    )
    df.loc[5_000, "g"] = 99.0
    p = downsample.bin_max(df, "step", "layer", "g", n_bins=100)
    assert p.shape == (2, 100)
    assert p.loc["a"].max() == 99.0 and p.loc["b"].max() == 1.0

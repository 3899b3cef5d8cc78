"""Loss and gradient spikes: one detector, one definition, used by every view and the report.

A spike is a logged value more than `factor` times the typical value (median) of the steps
just before it; consecutive spiking steps count as one spike. It works from the first steps
of warm-up on (see `typical_level`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

SPIKE_WINDOW = 200
LOSS_SPIKE_FACTOR = 1.25
GRAD_SPIKE_FACTOR = 3.0


MIN_HISTORY = 4  # a value needs this many earlier values before it can be called a spike


def typical_level(values, window: int = SPIKE_WINDOW) -> np.ndarray:
    """For every position, the median of the values just before it: of the last quarter of the
    run so far early on (at least MIN_HISTORY values, so that warm-up spikes count), of roughly
    the last `window` values later. NaN where there is not enough history.

    Past 4 x window steps it is computed in blocks of window/4 (median per block, then the
    median of the four previous blocks' medians): close to a rolling median and ~20x cheaper on
    a million steps.
    """
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
        for i in range(MIN_HISTORY, early):  # warm-up: a short, growing look-back
            k = min(window, max(MIN_HISTORY, i // 4))
            base[i] = np.nanmedian(clean[i - k : i])
        base[:MIN_HISTORY] = np.nan
    return base


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

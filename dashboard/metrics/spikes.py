"""Loss and gradient spikes: one detector, one definition, used by every view and the report.

A spike is a logged value more than `factor` times the typical level of the steps just before
it: their median, leaving out any step that is itself above `factor` times that median (so that
one spike does not hide the next; see `typical_level` for the look-back, which works from the
first steps of warm-up on). Exceeding steps with at most `MERGE_GAP` logged steps between them
form one spike, placed at its highest value: `spike_mask` marks that peak step (counts and chart
crosses both follow it), `spike_events` lists each spike's start, peak and end. Exceedances
further apart are separate spikes, even a few steps apart (the old rule merged anything within
window/4 = 50 steps and lost a 26x spike 18 steps after a 3.5x one).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

SPIKE_WINDOW = 200
LOSS_SPIKE_FACTOR = 1.25
GRAD_SPIKE_FACTOR = 3.0


MIN_HISTORY = 4  # a value needs this many earlier values before it can be called a spike
MERGE_GAP = 2  # exceeding steps at most this many logged steps apart belong to one spike


def typical_level(values, window: int = SPIKE_WINDOW) -> np.ndarray:
    """For every position, the median of the values just before it: of the last quarter of the
    run so far early on (at least MIN_HISTORY values, so that warm-up spikes count), of roughly
    the last `window` values later. NaN where there is not enough history.

    Past 4 x window steps it is computed in blocks of window/4 (median per block, then the
    median of the four previous blocks' medians): close to a rolling median and ~20x cheaper on
    a million steps. A run no longer than 4 x window is warm-up throughout: the blocks are
    skipped, since every value they give would be overwritten (most of the cost of 200 steps).
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return x.copy()
    clean = np.where(np.isfinite(x), x, np.nan)
    if n <= 4 * window:
        base = np.full(n, np.nan)
        if n > MIN_HISTORY:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                base[MIN_HISTORY:] = _early_medians(clean, n, window)
        return base
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
        if early > MIN_HISTORY:  # warm-up: a short, growing look-back
            base[MIN_HISTORY:early] = _early_medians(clean, early, window)
        base[:MIN_HISTORY] = np.nan
    return base


_EARLY_ROWS = 256  # look-backs sorted together by `_early_medians`


def _early_medians(clean: np.ndarray, early: int, window: int) -> np.ndarray:
    """For i in [MIN_HISTORY, early): the median of the k(i) = min(window, max(MIN_HISTORY,
    i // 4)) values before i, vectorised: the look-backs sorted _EARLY_ROWS at a time (NaNs
    last), the median read at the middle of their finite values (a loop of nanmedian calls
    cost ~20 ms per series: most of a cold Summary of 20 runs). The look-back grows with i:
    each slice is only as wide as its own longest one, and stays small in memory (800 steps:
    0.6 ms, from 1.9 ms in one sort of every row); a row's median does not depend on how wide
    it is sorted, so the values are the same."""
    out = np.empty(early - MIN_HISTORY)
    for a in range(MIN_HISTORY, early, _EARLY_ROWS):
        b = min(early, a + _EARLY_ROWS)
        out[a - MIN_HISTORY : b - MIN_HISTORY] = _look_back_medians(clean, a, b, window)
    return out


def _look_back_medians(clean: np.ndarray, a: int, b: int, window: int) -> np.ndarray:
    """`_early_medians` for the positions i in [a, b)."""
    k = np.minimum(window, np.maximum(MIN_HISTORY, np.arange(a, b) // 4))
    width = int(k.max())
    shifted = np.concatenate([np.full(width, np.nan), clean[: b - 1]])
    rows = sliding_window_view(shifted, width)[a:b]  # row i: clean[i - width : i]
    older = np.arange(width)[None, :] < (width - k)[:, None]  # beyond the look-back k(i)
    ordered = np.where(older, np.nan, rows)
    ordered.sort(axis=1)  # NaNs sort last
    count = np.isfinite(ordered).sum(axis=1)
    r = np.arange(ordered.shape[0])
    lo = ordered[r, np.maximum(count - 1, 0) // 2]
    hi = ordered[r, np.minimum(count // 2, width - 1)]
    med = np.where(count % 2 == 1, lo, (lo + hi) / 2)
    return np.where(count > 0, med, np.nan)


def spike_typical_level(values, factor: float, window: int = SPIKE_WINDOW) -> np.ndarray:
    """`typical_level` of the values with the steps above `factor` x the plain typical level
    left out: a median is robust to one spike in a long look-back but not in the short look-back
    of warm-up (4 to 50 steps), where a spike of a few steps would inflate it and hide a second
    spike soon after. Falls back to the plain level where nothing is left to take a median of."""
    x = np.asarray(values, dtype=np.float64)
    plain = typical_level(x, window)
    with np.errstate(invalid="ignore"):
        high = np.isfinite(plain) & (x > factor * plain)
    if not high.any():
        return plain
    robust = typical_level(np.where(high, np.nan, x), window)
    return np.where(np.isfinite(robust), robust, plain)


def _events(x: np.ndarray, factor: float, window: int) -> tuple[np.ndarray, ...]:
    """(start, peak, end, typical) arrays of positions and levels, one entry per spike."""
    base = spike_typical_level(x, factor, window)
    with np.errstate(invalid="ignore"):
        above = np.isfinite(x) & np.isfinite(base) & (x > factor * base)
    idx = np.flatnonzero(above)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0)
    cut = np.flatnonzero(np.diff(idx) > MERGE_GAP + 1) + 1  # where a new spike begins
    groups = np.split(idx, cut)
    start = np.array([g[0] for g in groups], dtype=np.int64)
    end = np.array([g[-1] for g in groups], dtype=np.int64)
    peak = np.array([g[int(np.argmax(x[g]))] for g in groups], dtype=np.int64)
    return start, peak, end, base[peak]


_PEAKS_MAX = 512  # series remembered by `spike_mask` (a few spike positions each)
_PEAKS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_PEAKS_LOCK = threading.Lock()


def _peaks(x: np.ndarray, factor: float, window: int) -> np.ndarray:
    """`_events`' peaks, remembered by the series' content (a 256-bit digest of its bytes):
    the Summary asks for the same run's loss and gradient spikes twice (the comparison's run
    facts and the run table), and the Training page once more. The lock only guards the
    dictionary (the dashboard calls from several threads); two threads may both compute."""
    digest = hashlib.blake2b(np.ascontiguousarray(x).data, digest_size=32).digest()
    key = (digest, x.size, float(factor), int(window))
    with _PEAKS_LOCK:
        hit = _PEAKS.get(key)
        if hit is not None:
            _PEAKS.move_to_end(key)
            return hit
    peaks = _events(x, factor, window)[1]
    peaks.flags.writeable = False  # shared between callers
    with _PEAKS_LOCK:
        _PEAKS[key] = peaks
        while len(_PEAKS) > _PEAKS_MAX:
            _PEAKS.popitem(last=False)
    return peaks


def spike_mask(values, factor: float, window: int = SPIKE_WINDOW) -> np.ndarray:
    """True at the peak (highest value) of every spike, so that `.sum()` counts spikes and the
    chart's crosses sit where each spike is highest."""
    x = np.asarray(values, dtype=np.float64)
    mask = np.zeros(x.size, dtype=bool)
    if x.size:
        mask[_peaks(x, factor, window)] = True
    return mask


def spike_events(
    values, factor: float, window: int = SPIKE_WINDOW, steps: np.ndarray | pd.Series | None = None
) -> pd.DataFrame:
    """One row per spike: `start`, `peak` and `end` (positions in `values`, or the matching
    entries of `steps` when given), the `peak_value` and the `typical` level it is compared
    with there, for views that list spikes. Its rows are exactly `spike_mask`'s True steps."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        start = peak = end = np.zeros(0, dtype=np.int64)
        typical = np.zeros(0)
    else:
        start, peak, end, typical = _events(x, factor, window)
    label = np.arange(x.size) if steps is None else np.asarray(steps)
    if label.shape != x.shape:
        raise ValueError(f"steps has {label.size} entries for {x.size} values")
    return pd.DataFrame(
        {
            "start": label[start],
            "peak": label[peak],
            "end": label[end],
            "peak_value": x[peak],
            "typical": typical,
        }
    )

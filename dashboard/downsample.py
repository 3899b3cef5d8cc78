"""Downsampling that keeps what matters in a training curve: its minima, maxima and shape.

Lines use tsdownsample's MinMaxLTTB (min-max preselection, then Largest-Triangle-Three-Buckets)
when the library is installed, and a plain min-max per bucket otherwise. Heatmaps are binned
along x keeping each bin's maximum (a spike stays visible however many steps share a pixel).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

try:  # a well-kept Rust implementation; optional so that the dashboard never fails to start
    from tsdownsample import MinMaxLTTBDownsampler

    _LTTB = MinMaxLTTBDownsampler()
except ImportError:  # pragma: no cover - exercised only without the library
    _LTTB = None

DEFAULT_POINTS = 2000


def minmax_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the min and max of each of n_out/2 equal buckets, plus both ends."""
    n = y.size
    n_buckets = max(1, n_out // 2)
    size = int(np.ceil(n / n_buckets))
    pad = np.full(n_buckets * size, np.nan)
    # equal-size buckets on a padded copy (cheap and vectorised)
    pad[:n] = y
    blocks = pad.reshape(n_buckets, size)
    with np.errstate(invalid="ignore"):
        lo = np.nanargmin(np.where(np.isnan(blocks), np.inf, blocks), axis=1)
        hi = np.nanargmax(np.where(np.isnan(blocks), -np.inf, blocks), axis=1)
    base = np.arange(n_buckets) * size
    idx = np.concatenate([[0, n - 1], base + lo, base + hi])
    return np.unique(idx[idx < n])


def downsample_indices(x, y, n_out: int = DEFAULT_POINTS) -> np.ndarray:
    """Sorted indices of at most ~n_out points of (x, y) preserving extremes. x sorted, y finite."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= n_out:
        return np.arange(n)
    if _LTTB is not None:
        try:
            xx = x.astype(np.float64) if x.dtype.kind not in "iuf" else x
            return np.sort(np.asarray(_LTTB.downsample(xx, y, n_out=n_out), dtype=np.int64))
        except Exception:  # unusual dtype or unsorted x: fall back
            pass
    return minmax_indices(y, n_out)


def downsample_frame(df: pd.DataFrame, x: str, y: str, n_out: int = DEFAULT_POINTS) -> pd.DataFrame:
    """Rows of `df` (finite x and y only, sorted by x) reduced to about n_out points."""
    if df is None or df.empty or x not in df or y not in df:
        return pd.DataFrame(columns=[x, y])
    xv = df[x].to_numpy(dtype=np.float64, na_value=np.nan)
    yv = df[y].to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(xv) & np.isfinite(yv)
    sub = df.loc[keep]
    xv, yv = xv[keep], yv[keep]
    if xv.size > 1 and not bool(np.all(np.diff(xv) >= 0)):
        order = np.argsort(xv, kind="stable")
        sub, xv, yv = sub.iloc[order], xv[order], yv[order]
    idx = downsample_indices(xv, yv, n_out)
    return sub.iloc[idx].reset_index(drop=True)


def bin_max(df: pd.DataFrame, x: str, y: str, z: str, n_bins: int = 400) -> pd.DataFrame:
    """Pivot (y rows x binned-x columns) of the maximum of z per bin; columns are bin centres."""
    if df is None or df.empty:
        return pd.DataFrame()
    xs = np.sort(df[x].unique())
    if xs.size > n_bins:
        edges = np.linspace(xs[0], xs[-1], n_bins + 1)
        b = np.clip(np.searchsorted(edges, df[x].to_numpy(), side="right") - 1, 0, n_bins - 1)
        centres = (edges[:-1] + edges[1:]) / 2
        key = centres[b]
    else:
        key = df[x].to_numpy()
    tmp = pd.DataFrame({"x": key, "y": df[y].to_numpy(), "z": df[z].to_numpy(dtype=np.float64)})
    out = tmp.pivot_table(index="y", columns="x", values="z", aggfunc="max", sort=False)
    return out

"""The scale rule of SGG, as pure functions (formulas in docs/sgg.md).

For a layer with clustered quantity ``q`` (the momentum, or ``|m|``), labels ``c_i``:

    mu      = mean of the finite q_i
    dev_i   = |q_i - mu|
    D_c     = median{dev_i : c_i = c}                  (lower median; 0 for an empty cluster)
    D       = median of dev over all clustered layers   ("all_params", default)
              or median of the non-empty D_c of all layers ("cluster_mdas")
    r_c     = D / (D_c + eps)       (r_c = 1 when D = 0)
    S_c    <- decay * S_c + (1 - decay) * clamp(r_c, lo, hi)        ("before_ema", default)
    S_c    <- clamp(decay * S_c + (1 - decay) * r_c, lo, hi)        ("after_ema")

Empty clusters and non-finite values keep the previous factor; a factor is never NaN/Inf.

Many layers at once (``segment_lower_medians``, ``weighted_lower_median_rows``): with each
layer's points sorted ascending in one row of a matrix, ``diff = x - mu`` (float32, as the
per-layer functions compute it) is ascending too, so the deviations ``|diff|`` of any interval of
the row (a cluster: clusters of 1-D k-means are intervals) form two sorted lists (left of ``mu``
read backwards, right of ``mu``). A lower median is then a k-th smallest of two sorted lists (a
binary search, all clusters of all layers at once), and the global weighted lower median a
bisection over the float32 bit patterns where each probe counts ``-v <= diff <= v`` with two
``searchsorted`` per row. Same values as the per-layer functions, no sort of the deviations.

Sampled estimates (``median_sample``): ``cluster_mdas_sampled`` takes the medians over a random
subsample of the layer (with the exact full-data mean); ``weighted_lower_median`` combines the
per-layer subsample deviations into ``D``, each point weighted by (layer size / subsample size) so
that every layer counts in proportion to its size, as in the exact median.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "cluster_mdas",
    "cluster_mdas_sampled",
    "global_mda",
    "layer_deviation",
    "lower_median",
    "segment_lower_medians",
    "update_factors",
    "weighted_lower_median",
    "weighted_lower_median_rows",
]


def lower_median(x: Tensor) -> Tensor:
    """Lower median (``torch.median``: element of rank (n-1)//2), float32 0-d; 0 when empty."""
    if x.numel() == 0:
        return torch.zeros((), dtype=torch.float32, device=x.device)
    return torch.median(x.float())


def layer_deviation(q: Tensor) -> Tensor:
    """``|q_i - mean(q)|`` over the finite entries of the flat float32 ``q`` (others dropped)."""
    q = q.reshape(-1).float()
    finite = torch.isfinite(q)
    if not bool(finite.all()):
        q = q[finite]
    if q.numel() == 0:
        return q
    return (q - q.mean()).abs_()


def cluster_mdas(q: Tensor, labels: Tensor, n_clusters: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-cluster MDA ``D_c``; returns (mda float32 (K,), sizes int64 (K,), finite deviations)."""
    q = q.reshape(-1).float()
    labels = labels.reshape(-1).to(q.device)
    finite = torch.isfinite(q)
    if not bool(finite.all()):
        q, labels = q[finite], labels[finite]
    sizes = torch.bincount(labels, minlength=n_clusters)[:n_clusters]
    dev = (q - q.mean()).abs_() if q.numel() else q
    mda = torch.zeros(n_clusters, dtype=torch.float32, device=q.device)
    if n_clusters == 1:
        mda[0] = lower_median(dev)
    else:
        for c in range(n_clusters):
            mda[c] = lower_median(dev[labels == c])
    return mda, sizes, dev


def cluster_mdas_sampled(
    sample: Tensor,
    sample_labels: Tensor,
    mean: Tensor,
    n_clusters: int,
    *,
    sizes: Tensor,
    q: Tensor,
    labels: Tensor,
    min_points: int = 64,
) -> tuple[Tensor, Tensor]:
    """Per-cluster MDA estimated on a subsample of finite points; returns (mda (K,), sample dev).

    ``mean`` is the exact mean of the layer's finite values. A non-empty cluster with fewer than
    ``min_points`` subsample points (a small cluster, e.g. outliers) is computed exactly over the
    full data ``q``/``labels`` (cheap: the cluster is small).
    """
    dev = (sample.float() - mean.to(device=sample.device, dtype=torch.float32)).abs_()
    lab = sample_labels.reshape(-1).to(dev.device)
    counts = torch.bincount(lab, minlength=n_clusters)[:n_clusters].tolist()
    full_sizes = sizes.tolist()
    mda = torch.zeros(n_clusters, dtype=torch.float32, device=dev.device)
    for c in range(n_clusters):
        if full_sizes[c] == 0:
            continue
        if counts[c] >= min_points:
            mda[c] = lower_median(dev[lab == c] if n_clusters > 1 else dev)
        else:
            qc = q.reshape(-1)[labels.reshape(-1).to(q.device) == c].float()
            qc = qc[torch.isfinite(qc)]
            mda[c] = lower_median((qc - mean.to(device=qc.device, dtype=torch.float32)).abs_())
    return mda, dev


def weighted_lower_median(values: list[Tensor], weights: list[float]) -> Tensor:
    """Lower weighted median: the smallest v whose cumulative weight reaches half the total.

    With all weights 1 this is ``lower_median`` of the concatenation (rank (n-1)//2).
    """
    pairs = [(v.reshape(-1).float(), w) for v, w in zip(values, weights, strict=True) if v.numel()]
    if not pairs:
        return torch.zeros(())
    dev0 = pairs[0][0].device
    if dev0.type == "cpu":
        out = _weighted_lower_median_packed(pairs)
        if out is not None:
            return out
    v = torch.cat([p.to(dev0) for p, _ in pairs])
    w = torch.cat([torch.full((p.numel(),), float(wt), dtype=torch.float64) for p, wt in pairs])
    v, order = torch.sort(v)
    cw = torch.cumsum(w.to(dev0)[order], 0)
    i = torch.searchsorted(cw, cw[-1] * 0.5).clamp(max=v.numel() - 1)
    return v[i]


def _weighted_lower_median_packed(pairs: list[tuple[Tensor, float]]) -> Tensor | None:
    """CPU fast path of ``weighted_lower_median`` for non-negative values (deviations).

    For non-negative floats the int32 bit pattern orders like the value, so each value is packed
    with its list index into one int64 key (value bits high, index low) and the keys are sorted
    with numpy's SIMD sort: no argsort, no gather of weights by permutation. Equal values may
    come in another order than ``torch.sort``'s, which cannot change the result (the answer is the
    value of the tie group the half-weight point falls in). Returns None (use the generic path)
    for negative or NaN values.
    """
    import numpy as np

    shift = max(1, (len(pairs) - 1).bit_length())
    if shift > 31:
        return None
    keys = []
    for i, (v, _) in enumerate(pairs):
        if not bool((v >= 0).all()):  # also rejects NaN
            return None
        keys.append((v.contiguous().view(torch.int32).long() << shift) | i)
    k = np.sort(torch.cat(keys).numpy())
    kt = torch.from_numpy(k)
    w_tab = torch.tensor([float(w) for _, w in pairs], dtype=torch.float64)
    cw = torch.cumsum(w_tab[kt & ((1 << shift) - 1)], 0)
    i = int(torch.searchsorted(cw, cw[-1] * 0.5).clamp(max=kt.numel() - 1))
    return (kt[i] >> shift).to(torch.int32).view(torch.float32)


def global_mda(devs: list[Tensor], mdas: list[Tensor], sizes: list[Tensor], mode: str) -> Tensor:
    """Model-wide reference ``D`` (see module docstring); float32 0-d."""
    if mode == "all_params":
        devs = [d for d in devs if d.numel()]
        if not devs:
            return torch.zeros(())
        dev0 = devs[0].device
        return lower_median(torch.cat([d.to(dev0) for d in devs]))
    if mode == "cluster_mdas":
        vals = [m[s > 0] for m, s in zip(mdas, sizes, strict=True)]
        vals = [v for v in vals if v.numel()]
        if not vals:
            return torch.zeros(())
        return lower_median(torch.cat([v.to(vals[0].device) for v in vals]))
    raise ValueError(f"global_mda: unknown mode {mode!r}")


def update_factors(
    prev: Tensor,
    mda: Tensor,
    sizes: Tensor,
    d_global: Tensor,
    *,
    bounds: tuple[float, float],
    decay: float,
    eps: float,
    clamp: str,
) -> tuple[Tensor, Tensor]:
    """One EMA update of a layer's factors; returns (raw factors, new smoothed factors)."""
    lo, hi = bounds
    prev = torch.where(torch.isfinite(prev), prev, torch.ones_like(prev))
    d = d_global.to(device=mda.device, dtype=torch.float32)
    raw = torch.where(d > 0, d / (mda + eps), torch.ones_like(mda))
    keep = (sizes.to(mda.device) == 0) | ~torch.isfinite(raw) | ~torch.isfinite(d)
    if clamp == "before_ema":
        raw = raw.clamp(lo, hi)
        new = decay * prev + (1 - decay) * raw
    elif clamp == "after_ema":
        new = (decay * prev + (1 - decay) * raw).clamp(lo, hi)
    else:
        raise ValueError(f"clamp: unknown mode {clamp!r}")
    raw = torch.where(keep, prev, raw)
    new = torch.where(keep | ~torch.isfinite(new), prev, new)
    return raw, new


def _gather(rows: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """``rows[row, col]`` with ``col`` clamped into the row (callers mask invalid positions)."""
    width = rows.shape[1]
    return rows.reshape(-1)[row * width + col.clamp(0, width - 1)]


def segment_lower_medians(diff: Tensor, row: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Lower median of ``|diff[row[g], start[g]:end[g]]|`` for every segment ``g`` (0 if empty).

    ``diff`` (R, W) float32: each row ascending (a sorted row minus its centre ``mu``; padding
    +inf at the end). Equals ``lower_median(dev[labels == c])`` of the per-layer functions when a
    segment holds the points of cluster ``c``.
    """
    row, start, end = row.long(), start.long(), end.long()
    if diff.shape[1] == 0:  # no points in any row
        return torch.zeros(row.shape, dtype=diff.dtype)
    zero_at = torch.searchsorted(diff, torch.zeros(diff.shape[0], 1, dtype=diff.dtype))
    p = torch.minimum(torch.maximum(zero_at.view(-1)[row], start), end)  # first diff >= 0
    n_left, n_right = p - start, end - p
    need = (n_left + n_right - 1).div(2, rounding_mode="floor") + 1  # rank of the lower median
    lo = (need - n_right).clamp(min=0)  # points taken from the left list
    hi = torch.minimum(need, n_left)
    for _ in range(max(1, int(diff.shape[1]).bit_length() + 1)):
        active = lo < hi
        if not bool(active.any()):
            break
        mid = (lo + hi).div(2, rounding_mode="floor")
        j = need - mid
        left_mid = -_gather(diff, row, p - 1 - mid)  # left list, entry mid
        right_j = _gather(diff, row, p + j - 1)  # right list, entry j - 1
        more_left = (mid < n_left) & (j > 0) & (right_j > left_mid)
        lo = torch.where(active & more_left, mid + 1, lo)
        hi = torch.where(active & ~more_left, mid, hi)
    j = need - lo
    ninf = torch.full_like(diff[:1, :1].view(-1), -float("inf"))
    a = torch.where(lo > 0, -_gather(diff, row, p - lo), ninf)
    b = torch.where(j > 0, _gather(diff, row, p + j - 1), ninf)
    med = torch.maximum(a, b)
    return torch.where(end > start, med, torch.zeros_like(med))


def weighted_lower_median_rows(blocks: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """``weighted_lower_median`` of the deviations ``|diff[r, :lengths[r]]|`` of all rows of all
    blocks ``(diff, lengths, weights)``, row ``r`` weighted by ``weights[r]``: the smallest
    deviation whose cumulative weight reaches half the total (0 when there is none).

    ``diff`` as for ``segment_lower_medians``. Bisection over the bit patterns of non-negative
    float32 (they order like the values): 31 probes, each two batched ``searchsorted`` per
    block. With weights that are multiples of a power of two (e.g. n / 65536) every sum is
    exact, so the result equals the sort-based one bit for bit; otherwise float64 rounding may
    differ only when the half-weight point falls within rounding of a boundary.
    """
    blocks = [(d, n.long(), w.double()) for d, n, w in blocks if d.numel()]
    total = sum(float((w * n.double()).sum()) for _, n, w in blocks)
    if not total > 0:
        return torch.zeros(())
    half = total * 0.5

    def weight_at_most(bits: int) -> float:
        v = torch.tensor([bits], dtype=torch.int32).view(torch.float32)
        acc = 0.0
        for diff, lengths, w in blocks:
            vv = v.expand(diff.shape[0], 1).contiguous()
            upper = torch.minimum(torch.searchsorted(diff, vv, right=True).view(-1), lengths)
            lower = torch.minimum(torch.searchsorted(diff, -vv).view(-1), lengths)
            acc += float((w * (upper - lower).double()).sum())
        return acc

    lo, hi = 0, 0x7F800000  # +0.0 .. +inf
    while lo < hi:
        mid = (lo + hi) // 2
        if weight_at_most(mid) >= half:
            hi = mid
        else:
            lo = mid + 1
    return torch.tensor([lo], dtype=torch.int32).view(torch.float32)[0]

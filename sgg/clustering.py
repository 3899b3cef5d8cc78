"""One-dimensional k-means, as pure functions.

``kmeans_1d`` (torch backend) runs on the tensor's own device and is cheap because the data are
one-dimensional: with sorted centers the clusters are intervals whose boundaries are the
midpoints between neighbouring centers. So

1. draw a random subsample (``sample_size`` points, with replacement, from a seeded generator) and
   sort it;
2. run Lloyd's iterations on the sorted subsample; each iteration costs O(K log n) thanks to prefix
   sums and ``searchsorted`` (no pass over the data), from ``n_init`` initialisations (sample
   quantiles, evenly spaced over the range, then k-means++ seeds), keeping the lowest inertia
   on the subsample (near-ties, within 5%, are decided on the full data);
3. assign every point once with ``torch.bucketize`` against the midpoints, and report the
   full-data mean of each cluster as its center.

Works for tensors over 2**24 elements (no ``torch.quantile``), constant tensors, fewer distinct
values than K (some clusters are then empty) and non-finite values (they are left out of the fit
and assigned to the cluster whose center is nearest to 0). Centers are sorted: cluster 0 holds the
smallest values.

``kmeans_1d_sklearn`` is the reference the paper used (scikit-learn ``MiniBatchKMeans``), slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["KMeansResult", "inertia", "kmeans_1d", "kmeans_1d_sklearn"]


@dataclass(frozen=True)
class KMeansResult:
    # (N,) on the data's device, in {0..K-1}; cluster 0 = smallest center. uint8 when K <= 256
    # (kmeans_1d; index with ``labels.long()``), else int64.
    labels: Tensor
    centers: Tensor  # float32 (K,), sorted ascending (empty clusters keep their fitted center)
    # filled by kmeans_1d only (None from the sklearn backend):
    sizes: Tensor | None = None  # int64 (K,): finite points per cluster
    mean: Tensor | None = None  # float64 0-d: mean of the finite points (nan when none)
    # with keep_sample > 0: the finite points the medians may be estimated from, their labels,
    # and whether they are ALL the finite points (then estimates are exact)
    sample: Tensor | None = None
    sample_labels: Tensor | None = None
    sample_is_all: bool = True


def inertia(x: Tensor, labels: Tensor, centers: Tensor) -> float:
    """Sum of squared distances of each point to its cluster's center (finite points only)."""
    x = x.double().flatten()
    ok = torch.isfinite(x)
    return float(((x[ok] - centers.double()[labels[ok].long()]) ** 2).sum())


def _lloyd_sorted(s: Tensor, prefix: Tensor, prefix2: Tensor, c: Tensor, iters: int):
    """Lloyd on a sorted float64 CPU sample; returns (centers, inertia)."""
    n = s.numel()
    c.numel()
    zero = torch.zeros(1, dtype=torch.long)
    nn = torch.tensor([n])
    for _ in range(iters):
        b = (c[:-1] + c[1:]) * 0.5
        edges = torch.cat([zero, torch.searchsorted(s, b, right=True), nn])
        counts = edges[1:] - edges[:-1]
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        new_c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        new_c, _ = torch.sort(new_c)
        if torch.equal(new_c, c):
            break
        c = new_c
    b = (c[:-1] + c[1:]) * 0.5
    edges = torch.cat([zero, torch.searchsorted(s, b, right=True), nn])
    counts = (edges[1:] - edges[:-1]).double()
    sums = prefix[edges[1:]] - prefix[edges[:-1]]
    sq = prefix2[edges[1:]] - prefix2[edges[:-1]]
    # sum (x - c)^2 = sum x^2 - 2 c sum x + n c^2
    inert = float((sq - 2 * c * sums + counts * c * c).sum())
    return c, inert


def _kmeanspp(s: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding on a (float64, CPU) sample."""
    n = s.numel()
    idx = torch.randint(n, (1,), generator=gen)
    centers = [s[idx]]
    d2 = (s - centers[0]) ** 2
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            centers.append(centers[-1])
            continue
        j = torch.multinomial(d2 / total, 1, generator=gen)
        centers.append(s[j])
        d2 = torch.minimum(d2, (s - s[j]) ** 2)
    return torch.sort(torch.cat(centers))[0]


def kmeans_1d(
    x: Tensor,
    n_clusters: int,
    *,
    generator: torch.Generator,
    sample_size: int = 65536,
    max_iter: int = 50,
    n_init: int = 2,
    near_tie: float = 0.05,
    keep_sample: int = 0,
) -> KMeansResult:
    """Torch-native 1-D k-means of the flattened ``x`` (see the module docstring).

    ``generator`` is a CPU generator; its state advances deterministically, so the same seed and
    data give the same result on any device.

    ``keep_sample > 0`` also returns a random subsample of ``keep_sample`` finite points (the
    first ``keep_sample`` points of the k-means subsample; when ``keep_sample > sample_size`` the
    rest is drawn after it from the same generator) with their labels, for estimating medians.
    When there are at most ``keep_sample`` finite points (or k-means used them all) the "sample"
    is all of them. With ``keep_sample <= sample_size`` the generator advances exactly as without.
    """
    x = x.detach().reshape(-1)
    if x.dtype != torch.float32:
        x = x.float()
    dev = x.device
    k = int(n_clusters)
    n = x.numel()
    if n == 0:
        return KMeansResult(
            torch.zeros(0, dtype=_label_dtype(k), device=dev), torch.zeros(k, device=dev)
        )
    # a finite sum implies finite values (any inf/nan makes it inf/nan); the mask pass is only
    # paid when the sum is not finite (non-finite values, or a float32 overflow of the sum)
    all_finite = bool(torch.isfinite(x.sum()))
    finite = None
    if not all_finite:
        finite = torch.isfinite(x)
        all_finite = bool(finite.all())
    xf = x if all_finite else x[finite]
    if xf.numel() == 0:  # nothing finite: everything in cluster 0
        return KMeansResult(
            torch.zeros(n, dtype=_label_dtype(k), device=dev), torch.zeros(k, device=dev)
        )
    subsampled = xf.numel() > sample_size
    if subsampled:
        idx = torch.randint(xf.numel(), (sample_size,), generator=generator).to(dev)
        sample = xf[idx]
    else:
        sample = xf
    msample = None
    if keep_sample > 0:
        if not subsampled or xf.numel() <= keep_sample:
            msample = xf
        elif keep_sample <= sample_size:
            msample = sample[:keep_sample]
        else:
            extra = torch.randint(xf.numel(), (keep_sample - sample_size,), generator=generator)
            msample = torch.cat([sample, xf[extra.to(dev)]])
    s = _sorted(sample.cpu()).double()  # float64 after the sort: same values, faster sort
    m = s.numel()
    zero = torch.zeros(1, dtype=torch.float64)
    prefix = torch.cat([zero, torch.cumsum(s, 0)])
    prefix2 = torch.cat([zero, torch.cumsum(s * s, 0)])
    if k == 1:
        cands = [s.mean().reshape(1)]
    else:
        ar = torch.arange(k, dtype=torch.float64)
        q = ((ar + 0.5) / k * m).long().clamp(max=m - 1)
        inits = [s[q]]  # sample quantiles
        if n_init >= 2:  # evenly spaced over the sample's range
            inits.append(s[0] + (s[-1] - s[0]) * (ar + 0.5) / k)
        for _ in range(max(0, n_init - 2)):
            inits.append(_kmeanspp(s, k, generator))
        fitted = sorted(
            (_lloyd_sorted(s, prefix, prefix2, c0.clone(), max_iter) for c0 in inits),
            key=lambda ci: ci[1],
        )
        # near-ties on the subsample are decided on the full data (sampling noise)
        cands = []
        for c, it in fitted:
            if it <= fitted[0][1] * (1 + near_tie) and not any(torch.equal(c, d) for d in cands):
                cands.append(c)
    best = None
    sq = float(xf.double().square().sum()) if len(cands) > 1 else 0.0
    for c in cands:
        cand = _assign_full(x, xf, finite, all_finite, c, k, len(cands) > 1, sq)
        if best is None or cand[2] < best[2]:
            best = cand
    labels, full, _, counts, total, bounds = best
    mean = total / max(xf.numel(), 1)
    if msample is None:
        return KMeansResult(labels, full, counts, mean)
    if msample is xf:
        return KMeansResult(
            labels, full, counts, mean, xf, labels if all_finite else labels[finite]
        )
    s_lab = (
        _labels_of(msample, bounds, k)
        if bounds is not None
        else torch.zeros_like(msample, dtype=_label_dtype(k))
    )
    return KMeansResult(labels, full, counts, mean, msample, s_lab, False)


def _label_dtype(k: int) -> torch.dtype:
    return torch.uint8 if k <= 256 else torch.long


# up to this many clusters the labels are counted comparisons (K - 1 cheap passes writing uint8)
# instead of a bucketize (a binary search per element writing int64)
_COMPARE_MAX_K = 8


def _labels_of(x: Tensor, bounds: Tensor, k: int) -> Tensor:
    """``torch.bucketize(x, bounds)`` (bounds sorted) in the label dtype; same values.

    ``bucketize`` (right=False) returns the number of boundaries strictly below ``x``, which for
    small K is the sum of the K - 1 comparisons ``x > bounds[j]``.
    """
    if k <= _COMPARE_MAX_K:
        b = bounds.tolist()
        lab = torch.gt(x, b[0]).view(torch.uint8)
        if len(b) > 1:
            lab = lab.clone()
            for bj in b[1:]:
                lab.add_(torch.gt(x, bj).view(torch.uint8))
        return lab
    lab = torch.bucketize(x, bounds, out_int32=True)
    return lab.to(torch.uint8) if k <= 256 else lab.long()


def _sorted(v: Tensor) -> Tensor:
    """Sorted copy of a 1-D tensor (values only). numpy's SIMD sort on CPU: same values as
    ``torch.sort``, ~10-30x faster for float32 on x86."""
    if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.sort(v.contiguous().numpy()))
    return torch.sort(v)[0]


def _assign_full(x, xf, finite, all_finite, c64, k, need_inertia, sum_sq=0.0):
    """Assign all points to the sorted centers; full-data centers, inertia, sizes, sum, bounds."""
    dev = x.device
    centers = c64.to(device=dev, dtype=torch.float32)
    bounds = None
    if k > 1:
        bounds = ((c64[:-1] + c64[1:]) * 0.5).to(device=dev, dtype=torch.float32)
        labels = _labels_of(x, bounds, k)
    else:
        labels = torch.zeros(x.numel(), dtype=_label_dtype(k), device=dev)
    if not all_finite:
        nearest0 = torch.argmin(centers.abs()).to(labels.dtype)
        labels = torch.where(finite, labels, nearest0)
    lab_f = labels if all_finite else labels[finite]
    counts = torch.bincount(lab_f, minlength=k)[:k]
    # per-cluster float64 sums, accumulated in element order (as index_add_ did)
    sums = torch.bincount(lab_f, weights=xf.double(), minlength=k)[:k]
    means = torch.where(counts > 0, sums / counts.clamp(min=1), c64.to(dev))
    # inertia around the cluster means: sum x^2 - sum_c S_c^2 / n_c
    inert = float(sum_sq - (sums * means).sum()) if need_inertia else 0.0
    return labels, means.float(), inert, counts, sums.sum(), bounds


def kmeans_1d_sklearn(
    x: Tensor,
    n_clusters: int,
    *,
    generator: torch.Generator,
    batch_size: int = 1024,
    max_iter: int = 100,
) -> KMeansResult:
    """The paper's clustering: scikit-learn ``MiniBatchKMeans`` (reference; slow for large N)."""
    from sklearn.cluster import MiniBatchKMeans

    xc = x.detach().reshape(-1).float().cpu()
    n = xc.numel()
    finite = torch.isfinite(xc)
    xf = xc[finite].double().numpy().reshape(-1, 1)
    k = int(n_clusters)
    labels = torch.zeros(n, dtype=torch.long)
    if xf.shape[0] < k:
        return KMeansResult(labels.to(x.device), torch.zeros(k, device=x.device))
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    km = MiniBatchKMeans(
        n_clusters=k, batch_size=batch_size, max_iter=max_iter, random_state=seed, n_init=3
    )
    lab = torch.from_numpy(km.fit_predict(xf)).long()
    centers = torch.from_numpy(km.cluster_centers_.reshape(-1)).float()
    order = torch.argsort(centers)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    labels[finite] = rank[lab]
    centers = centers[order]
    if not bool(finite.all()):
        labels[~finite] = torch.argmin(centers.abs())
    return KMeansResult(labels.to(x.device), centers.to(x.device))

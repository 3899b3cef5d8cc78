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

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import native_recluster

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
    k = int(n_clusters)
    # a finite sum implies finite values (any inf/nan makes it inf/nan); the mask pass is only
    # paid when the sum is not finite (non-finite values, or a float32 overflow of the sum)
    xf, finite = _finite_part(x, x.numel() == 0 or bool(torch.isfinite(x.sum())))
    if xf.numel() == 0:  # nothing (finite): everything in cluster 0
        return _all_in_cluster_0(x, k)
    sample, msample, is_all = _draw_samples(xf, sample_size, keep_sample, generator)
    s = _sorted(sample.tensor().cpu()).double()  # float64 after the sort: same values, faster
    if k == 1:
        cands = [s.mean().reshape(1)]
    else:
        kpp = [_kmeanspp(s, k, generator) for _ in range(max(0, n_init - 2))]
        cands = _near_ties(_lloyd_from_inits(s, k, n_init, kpp, max_iter), near_tie)
    sq = float(xf.double().square().sum()) if len(cands) > 1 else 0.0
    best = _best(
        _assign_full(x, xf, finite, finite is None, c, k, len(cands) > 1, sq) for c in cands
    )
    return _result_of(best, xf, finite, msample, is_all, k, with_sample=True)[0]


def _finite_part(x: Tensor, sum_is_finite: bool) -> tuple[Tensor, Tensor | None]:
    """(the finite values of the flat ``x``, their mask; None when all are finite).
    ``sum_is_finite``: ``x``'s sum was finite, so every value is (no mask pass)."""
    if sum_is_finite:
        return x, None
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return x, None
    return x[finite], finite


def _all_in_cluster_0(x: Tensor, k: int) -> KMeansResult:
    """The clustering of a layer without finite values: every element in cluster 0."""
    return KMeansResult(
        torch.zeros(x.numel(), dtype=_label_dtype(k), device=x.device),
        torch.zeros(k, device=x.device),
    )


def _draw_samples(
    xf: Tensor, sample_size: int, keep_sample: int, generator: torch.Generator
) -> tuple[_Pick, _Pick | None, bool]:
    """The k-means subsample of the finite points ``xf`` (all of them when they are at most
    ``sample_size``), the median subsample (None without ``keep_sample``; see ``kmeans_1d``),
    and whether the latter holds ALL the finite points. Draws from ``generator`` in this order:
    the subsample, then the median points beyond it."""
    nf = xf.numel()
    idx = None
    if nf > sample_size:
        idx = torch.randint(nf, (sample_size,), generator=generator).to(xf.device)
    sample = _Pick(xf, idx)
    if keep_sample <= 0:
        return sample, None, True
    if idx is None or nf <= keep_sample:
        return sample, _Pick(xf, None), True
    if keep_sample <= sample_size:
        return sample, _Pick(xf, idx[:keep_sample]), False
    extra = torch.randint(nf, (keep_sample - sample_size,), generator=generator)
    return sample, _Pick(xf, torch.cat([idx, extra.to(xf.device)])), False


def _lloyd_from_inits(
    s: Tensor, k: int, n_init: int, kpp: list[Tensor], max_iter: int
) -> list[tuple[Tensor, float]]:
    """Lloyd on the sorted float64 sample ``s`` (K > 1) from each initialisation in order:
    sample quantiles, evenly spaced over the range (``n_init >= 2``), the k-means++ seeds
    ``kpp``; per initialisation (centers, sample inertia)."""
    m = s.numel()
    zero = torch.zeros(1, dtype=torch.float64)
    prefix = torch.cat([zero, torch.cumsum(s, 0)])
    prefix2 = torch.cat([zero, torch.cumsum(s * s, 0)])
    ar = torch.arange(k, dtype=torch.float64)
    q = ((ar + 0.5) / k * m).long().clamp(max=m - 1)
    inits = [s[q]]  # sample quantiles
    if n_init >= 2:  # evenly spaced over the sample's range
        inits.append(s[0] + (s[-1] - s[0]) * (ar + 0.5) / k)
    inits.extend(kpp)
    return [_lloyd_sorted(s, prefix, prefix2, c0.clone(), max_iter) for c0 in inits]


def _best(fits: Iterable[tuple]) -> tuple:
    """The candidate fit with the lowest full-data inertia (the first of equals)."""
    best = None
    for cand in fits:
        if best is None or cand[2] < best[2]:
            best = cand
    assert best is not None
    return best


def _result_of(
    best: tuple,
    xf: Tensor,
    finite: Tensor | None,
    msample: _Pick | None,
    is_all: bool,
    k: int,
    *,
    with_sample: bool,
) -> tuple[KMeansResult, Tensor | None]:
    """A layer's ``KMeansResult`` from its best full-data fit (``_fit_of``'s tuple), and the
    fit's cluster boundaries; ``with_sample``: with the median subsample and its labels."""
    labels, full, _, counts, total, bounds = best
    mean = total / max(xf.numel(), 1)
    if msample is None or not with_sample:
        return KMeansResult(labels, full, counts, mean, sample_is_all=is_all), bounds
    if msample.idx is None:  # all the finite points
        lab_f = labels if finite is None else labels[finite]
        return KMeansResult(labels, full, counts, mean, xf, lab_f), bounds
    points = msample.tensor()
    s_lab = (
        _labels_of(points, bounds, k)
        if bounds is not None
        else torch.zeros_like(points, dtype=_label_dtype(k))
    )
    return KMeansResult(labels, full, counts, mean, points, s_lab, False), bounds


def _near_ties(fitted: list[tuple[Tensor, float]], near_tie: float) -> list[Tensor]:
    """The distinct centers whose subsample inertia is within ``near_tie`` of the lowest, best
    first (stable: ties keep the initialisations' order); the full data decides between them.

    The inertia ``sum x^2 - 2 c sum x + n c^2`` can come out slightly negative by cancellation
    when every point is (nearly) its own center (e.g. K at least the number of points): the
    limit is taken from the lowest inertia clamped at 0, otherwise ``best * (1 + near_tie)``
    would lie below ``best`` and no candidate would be kept. The best one is always kept (a
    NaN inertia compares false)."""
    fitted = sorted(fitted, key=lambda ci: ci[1])
    limit = max(fitted[0][1], 0.0) * (1 + near_tie)
    cands = [fitted[0][0]]
    for c, it in fitted[1:]:
        if it <= limit and not any(torch.equal(c, d) for d in cands):
            cands.append(c)
    return cands


def _label_dtype(k: int) -> torch.dtype:
    return torch.uint8 if k <= 256 else torch.long


# up to this many clusters the labels are counted comparisons (K - 1 cheap passes writing uint8)
# instead of a bucketize (a binary search per element writing int64)
_COMPARE_MAX_K = 8


def _labels_of(x: Tensor, bounds: Tensor, k: int) -> Tensor:
    """``torch.bucketize(x, bounds)`` (bounds sorted) in the label dtype; same values."""
    return _labels_counted(x, bounds, k)[0]


def _labels_counted(x: Tensor, bounds: Tensor, k: int) -> tuple[Tensor, Tensor | None]:
    """``_labels_of``, and for small K the int64 (K - 1,) counts of ``x > bounds[j]`` (else None).

    ``bucketize`` (right=False) returns the number of boundaries strictly below ``x``, which for
    small K is the sum of the K - 1 comparisons ``x > bounds[j]``; counting each comparison's
    hits on the way is cheaper than a ``bincount`` of the labels afterwards.
    """
    if k <= _COMPARE_MAX_K:
        b = bounds.tolist()
        lab = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
        torch.gt(x, b[0], out=lab.view(torch.bool))
        above = [torch.count_nonzero(lab)]
        for bj in b[1:]:
            hit = torch.gt(x, bj)
            above.append(torch.count_nonzero(hit))
            lab.add_(hit.view(torch.uint8))
        return lab, torch.stack(above)
    lab = torch.bucketize(x, bounds, out_int32=True)
    return (lab.to(torch.uint8) if k <= 256 else lab.long()), None


def _sorted(v: Tensor) -> Tensor:
    """Sorted copy of a 1-D tensor (values only). numpy's SIMD sort on CPU: same values as
    ``torch.sort``, ~10-30x faster for float32 on x86."""
    if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.sort(v.contiguous().numpy()))
    return torch.sort(v)[0]


def _assign_full(x, xf, finite, all_finite, c64, k, need_inertia, sum_sq=0.0, xd=None):
    """Assign all points to the sorted centers; full-data centers, inertia, sizes, sum, bounds."""
    dev = x.device
    centers = c64.to(device=dev, dtype=torch.float32)
    bounds = None
    if k > 1:
        bounds = ((c64[:-1] + c64[1:]) * 0.5).to(device=dev, dtype=torch.float32)
        labels, above = _labels_counted(x, bounds, k)
    else:
        labels, above = torch.zeros(x.numel(), dtype=_label_dtype(k), device=dev), None
    if not all_finite:
        nearest0 = torch.argmin(centers.abs()).to(labels.dtype)
        labels = torch.where(finite, labels, nearest0)
    lab_f = labels if all_finite else labels[finite]
    if all_finite and above is not None:  # size of cluster c: #(x > b[c - 1]) - #(x > b[c])
        ge = torch.cat([above.new_full((1,), x.numel()), above, above.new_zeros(1)])
        counts = ge[:-1] - ge[1:]
    else:
        counts = torch.bincount(lab_f, minlength=k)[:k]
    # per-cluster float64 sums, accumulated in element order (as index_add_ did)
    sums = torch.bincount(lab_f, weights=xf.double() if xd is None else xd, minlength=k)[:k]
    return _fit_of(labels, counts, sums, c64, bounds, need_inertia, sum_sq)


def _fit_of(
    labels: Tensor,
    counts: Tensor,
    sums: Tensor,
    c64: Tensor,
    bounds: Tensor | None,
    need_inertia: bool,
    sum_sq: float,
) -> tuple[Tensor, Tensor, float, Tensor, Tensor, Tensor | None]:
    """A candidate's full-data fit from its labels, sizes and float64 sums (torch or native
    pass): (labels, float32 centers = the cluster means, inertia, sizes, total, bounds). Empty
    clusters keep their fitted center."""
    means = torch.where(counts > 0, sums / counts.clamp(min=1), c64.to(sums.device))
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


# ---- many layers at once ------------------------------------------------------------------
@dataclass(frozen=True)
class ManyKMeans:
    """``kmeans_1d_many``: one ``KMeansResult`` per layer, plus what batched medians need.

    ``rows`` holds, per layer, the sorted finite points the medians are taken over (the median
    subsample, or all finite points where ``is_all``), as float32 on the CPU padded with +inf;
    ``lengths`` their counts. ``rows`` is None when ``keep_sample`` is 0 or exceeds the k-means
    sample size (then the per-layer ``KMeansResult.sample`` fields are filled as by ``kmeans_1d``).
    """

    results: list[KMeansResult]
    bounds: list[Tensor | None]  # float32 (K-1,) cluster boundaries (None: K = 1 or no points)
    rows: Tensor | None = None  # float32 (L, W), each row sorted ascending, +inf padded
    lengths: Tensor | None = None  # int64 (L,)
    is_all: list[bool] | None = None  # the row holds ALL finite points of the layer


# elements per Lloyd batch (bounds the memory of the float64 (rows, S) running sums: 128 MiB)
_LLOYD_BATCH_ELEMENTS = 1 << 24


def kmeans_1d_many(
    xs: list[Tensor],
    n_clusters: int,
    *,
    generator: torch.Generator,
    sample_size: int = 65536,
    max_iter: int = 50,
    n_init: int = 2,
    near_tie: float = 0.05,
    keep_sample: int = 0,
) -> ManyKMeans:
    """``kmeans_1d`` of every tensor of ``xs``, batched: the same results, in the same order.

    The generator is drawn from layer by layer exactly as consecutive ``kmeans_1d`` calls would
    (subsample, extra median points, k-means++ seeds), so labels, centers, sizes and means are
    identical to the per-layer reference. What is batched: the finiteness checks (one reduction
    per layer, one host sync), the sort of all subsamples (one numpy call over an (L, S) matrix)
    and Lloyd's iterations (all layers and initialisations at once, on (L, K) tensors). The
    full-data passes (labels, sizes, sums) stay per layer: they are large operations.
    """
    k = int(n_clusters)
    if not xs:
        return ManyKMeans([], [])
    layers = _prepared(xs, k, generator, sample_size, keep_sample, n_init)
    live = [i for i, layer in enumerate(layers) if layer.sample is not None]
    rows32 = _sorted_rows([layers[i].sample for i in live])  # (len(live), S) float32, +inf pad
    lengths = torch.tensor([layers[i].sample.numel() for i in live], dtype=torch.long)
    fitted = _fitted_rows(rows32, lengths, [layers[i].kpp for i in live], k, max_iter, n_init)
    candidates = {
        i: [fits[0][0]] if k == 1 else _near_ties(fits, near_tie)
        for i, fits in zip(live, fitted, strict=True)
    }
    batched_rows = 0 < keep_sample <= sample_size
    done = _full_passes(layers, candidates, k, with_sample=keep_sample > 0 and not batched_rows)
    results = [r for r, _ in done]
    bounds = [b for _, b in done]
    if not batched_rows:
        return ManyKMeans(results, bounds)
    # the median rows: the k-means subsample (the same points as a multiset) unless the median
    # subsample is a proper prefix of it (keep_sample < sample_size on a subsampled layer)
    if any(layers[i].msample.numel() != layers[i].sample.numel() for i in live):
        rows32 = _sorted_rows([layers[i].msample for i in live])
        lengths = torch.tensor([layers[i].msample.numel() for i in live], dtype=torch.long)
    rows32, lengths = _rows_of_all_layers(rows32, lengths, live, len(layers))
    return ManyKMeans(results, bounds, rows32, lengths, [layer.is_all for layer in layers])


@dataclass(frozen=True)
class _Layer:
    """One layer of ``kmeans_1d_many`` before its full-data pass."""

    x: Tensor  # flat float32
    given_f32: bool  # float32 as given (the native pass takes these only)
    xf: Tensor  # its finite values
    finite: Tensor | None  # their mask; None when all are finite
    sample: _Pick | None  # the k-means subsample (None: no finite values)
    msample: _Pick | None  # the median subsample (None without keep_sample)
    is_all: bool  # msample holds ALL the finite points
    kpp: list[Tensor]  # k-means++ initial centers (float64)


def _prepared(
    xs: list[Tensor],
    k: int,
    generator: torch.Generator,
    sample_size: int,
    keep_sample: int,
    n_init: int,
) -> list[_Layer]:
    """Each layer flattened, its finite part and its subsamples (not gathered yet: they are
    gathered into the rows to sort, on torch's threads), drawing from ``generator`` layer by
    layer as ``kmeans_1d`` does."""
    flat = [x.detach().reshape(-1) for x in xs]
    given_f32 = [x.dtype == torch.float32 for x in flat]
    flat = [x if f32 else x.float() for x, f32 in zip(flat, given_f32, strict=True)]
    # one reduction per layer and one host sync (a finite sum implies finite values)
    dev0 = flat[0].device
    sum_finite = torch.isfinite(torch.stack([x.sum().to(dev0) for x in flat])).tolist()
    layers = []
    for x, f32, fin in zip(flat, given_f32, sum_finite, strict=True):
        xf, finite = _finite_part(x, bool(fin))
        if xf.numel() == 0:
            layers.append(_Layer(x, f32, xf, finite, None, None, True, []))
            continue
        sample, msample, is_all = _draw_samples(xf, sample_size, keep_sample, generator)
        kpp = []
        if k > 1 and n_init > 2:  # k-means++ draws come right after this layer's sampling
            s = _sorted(sample.tensor().cpu()).double()
            kpp = [_kmeanspp(s, k, generator) for _ in range(n_init - 2)]
        layers.append(_Layer(x, f32, xf, finite, sample, msample, is_all, kpp))
    return layers


def _fitted_rows(
    rows32: Tensor, lengths: Tensor, kpp: list[list[Tensor]], k: int, max_iter: int, n_init: int
) -> list[list[tuple[Tensor, float]]]:
    """``_fit_rows`` over the sorted rows, in batches of about ``_LLOYD_BATCH_ELEMENTS``."""
    per_batch = max(1, _LLOYD_BATCH_ELEMENTS // max(rows32.shape[1], 1))
    out: list[list[tuple[Tensor, float]]] = []
    for b0 in range(0, rows32.shape[0], per_batch):
        sl = slice(b0, b0 + per_batch)
        out.extend(_fit_rows(rows32[sl], lengths[sl], k, max_iter, n_init, kpp[sl]))
    return out


def _full_passes(
    layers: list[_Layer], candidates: dict[int, list[Tensor]], k: int, *, with_sample: bool
) -> list[tuple[KMeansResult, Tensor | None]]:
    """Per layer, its result and boundaries from the full-data passes of its candidates.

    The passes are independent and mostly single-threaded kernels (bincount): on CPU they run
    on torch's threads, one layer per thread, largest first (a large layer started last would
    keep one thread busy while the others wait); the native pass takes the CPU float32 layers
    it can, all in one call."""
    n_layers = len(layers)
    order = sorted(range(n_layers), key=lambda i: -layers[i].x.numel())
    total = sum(layer.x.numel() for layer in layers)
    dev0 = layers[0].x.device
    done: list = [None] * n_layers

    def finish(i: int, fits) -> tuple[KMeansResult, Tensor | None]:
        layer = layers[i]
        if layer.sample is None:  # nothing finite: everything in cluster 0
            return _all_in_cluster_0(layer.x, k), None
        return _result_of(_best(fits), layer.xf, layer.finite, layer.msample, layer.is_all, k,
                          with_sample=with_sample)  # fmt: skip

    mod = _native_module(k, dev0)
    native = []
    if mod is not None:
        native = [i for i in order if layers[i].given_f32 and _native_takes(layers[i], k)]
    if native:
        fits = _native_fits(mod, native, layers, candidates, k, total, dev0)
        for i in native:
            done[i] = finish(i, fits[i])
    rest = [i for i in order if done[i] is None]
    scratch = threading.local()

    def finish_by_torch(i: int) -> tuple[KMeansResult, Tensor | None]:
        fits = _torch_fits(layers[i], candidates.get(i, []), k, scratch)
        return finish(i, fits)

    # the torch path keeps its threading decision of the whole set (the sums of squares of
    # multi-candidate layers depend on the torch thread count)
    for i, r in zip(rest, _map_threads(finish_by_torch, rest, total, dev0), strict=True):
        done[i] = r
    return done


def _torch_fits(layer: _Layer, cands: list[Tensor], k: int, scratch: threading.local):
    """The candidates' full-data fits by torch ops (any device and dtype), one at a time."""
    x, xf, finite = layer.x, layer.xf, layer.finite
    # float64 copy shared by the candidates' weighted sums (and the sum of squares), in a
    # buffer reused across layers: a fresh one per layer costs more in page faults than
    # the conversion itself
    xd = _scratch(scratch, "xd", xf.numel(), xf.device)
    xd.copy_(xf)
    sq = 0.0
    if len(cands) > 1:
        sq = float(torch.square(xd, out=_scratch(scratch, "sq", xf.numel(), xf.device)).sum())
    for c in cands:
        yield _assign_full(x, xf, finite, finite is None, c, k, len(cands) > 1, sq, xd)


def _rows_of_all_layers(
    rows32: Tensor, lengths: Tensor, live: list[int], n_layers: int
) -> tuple[Tensor, Tensor]:
    """The median rows of the ``live`` layers as rows of all ``n_layers`` layers (a layer
    without finite values: an empty row)."""
    if len(live) == n_layers:
        return rows32, lengths
    full_rows = torch.full((n_layers, rows32.shape[1]), float("inf"))
    full_len = torch.zeros(n_layers, dtype=torch.long)
    if live:
        idx = torch.tensor(live, dtype=torch.long)
        full_rows[idx] = rows32
        full_len[idx] = lengths
    return full_rows, full_len


# the native full-data pass (sgg/native_recluster.py) for CPU float32 layers; False: torch ops
# only (the tests compare the two)
USE_NATIVE_PASS = True


def _native_module(k: int, device: torch.device):
    """The native pass's extension when it can serve this call (CPU, uint8 labels), else None
    (then, or when it cannot be built, the torch path runs: same results)."""
    if not USE_NATIVE_PASS or device.type != "cpu" or not 1 <= k <= 256:
        return None
    return native_recluster.load()


def _native_takes(layer: _Layer, k: int) -> bool:
    """A flattened layer for the native pass: CPU float32 contiguous, with finite points (no
    pass otherwise). The caller checks that it was float32 as given: other dtypes keep the
    torch path."""
    return layer.sample is not None and native_recluster.takes(layer.x, k)


def _native_fits(
    mod, ids: list[int], layers: list[_Layer], candidates: dict[int, list[Tensor]], k: int,
    total: int, device: torch.device
) -> dict[int, list]:  # fmt: skip
    """Per layer of ``ids`` (largest first), its candidates' full-data fits (as
    ``_assign_full``), from one native call for all (layer, candidate) jobs.

    The boundaries and the cluster means of all jobs are computed as (jobs, K) matrices:
    elementwise float arithmetic, the same values as per layer, without ~10 small torch calls
    per layer. Reductions (the inertia, the total) stay per row, as in ``_fit_of``."""
    jobs: list[tuple[int, Tensor]] = [(i, c) for i in ids for c in candidates[i]]
    cs = torch.stack([c for _, c in jobs])  # float64 (jobs, K)
    bounds = ((cs[:, :-1] + cs[:, 1:]) * 0.5).float()  # (jobs, K - 1)
    # non-finite elements go to the cluster whose center is nearest to 0 (_assign_full)
    nonfinite = [
        0 if layers[i].finite is None else int(torch.argmin(c.float().abs())) for i, c in jobs
    ]
    labels, sizes, sums = native_recluster.full_pass(
        mod, [layers[i].x for i, _ in jobs], list(bounds.unbind(0)), nonfinite, k
    )
    means = torch.where(sizes > 0, sums / sizes.clamp(min=1), cs)
    centers = means.float()
    per_layer = Counter(i for i, _ in jobs)
    multi = [i for i in ids if per_layer[i] > 1]
    sq = _sums_of_squares([layers[i].xf for i in multi], len(layers), total, device)
    sq_of = dict(zip(multi, sq, strict=True))
    fits: dict[int, list] = {i: [] for i in ids}
    for j, (i, _) in enumerate(jobs):
        # inertia around the cluster means (only to choose between near-tie candidates)
        inert = float(sq_of[i] - (sums[j] * means[j]).sum()) if i in sq_of else 0.0
        b = bounds[j].clone() if k > 1 else None
        fits[i].append((labels[j], centers[j].clone(), inert, sizes[j].clone(), sums[j].sum(), b))
    return fits


def _sums_of_squares(xfs: list[Tensor], n_items: int, total: int, device) -> list[float]:
    """``float(square(xf.double()).sum())`` per layer, with the torch thread count the torch
    path had for it (one thread inside ``_map_threads``'s pool): a float64 sum's blocking
    depends on the thread count, and the sum decides between near-tie candidates."""
    if not xfs:
        return []
    threads = torch.get_num_threads()
    if _pool_threads(n_items, total, device, _THREADED_MIN_ELEMENTS) > 1:
        torch.set_num_threads(1)
    try:
        return [float(torch.square(xf.double()).sum()) for xf in xfs]
    finally:
        torch.set_num_threads(threads)


def _scratch(store: threading.local, name: str, n: int, device: torch.device) -> Tensor:
    """A float64 buffer of ``n`` elements from ``store`` (this thread's), grown as needed."""
    buf = getattr(store, name, None)
    if buf is None or buf.numel() < n or buf.device != device:
        buf = torch.empty(n, dtype=torch.float64, device=device)
        setattr(store, name, buf)
    return buf[:n]


# below this many elements in all, work of a few ns per element (the full-data passes, running
# sums) runs on the calling thread only: starting the pool costs ~0.5 ms
_THREADED_MIN_ELEMENTS = 1 << 19
# the same for sorting (~20 ns per element): a single 65536-point row is worth a second thread
_THREADED_MIN_SORT = 1 << 16


def _pool_threads(n_items: int, n_elements: int, device: torch.device, min_elements: int) -> int:
    """How many threads ``_map_threads`` runs ``n_items`` items on (1: the calling thread)."""
    if device.type != "cpu" or n_elements < min_elements:
        return 1
    return max(1, min(torch.get_num_threads(), n_items))


def _map_threads(
    fn, items, n_elements: int, device: torch.device, min_elements: int | None = None
) -> list:
    """``[fn(i) for i in items]``, on up to ``torch.get_num_threads()`` threads for CPU work of
    at least ``min_elements`` (default ``_THREADED_MIN_ELEMENTS``) elements (the GIL is released
    inside torch and numpy kernels); same results, in order."""
    items = list(items)
    threads = torch.get_num_threads()
    if min_elements is None:
        min_elements = _THREADED_MIN_ELEMENTS
    workers = _pool_threads(len(items), n_elements, device, min_elements)
    if workers <= 1:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor

    # one torch thread per worker while the pool runs: intra-op parallel regions started from
    # several threads at once would oversubscribe the cores (and spin at their barriers)
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class _Pick:
    """The points ``src[idx]`` (all of ``src`` when ``idx`` is None), not gathered yet."""

    src: Tensor
    idx: Tensor | None

    def numel(self) -> int:
        return self.src.numel() if self.idx is None else self.idx.numel()

    def tensor(self) -> Tensor:
        return self.src if self.idx is None else self.src[self.idx]

    def into(self, out: Tensor) -> None:
        """Write the points into ``out`` (``numel()`` elements, same device)."""
        if self.idx is None:
            out.copy_(self.src)
        else:
            torch.index_select(self.src, 0, self.idx, out=out)


def _sorted_rows(picks: list[_Pick]) -> Tensor:
    """The sorted points of each pick as one CPU (len(picks), max count) float32 matrix, +inf
    padded. On CPU each block of rows is gathered straight into the matrix and sorted (numpy's
    sort) on one of torch's threads: no intermediate sample tensors, rows sorted while in cache.
    Elsewhere, one device-to-host copy of all the points."""
    if not picks:
        return torch.zeros(0, 0)
    counts = [p.numel() for p in picks]
    width = max(counts)
    rows = torch.empty((len(picks), width))
    if any(p.src.device.type != "cpu" for p in picks):
        flat = torch.cat([p.tensor().reshape(-1) for p in picks]).cpu()
        picks = [_Pick(v, None) for v in flat.split(counts)]
    arr = rows.numpy()
    step = _row_block(len(picks))

    def fill_and_sort(r0: int) -> None:
        for r in range(r0, min(r0 + step, len(picks))):
            picks[r].into(rows[r, : counts[r]])
            rows[r, counts[r] :] = float("inf")
        arr[r0 : r0 + step].sort(axis=1)

    _map_threads(
        fill_and_sort, range(0, len(picks), step), rows.numel(), rows.device, _THREADED_MIN_SORT
    )
    return rows


def _fit_rows(
    rows32: Tensor, lengths: Tensor, k: int, max_iter: int, n_init: int, kpp: list[list[Tensor]]
) -> list[list[tuple[Tensor, float]]]:
    """Lloyd from every initialisation on sorted rows; per row, [(centers float64 (K,), sample
    inertia)] in initialisation order (as ``kmeans_1d`` builds its list).

    Works on the float32 rows directly (no float64 copy of the matrix: a fresh buffer that size
    costs more in page faults than the arithmetic) and keeps only the running sums of the
    points; the sums of squares are needed at the final edges only (``_square_sums_at``, in the
    same buffer)."""
    nrow, width = rows32.shape
    if k == 1:
        means = [rows32[r, : int(lengths[r])].double().mean().reshape(1) for r in range(nrow)]
        return [[(c, 0.0)] for c in means]
    # prefix[r, j] = the sum of the first j points of row r (a leading 0: one gather reads a
    # cluster's both ends)
    prefix = torch.empty((nrow, width + 1), dtype=torch.float64)
    prefix[:, 0] = 0.0
    step = _row_block(nrow)

    def running_sums(r0: int) -> None:
        # 1-D float64 ``cumsum`` of each row, as ``kmeans_1d`` computes them: on CPU
        # ``cumsum(s, 1)`` over a matrix is ~50x slower than a 1-D cumsum per row
        for r in range(r0, min(r0 + step, nrow)):
            torch.cumsum(rows32[r], 0, dtype=torch.float64, out=prefix[r, 1:])

    _map_threads(running_sums, range(0, nrow, step), rows32.numel(), rows32.device)
    m = lengths
    ar = torch.arange(k, dtype=torch.float64)
    first = rows32[:, :1].double()
    last = rows32.gather(1, (m - 1).view(-1, 1)).double()  # (R, 1): the largest point of a row
    q = ((ar + 0.5) / k * m.double().view(-1, 1)).long()
    q = torch.minimum(q, (m - 1).view(-1, 1))
    inits = [rows32.gather(1, q).double()]  # sample quantiles
    if n_init >= 2:  # evenly spaced over the sample's range
        inits.append(first + (last - first) * (ar + 0.5) / k)
    for j in range(max(0, n_init - 2)):
        inits.append(torch.stack([kp[j] for kp in kpp]))
    c, edges, sums = _lloyd_rows(rows32, prefix, m, torch.stack(inits, 1), max_iter)
    squares = _square_sums_at(rows32, m, prefix, edges.reshape(nrow, -1)).view(edges.shape)
    out: list[list[tuple[Tensor, float]]] = [[] for _ in range(nrow)]
    for i in range(len(inits)):
        e, sq_e, ci = edges[:, i], squares[:, i], c[:, i]
        counts = (e[:, 1:] - e[:, :-1]).double()
        sq = sq_e[:, 1:] - sq_e[:, :-1]
        # sum (x - c)^2 = sum x^2 - 2 c sum x + n c^2
        inert = (sq - 2 * ci * sums[:, i] + counts * ci * ci).sum(1)
        for r, it in enumerate(inert.tolist()):
            out[r].append((ci[r], it))
    return out


def _row_block(nrow: int) -> int:
    """Rows per block when ``nrow`` rows are split over torch's threads (``_map_threads``)."""
    return -(-nrow // max(1, min(torch.get_num_threads(), nrow)))


def _square_sums_at(rows32: Tensor, lengths: Tensor, prefix: Tensor, edges: Tensor) -> Tensor:
    """``out[r, j]`` = the float64 sum of the squares of the first ``edges[r, j]`` points of row
    ``r``, accumulated in order (the 1-D ``cumsum`` of ``kmeans_1d``'s ``prefix2``, read at the
    edges). The running sums are written over ``prefix`` (R, S + 1), whose first column is 0:
    the running sums of the points are no longer needed, and its pages are already mapped."""
    nrow = rows32.shape[0]
    step = _row_block(nrow)

    def block(r0: int) -> None:
        for r in range(r0, min(r0 + step, nrow)):
            n = int(lengths[r])
            x = rows32[r, :n].double()
            torch.cumsum(x.mul_(x), 0, out=prefix[r, 1 : n + 1])

    _map_threads(block, range(0, nrow, step), rows32.numel(), rows32.device)
    return prefix.gather(1, edges)


def _floor_f32(b: Tensor) -> Tensor:
    """The largest float32 <= each float64 of ``b``: a float32 point is <= ``b`` exactly when it
    is <= that value, so ``searchsorted(rows32, _floor_f32(b), right=True)`` counts the same
    points as a search for ``b`` in the rows converted to float64."""
    f = b.float()
    return torch.where(f.double() > b, torch.nextafter(f, torch.full_like(f, -float("inf"))), f)


def _lloyd_rows(rows32: Tensor, prefix: Tensor, m: Tensor, c: Tensor, iters: int):
    """``_lloyd_sorted`` on every row and initialisation at once (same arithmetic): ``c`` is
    (R, I, K), the centers of I initialisations per row, searched in the row together. A
    (row, initialisation) that has converged is frozen; the loop ends when all have (or after
    ``iters``). Returns (centers (R, I, K), the clusters' edges (R, I, K + 1), sums (R, I, K))."""
    nrow, n_init, k = c.shape
    zero = torch.zeros(nrow, n_init, 1, dtype=torch.long)
    nn = m.view(-1, 1, 1).expand(nrow, n_init, 1)
    active = torch.ones(nrow, n_init, dtype=torch.bool)

    def edges_of(c: Tensor) -> Tensor:
        b = _floor_f32((c[..., :-1] + c[..., 1:]) * 0.5).view(nrow, -1)
        inner = torch.searchsorted(rows32, b, right=True).view(nrow, n_init, k - 1)
        return torch.cat([zero, inner, nn], 2)

    def sums_of(edges: Tensor) -> Tensor:
        at = prefix.gather(1, edges.view(nrow, -1)).view(edges.shape)
        return at[..., 1:] - at[..., :-1]

    for _ in range(iters):
        edges = edges_of(c)
        counts = edges[..., 1:] - edges[..., :-1]
        new_c = torch.where(counts > 0, sums_of(edges) / counts.clamp(min=1), c)
        new_c, _ = torch.sort(new_c, dim=2)
        moved = (new_c != c).any(2) & active
        if not bool(moved.any()):
            break
        c = torch.where(moved.unsqueeze(2), new_c, c)
        active = moved
    edges = edges_of(c)
    return c, edges, sums_of(edges)

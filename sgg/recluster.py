"""One re-cluster of many layers: k-means, cluster MDAs, global MDA and factors, batched.

``recluster`` takes the clustered quantity of each layer (already whole: a sharded momentum is
gathered by the caller) and the layers' current factors, and returns each layer's fit and the
global MDA ``D``. ``batched=True`` (default) runs the k-means of all layers together
(``clustering.kmeans_1d_many``) and takes every median from the sorted subsamples
(``scaling.segment_lower_medians``, ``scaling.weighted_lower_median_rows``) and the factor rule
on (L, K) tensors; ``batched=False`` is the per-layer reference (one ``kmeans_1d``, one
``cluster_mdas`` per layer). Both give the same labels, sizes, centers, MDAs, ``D`` and factors
(tested), and draw the same numbers from the generator.

Layers to leave alone this step (e.g. without a gradient) are simply not passed: the result
covers the layers given, in order. The quantities may be a lazy iterable (e.g. gathering sharded
momenta one at a time): the batched path consumes it in chunks of at most ``chunk_elements``
elements, so no more than about one chunk of whole layers is alive at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .clustering import (
    KMeansResult,
    ManyKMeans,
    kmeans_1d,
    kmeans_1d_many,
    kmeans_1d_sklearn,
)
from .config import SGGConfig
from .scaling import (
    cluster_mdas,
    cluster_mdas_sampled,
    global_mda,
    lower_median,
    segment_lower_medians,
    update_factors,
    weighted_lower_median,
    weighted_lower_median_rows,
)

__all__ = ["LayerFit", "Recluster", "recluster", "transition_counts"]

# a non-empty cluster with fewer subsample points is measured exactly (cluster_mdas_sampled)
_MIN_POINTS = 64


@dataclass(frozen=True)
class LayerFit:
    """The re-cluster of one layer (tensors on the quantity's device)."""

    labels: Tensor  # uint8 (numel,) over the WHOLE layer
    centers: Tensor  # float32 (K,)
    sizes: Tensor  # int64 (K,)
    mda: Tensor  # float32 (K,)
    raw_factors: Tensor  # float32 (K,)
    factors: Tensor  # float32 (K,)


@dataclass(frozen=True)
class Recluster:
    layers: list[LayerFit]
    global_mda: Tensor  # float32 0-d


def recluster(
    quantities: Iterable[Tensor],
    prev_factors: Sequence[Tensor],
    *,
    config: SGGConfig,
    generator: torch.Generator,
    batched: bool = True,
    chunk_elements: int = 1 << 27,
) -> Recluster:
    """Re-cluster the given layers (see the module docstring); ``prev_factors[i]`` are the
    current factors (K,) of the i-th quantity."""
    if chunk_elements < 1:
        raise ValueError(f"recluster: invalid chunk_elements={chunk_elements!r}: must be >= 1")
    blocks = None
    if batched and config.backend == "torch":
        fits, blocks = _batched_stats(quantities, config, generator, chunk_elements)
    else:
        fits = _reference_stats(quantities, config, generator)
    if len(fits) != len(prev_factors):
        raise ValueError(f"recluster: {len(fits)} quantities but {len(prev_factors)} prev_factors")
    if config.global_mda == "all_params":
        d = weighted_lower_median_rows(blocks) if blocks else _global_all_params(fits)
    else:
        d = global_mda([], [f.mda for f in fits], [f.sizes for f in fits], "cluster_mdas")
    d = d.float()
    if not fits:
        return Recluster([], d)
    if batched:
        dev = fits[0].mda.device
        raw, new = update_factors(
            torch.stack([p.to(dev) for p in prev_factors]),
            torch.stack([f.mda.to(dev) for f in fits]),
            torch.stack([f.sizes.to(dev) for f in fits]),
            d,
            bounds=config.scale_bounds,
            decay=config.scale_decay,
            eps=config.mda_eps,
            clamp=config.clamp,
        )
        raws = [r.to(f.mda.device) for r, f in zip(raw.unbind(0), fits, strict=True)]
        news = [r.to(f.mda.device) for r, f in zip(new.unbind(0), fits, strict=True)]
    else:
        raws, news = [], []
        for prev, f in zip(prev_factors, fits, strict=True):
            r, n = update_factors(
                prev,
                f.mda,
                f.sizes,
                d,
                bounds=config.scale_bounds,
                decay=config.scale_decay,
                eps=config.mda_eps,
                clamp=config.clamp,
            )
            raws.append(r)
            news.append(n)
    layers = [
        LayerFit(f.labels, f.centers, f.sizes, f.mda, r.clone(), n.clone())
        for f, r, n in zip(fits, raws, news, strict=True)
    ]
    return Recluster(layers, d)


def transition_counts(prev: Sequence[Tensor], new: Sequence[Tensor], k: int) -> list[Tensor]:
    """Per layer ``i``, the int64 (K, K) counts of the points labelled ``a`` in ``prev[i]`` and
    ``b`` in ``new[i]`` (flat label tensors of equal length).

    One bincount of the pair index ``a * K + b`` per layer, in uint8 when it fits (8x less memory
    traffic than int64; ``add`` with ``alpha``: one pass), counted two at a time where the bins
    allow (``_pair_bincount``). On the calling thread: spread over torch's threads, the many
    small layers (each bincount is a few small reductions and host syncs) ran slower in all."""
    kk = k * k

    def count(i: int) -> Tensor:
        a, b = prev[i], new[i].to(prev[i].device)
        idx = torch.add(b, a, alpha=k) if kk <= 256 else a.long() * k + b.long()
        if idx.dtype == torch.uint8 and kk <= 128:
            return _pair_bincount(idx, kk).view(k, k)
        return torch.bincount(idx, minlength=kk)[:kk].view(k, k)

    return [count(i) for i in range(len(prev))]


def _pair_bincount(idx: Tensor, n_bins: int) -> Tensor:
    """``bincount(idx, minlength=n_bins)`` of a flat uint8 tensor of values < ``n_bins`` <= 128,
    two values at a time: read as int16, two neighbours are one bin of an (n_bins, 256)
    histogram, which is then summed over either position (a bincount is slow when neighbours
    fall in the same bin, each count waiting for the previous one; the pairs spread them)."""
    even = idx.numel() - idx.numel() % 2
    pairs = torch.bincount(idx[:even].view(torch.int16), minlength=256 * n_bins)
    h = pairs[: 256 * n_bins].view(n_bins, 256)[:, :n_bins]
    counts = h.sum(0) + h.sum(1)
    if even < idx.numel():  # the last value of an odd count
        counts[idx[-1].long()] += 1
    return counts


@dataclass
class _Stats:
    """Per-layer statistics before the global MDA (what the factor rule needs)."""

    labels: Tensor
    centers: Tensor
    sizes: Tensor
    mda: Tensor
    # all_params global MDA on the reference path: the layer's deviations and their weight
    dev: Tensor | None = None
    weight: float = 1.0


def _global_all_params(fits: list[_Stats]) -> Tensor:
    if not fits:
        return torch.zeros(())
    if any(f.weight != 1.0 for f in fits):
        return weighted_lower_median([f.dev for f in fits], [f.weight for f in fits])
    return global_mda([f.dev for f in fits], [], [], "all_params")


def _reference_stats(
    quantities: Iterable[Tensor], cfg: SGGConfig, generator: torch.Generator
) -> list[_Stats]:
    """One layer at a time: ``kmeans_1d`` (or scikit-learn), then ``cluster_mdas``."""
    k = cfg.n_clusters
    keep = cfg.median_sample or 0
    out = []
    for q in quantities:
        if cfg.backend == "torch":
            res = kmeans_1d(
                q,
                k,
                generator=generator,
                sample_size=cfg.kmeans_sample_size,
                max_iter=cfg.kmeans_max_iter,
                n_init=cfg.kmeans_n_init,
                keep_sample=keep,
            )
        else:
            res = kmeans_1d_sklearn(q, k, generator=generator)
        out.append(_layer_mdas(q, res, k, keep, cfg))
    return out


def _layer_mdas(q: Tensor, res: KMeansResult, k: int, keep: int, cfg: SGGConfig) -> _Stats:
    if keep and res.sample is not None and not res.sample_is_all:
        # estimated medians: on the subsample, around the exact layer mean
        sizes = res.sizes
        mda, dev = cluster_mdas_sampled(
            res.sample, res.sample_labels, res.mean, k, sizes=sizes, q=q, labels=res.labels
        )
        weight = float(sizes.sum()) / max(dev.numel(), 1)
    else:
        mda, sizes, dev = cluster_mdas(q, res.labels, k)
        weight = 1.0
    keep_dev = dev if cfg.global_mda == "all_params" else dev[:0]
    return _Stats(res.labels, res.centers, sizes, mda, dev=keep_dev, weight=weight)


def _chunks(quantities: Iterable[Tensor], limit: int) -> Iterable[list[Tensor]]:
    chunk: list[Tensor] = []
    size = 0
    for q in quantities:
        chunk.append(q)
        size += q.numel()
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _batched_stats(
    quantities: Iterable[Tensor], cfg: SGGConfig, generator: torch.Generator, chunk: int
) -> tuple[list[_Stats], list[tuple[Tensor, Tensor, Tensor]] | None]:
    """The batched path, chunk by chunk; also the (diff, lengths, weights) blocks of the median
    rows for the global MDA (None when the medians were taken per layer)."""
    k = cfg.n_clusters
    keep = cfg.median_sample or 0
    out: list[_Stats] = []
    blocks: list[tuple[Tensor, Tensor, Tensor]] | None = []
    for qs in _chunks(quantities, chunk):
        many = kmeans_1d_many(
            qs,
            k,
            generator=generator,
            sample_size=cfg.kmeans_sample_size,
            max_iter=cfg.kmeans_max_iter,
            n_init=cfg.kmeans_n_init,
            keep_sample=keep,
        )
        if many.rows is None:  # exact medians over whole layers, or keep > sample size
            out.extend(
                _layer_mdas(q, r, k, keep, cfg) for q, r in zip(qs, many.results, strict=True)
            )
            blocks = None
        else:
            stats, diff = _rows_mdas(qs, many, k)
            out.extend(stats)
            if blocks is not None:
                w = torch.tensor([s.weight for s in stats], dtype=torch.float64)
                blocks.append((diff, many.lengths, w))
    return out, blocks


def _rows_mdas(qs: list[Tensor], many: ManyKMeans, k: int) -> tuple[list[_Stats], Tensor]:
    """Cluster MDAs of a chunk of layers from the sorted median rows, all clusters at once;
    also the rows' ``diff = x - mu`` (for the global MDA), computed in ``many.rows``."""
    res = many.results
    n = len(qs)
    dev0 = qs[0].device
    # the centre of each layer's deviations, as the per-layer functions compute it:
    # exact (all points in the row): float32 mean of the finite values; sampled: the float64
    # full-data mean from the k-means pass, rounded to float32
    mus = []
    for q, r, all_pts in zip(qs, res, many.is_all, strict=True):
        if r.sizes is None:  # nothing finite
            mus.append(torch.zeros((), device=dev0))
        elif all_pts:
            qf = q.reshape(-1).float()
            if int(r.sizes.sum()) != qf.numel():
                qf = qf[torch.isfinite(qf)]
            mus.append(qf.mean().to(dev0))
        else:
            mus.append(r.mean.to(device=dev0, dtype=torch.float32))
    mu = torch.stack(mus).cpu()
    rows, lengths = many.rows, many.lengths
    if k > 1:  # cluster c of a row = the points in (bounds[c - 1], bounds[c]]
        pad = torch.full((k - 1,), float("inf"), device=dev0)
        bounds = torch.stack([pad if b is None else b.to(dev0) for b in many.bounds]).cpu()
    else:
        bounds = torch.zeros(n, 0)
    inner = torch.searchsorted(rows, bounds, right=True)
    # in place: a fresh matrix that size costs more in page faults than the subtraction
    diff = rows.sub_(mu.view(-1, 1))
    edges = torch.cat([torch.zeros(n, 1, dtype=torch.long), inner, lengths.view(-1, 1)], 1)
    edges = torch.minimum(edges, lengths.view(-1, 1))
    start, end = edges[:, :-1].reshape(-1), edges[:, 1:].reshape(-1)
    row = torch.arange(n).repeat_interleave(k)
    med = segment_lower_medians(diff, row, start, end).view(n, k)
    counts = (end - start).view(n, k)
    out = []
    for i, (q, r) in enumerate(zip(qs, res, strict=True)):
        sizes = r.sizes if r.sizes is not None else torch.zeros(k, dtype=torch.long, device=dev0)
        mda = med[i].clone()
        weight = 1.0
        if not many.is_all[i]:
            full = sizes.tolist()
            cnt = counts[i].tolist()
            for c in range(k):
                if full[c] == 0:
                    mda[c] = 0.0
                elif cnt[c] < _MIN_POINTS:  # a small cluster: exactly, over the full data
                    qc = q.reshape(-1)[r.labels == c].float()
                    qc = qc[torch.isfinite(qc)]
                    mda[c] = lower_median((qc - mu[i].to(qc.device)).abs_())
            weight = float(sizes.sum()) / max(int(lengths[i]), 1)
        out.append(_Stats(r.labels, r.centers, sizes, mda.to(q.device), weight=weight))
    return out, diff

"""Statistics computed on the parameters' device. Nothing here converts a tensor to a Python
number: callers stack the results and move them to the host once per flush."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from runformat.schema import QUANTILE_NAMES, QUANTILES

# The columns `moment_stats` returns (named as in the `layers` table).
MOMENT_COLUMNS: tuple[str, ...] = (
    "m_mean",
    "m_std",
    "m_abs_mean",
    *(f"m_{q}" for q in QUANTILE_NAMES),
    "v_mean",
    "v_q50",
    *(f"alr_{q}" for q in QUANTILE_NAMES),
)


def foreach_norms(tensors: list[Tensor], ord: float = 2.0) -> Tensor:
    """(L,) float32 L-`ord` norms of a list of tensors, one fused kernel per device and dtype."""
    if not tensors:
        return torch.zeros(0)
    norms = torch._foreach_norm(tensors, ord, dtype=torch.float32)
    dev = norms[0].device
    if all(n.device == dev for n in norms):
        return torch.stack(norms)
    return torch.stack([n.to(dev) for n in norms])


def global_norm(layer_norms: Tensor) -> Tensor:
    """Global L2 norm from per-layer L2 norms (last dim): sqrt(sum of squares)."""
    return layer_norms.double().square().sum(-1).sqrt()


def sample_positions(numel: int, k: int, generator: torch.Generator) -> Tensor:
    """Up to `k` distinct flat positions in `[0, numel)`, sorted; all of them when numel <= k."""
    if numel <= k:
        return torch.arange(numel)
    if numel <= 4 * k or numel <= 1 << 20:
        return torch.randperm(numel, generator=generator)[:k].sort().values
    idx = torch.randint(numel, (k + k // 2 + 8,), generator=generator).unique()
    idx = idx[torch.randperm(idx.numel(), generator=generator)[:k]]
    return idx.sort().values


def quantile_positions(numel: int, k: int, generator: torch.Generator) -> Tensor:
    """Exactly `k` positions for the quantile subsample: `k` distinct random positions, or for
    layers with fewer than `k` elements every position repeated (the same distribution when
    k % numel == 0; interpolated tail quantiles then differ slightly from the layer's own)."""
    if numel >= k:
        return sample_positions(numel, k, generator)
    return torch.arange(numel).repeat(math.ceil(k / numel))[:k]


def row_quantiles(x: Tensor, qs: tuple[float, ...]) -> Tensor:
    """(rows, len(qs)) quantiles of each row, linear interpolation (`torch.quantile`'s default).

    Written out because `torch.quantile` with a tensor `q` validates it on the device (a sync).
    On the CPU the rows are sorted by NumPy (zero-copy), several times faster than `torch.sort`.
    """
    s = x.shape[1]
    if x.device.type == "cpu":
        xs = torch.from_numpy(np.sort(x.detach().contiguous().numpy(), axis=1))
    else:
        xs = x.sort(dim=1).values
    cols = []
    for q in qs:
        pos = q * (s - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, s - 1)
        w = pos - lo
        cols.append(xs[:, lo] * (1 - w) + xs[:, hi] * w)
    return torch.stack(cols, dim=1)


def adaptive_lr(v: Tensor, lr: Tensor | float, eps: Tensor | float, bc2: Tensor | float) -> Tensor:
    """Adam's per-element learning rate lr / (sqrt(v / bc2) + eps)."""
    return lr / ((v / bc2).sqrt() + eps)


def moment_stats(
    ms: list[Tensor],
    vs: list[Tensor],
    positions: list[Tensor],
    lr: Tensor,
    eps: Tensor,
    bc2: Tensor,
) -> dict[str, Tensor]:
    """{column: (L,) float32} for the `MOMENT_COLUMNS` (mean, std, mean |m| and quantiles of
    the momentum, mean and median of v, quantiles of the adaptive learning rate).

    `positions[i]` indexes the flat layer for the quantiles (all the same length); `lr`, `eps`,
    `bc2` are (L,) tensors on the moments' device.
    """
    dev = ms[0].device
    numel = torch.tensor([m.numel() for m in ms], dtype=torch.float32, device=dev)
    ms_s = torch.stack([_at(m, i) for m, i in zip(ms, positions, strict=True)])
    vs_s = torch.stack([_at(v, i) for v, i in zip(vs, positions, strict=True)])
    return moment_summary(moment_sums(ms, vs), numel, ms_s, vs_s, lr, eps, bc2)


def _at(x: Tensor, positions: Tensor) -> Tensor:
    """float32 values of the flat `x` at `positions` (`index_select`: advanced indexing,
    `x[positions]`, costs several times more per call on the CPU)."""
    return x.reshape(-1).index_select(0, positions).float()


def moment_sums(ms: list[Tensor], vs: list[Tensor]) -> Tensor:
    """(L, 4) float32: sum(m), |m|_1, |m|_2, |v|_1 of each layer (partial sums of a shard add up;
    the L2 norm combines as the root of the summed squares)."""
    m_sum = torch.stack([m.sum(dtype=torch.float32) for m in ms])
    # sums rather than `_foreach_norm(ord=1)`, which costs several times more on the CPU
    m_l1 = torch.stack([m.abs().sum(dtype=torch.float32) for m in ms])
    m_l2 = foreach_norms(ms, 2.0)
    v_l1 = torch.stack([v.sum(dtype=torch.float32) for v in vs])  # v >= 0: its L1 norm
    return torch.stack([m_sum, m_l1, m_l2, v_l1], dim=1)


def moment_summary(
    sums: Tensor,
    numel: Tensor,
    ms_s: Tensor,
    vs_s: Tensor,
    lr: Tensor,
    eps: Tensor,
    bc2: Tensor,
) -> dict[str, Tensor]:
    """`moment_stats` from the whole layers' `moment_sums` (L, 4), element counts (L,) and the
    (L, k) float32 samples of m and v at the quantile positions."""
    n = sums.shape[0]
    m_sum, m_l1, m_l2, v_l1 = sums.unbind(1)
    m_mean = m_sum / numel
    m_std = (m_l2.square() / numel - m_mean.square()).clamp_min(0).sqrt()
    m_abs_mean = m_l1 / numel
    v_mean = v_l1 / numel
    alr_s = adaptive_lr(vs_s, lr[:, None], eps[:, None], bc2[:, None])
    qs = row_quantiles(torch.cat([ms_s, vs_s, alr_s]), QUANTILES)  # (3L, 5)
    m_q, v_q, alr_q = qs[:n], qs[n : 2 * n], qs[2 * n :]
    cols = [m_mean, m_std, m_abs_mean, *m_q.unbind(1), v_mean, v_q[:, 2], *alr_q.unbind(1)]
    return dict(zip(MOMENT_COLUMNS, cols, strict=True))


def linear_edges(lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """bins+1 equally spaced edges from lo to hi (0-d tensors; no host sync)."""
    hi = torch.where(hi > lo, hi, lo + lo.abs().clamp_min(1e-30) * 1e-6 + 1e-30)
    t = torch.arange(bins + 1, device=lo.device, dtype=torch.float64) / bins
    return lo.double() + (hi.double() - lo.double()) * t


def log_edges(lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """bins+1 log10-spaced edges from lo to hi (> 0); the edges are values, not logarithms."""
    llo = lo.double().clamp_min(1e-300).log10()
    lhi = hi.double().clamp_min(1e-300).log10()
    return torch.pow(10.0, linear_edges(llo, lhi, bins))


def histogram_counts(
    values: Tensor, edges: Tensor, assignments: Tensor | None = None, n_clusters: int = 0
) -> Tensor:
    """(1 + K, bins) int64 counts over linearly spaced `edges`: row 0 the whole layer, row
    1 + c cluster c.

    Every value lands in a bin (edges span the layer's exact minimum and maximum; a value
    outside is counted in the nearest end bin). The bin is computed, not searched: a value
    within float32 rounding of an inner edge may count in the neighbouring bin.
    """
    bins = edges.numel() - 1
    lo, hi = edges[0], edges[-1]
    pos = values.reshape(-1).float() - lo.float()
    return _binned(pos.mul_((bins / (hi - lo)).float()), bins, assignments, n_clusters)


def log_histogram_counts(
    values: Tensor, edges: Tensor, assignments: Tensor | None = None, n_clusters: int = 0
) -> Tensor:
    """`histogram_counts` over log10-spaced `edges` (see `log_edges`) of positive values."""
    bins = edges.numel() - 1
    llo, lhi = edges[0].log10(), edges[-1].log10()
    pos = values.reshape(-1).float().log10().sub_(llo.float())
    return _binned(pos.mul_((bins / (lhi - llo)).float()), bins, assignments, n_clusters)


def _binned(pos: Tensor, bins: int, assignments: Tensor | None, n_clusters: int) -> Tensor:
    """Counts from fractional bin positions (`pos`, float32, overwritten): bin floor(pos)."""
    pos.clamp_(0, bins - 1)  # truncation below is floor: every position is >= 0
    if assignments is None or n_clusters == 0:
        return _count(pos.to(torch.int64), bins)[None]
    pos.add_(assignments.reshape(-1).to(pos.device), alpha=bins)
    per = _count(pos.to(torch.int64), n_clusters * bins).view(n_clusters, bins)
    return torch.cat([per.sum(0, keepdim=True), per])


def _count(idx: Tensor, n: int) -> Tensor:
    """bincount with a known length; on CUDA a scatter (`torch.bincount` reads the maximum back
    there: a host sync)."""
    if idx.device.type == "cpu":
        return torch.bincount(idx, minlength=n)
    out = torch.zeros(n, dtype=torch.int64, device=idx.device)
    return out.scatter_add_(0, idx, torch.ones_like(idx))


def layer_histograms(
    m: Tensor,
    v: Tensor,
    lr: float,
    eps: float,
    bc2: float,
    bins: int,
    assignments: Tensor | None = None,
    n_clusters: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Momentum and adaptive-lr histograms of one layer: (m_edges, m_counts, a_edges, a_counts).

    The adaptive lr lr / (sqrt(v / bc2) + eps) is binned by its logarithm, computed as
    log10(lr) - log10(sqrt(v / bc2) + eps): one layer-sized temporary, no extra pass.
    """
    m = m.reshape(-1)
    lo, hi = m.aminmax()
    m_edges = linear_edges(lo, hi, bins)
    m_counts = histogram_counts(m, m_edges, assignments, n_clusters)
    u = v.reshape(-1).float().mul(1.0 / bc2).sqrt_().add_(eps).log10_()
    u_lo, u_hi = u.aminmax()
    log_lr = math.log10(lr) if lr > 0 else -300.0
    log_edges_ = linear_edges(log_lr - u_hi, log_lr - u_lo, bins)
    a_edges = torch.pow(10.0, log_edges_)
    scale = (bins / (log_edges_[-1] - log_edges_[0])).float()
    pos = u.sub_((log_lr - log_edges_[0]).float()).mul_(-scale)  # (log10(alr) - low) * scale
    a_counts = _binned(pos, bins, assignments, n_clusters)
    return m_edges, m_counts, a_edges, a_counts


def histogram_extremes(m: Tensor, alr: Tensor) -> Tensor:
    """(4,) float64 [-min m, max m, -min alr, max alr] of a (possibly empty) shard: a MAX over the
    shards gives the layer's extremes (an empty shard contributes -inf)."""
    if m.numel() == 0:
        return torch.full((4,), float("-inf"), dtype=torch.float64, device=m.device)
    return torch.stack([-m.min(), m.max(), -alr.min(), alr.max()]).double()


def shard_histograms(
    m: Tensor,
    alr: Tensor,
    extremes: Tensor,
    bins: int,
    assignments: Tensor | None = None,
    n_clusters: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`layer_histograms` of one shard (flat `m`, adaptive lr `alr`, the shard's `assignments`)
    over edges from the whole layer's `extremes` (see `histogram_extremes`): summing the counts
    over the shards gives the layer's histograms."""
    m_edges = linear_edges(-extremes[0], extremes[1], bins)
    m_counts = histogram_counts(m, m_edges, assignments, n_clusters)
    a_edges = log_edges(-extremes[2], extremes[3], bins)
    a_counts = log_histogram_counts(alr, a_edges, assignments, n_clusters)
    return m_edges, m_counts, a_edges, a_counts

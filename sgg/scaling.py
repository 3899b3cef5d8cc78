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
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cluster_mdas", "global_mda", "layer_deviation", "lower_median", "update_factors"]


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

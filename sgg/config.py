"""SGG's options: one frozen dataclass, validated on construction, saved with each run."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["SGGConfig"]

_CHOICES = {
    "cluster_on": ("signed", "abs"),
    "global_mda": ("all_params", "cluster_mdas"),
    "clamp": ("before_ema", "after_ema"),
    "backend": ("torch", "sklearn"),
    "update_impl": ("auto", "native", "compiled", "eager"),
}


@dataclass(frozen=True)
class SGGConfig:
    # K: clusters per layer (paper: 3). Stored as uint8, so at most 255.
    n_clusters: int = 3
    # T: re-cluster when sgg_step % T == 0 (steps count from 1, so first re-cluster at step T).
    recluster_interval: int = 500
    # beta3: EMA decay of the factors, updated at each re-cluster.
    scale_decay: float = 0.99
    # Factor bounds [lo, hi] (paper: [0.1, 10]); (1.0, 1.0) pins every factor to 1.
    scale_bounds: tuple[float, float] = (0.1, 10.0)
    # eps in r = D / (D_c + eps); only guards a zero MDA (momenta are small numbers).
    mda_eps: float = 1e-12
    # Ambiguity: cluster the signed momentum m ("signed", paper's literal text) or |m| ("abs").
    cluster_on: str = "signed"
    # Ambiguity: D = median of |m_i - layer mean| over all clustered parameters ("all_params")
    # or the median of all non-empty per-cluster MDAs of the model ("cluster_mdas").
    global_mda: str = "all_params"
    # Ambiguity: clamp the raw factor then EMA ("before_ema") or clamp the EMA ("after_ema").
    clamp: str = "before_ema"
    # Ambiguity: multiply AdamW's decoupled weight decay by the factor too (default: no).
    scale_weight_decay: bool = False
    # Tensors with fewer dims are not clustered nor scaled (biases, norm weights).
    min_ndim: int = 2
    # Clustering backend: torch-native 1-D k-means ("torch") or scikit-learn MiniBatchKMeans.
    backend: str = "torch"
    # Where assignments live: None = the parameter's device; "cpu" = the paper's "CPU version".
    assignment_device: str | None = None
    # Seed of the clustering generator (its state is checkpointed).
    seed: int = 0
    # torch backend: subsample size for fitting, Lloyd iterations, initialisations.
    kmeans_sample_size: int = 65536
    kmeans_max_iter: int = 50
    kmeans_n_init: int = 2
    # Medians (D_{l,c} and the global D) at re-cluster: estimated from a random subsample of
    # this many points per layer (the head of the k-means subsample; layer mean, sizes and
    # assignments stay exact), or computed exactly over all elements (None). Layers with at most
    # this many elements are always exact.
    median_sample: int | None = 65536
    # Compute clusters and factors but do not apply them (training == base optimizer).
    observe_only: bool = False
    # Update kernel: "native" (a C++ kernel for float32 CPU tensors, built in the background
    # from the first step on while torch's fused or the eager update runs; compiled for the
    # rest), "compiled" (torch.compile), "eager", or "auto" (native, each path falling back
    # with one warning when it cannot be built; env SGG_UPDATE_IMPL wins).
    update_impl: str = "auto"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"SGG: invalid {name}={getattr(self, name)!r}: {why}")

        for name in ("n_clusters", "recluster_interval", "min_ndim", "seed"):
            if not _is_int(getattr(self, name)):
                raise bad(name, "must be an int")
        if not 1 <= self.n_clusters <= 255:
            raise bad("n_clusters", "must be in [1, 255] (assignments are uint8)")
        if self.recluster_interval < 1:
            raise bad("recluster_interval", "must be >= 1")
        if not _is_real(self.scale_decay) or not 0 <= self.scale_decay < 1:
            raise bad("scale_decay", "must be a number in [0, 1)")
        bounds = self.scale_bounds
        if (
            not isinstance(bounds, (tuple, list))
            or len(bounds) != 2
            or not all(_is_real(b) for b in bounds)
        ):
            raise bad("scale_bounds", "must be a pair of numbers (lo, hi)")
        lo, hi = (float(b) for b in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise bad("scale_bounds", "need finite 0 < lo <= hi")
        object.__setattr__(self, "scale_bounds", (lo, hi))
        if not _is_real(self.mda_eps) or not self.mda_eps >= 0:
            raise bad("mda_eps", "must be a number >= 0")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {choices}")
        for name in ("scale_weight_decay", "observe_only"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be True or False")
        if self.min_ndim < 0:
            raise bad("min_ndim", "must be >= 0")
        if self.assignment_device not in (None, "cpu"):
            raise bad("assignment_device", "must be None (parameter's device) or 'cpu'")
        ms = self.median_sample
        if ms is not None and (not _is_int(ms) or ms < 1024):
            raise bad("median_sample", "must be None (exact medians) or an int >= 1024")
        for name in ("kmeans_sample_size", "kmeans_max_iter", "kmeans_n_init"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise bad(name, "must be an int >= 1")


def _is_int(v: object) -> bool:
    """An integer that is not a bool (True is an int in Python, never a count here)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    """A real number (int, float, numpy scalar) that is not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)

"""The re-cluster's native full-data pass (``csrc/sgg_recluster.cpp``): built in the background
from the first step on, cached on disk.

Why: the per-layer full-data pass of the re-cluster (labels, cluster sizes, float64 cluster
sums) is in torch several passes over memory per layer plus Python per layer; the native pass
reads each layer once, and spreads the layers over torch's threads in one parallel region. Its
sums are added in the order of ``torch.bincount`` (element order), so results are bit-identical.

Built like the update kernel (sgg/extensions.py; a separate extension so that either source can
change without rebuilding the other). Until it is ready, and when the build fails (after one
warning), the re-cluster runs its torch path (same results, slower).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from .extensions import Extension

__all__ = ["EXTENSION", "building", "failure", "full_pass", "load", "takes"]

EXTENSION = Extension(
    "sgg_recluster.cpp",
    "native re-cluster pass",
    "using the torch code path instead (same results, slower).",
)


def load(*, wait: bool = False) -> ModuleType | None:
    """The pass's module; None while it is being built (the build starts in the background;
    ``wait=True`` waits for it) or (after one warning) if it cannot be built here."""
    return EXTENSION.load(wait=wait)


def building() -> bool:
    """Whether the pass is being built or loaded right now (the torch path runs meanwhile)."""
    return EXTENSION.building()


def failure() -> str | None:
    """Why the native pass is unavailable (None: available, building or not tried yet)."""
    return EXTENSION.failure()


def takes(x: Tensor, k: int) -> bool:
    """Whether the native pass can take this layer: contiguous float32 on the CPU, uint8 labels
    (K <= 256)."""
    return x.is_cpu and x.dtype == torch.float32 and x.is_contiguous() and 1 <= k <= 256


def full_pass(
    module: ModuleType,
    xs: list[Tensor],
    bounds: list[Tensor],
    nonfinite_labels: list[int],
    k: int,
) -> tuple[list[Tensor], Tensor, Tensor]:
    """Per job j (layer ``xs[j]``, boundaries ``bounds[j]`` float32 (K-1,) sorted): the uint8
    labels (the number of boundaries below each element; ``nonfinite_labels[j]`` for NaN/inf),
    and rows j of the int64 (J, K) sizes and float64 (J, K) sums over the finite elements, the
    sums added in element order (as ``torch.bincount`` with weights). Jobs run in the given
    order, one per task on torch's threads: put the largest first."""
    labels = [torch.empty(x.numel(), dtype=torch.uint8) for x in xs]
    sizes = torch.empty((len(xs), k), dtype=torch.long)
    sums = torch.empty((len(xs), k), dtype=torch.float64)
    module.full_pass(xs, bounds, nonfinite_labels, labels, sizes, sums, k)
    return labels, sizes, sums

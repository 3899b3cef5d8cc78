"""The re-cluster's native full-data pass (``csrc/sgg_recluster.cpp``): built on first use,
cached on disk.

Why: the per-layer full-data pass of the re-cluster (labels, cluster sizes, float64 cluster
sums) is in torch several passes over memory per layer plus Python per layer; the native pass
reads each layer once, and spreads the layers over torch's threads in one parallel region. Its
sums are added in the order of ``torch.bincount`` (element order), so results are bit-identical.

Built like ``sgg.native`` (the update kernel; a separate extension so that either source can
change without rebuilding the other): torch's loader, ``-march=native``, the build named after a
hash of the source, flags, CPU features and torch version, OpenMP pragmas compiled in but no
OpenMP runtime linked (the symbols resolve to the one torch loaded). When the build fails the
re-cluster warns once and keeps its torch path (same results, slower).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from sgg.native import _FLAGS, _OPENMP, _cpu_signature

__all__ = ["failure", "full_pass", "load", "takes"]

_SOURCE = Path(__file__).with_name("csrc") / "sgg_recluster.cpp"

_lock = threading.Lock()
_module: ModuleType | None = None
_failure: str | None = None


def _build_name() -> str:
    """Named after everything that changes the binary: a stale build is never loaded."""
    digest = hashlib.sha256()
    for part in (
        _SOURCE.read_bytes(),
        " ".join(_FLAGS + _OPENMP).encode(),
        _cpu_signature().encode(),
        torch.__version__.encode(),
    ):
        digest.update(part)
    return f"sgg_recluster_{digest.hexdigest()[:12]}"


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load as load_extension

    return load_extension(
        name=_build_name(),
        sources=[str(_SOURCE)],
        extra_cflags=_FLAGS + _OPENMP,
        verbose=False,
    )


def load() -> ModuleType | None:
    """The built extension, building it on first use; None (after one warning) if it cannot be
    built here."""
    global _module, _failure
    if _module is not None or _failure is not None:
        return _module
    with _lock:
        if _module is not None or _failure is not None:
            return _module
        try:
            _module = _build()
        except Exception as exc:  # no compiler, no ninja, no OpenMP, ...
            _failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
            warnings.warn(
                f"SGG: the native re-cluster pass could not be built ({_failure}); using the "
                "torch code path instead (same results, slower).",
                RuntimeWarning,
                stacklevel=3,
            )
    return _module


def failure() -> str | None:
    """Why the native pass is unavailable (None: available or not tried yet)."""
    return _failure


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

"""SGG's native CPU kernel (``csrc/sgg_adam.cpp``): built on first use, cached on disk.

Why: a ``torch.compile``'d update pays 15-40 us of Python per tensor on every call (guards,
size arguments), which for a model of hundreds of tensors costs more than the arithmetic. The
native kernel loops over the tensors in C++ and opens one parallel region per call, as ATen's own
fused Adam does, so SGG's steady step costs about what ``AdamW(fused=True)`` costs.

The extension is compiled with torch's own loader (``torch.utils.cpp_extension.load``; it needs
a C++ compiler, as ``torch.compile`` on CPU does) for this machine's CPU (``-march=native``), so
the build is named after the CPU's features: a cache shared by machines of different CPUs holds
one build per CPU. The first build takes ~30 s on 2 cores; later processes load it in well under
a second. ``TORCH_EXTENSIONS_DIR`` moves the cache. When the build fails (no compiler, no
OpenMP), SGG warns once and uses the compiled (``torch.compile``) update instead.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

__all__ = ["PHASE_APPLY", "PHASE_FULL", "PHASE_MOMENTS", "adam_", "failure", "load", "takes"]

PHASE_FULL, PHASE_MOMENTS, PHASE_APPLY = 0, 1, 2

_SOURCE = Path(__file__).with_name("csrc") / "sgg_adam.cpp"
# -fno-math-errno lets sqrt vectorise (results unchanged); no -ffast-math: IEEE arithmetic, as the
# eager reference
_FLAGS = ["-O3", "-march=native", "-fno-math-errno"]
# OpenMP pragmas (at::parallel_for is OpenMP in torch's CPU builds) are compiled in, but the
# OpenMP runtime is NOT linked: its symbols resolve to the one torch loaded. A second runtime
# would keep its own spinning thread pool and every parallel region would wait for the other's.
_OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []

_lock = threading.Lock()
_module: ModuleType | None = None
_failure: str | None = None


def _cpu_signature() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("flags", "model name", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _build_name() -> str:
    digest = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), " ".join(_FLAGS + _OPENMP).encode(),
                 _cpu_signature().encode(), torch.__version__.encode()):  # fmt: skip
        digest.update(part)
    return f"sgg_adam_{digest.hexdigest()[:12]}"


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
            from torch.utils.cpp_extension import load as load_extension

            _module = load_extension(
                name=_build_name(),
                sources=[str(_SOURCE)],
                extra_cflags=_FLAGS + _OPENMP,
                verbose=False,
            )
        except Exception as exc:  # no compiler, no ninja, no OpenMP, ...
            _failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
            warnings.warn(
                f"SGG: the native CPU kernel could not be built ({_failure}); using the "
                "torch.compile update instead (slower with many tensors). "
                "Pass update_impl='compiled' to silence.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _module


def failure() -> str | None:
    """Why the native kernel is unavailable (None: available or not tried yet)."""
    return _failure


def takes(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor) -> bool:
    """Whether the native kernel can update this tensor: float32 and contiguous, on the CPU."""
    f32 = torch.float32
    return (
        param.is_cpu
        and param.dtype == f32
        and grad.dtype == f32
        and exp_avg.dtype == f32
        and exp_avg_sq.dtype == f32
        and param.is_contiguous()
        and grad.is_contiguous()
        and exp_avg.is_contiguous()
        and exp_avg_sq.is_contiguous()
    )


def adam_(
    module: ModuleType,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    assigns: list[Tensor] | None,
    scales: list[Tensor] | None,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step_size: float,
    bias_correction2_sqrt: float,
    decoupled: bool,
    maximize: bool,
    scale_weight_decay: bool,
    n_clusters: int,
    phase: int = PHASE_FULL,
) -> None:
    """One step (or one phase, ``PHASE_*``) of every tensor of the lists, in one native call.

    ``assigns``/``scales``: per tensor, the uint8 cluster of each element (any shape with the
    parameter's element count, on the CPU) and the float32 factors (K,), or None for factor 1.
    """
    module.sgg_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        assigns or [],
        scales or [],
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        step_size,
        bias_correction2_sqrt,
        decoupled,
        maximize,
        scale_weight_decay,
        n_clusters,
        phase,
    )

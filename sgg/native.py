"""SGG's native CPU update kernel (``csrc/sgg_adam.cpp``), built in the background from the first
step on (sgg/extensions.py).

Why: a ``torch.compile``'d update pays 15-40 us of Python per tensor on every call (guards,
size arguments), which for a model of hundreds of tensors costs more than the arithmetic. The
native kernel loops over the tensors in C++ and opens one parallel region per call, as ATen's own
fused Adam does, so SGG's steady step costs about what ``AdamW(fused=True)`` costs. While it is
being built the tensors take the eager reference (no compile, no wait; same results to float32
rounding); when it cannot be built, SGG warns once and uses the compiled (``torch.compile``)
update instead.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from .extensions import Extension
from .hyper import AdamHyper

__all__ = ["EXTENSION", "PHASE_APPLY", "PHASE_FULL", "PHASE_MOMENTS", "adam_", "building",
           "failure", "load", "takes", "takes_dtypes"]  # fmt: skip

PHASE_FULL, PHASE_MOMENTS, PHASE_APPLY = 0, 1, 2

EXTENSION = Extension(
    "sgg_adam.cpp",
    "native CPU kernel",
    "using the torch.compile update instead (slower with many tensors). "
    "Pass update_impl='compiled' to silence.",
)


def load(*, wait: bool = False) -> ModuleType | None:
    """The kernel's module; None while it is being built (the build starts in the background;
    ``wait=True`` waits for it) or (after one warning) if it cannot be built here."""
    return EXTENSION.load(wait=wait)


def building() -> bool:
    """Whether the kernel is being built or loaded right now (its tensors take the eager
    reference meanwhile)."""
    return EXTENSION.building()


def failure() -> str | None:
    """Why the native kernel is unavailable (None: available, building or not tried yet)."""
    return EXTENSION.failure()


def takes_dtypes(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor) -> bool:
    """float32 tensors on the CPU (the hot path checks contiguity separately, once)."""
    f32 = torch.float32
    return (
        param.is_cpu
        and param.dtype is f32
        and grad.dtype is f32
        and exp_avg.dtype is f32
        and exp_avg_sq.dtype is f32
    )


def takes(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor) -> bool:
    """Whether the native kernel can update this tensor: float32 and contiguous, on the CPU."""
    return takes_dtypes(param, grad, exp_avg, exp_avg_sq) and all(
        t.is_contiguous() for t in (param, grad, exp_avg, exp_avg_sq)
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
    h: AdamHyper,
    phase: int = PHASE_FULL,
) -> None:
    """One step (or one phase, ``PHASE_*``) of every tensor of the lists, in one native call.

    ``assigns``/``scales``: per tensor, the uint8 cluster of each element (any shape with the
    parameter's element count, on the CPU) and the float32 factors (K,), or None for factor 1.
    ``h``: the update's record at this step (``h.amsgrad`` is not supported here).
    """
    module.sgg_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        assigns or [],
        scales or [],
        h.lr,
        h.beta1,
        h.beta2,
        h.eps,
        h.weight_decay,
        h.step_size,
        h.bias_correction2_sqrt,
        h.decoupled,
        h.maximize,
        h.scale_weight_decay,
        h.n_clusters,
        phase,
    )

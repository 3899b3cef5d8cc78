"""The one record of an Adam/AdamW update's scalars and switches.

Every variant of the update (the eager reference, the compiled kernel, the native kernel) takes
it by keyword as ``h=``: one definition of what each argument means, so that the variants cannot
disagree about an argument's order or meaning. ``make_hp`` and ``KernelFlags`` are what the
compiled kernel is handed instead (a tensor of the step-dependent scalars, so that a changing
learning rate never recompiles, and the switches its graph depends on).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["AdamHyper", "KernelFlags", "make_hp"]

# Layout of the ``hp`` tensor handed to the compiled kernel (float32, on the parameter's device).
HP_LR, HP_STEP_SIZE, HP_BC2_SQRT, HP_1M_BETA1, HP_BETA2, HP_1M_BETA2, HP_EPS, HP_WD, HP_DECAY = (
    range(9)
)


class KernelFlags(NamedTuple):
    """The switches the compiled kernel's graph depends on (each combination compiles once)."""

    amsgrad: bool
    maximize: bool
    decoupled: bool
    scale_weight_decay: bool
    has_wd: bool
    n_clusters: int


@dataclass(frozen=True, kw_only=True)
class AdamHyper:
    """One param group's Adam/AdamW hyperparameters and SGG's switches for its update.

    Scalars are Python floats, used in float64 on the host (the kernels round the derived ones
    to float32). ``step`` is the only per-tensor field: ``at(step)`` gives the record of one step.
    """

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool = False
    maximize: bool = False
    # AdamW's decoupled decay (p *= 1 - lr * wd) or Adam's L2 term (g += wd * p)
    decoupled: bool = True
    # SGGConfig.scale_weight_decay: the factor multiplies the decoupled decay too
    scale_weight_decay: bool = False
    # K, the factors per tensor: selects the kernels' variant
    n_clusters: int = 1
    # the step count AFTER this step's increment (1 on the first step); 0: not at a step yet
    step: float = 0.0

    def at(self, step: float) -> AdamHyper:
        """This record at step count ``step`` (after its increment)."""
        return dataclasses.replace(self, step=float(step))

    @property
    def step_size(self) -> float:
        return self.lr / (1.0 - self.beta1**self.step)

    @property
    def bias_correction2_sqrt(self) -> float:
        return math.sqrt(1.0 - self.beta2**self.step)

    @property
    def kernel_flags(self) -> KernelFlags:
        return KernelFlags(
            amsgrad=self.amsgrad,
            maximize=self.maximize,
            decoupled=self.decoupled,
            scale_weight_decay=self.scale_weight_decay,
            has_wd=self.weight_decay != 0,
            n_clusters=self.n_clusters,
        )


def make_hp(h: AdamHyper, device: torch.device) -> Tensor:
    """The step-dependent scalars of ``h`` as the float32 tensor the compiled kernel reads."""
    vals = [
        h.lr,
        h.step_size,
        h.bias_correction2_sqrt,
        1.0 - h.beta1,
        h.beta2,
        1.0 - h.beta2,
        h.eps,
        h.weight_decay,
        h.lr * h.weight_decay,
    ]
    return torch.tensor(vals, dtype=torch.float32, device=device)

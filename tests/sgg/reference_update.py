"""One parameter's whole SGG Adam step by the eager reference or the fused kernel (tests only)."""

from __future__ import annotations

from torch import Tensor

from sgg.update import AdamHyper, adam_apply_, adam_moments_, fused_adam_multi_, per_element_factor


def sgg_adam_step_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    factor_of: tuple[Tensor, Tensor] | None,
    *,
    h: AdamHyper,
    impl: str,
) -> None:
    """``impl="eager"``: the two phases of the reference; "compiled"/"uncompiled": the fused
    kernel on a bucket of one tensor (compiled or its plain body). ``factor_of`` is
    ``(assignments uint8 flat, scales float32 (K,))`` or None (factor 1)."""
    if impl == "eager":
        adam_moments_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h=h)
        factor = per_element_factor(factor_of, param)
        adam_apply_(param, exp_avg, exp_avg_sq, max_exp_avg_sq, factor, h=h)
        return
    assign, scales = factor_of if factor_of is not None else (None, None)
    fused_adam_multi_(
        [param],
        [grad],
        [exp_avg],
        [exp_avg_sq],
        [max_exp_avg_sq] if max_exp_avg_sq is not None else None,
        [assign] if assign is not None else None,
        [scales] if scales is not None else None,
        h=h,
        compiled=impl == "compiled",
    )

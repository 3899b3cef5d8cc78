"""The Adam/AdamW update multiplied by a per-element cluster factor, and its batching.

Variants with one keyword-only signature (torch.optim style), each reading its scalars and
switches from one ``AdamHyper`` record (sgg/hyper.py) passed as ``h=``:

- ``adam_moments_`` + ``adam_apply_``: the single-tensor reference, split in two phases so that a
  re-cluster step can cluster this step's momentum ``m_t`` between the moment update and the
  parameter update (the literal order of the paper's Algorithm 1).
- ``fused_adam_multi_``: the same arithmetic as ONE elementwise function per parameter (moments,
  bias correction, factor select ``scales[assign]``, weight decay, parameter write), unrolled over
  a bucket of tensors and compiled with ``torch.compile`` over flat 1-D views with dynamic
  shapes. Step-dependent scalars travel in one small float32 tensor ``hp`` so a changing learning
  rate never triggers a recompilation.
- ``native.adam_`` (sgg/native.py): the same arithmetic in C++ for float32 CPU tensors.

``adam_batch_step_`` (with ``adam_batch_moments_``/``adam_batch_apply_`` for a re-cluster step)
takes one param group's tensors as an ``AdamBatch`` and dispatches them: buckets for the fused
kernels, the reference for what the kernels cannot take. The ``SGG`` class only collects lists.

All of them read and write the base optimizer's own state tensors (``exp_avg``, ``exp_avg_sq``,
``max_exp_avg_sq``, ``step``) so the base ``state_dict`` format is unchanged.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import native
from .hyper import (
    HP_1M_BETA1,
    HP_1M_BETA2,
    HP_BC2_SQRT,
    HP_BETA2,
    HP_DECAY,
    HP_EPS,
    HP_STEP_SIZE,
    HP_WD,
    AdamHyper,
    KernelFlags,
    make_hp,
)

__all__ = [
    "AdamBatch",
    "AdamHyper",
    "adam_apply_",
    "adam_batch_apply_",
    "adam_batch_moments_",
    "adam_batch_step_",
    "adam_moments_",
    "fused_adam_multi_",
    "group_hyper",
    "init_adam_state_",
    "make_hp",
    "per_element_factor",
    "resolve_update_impl",
]


# --------------------------------------------------------------------------------------------
# single-tensor reference (eager), two phases
# --------------------------------------------------------------------------------------------


def adam_moments_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    *,
    h: AdamHyper,
) -> None:
    """Phase 1: update the moments (and amsgrad's max) in place, as ``_single_tensor_adam``."""
    if h.maximize:
        grad = -grad
    if h.weight_decay != 0 and not h.decoupled:
        grad = grad.add(param, alpha=h.weight_decay)
    exp_avg.lerp_(grad, 1 - h.beta1)
    exp_avg_sq.mul_(h.beta2).addcmul_(grad, grad, value=1 - h.beta2)
    if h.amsgrad:
        assert max_exp_avg_sq is not None
        torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)


def adam_apply_(
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    factor: Tensor | None,
    *,
    h: AdamHyper,
) -> None:
    """Phase 2: decoupled decay, then ``p -= step_size * factor * exp_avg / denom``.

    ``factor`` is the per-element factor (float32, shape of ``param``) or None for 1. The
    denominator is recomputed from the (already updated) second moment, so nothing is kept
    between the phases.
    """
    if h.amsgrad:
        assert max_exp_avg_sq is not None
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = (second.sqrt() / h.bias_correction2_sqrt).add_(h.eps)
    if h.weight_decay != 0 and h.decoupled:
        if factor is not None and h.scale_weight_decay:
            param.mul_(1 - h.lr * h.weight_decay * factor)
        else:
            param.mul_(1 - h.lr * h.weight_decay)
    num = exp_avg if factor is None else exp_avg * factor
    param.addcdiv_(num, denom, value=-h.step_size)


def per_element_factor(factor_of: tuple[Tensor, Tensor] | None, like: Tensor) -> Tensor | None:
    """The per-element factor ``scales[assign]`` shaped like ``like`` (None: factor 1)."""
    if factor_of is None:
        return None
    assign, scales = factor_of
    return scales[assign.to(scales.device).long()].view_as(like)


def _reference_step(tensors, factor_of, h: AdamHyper) -> None:
    param, grad, exp_avg, exp_avg_sq, mx = tensors
    adam_moments_(param, grad, exp_avg, exp_avg_sq, mx, h=h)
    adam_apply_(param, exp_avg, exp_avg_sq, mx, per_element_factor(factor_of, param), h=h)


# --------------------------------------------------------------------------------------------
# fused (one elementwise function per parameter; compiled)
# --------------------------------------------------------------------------------------------

_WHERE_CHAIN_MAX_K = 8


def _fused_adam_impl(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    assign: Tensor | None,
    scales: Tensor | None,
    hp: Tensor,
    flags: KernelFlags,
) -> None:
    p = param.float()
    g = grad.float()
    if flags.maximize:
        g = -g
    if flags.has_wd and not flags.decoupled:
        g = g + hp[HP_WD] * p
    m = exp_avg.float()
    m = m + hp[HP_1M_BETA1] * (g - m)
    v = exp_avg_sq.float() * hp[HP_BETA2] + hp[HP_1M_BETA2] * g * g
    if flags.amsgrad:
        assert max_exp_avg_sq is not None
        vm = torch.maximum(max_exp_avg_sq.float(), v)
        max_exp_avg_sq.copy_(vm)
    else:
        vm = v
    upd = hp[HP_STEP_SIZE] * m / (vm.sqrt() / hp[HP_BC2_SQRT] + hp[HP_EPS])
    decays = flags.has_wd and flags.decoupled
    if assign is not None:
        assert scales is not None
        k = flags.n_clusters
        if k <= _WHERE_CHAIN_MAX_K:
            # a chain of selects vectorises; an indirect load (gather) does not on CPU
            a = assign.float()
            f = scales[k - 1].expand_as(a)
            for c in range(k - 2, -1, -1):
                f = torch.where(a == float(c), scales[c], f)
        else:
            f = scales[assign.long()]
        upd = upd * f
        if decays:
            p = p * (1 - hp[HP_DECAY] * f) if flags.scale_weight_decay else p * (1 - hp[HP_DECAY])
    elif decays:
        p = p * (1 - hp[HP_DECAY])
    param.copy_(p - upd)
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)


def _fused_adam_multi_impl(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    assigns: list[Tensor] | None,
    scales: list[Tensor] | None,
    hp: Tensor,
    flags: KernelFlags,
) -> None:
    # the per-tensor body, unrolled over the bucket: one graph, one compiled call per bucket
    for i in range(len(params)):
        _fused_adam_impl(
            params[i],
            grads[i],
            exp_avgs[i],
            exp_avg_sqs[i],
            max_exp_avg_sqs[i] if max_exp_avg_sqs is not None else None,
            assigns[i] if assigns is not None else None,
            scales[i] if scales is not None else None,
            hp,
            flags,
        )


_compiled_multi = None
# the compiled wrapper re-checked every input's size/stride on each call (~40 checks per call);
# dynamo's guards already pin what the kernel relies on (1-D contiguous views), so skip them
_COMPILE_OPTIONS = {"size_asserts": False}
# at most this many tensors per compiled call: the graph (and its compile time) grows with it
MULTI_BUCKET = 10
# list lengths and flag combinations each compile once: room for them (during SGG's calls only)
_RECOMPILE_LIMIT = 64


def _get_compiled_multi():
    global _compiled_multi
    if _compiled_multi is None:
        _compiled_multi = torch.compile(
            _fused_adam_multi_impl, dynamic=True, fullgraph=True, options=_COMPILE_OPTIONS
        )
    return _compiled_multi


def fused_adam_multi_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    assigns: list[Tensor] | None,
    scales: list[Tensor] | None,
    *,
    h: AdamHyper,
    hp: Tensor | None = None,
    compiled: bool = True,
    bucket: int | None = None,
) -> None:
    """The fused per-tensor update over a list of contiguous tensors sharing ``h``.

    The list is split into near-equal chunks of at most ``bucket`` (``MULTI_BUCKET``) tensors;
    each chunk is ONE compiled call (the per-tensor body unrolled), so the per-call overhead is
    paid once per chunk instead of once per tensor. Chunks of equal length reuse one compiled
    graph (sizes are dynamic), so at most two lengths compile per list. ``assigns``/``scales``
    are all given or all None. ``hp``: ``make_hp(h, device)`` when the caller has it already.
    """
    n = len(params)
    if n == 0:
        return
    fn = _get_compiled_multi() if compiled else _fused_adam_multi_impl
    if hp is None:
        hp = make_hp(h, params[0].device)
    cap = max(1, bucket or MULTI_BUCKET)
    n_chunks = -(-n // cap)
    base, extra = divmod(n, n_chunks)
    flat = [
        [t.view(-1) for t in ts] if ts is not None else None
        for ts in (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    ]
    if assigns is not None and assigns[0].device != params[0].device:
        # assignments kept elsewhere (assignment_device="cpu"): the kernel reads them here
        assigns = [a.to(p.device) for a, p in zip(assigns, params, strict=True)]
    lists = [*flat, assigns, scales]
    flags = h.kernel_flags
    start = 0
    for c in range(n_chunks):
        stop = start + base + (1 if c < extra else 0)
        args = [ts[start:stop] if ts is not None else None for ts in lists]
        try:
            _call_multi(fn, compiled, (*args, hp, flags))
        except Exception as exc:
            exc.sgg_done = start  # type: ignore[attr-defined]  # tensors already updated
            raise
        start = stop


def _call_multi(fn, compiled: bool, args: tuple) -> None:
    """``fn(*args)`` with the compiler settings SGG's kernel needs, restored after the call.

    No duck sizing: every tensor gets its own size symbol even when two sizes are equal, so one
    graph per bucket length serves every mix of shapes (no recompile per equality pattern) and
    each tensor keeps its own loop (no horizontal fusion of equal-sized tensors). Plain
    set/restore: ``config.patch()`` costs ~0.1 ms a call."""
    shape_config = torch.fx.experimental._config
    duck = shape_config.use_duck_shape
    shape_config.use_duck_shape = False
    dynamo_config = torch._dynamo.config if compiled else None
    limit = dynamo_config.recompile_limit if dynamo_config is not None else None
    if dynamo_config is not None:
        dynamo_config.recompile_limit = max(limit, _RECOMPILE_LIMIT)
    try:
        fn(*args)
    finally:
        shape_config.use_duck_shape = duck
        if dynamo_config is not None:
            dynamo_config.recompile_limit = limit


# --------------------------------------------------------------------------------------------
# batching: one param group's tensors, dispatched among the variants
# --------------------------------------------------------------------------------------------


@dataclass
class AdamBatch:
    """One param group's tensors for one step, as plain lists (local shards when sharded).

    ``steps[i]`` is tensor ``i``'s step count AFTER this step's increment, a host-side int (no
    device read); ``factors[i]`` is ``(assignments uint8 flat, scales float32 (K,))`` or None;
    ``h`` is the group's record (``h.at(steps[i])`` is tensor ``i``'s).
    """

    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    max_exp_avg_sqs: list[Tensor] | None
    steps: list[int]
    factors: list[tuple[Tensor, Tensor] | None]
    h: AdamHyper
    # a re-cluster step's float32 moments of half-precision tensors, between its two phases
    widened: dict[int, list[Tensor | None]] = field(default_factory=dict)

    def tensors(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        mx = self.max_exp_avg_sqs[i] if self.max_exp_avg_sqs is not None else None
        return self.params[i], self.grads[i], self.exp_avgs[i], self.exp_avg_sqs[i], mx


def group_hyper(
    group: dict[str, Any], *, adamw: bool, scale_weight_decay: bool, n_clusters: int
) -> AdamHyper:
    """The ``AdamHyper`` of a torch Adam/AdamW param group (``adamw``: the base is AdamW, whose
    decay is decoupled unless the group says otherwise)."""
    beta1, beta2 = (float(b) for b in group["betas"])
    return AdamHyper(
        lr=float(group["lr"]),
        beta1=beta1,
        beta2=beta2,
        eps=float(group["eps"]),
        weight_decay=float(group["weight_decay"]),
        amsgrad=bool(group["amsgrad"]),
        maximize=bool(group["maximize"]),
        decoupled=bool(group.get("decoupled_weight_decay", adamw)),
        scale_weight_decay=scale_weight_decay,
        n_clusters=n_clusters,
    )


def init_adam_state_(p: Tensor, param_state: dict[str, Any], group: dict[str, Any]) -> None:
    """``p``'s Adam state on first use, laid out as torch.optim.Adam lays out its own (so the
    base's state_dict is unchanged): a 0-d ``step`` counter, on the parameter's device with
    ``fused``/``capturable`` (float32 when fused) and on the CPU otherwise (float64 when that is
    the default dtype, else float32), and zero moments shaped like ``p``."""
    fused = bool(group.get("fused", False))
    on_device = fused or bool(group.get("capturable", False))
    wide = not fused and torch.get_default_dtype() == torch.float64
    param_state["step"] = torch.zeros(
        (), dtype=torch.float64 if wide else torch.float32, device=p.device if on_device else None
    )
    for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ()):
        param_state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _at(cache: dict[int, AdamHyper], h: AdamHyper, step: int) -> AdamHyper:
    """``h.at(step)``, made once per step count and call."""
    got = cache.get(step)
    if got is None:
        got = cache[step] = h.at(step)
    return got


def _native_phase_buckets(batch: AdamBatch, impl: str) -> tuple[object, dict, list[int]]:
    """For one phase of a re-cluster step: the native module and the tensors it takes, by step
    count (``{step: [i, ...]}``), and the rest (eager reference)."""
    module = native.load() if impl == "native" and not batch.h.amsgrad else None
    buckets: dict[int, list[int]] = {}
    rest = []
    for i, step in enumerate(batch.steps):
        param, grad, exp_avg, exp_avg_sq, _ = batch.tensors(i)
        if module is not None and native.takes(param, grad, exp_avg, exp_avg_sq):
            buckets.setdefault(step, []).append(i)
        else:
            rest.append(i)
    return module, buckets, rest


def adam_batch_moments_(batch: AdamBatch, *, impl: str = "eager") -> None:
    """Phase 1 of a re-cluster step for every tensor of the batch: the moments (the native
    kernel where it takes the tensors with ``impl="native"``, else the eager reference)."""
    module, buckets, rest = _native_phase_buckets(batch, impl)
    no_factors: list[tuple[Tensor, Tensor] | None] = [None] * len(batch.steps)
    for step, idx in buckets.items():
        _native_adam_(module, batch, idx, batch.h.at(step), phase=native.PHASE_MOMENTS,
                      factors=no_factors)  # fmt: skip
    for i in rest:
        param, grad, exp_avg, exp_avg_sq, mx = batch.tensors(i)
        wide = impl != "eager" and param.dtype in _WIDENED
        state = [t.float() if wide and t is not None else t for t in (exp_avg, exp_avg_sq, mx)]
        g, p = (grad.float(), param.float()) if wide else (grad, param)
        adam_moments_(p, g, *state, h=batch.h.at(batch.steps[i]))
        if wide:
            _write_back((exp_avg, exp_avg_sq, mx), state)
            batch.widened[i] = state  # phase 2 reads the unrounded moments, as a fused step


def adam_batch_apply_(
    batch: AdamBatch, factors: list[tuple[Tensor, Tensor] | None], *, impl: str = "eager"
) -> None:
    """Phase 2 of a re-cluster step with the new ``factors`` (native or eager, as phase 1)."""
    module, buckets, rest = _native_phase_buckets(batch, impl)
    for step, idx in buckets.items():
        h = batch.h.at(step)
        with_factor = [i for i in idx if factors[i] is not None]
        without = [i for i in idx if factors[i] is None]
        for group in (with_factor, without):
            if group:
                _native_adam_(module, batch, group, h, phase=native.PHASE_APPLY, factors=factors)
    for i in rest:
        param, _, exp_avg, exp_avg_sq, mx = batch.tensors(i)
        wide = impl != "eager" and param.dtype in _WIDENED
        p = param.float() if wide else param
        state = batch.widened.get(i) or (exp_avg, exp_avg_sq, mx)
        adam_apply_(p, *state, per_element_factor(factors[i], p), h=batch.h.at(batch.steps[i]))
        if wide:
            _write_back((param,), (p,))


# With the fused kernels, half-precision tensors are updated in float32 arithmetic (as torch's
# fused Adam does); the re-cluster step's two phases do the same, so that every step of a run
# has one arithmetic (the eager update keeps the parameters' dtype, as torch's default Adam).
_WIDENED = (torch.float16, torch.bfloat16)


def _write_back(targets, values) -> None:
    for target, value in zip(targets, values, strict=True):
        if target is not None:
            target.copy_(value)


def adam_batch_step_(batch: AdamBatch, *, impl: str, fall_back: bool = True) -> None:
    """One whole step (moments and parameters) of every tensor of the batch.

    ``impl="eager"``: the single-tensor reference per tensor. Otherwise tensors with the same
    (step count, device, dtypes, has-a-factor) form a bucket: tensors without a factor take
    torch's fused Adam (one aten call); with ``impl="native"``, float32 CPU tensors take the
    native kernel (one call per bucket, sgg/native.py); the rest go through
    ``fused_adam_multi_`` (a few compiled calls per bucket). A tensor with a non-contiguous
    parameter, gradient or state takes the reference for itself only. When building or
    compiling fails and ``fall_back`` is set, the failure is noted once and the tensors take the
    next path (native: compiled; compiled: the reference); without ``fall_back`` it raises.
    While the native kernel is being built (in the background, sgg/extensions.py), its tensors
    take torch's fused Adam while their factors are all 1 (before the first re-cluster) and the
    reference after: no step waits for a build or a compile, and the switch changes no state.
    """
    buckets, reference, module = _plan(batch, impl, fall_back)
    hypers: dict[int, AdamHyper] = {}
    for i in reference:
        _reference_step(batch.tensors(i), batch.factors[i], _at(hypers, batch.h, batch.steps[i]))
    hps: dict[tuple[int, torch.device], Tensor] = {}
    for (kind, step, *_), idx in buckets.items():
        h = _at(hypers, batch.h, step)
        if kind == "torch":
            _torch_fused_adam_(batch, idx, h)
        elif kind == "native":
            _native_adam_(module, batch, idx, h)
        else:
            device = batch.params[idx[0]].device
            hp = hps.get((step, device))
            if hp is None:
                hp = hps[(step, device)] = make_hp(h, device)
            _compiled_adam_(batch, idx, h, hp, fall_back)


def _plan(
    batch: AdamBatch, impl: str, fall_back: bool
) -> tuple[dict[tuple, list[int]], list[int], Any]:
    """Where each tensor of the batch goes (see ``adam_batch_step_``): the buckets by (kind,
    step count, device, dtypes, has-a-factor), the tensors for the reference, and the native
    module (loaded when a tensor it takes is first met: a CUDA model never builds it)."""
    buckets: dict[tuple, list[int]] = {}
    reference: list[int] = []
    native_ok, module = impl == "native" and not batch.h.amsgrad, None
    for i, (step, param, grad, exp_avg, exp_avg_sq, factor_of) in enumerate(
        zip(batch.steps, batch.params, batch.grads, batch.exp_avgs, batch.exp_avg_sqs,
            batch.factors, strict=True)
    ):  # fmt: skip
        mx = batch.max_exp_avg_sqs[i] if batch.max_exp_avg_sqs is not None else None
        if not (
            impl != "eager"
            and param.is_contiguous()
            and grad.is_contiguous()
            and exp_avg.is_contiguous()
            and exp_avg_sq.is_contiguous()
            and (mx is None or mx.is_contiguous())
        ):
            reference.append(i)
            continue
        has_factor = factor_of is not None
        if not has_factor and _torch_fused_takes(param, grad):
            kind = "torch"
        elif (  # contiguity was checked above
            native_ok
            and native.takes_dtypes(param, grad, exp_avg, exp_avg_sq)
            and (module is not None or (module := _native_module(fall_back)) is not None)
        ):
            if module is not _BUILDING:
                kind = "native"
            elif factor_of is None or _factor_is_one(factor_of):
                # never waited for: factor 1 everywhere (before the first re-cluster) is the
                # base's update, torch's fused Adam's one call, as for unclustered tensors
                kind, has_factor = "torch", False
            else:  # never waited for: the reference until it is ready
                reference.append(i)
                continue
        elif _compile_failed and fall_back:
            reference.append(i)
            continue
        else:
            kind = "compiled"
        # get_device() (an int) is cheaper than .device; the bucket's first tensor gives it
        key = (kind, step, param.get_device(), param.dtype, grad.dtype, has_factor)
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [i]
        else:
            bucket.append(i)
    return buckets, reference, module


def _compiled_adam_(
    batch: AdamBatch, idx: list[int], h: AdamHyper, hp: Tensor, fall_back: bool
) -> None:
    """The bucket's tensors by ``fused_adam_multi_``; after a compile failure (no compiler,
    unsupported device, ...) with ``fall_back``, the ones it did not update by the reference."""
    has_factor = batch.factors[idx[0]] is not None
    maxes = batch.max_exp_avg_sqs
    try:
        fused_adam_multi_(
            [batch.params[i] for i in idx],
            [batch.grads[i] for i in idx],
            [batch.exp_avgs[i] for i in idx],
            [batch.exp_avg_sqs[i] for i in idx],
            [maxes[i] for i in idx] if maxes is not None else None,
            [batch.factors[i][0] for i in idx] if has_factor else None,  # type: ignore[index]
            [batch.factors[i][1] for i in idx] if has_factor else None,  # type: ignore[index]
            h=h,
            hp=hp,
        )
    except Exception as exc:
        if not fall_back:
            raise
        note_compile_failure(exc)
        for i in idx[getattr(exc, "sgg_done", 0) :]:
            _reference_step(batch.tensors(i), batch.factors[i], h)


# what _native_module returns while the kernel is being built in the background
_BUILDING = object()


def _factor_is_one(factor_of: tuple[Tensor, Tensor]) -> bool:
    """Whether every cluster's factor is exactly 1 (a CPU tensor of K values: a cheap read)."""
    return bool((factor_of[1] == 1).all())


def _native_module(fall_back: bool):
    """The native kernel's module; ``_BUILDING`` while it is being built (the reference takes
    its tensors); None when it cannot be built here (the compiled kernel takes them; with
    ``fall_back`` unset, ``update_impl="native"``, that is an error)."""
    module = native.load()  # starts the build in the background if nothing did
    if module is None:
        if native.building():
            return _BUILDING
        module = native.load()  # it may have finished in between
        if module is None and not fall_back:
            raise RuntimeError(f"SGG: update_impl='native' but the kernel cannot be built: "
                               f"{native.failure()}")  # fmt: skip
    return module


def _native_adam_(
    module,
    batch: AdamBatch,
    idx: list[int],
    h: AdamHyper,
    *,
    phase: int = native.PHASE_FULL,
    factors: list[tuple[Tensor, Tensor] | None] | None = None,
) -> None:
    """The bucket's tensors in one native call (CPU, float32, contiguous; see sgg/native.py)."""
    factors = batch.factors if factors is None else factors
    has_factor = factors[idx[0]] is not None
    native.adam_(
        module,
        [batch.params[i] for i in idx],
        [batch.grads[i] for i in idx],
        [batch.exp_avgs[i] for i in idx],
        [batch.exp_avg_sqs[i] for i in idx],
        [factors[i][0] for i in idx] if has_factor else None,  # type: ignore[index]
        [factors[i][1] for i in idx] if has_factor else None,  # type: ignore[index]
        h=h,
        phase=phase,
    )


_TORCH_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _torch_fused_takes(param: Tensor, grad: Tensor) -> bool:
    """Whether torch's own fused Adam kernel can update this (factor-free) tensor."""
    return (
        param.dtype in _TORCH_FUSED_DTYPES
        and grad.dtype == param.dtype
        and param.device.type in ("cpu", "cuda")
    )


def _torch_fused_adam_(batch: AdamBatch, idx: list[int], h: AdamHyper) -> None:
    """Tensors without a factor (not clustered: biases, norm vectors) take torch's own fused
    Adam/AdamW kernel: SGG's update is the base's there, and one aten call updates them all."""
    fused = torch._fused_adamw_ if h.decoupled else torch._fused_adam_
    # the kernel reads the step count from a tensor on the parameters' device: one for all
    step = torch.tensor(h.step, dtype=torch.float32, device=batch.params[idx[0]].device)
    maxes = batch.max_exp_avg_sqs
    fused(
        [batch.params[i] for i in idx],
        [batch.grads[i] for i in idx],
        [batch.exp_avgs[i] for i in idx],
        [batch.exp_avg_sqs[i] for i in idx],
        [maxes[i] for i in idx] if maxes is not None and h.amsgrad else [],
        [step] * len(idx),
        lr=h.lr,
        beta1=h.beta1,
        beta2=h.beta2,
        weight_decay=h.weight_decay,
        eps=h.eps,
        amsgrad=h.amsgrad,
        maximize=h.maximize,
    )


# --------------------------------------------------------------------------------------------
# implementation choice
# --------------------------------------------------------------------------------------------

_IMPL_ENV = "SGG_UPDATE_IMPL"
_compile_failed: str | None = None


def resolve_update_impl(requested: str) -> str:
    """Map ``update_impl`` to "native", "compiled" or "eager".

    ``"auto"`` honours the environment variable ``SGG_UPDATE_IMPL`` (tests set it to ``eager`` to
    keep build and compile warm-up out of test time) and is otherwise "native": the native kernel
    for float32 CPU tensors, the compiled one for the rest (CUDA, half precision), each falling
    back once it fails to build (native to compiled, compiled to eager, with one warning).
    """
    if requested == "auto":
        env = os.environ.get(_IMPL_ENV, "").strip().lower()
        if env in ("eager", "compiled", "native"):
            return env
        return "native"
    return requested


def note_compile_failure(exc: BaseException) -> None:
    """Remember (and warn once) that the compiled kernel could not be built here."""
    global _compile_failed
    if _compile_failed is None:
        _compile_failed = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"SGG: torch.compile of the fused update failed ({_compile_failed}); "
            "falling back to the eager update (slower). Pass update_impl='eager' to silence.",
            RuntimeWarning,
            stacklevel=3,
        )

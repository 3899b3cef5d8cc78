"""The update norm of the step just taken, read from the post-step Adam state (no parameter copy).

Adam's step is p <- p (1 - decay) - lr f d, with d = m_hat / (sqrt(v_hat) + eps), decay =
lr wd (AdamW; Adam folds its decay into m: decay 0) and f SGG's factor of the element (1
without SGG; with `scale_weight_decay` the decay is scaled by f too). Given the new p,
p_old = (p + lr f d) / (1 - decay), so the update is

    u = (lr f d + decay p) / (1 - decay)

and its norm follows from p, m and v alone. With the bias corrections folded into the scalars,
lr d = (lr sqrt(bc2) / bc1) m / (sqrt(v) + eps sqrt(bc2)): one pass fewer per layer.

Layers sharing their hyperparameters (lr, betas, eps, decay, Adam's step) and no SGG factor
are measured together with torch's multi-tensor (`_foreach_*`) kernels, a bounded number of
elements at a time; a layer whose SGG factors are in force is measured alone (its factor
differs per element).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from recorder.layers import RecordedLayers
from recorder.sharding import local
from recorder.state import Clusterer

ParamState = dict[str, Any]  # torch's per-parameter optimizer state (exp_avg, step, ...)

# Elements measured in one multi-tensor batch: bounds its two temporaries (16 MB each in fp32).
BATCH_ELEMENTS = 1 << 22


class AdamHyper(NamedTuple):
    """What one layer's Adam step used (hashable: layers that share it are batched)."""

    lr: float
    bc1: float  # bias corrections 1 - beta ** t
    bc2: float
    eps: float
    decay: float  # lr * weight_decay for a decoupled decay, else 0
    amsgrad: bool


def adam_kind(base: torch.optim.Optimizer) -> str | None:
    """ "decoupled" (AdamW), "coupled" (Adam's L2 decay, folded into the gradient) or None for an
    optimizer whose update cannot be read from its state."""
    if isinstance(base, torch.optim.AdamW):
        return "decoupled"
    if isinstance(base, torch.optim.Adam):
        return "decoupled" if base.defaults.get("decoupled_weight_decay") else "coupled"
    return None


def _hyper(group: dict[str, Any], state: ParamState, step: int, kind: str) -> AdamHyper:
    beta1, beta2 = (float(b) for b in group["betas"])
    t = state.get("step", step)
    t = float(local(t)) if torch.is_tensor(t) and t.device.type == "cpu" else float(step)
    lr = float(group["lr"])
    wd = float(group.get("weight_decay", 0.0))
    return AdamHyper(
        lr=lr,
        bc1=1 - beta1**t,
        bc2=1 - beta2**t,
        eps=float(group["eps"]),
        decay=lr * wd if kind == "decoupled" else 0.0,
        amsgrad=bool(group.get("amsgrad")),
    )


def update_norms(
    layers: RecordedLayers,
    optimizer: torch.optim.Optimizer,
    step: int,
    sgg: Clusterer | None = None,
) -> Tensor | None:
    """(L,) float32 update norms of the step just taken (0 for a layer not updated), or None
    for an optimizer whose update cannot be read from its state (not Adam/AdamW, maximize)."""
    base = getattr(optimizer, "base_optimizer", optimizer)
    kind = adam_kind(base)
    if kind is None or not layers.params or any(g.get("maximize") for g in optimizer.param_groups):
        return None
    scale_wd = bool(getattr(getattr(sgg, "config", None), "scale_weight_decay", False))
    applied = sgg is not None and not getattr(sgg, "observe_only", False)
    norms: list[Tensor | None] = [None] * len(layers)
    batches: dict[AdamHyper, list[int]] = {}
    for i, p in enumerate(layers.params):
        state = base.state.get(p)
        if p.grad is None or not state or "exp_avg" not in state:
            continue  # not updated this step: 0
        h = _hyper(optimizer.param_groups[layers.group_of[i]], state, step, kind)
        cluster = sgg.cluster_state(p) if applied and id(p) in layers.clustered else None
        if cluster is not None and cluster.last_recluster_step is not None:  # factors in force
            norms[i] = _factor_norm(p, state, h, cluster.factors, cluster.assignments, scale_wd)
        else:
            batches.setdefault(h, []).append(i)
    for h, rows in batches.items():
        for batch in _batches(layers, rows):
            states = [base.state[layers.params[i]] for i in batch]
            params = [local(layers.params[i].detach()) for i in batch]
            for i, norm in zip(batch, _batch_norms(params, states, h), strict=True):
                norms[i] = norm
    zero = torch.zeros((), device=layers.device)
    return torch.stack([zero if n is None else n.to(layers.device, torch.float32) for n in norms])


def _batches(layers: RecordedLayers, rows: list[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    size = 0
    for i in rows:
        n = local(layers.params[i]).numel()
        if batch and size + n > BATCH_ELEMENTS:
            yield batch
            batch, size = [], 0
        batch.append(i)
        size += n
    if batch:
        yield batch


def _moments(state: ParamState, h: AdamHyper) -> tuple[Tensor, Tensor]:
    return local(state["exp_avg"]), local(state["max_exp_avg_sq" if h.amsgrad else "exp_avg_sq"])


def _batch_norms(params: list[Tensor], states: list[ParamState], h: AdamHyper) -> list[Tensor]:
    """Norms of u = (lr d + decay p) / (1 - decay) for layers sharing `h`, multi-tensor."""
    ms, vs = zip(*(_moments(s, h) for s in states), strict=True)
    denom = torch._foreach_sqrt(list(vs))
    torch._foreach_add_(denom, h.eps * math.sqrt(h.bc2))
    k = h.lr / h.bc1 * math.sqrt(h.bc2)
    if h.decay == 0.0:
        q = torch._foreach_div(list(ms), denom)
        return [n * k for n in torch._foreach_norm(q, 2, dtype=torch.float32)]
    u = torch._foreach_mul(params, h.decay)
    torch._foreach_addcdiv_(u, list(ms), denom, k)
    return [n / (1 - h.decay) for n in torch._foreach_norm(u, 2, dtype=torch.float32)]


def _factor_norm(
    p: Tensor,
    state: ParamState,
    h: AdamHyper,
    factors: Tensor,
    assignments: Tensor,
    scale_wd: bool,
) -> Tensor:
    """The norm of one layer's update under SGG's per-element factor f (its cluster's)."""
    m, v = _moments(state, h)
    f = factors.to(m.device, m.dtype).index_select(0, assignments.to(m.device).reshape(-1).long())
    f = f.view_as(m)
    denom = v.sqrt().add_(h.eps * math.sqrt(h.bc2)).div_(f)  # m / denom: f m / (sqrt(v) + eps')
    k = h.lr / h.bc1 * math.sqrt(h.bc2)
    if h.decay == 0.0:
        return torch.linalg.vector_norm(torch.div(m, denom, out=denom), dtype=torch.float32) * k
    if not scale_wd:
        u = local(p.detach()).mul(h.decay).addcdiv_(m, denom, value=k)
        return torch.linalg.vector_norm(u, dtype=torch.float32) / (1 - h.decay)
    decay = f.mul_(h.decay)  # the decay is scaled by the factor too
    u = local(p.detach()).mul(decay).addcdiv_(m, denom, value=k)
    return torch.linalg.vector_norm(u.div_(decay.neg_().add_(1)), dtype=torch.float32)

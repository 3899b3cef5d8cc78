"""Probes: what the recorder reads from the parameters and the optimizer, as named columns.

Every probe returns `{column: tensor}` with one value per recorded layer (or, for clusters and
histograms, a small record), computed on the parameters' device: no probe turns a tensor into a
Python number, so nothing here waits for the device. The buffer (`recorder.buffer`) moves them
to the host once per flush. Sharded (FSDP2) layers are measured on the local shard and combined
across ranks by `recorder.sharding`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from recorder import stats, update_norms
from recorder.layers import RecordedLayers
from recorder.records import LayerClusters, LayerHistogram
from recorder.sharding import local
from recorder.state import Clusterer

if TYPE_CHECKING:
    from sgg import ClusterState


def base_optimizer(optimizer: Optimizer) -> Optimizer:
    """The optimizer holding the Adam state (SGG's base; the optimizer itself otherwise)."""
    return getattr(optimizer, "base_optimizer", optimizer)


def _norms(layers: RecordedLayers, tensors: list[Tensor]) -> Tensor:
    """(L,) L2 norms; for sharded layers the root of the squares summed over the ranks."""
    norms = stats.foreach_norms(tensors)
    if layers.sharding.active:
        squares = layers.sharding.reduce_rows(norms.square()[:, None], list(range(len(tensors))))
        norms = squares[:, 0].sqrt()
    return norms


def gradient_norms(layers: RecordedLayers) -> dict[str, Tensor]:
    """{"grad_norm"}: each layer's gradient norm (0 for a layer without a gradient)."""
    if not layers.sharding.active and all(p.grad is not None for p in layers.params):
        grads = [p.grad for p in layers.params]  # every step: the short path
    else:
        grads = [
            local(p.grad.detach()) if p.grad is not None else q.new_zeros(())
            for p, q in zip(layers.params, layers.local_params(), strict=True)
        ]
    return {"grad_norm": _norms(layers, grads)}  # type: ignore[arg-type]  # no None left


def parameter_norms(layers: RecordedLayers) -> dict[str, Tensor]:
    """{"param_norm"}: each layer's parameter norm."""
    return {"param_norm": _norms(layers, layers.local_params())}


def snapshot_update_norms(layers: RecordedLayers, before: list[Tensor]) -> dict[str, Tensor]:
    """{"update_norm"} from a copy of the parameters taken before the step (`before` is
    overwritten: old - new has the update's norm)."""
    torch._foreach_sub_(before, layers.local_params())
    return {"update_norm": _norms(layers, before)}


def state_update_norms(
    layers: RecordedLayers, optimizer: Optimizer, step: int, sgg: Clusterer | None = None
) -> dict[str, Tensor]:
    """{"update_norm"} of the step just taken, from the post-step Adam state (no parameter
    copy; see `recorder.update_norms`). Empty ({}) for an optimizer that is not Adam/AdamW."""
    norms = update_norms.update_norms(layers, optimizer, step, sgg)
    if norms is None:
        return {}
    if layers.sharding.active:
        squares = layers.sharding.reduce_rows(norms.square()[:, None], list(range(len(norms))))
        norms = squares[:, 0].sqrt()
    return {"update_norm": norms}


def moments(
    layers: RecordedLayers, optimizer: Optimizer, i: int, step: int
) -> tuple[Tensor, Tensor, float, float, float] | None:
    """Layer i's (m, v, lr, eps, bias correction of v) from the base optimizer's state, or None
    for an optimizer without Adam moments (SGD, ...)."""
    p = layers.params[i]
    state = base_optimizer(optimizer).state.get(p)
    if not state or "exp_avg" not in state or "exp_avg_sq" not in state:
        return None
    group = optimizer.param_groups[layers.group_of[i]]
    betas = group.get("betas", (0.9, 0.999))
    t = local(state.get("step", step))
    if torch.is_tensor(t):
        t = float(t) if t.device.type == "cpu" else float(step)
    bias_correction2 = 1.0 - float(betas[1]) ** max(float(t), 1.0)
    return (
        local(state["exp_avg"]),
        local(state["exp_avg_sq"]),
        float(group["lr"]),
        float(group.get("eps", 1e-8)),
        bias_correction2,
    )


def moment_columns(
    layers: RecordedLayers, optimizer: Optimizer, step: int, sample: int
) -> dict[str, Tensor]:
    """{column: (L,)} for `stats.MOMENT_COLUMNS`; NaN for layers without Adam moments."""
    n = len(layers)
    device = layers.device
    found = [moments(layers, optimizer, i, step) for i in range(n)]
    have = [i for i in range(n) if found[i] is not None]

    def nans() -> dict[str, Tensor]:
        return {c: torch.full((n,), float("nan"), device=device) for c in stats.MOMENT_COLUMNS}

    if not have:
        return nans()
    ms = [found[i][0] for i in have]  # type: ignore[index]  # found[i] is not None
    vs = [found[i][1] for i in have]  # type: ignore[index]
    mdev = ms[0].device
    lr, eps, bc2 = (
        torch.tensor([found[i][k] for i in have], device=mdev)  # type: ignore[index]
        for k in (2, 3, 4)
    )
    if layers.sharding.active:
        values = _sharded_moment_stats(layers, have, ms, vs, lr, eps, bc2, sample)
    else:
        positions = [layers.quantile_positions[i] for i in have]
        values = stats.moment_stats(ms, vs, positions, lr, eps, bc2)
    if len(have) == n:  # every layer has moments: the columns as they are
        return {column: value.to(device, torch.float32) for column, value in values.items()}
    out = nans()
    rows = torch.tensor(have, device=device)
    for column, value in values.items():
        out[column][rows] = value.to(device)
    return out


def _sharded_moment_stats(
    layers: RecordedLayers,
    have: list[int],
    ms: list[Tensor],
    vs: list[Tensor],
    lr: Tensor,
    eps: Tensor,
    bc2: Tensor,
    sample: int,
) -> dict[str, Tensor]:
    """`stats.moment_stats` of whole layers from local shards: sums and the quantile samples
    are combined across ranks (one all-reduce)."""
    n = len(have)
    sums = stats.moment_sums(ms, vs)
    sums = torch.cat([sums[:, :2], sums[:, 2:3].square(), sums[:, 3:]], dim=1)
    parts = [*sums.unbind(0)]
    parts += [layers.quantile_sample(i, m, sample) for i, m in zip(have, ms, strict=True)]
    parts += [layers.quantile_sample(i, v, sample) for i, v in zip(have, vs, strict=True)]
    parts = layers.sharding.reduce(parts, have * 3)
    sums = torch.stack(parts[:n])
    sums = torch.cat([sums[:, :2], sums[:, 2:3].sqrt(), sums[:, 3:]], dim=1)
    ms_sample = torch.stack(parts[n : 2 * n])
    vs_sample = torch.stack(parts[2 * n :])
    numel = torch.tensor(
        [layers.params[i].numel() for i in have], dtype=torch.float32, device=sums.device
    )
    return stats.moment_summary(sums, numel, ms_sample, vs_sample, lr, eps, bc2)


def factor_columns(layers: RecordedLayers, sgg: Clusterer | None) -> dict[str, Tensor]:
    """{"factor_mean"}: each layer's element-weighted mean SGG factor (1 without SGG)."""
    factor = torch.ones(len(layers), device=layers.device)
    if sgg is None:
        return {"factor_mean": factor}
    for i, p in enumerate(layers.params):
        cluster = sgg.cluster_state(p) if id(p) in layers.clustered else None
        if cluster is not None:
            f = (cluster.sizes.to(torch.float32) * cluster.factors).sum() / max(p.numel(), 1)
            factor[i] = f.to(layers.device)
    return {"factor_mean": factor}


def cluster_record(
    layers: RecordedLayers, clusterer: Clusterer
) -> tuple[dict[int, ClusterState], list[LayerClusters]]:
    """The clustering just computed: ({row: ClusterState}, one `LayerClusters` per clustered
    layer, its tensors cloned: the buffer keeps them past the next re-cluster)."""
    states: dict[int, ClusterState] = {}
    records = []
    for p in clusterer.clustered_params():
        i = layers.index.get(id(p))
        cluster = clusterer.cluster_state(p)
        if i is None or cluster is None:
            continue
        states[i] = cluster
        positions = layers.membership_positions[i].to(cluster.assignments.device)
        if i in layers.membership_local:  # sharded: this rank's positions, summed below
            slots, lidx = layers.membership_local[i]
            members = layers.sharding.gather_sample(
                i, cluster.assignments, slots, lidx, positions.numel()
            ).to(torch.int32)
        else:
            members = cluster.assignments.reshape(-1).index_select(0, positions)
        transitions = cluster.transitions
        records.append(
            LayerClusters(
                row=i,
                sizes=cluster.sizes.clone(),
                centers=cluster.centers.clone(),
                mda=cluster.mda.clone(),
                raw=cluster.raw_factors.clone(),
                factors=cluster.factors.clone(),
                transitions=None if transitions is None else transitions.clone(),
                members=members,
                positions=layers.membership_positions[i],
            )
        )
    if layers.sharding.active:
        merged = layers.sharding.reduce([r.members for r in records], [r.row for r in records])
        for record, members in zip(records, merged, strict=True):
            record.members = members
    return states, records


def model_factor_mean(records: list[LayerClusters]) -> Tensor | None:
    """Element-weighted mean factor over every clustered layer of one re-cluster (0-d)."""
    if not records:
        return None
    sizes = torch.cat([r.sizes.to(torch.float64) for r in records])
    factors = torch.cat([r.factors.to(sizes.device, torch.float64) for r in records])
    return (sizes * factors).sum() / sizes.sum().clamp_min(1)


def histograms(
    layers: RecordedLayers,
    optimizer: Optimizer,
    step: int,
    bins: int,
    states: dict[int, ClusterState] | None,
) -> list[LayerHistogram]:
    """Momentum and adaptive-lr histograms of the clustered layers, per cluster when `states`
    (a re-cluster: {row: ClusterState}) is given."""
    out = []
    todo = []
    for i, p in enumerate(layers.params):
        if id(p) not in layers.clustered:
            continue
        found = moments(layers, optimizer, i, step)
        if found is None:
            continue
        cluster = states.get(i) if states is not None else None
        if states is not None and cluster is None:
            continue
        m, v, lr, eps, bc2 = found
        k = int(cluster.sizes.numel()) if cluster is not None else 0
        assign = cluster.assignments if cluster is not None else None
        if layers.sharding.active:
            todo.append(_ShardTodo(i, m, v, lr, eps, bc2, assign, k))
            continue
        out.append(LayerHistogram(i, *stats.layer_histograms(m, v, lr, eps, bc2, bins, assign, k)))
    if todo:
        out = _sharded_histograms(layers, todo, bins)
    return out


class _ShardTodo(NamedTuple):
    row: int
    m: Tensor
    v: Tensor
    lr: float
    eps: float
    bc2: float
    assignments: Tensor | None
    n_clusters: int


def _sharded_histograms(
    layers: RecordedLayers, todo: list[_ShardTodo], bins: int
) -> list[LayerHistogram]:
    """Whole-layer histograms from local shards: extremes (MAX) and counts (SUM) are
    all-reduced, one collective each for all layers."""
    rows = [x.row for x in todo]
    flat, alrs, extremes = [], [], []
    for x in todo:
        m = x.m.reshape(-1)
        alr = stats.adaptive_lr(x.v.reshape(-1).float(), x.lr, x.eps, x.bc2)
        flat.append(m)
        alrs.append(alr)
        extremes.append(stats.histogram_extremes(m, alr))
    extremes = layers.sharding.reduce(extremes, rows, op="max")
    hists = [
        stats.shard_histograms(m, alr, e, bins, x.assignments, x.n_clusters)
        for m, alr, e, x in zip(flat, alrs, extremes, todo, strict=True)
    ]
    counts = layers.sharding.reduce(
        [t for h in hists for t in (h[1], h[3])], [i for i in rows for _ in (0, 1)]
    )
    return [
        LayerHistogram(i, h[0], counts[2 * j], h[2], counts[2 * j + 1])
        for j, (i, h) in enumerate(zip(rows, hists, strict=True))
    ]


__all__ = [
    "base_optimizer",
    "cluster_record",
    "factor_columns",
    "gradient_norms",
    "histograms",
    "model_factor_mean",
    "moment_columns",
    "moments",
    "parameter_norms",
    "snapshot_update_norms",
    "state_update_norms",
]

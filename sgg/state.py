"""SGG's per-layer state, ``ClusterState``, and the pure functions that make, advance and save it.

The ``SGG`` class keeps one ``ClusterState`` per clustered parameter and only stores what these
functions return: the initial state (all in cluster 0, factors 1), the state after a re-cluster
(``reclustered``), and the state read back from a checkpoint (``from_saved``). All three go
through ``placed``, the one place that decides where and in which dtype each tensor lives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import sharding
from .config import SGGConfig
from .recluster import LayerFit, transition_counts

__all__ = [
    "ClusterState",
    "check_saved",
    "from_saved",
    "initial_state",
    "placed",
    "recluster_due",
    "reclustered",
    "to_saved",
]


@dataclass(frozen=True)
class ClusterState:
    """Read-only clustering of one parameter tensor (see docs/introspection.md)."""

    assignments: Tensor  # uint8 (numel,), on the assignment device
    sizes: Tensor  # int64 (K,)
    centers: Tensor  # float32 (K,), in the clustered quantity (signed m or |m|)
    mda: Tensor  # float32 (K,), D_{l,c}
    raw_factors: Tensor  # float32 (K,), r_{l,c} (after clamping for clamp="before_ema")
    factors: Tensor  # float32 (K,), smoothed S_{l,c}
    transitions: Tensor | None  # int64 (K, K) old->new counts; None before the 2nd re-cluster
    last_recluster_step: int | None


_K_VECTORS = ("centers", "mda", "raw_factors", "factors")


def recluster_due(step: int, interval: int) -> bool:
    """Whether step ``step`` (counted from 1) re-clusters: every ``interval`` steps (``T``)."""
    return step % interval == 0


def placed(
    fields: Mapping[str, Any], *, device: torch.device, assign_device: torch.device
) -> ClusterState:
    """A ``ClusterState`` from its fields, each tensor where it lives: the assignments (uint8)
    and transitions on the assignment device, the K-vectors on the parameter's ``device``
    (float32; sizes int64). Tensors already there are kept, not copied. A missing
    ``transitions`` or ``last_recluster_step`` (a checkpoint leaves out None) is None."""
    transitions = fields.get("transitions")
    last = fields.get("last_recluster_step")
    return ClusterState(
        assignments=fields["assignments"].to(assign_device, torch.uint8),
        sizes=fields["sizes"].to(device, torch.int64),
        **{name: fields[name].to(device, torch.float32) for name in _K_VECTORS},
        transitions=None if transitions is None else transitions.to(assign_device),
        last_recluster_step=None if last is None else int(last),
    )


def initial_state(
    k: int, numel: int, local_numel: int, *, device: torch.device, assign_device: torch.device
) -> ClusterState:
    """Before the first re-cluster: all ``numel`` elements in cluster 0, every factor 1
    (``local_numel``: the rank's shard of a sharded parameter; sizes count the whole layer)."""
    sizes = torch.zeros(k, dtype=torch.long, device=device)
    sizes[0] = numel
    zeros = torch.zeros(k, device=device, dtype=torch.float32)
    ones = torch.ones(k, device=device, dtype=torch.float32)
    return placed(
        {
            "assignments": torch.zeros(local_numel, dtype=torch.uint8, device=assign_device),
            "sizes": sizes,
            "centers": zeros,
            "mda": zeros.clone(),
            "raw_factors": ones,
            "factors": ones.clone(),
        },
        device=device,
        assign_device=assign_device,
    )


def reclustered(
    params: Sequence[Tensor],
    prevs: Sequence[ClusterState],
    fits: Sequence[LayerFit],
    *,
    step: int,
    k: int,
    assign_device: Callable[[Tensor], torch.device],
) -> list[ClusterState]:
    """The states after a re-cluster at ``step``: per parameter, its fit with the labels of its
    own shard, and the old -> new transition counts where it had been clustered before.

    A sharded parameter's counts are summed over its shards (a collective per such layer, in
    layer order: every rank calls this with the same layers)."""
    assigns = [
        sharding.local_slice(fit.labels.to(torch.uint8), p).to(assign_device(p))
        for p, fit in zip(params, fits, strict=True)
    ]
    seen = [i for i, prev in enumerate(prevs) if prev.last_recluster_step is not None]
    counts = transition_counts([prevs[i].assignments for i in seen], [assigns[i] for i in seen], k)
    transitions = {
        i: sharding.sum_over_shards(t, params[i]) for i, t in zip(seen, counts, strict=True)
    }
    return [
        placed(
            {
                "assignments": assigns[i],
                "sizes": fit.sizes,
                **{name: getattr(fit, name) for name in _K_VECTORS},
                "transitions": transitions.get(i),
                "last_recluster_step": step,
            },
            device=p.device,
            assign_device=assign_device(p),
        )
        for i, (p, fit) in enumerate(zip(params, fits, strict=True))
    ]


def to_saved(state: ClusterState) -> dict[str, Any]:
    """The checkpoint form of a layer's state: its fields, leaving out those that are None."""
    return {
        f.name: getattr(state, f.name)
        for f in dataclasses.fields(ClusterState)
        if getattr(state, f.name) is not None
    }


def from_saved(
    fields: Mapping[str, Any], *, device: torch.device, assign_device: torch.device
) -> ClusterState:
    """A layer's state read back from ``to_saved``'s form."""
    return placed(fields, device=device, assign_device=assign_device)


# options that do not change the saved state's meaning (where/how the same arithmetic runs, and
# whether the factors are applied): a checkpoint may be loaded with other values of these
_FREE_ON_LOAD = ("update_impl", "assignment_device", "observe_only")


def _normalised(value: Any) -> Any:
    """Config values as compared on load (a saved tuple may come back as a list)."""
    return list(value) if isinstance(value, tuple) else value


def check_saved(saved: Mapping[str, Any], config: SGGConfig, params: Sequence[Tensor]) -> None:
    """Refuse SGG state saved with other options or for other parameters (``params``: the
    optimizer's, in order) with a ``ValueError`` naming the difference."""
    theirs = saved.get("config", {})
    differ = [
        f"{name}: checkpoint {theirs.get(name)!r}, this SGG {value!r}"
        for name, value in dataclasses.asdict(config).items()
        if name not in _FREE_ON_LOAD and _normalised(theirs.get(name)) != _normalised(value)
    ]
    if differ:
        raise ValueError(
            "SGG.load_state_dict: the checkpoint was saved with other SGG options ("
            + "; ".join(differ)
            + "); build the SGG with the checkpoint's options"
        )
    for i, fields in saved["layers"].items():
        if int(i) >= len(params):
            raise ValueError(
                f"SGG.load_state_dict: the checkpoint clusters parameter {i}, this optimizer "
                f"has {len(params)} parameters"
            )
        have, want = fields["assignments"].numel(), sharding.local_numel(params[int(i)])
        if have != want:
            raise ValueError(
                f"SGG.load_state_dict: parameter {i} has {want} (local) elements, the "
                f"checkpoint's assignments {have}"
            )

"""The one home of the ``DTensor`` helpers (FSDP2 ``fully_shard``), for ``sgg`` and ``recorder``.

SGG keeps the single-process algorithm under sharding:

- the update is elementwise, so it runs on each rank's local shard (``to_local()``) of the
  parameter, gradient and Adam moments, with the local slice of the assignments;
- a re-cluster needs whole layers (layer mean, k-means, cluster MDAs, the global MDA), so each
  sharded momentum is all-gathered, one layer at a time (``full_tensor()``), and every rank runs
  the same deterministic clustering on the same data with the same generator: every rank obtains
  the same labels, sizes, MDAs, global MDA and factors as one process would, and keeps only the
  labels of its own shard;
- transition counts (old -> new cluster of each element) are counted on the local shard and
  summed over the sharded mesh dimensions (one small all-reduce per layer).

Only block shardings are supported: each mesh dimension ``Shard(d)`` (even or uneven chunks, as
``torch.chunk``) or ``Replicate()``; ``Partial`` and strided shardings (FSDP + TP) raise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

try:  # torch built without distributed support
    from torch.distributed.tensor import DTensor, Replicate, Shard
except Exception:  # pragma: no cover
    DTensor = None  # type: ignore[assignment,misc]

__all__ = [
    "full",
    "is_sharded",
    "local",
    "local_block",
    "local_numel",
    "local_slice",
    "shard_groups",
    "sum_over_shards",
]


def is_sharded(t: Tensor | None) -> bool:
    """Whether ``t`` is a ``DTensor`` (a parameter or state sharded by FSDP2/TP)."""
    return DTensor is not None and isinstance(t, DTensor)


def local(t: Tensor | None) -> Tensor | None:
    """The rank's local tensor of a ``DTensor`` (shares storage: in-place writes land in it)."""
    return t.to_local() if is_sharded(t) else t


def full(t: Tensor) -> Tensor:
    """The whole tensor (a collective for a ``DTensor``: every rank must call it, in order)."""
    return t.full_tensor() if is_sharded(t) else t


def local_block(p: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(local shape, global offset) of the rank's block of the ``DTensor`` ``p``."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for pl in p.placements:
        # _StridedShard subclasses Shard: its block is not contiguous in the global index space
        if not (type(pl) is Shard or isinstance(pl, Replicate)):
            raise NotImplementedError(
                f"sharded parameters need Shard/Replicate placements, got {p.placements}"
            )
    shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    return tuple(shape), tuple(offset)


def local_numel(p: Tensor) -> int:
    """Number of elements of the rank's shard (``p.numel()`` for a plain tensor)."""
    if not is_sharded(p):
        return p.numel()
    return math.prod(local_block(p)[0])


def local_slice(flat: Tensor, p: Tensor) -> Tensor:
    """The rank's elements of ``flat`` (a flat tensor over ALL of ``p``'s elements), flat, in the
    local shard's row-major order."""
    if not is_sharded(p):
        return flat
    shape, offset = local_block(p)
    idx = tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))
    return flat.view(p.shape)[idx].reshape(-1)


def shard_groups(p: Tensor) -> list:
    """The process groups of the mesh dimensions over which ``p`` is split (``Shard(d)`` on more
    than one rank), in mesh order: a sum over them combines per-shard partial values into the
    whole layer's (``Replicate()`` dimensions hold copies and are left out). Empty for a plain
    tensor."""
    if not is_sharded(p):
        return []
    mesh = p.device_mesh
    return [
        mesh.get_group(dim)
        for dim, placement in enumerate(p.placements)
        if isinstance(placement, Shard) and mesh.size(dim) > 1
    ]


def sum_over_shards(t: Tensor, p: Tensor) -> Tensor:
    """``t`` (a count over the rank's shard of ``p``) summed over the sharded mesh dimensions."""
    for group in shard_groups(p):
        torch.distributed.all_reduce(t, group=group)
    return t

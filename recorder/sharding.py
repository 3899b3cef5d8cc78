"""Combining the recorder's statistics of sharded parameters (FSDP2 ``DTensor``s) across ranks.

The DTensor helpers themselves (``is_sharded``, ``local``, ``local_block``) are ``sgg.sharding``'s.

Every statistic is computed on the rank's local shard (``to_local()``, no ``DTensor`` op, hence
no hidden collective) and then combined into the whole layer's value by explicit all-reduces over
the mesh dimensions on which the parameter is sharded (``Shard(d)``; ``Replicate()`` dimensions
hold copies and are not summed):

- norms: the squares of the local norms are summed, so layer and global norms are exact;
- moment means, std, mean |m|: local sums are summed (exact);
- quantiles and membership: the recorder's fixed sample positions are *global* flat indices into
  the whole layer (the same meaning as without sharding); each rank fills the sample slots whose
  position lies in its block and leaves zeros elsewhere, and a SUM all-reduce assembles the whole
  sample on every rank (exact: each position lies in exactly one rank's block);
- histograms: the layer's minimum and maximum are all-reduced (MAX), every rank counts its shard
  over the shared edges, and the counts are summed (exact).

So every rank computes the same numbers, and every rank must call the recorder's hooks at the same
points: they are optimizer hooks, which fire in ``step()``, itself collective under FSDP.
Plain tensors are untouched and nothing here runs a collective unless a parameter is a DTensor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sgg.sharding import is_sharded, local, local_block

__all__ = ["Sharding", "is_sharded", "local"]


class Sharding:
    """Which of the recorder's parameters are sharded, and how to combine them across ranks.

    ``active`` is False (and every method a no-op) when no parameter is a DTensor.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.blocks: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        keys: dict[tuple[int, tuple[int, ...]], tuple[list[int], list[object]]] = {}
        self.device: torch.device | None = None
        for i, p in enumerate(params):
            if not is_sharded(p):
                continue
            from torch.distributed.tensor import Shard  # only reached with DTensors

            self.blocks[i] = local_block(p)
            mesh = p.device_mesh
            dims = tuple(
                d for d, pl in enumerate(p.placements) if isinstance(pl, Shard) and mesh.size(d) > 1
            )
            if self.device is None:
                self.device = p.to_local().device
            key = (id(mesh), dims)
            if key not in keys:  # first-appearance order: the same on every rank
                keys[key] = ([], [mesh.get_group(d) for d in dims])
            keys[key][0].append(i)
        self.groups = [(rows, groups) for rows, groups in keys.values() if groups]
        self.active = bool(self.blocks)

    def is_sharded(self, i: int) -> bool:
        return i in self.blocks

    def local_positions(
        self, i: int, shape: torch.Size, positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(slots, local flat indices): the entries of ``positions`` (global flat indices into
        parameter ``i`` of global ``shape``) that lie in this rank's block, and where they are
        in the local shard (row-major)."""
        if i not in self.blocks:
            return torch.arange(positions.numel()), positions
        lshape, offset = self.blocks[i]
        pos = positions.reshape(-1).to("cpu", torch.int64)
        if not shape:
            return torch.arange(pos.numel()), pos
        multi = torch.stack(torch.unravel_index(pos, tuple(shape)), dim=1)  # (k, ndim)
        off = torch.tensor(offset, dtype=torch.int64)
        size = torch.tensor(lshape, dtype=torch.int64)
        rel = multi - off
        inside = ((rel >= 0) & (rel < size)).all(dim=1)
        slots = inside.nonzero().reshape(-1)
        strides = [math.prod(lshape[d + 1 :]) for d in range(len(lshape))]
        lidx = (rel[inside] * torch.tensor(strides, dtype=torch.int64)).sum(dim=1)
        return slots, lidx

    def gather_sample(self, i: int, values: Tensor, slots: Tensor, lidx: Tensor, k: int) -> Tensor:
        """(k,) the rank's part of a sample of ``values`` (the local shard, any shape): zeros in
        the slots other ranks hold. ``reduce`` (SUM) then assembles the whole sample."""
        flat = values.reshape(-1)
        if i not in self.blocks:
            return flat[lidx.to(flat.device)]
        out = torch.zeros(k, dtype=flat.dtype, device=flat.device)
        out[slots.to(flat.device)] = flat[lidx.to(flat.device)]
        return out

    def reduce(self, parts: list[Tensor], layers: list[int], op: str = "sum") -> list[Tensor]:
        """``parts[j]`` (a partial value of parameter ``layers[j]`` from the local shard) combined
        over the ranks that share the parameter (``op``: "sum" or "max"). Same length and order
        on every rank; plain parameters' parts are returned as they are. One collective per
        (mesh, sharded dims) group and dtype."""
        if not self.groups:
            return parts
        dist = torch.distributed
        red = dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX
        out = list(parts)
        where = {}
        for j, i in enumerate(layers):
            where.setdefault(i, []).append(j)
        for rows, groups in self.groups:
            js = [j for i in rows for j in where.get(i, [])]
            if not js:
                continue
            by_dtype: dict[torch.dtype, list[int]] = {}
            for j in js:
                by_dtype.setdefault(parts[j].dtype, []).append(j)
            for idx in by_dtype.values():
                flat = torch.cat([parts[j].reshape(-1) for j in idx])
                for g in groups:
                    dist.all_reduce(flat, op=red, group=g)
                for j, piece in zip(idx, flat.split([parts[j].numel() for j in idx]), strict=True):
                    out[j] = piece.view(parts[j].shape)
        return out

    def reduce_rows(self, x: Tensor, layers: list[int], op: str = "sum") -> Tensor:
        """``reduce`` for a tensor whose row ``r`` belongs to parameter ``layers[r]``."""
        if not self.groups or x.shape[0] == 0:
            return x
        return torch.stack(self.reduce(list(x.unbind(0)), layers, op))

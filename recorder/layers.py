"""The recorded layers: which parameters, in what order, under what names, sampled where.

Built once when a `Recorder` starts. Names come from the model (`named_parameters()`, with the
`_orig_mod.` that `torch.compile` inserts stripped, so a compiled model records the same layer
names as the plain one), or `group<g>.param<p>` for a parameter the model does not name. The
order is the model's. Each layer gets fixed random positions for its quantile sample and its
membership sample (seeded: the same positions on every rank and after a resume).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recorder import stats
from recorder.sharding import Sharding, local
from recorder.state import Clusterer

COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper module inserts this in names


def clean_name(name: str) -> str:
    """A parameter name without the `_orig_mod.` parts torch.compile adds."""
    return name.replace(COMPILED_PREFIX, "")


def _warn_unnamed(params: list[Tensor], model_params: set[int]) -> None:
    """A model whose parameters are not the optimizer's (another copy, a model built twice)
    names none of them: the layers would be recorded as `group<g>.param<p>` in silence."""
    named = sum(1 for p in params if id(p) in model_params)
    n_model = len(model_params)
    if named < len(params):
        warnings.warn(
            f"Recorder(model=...): {named} of the optimizer's {len(params)} parameters are "
            f"parameters of the model given ({n_model} parameters); the other "
            f"{len(params) - named} are recorded as group<g>.param<p>. Pass the model whose "
            "parameters the optimizer updates.",
            stacklevel=4,
        )


@dataclass
class RecordedLayers:
    """Parameters in table order with their names, param groups and sample positions."""

    params: list[Tensor]
    names: list[str]
    group_of: list[int]  # index of each parameter's param group
    clustered: set[int]  # id() of the parameters SGG clusters (or would cluster)
    sharding: Sharding
    quantile_positions: list[Tensor] = field(default_factory=list)  # on the layer's device
    membership_positions: list[Tensor] = field(default_factory=list)
    # sharded layers: (sample slots, local flat indices) of the positions in this rank's block
    quantile_local: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)
    membership_local: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)
    index: dict[int, int] = field(default_factory=dict)  # id(param) -> row

    @classmethod
    def build(
        cls,
        optimizer: torch.optim.Optimizer | None,
        model: torch.nn.Module | None,
        clusterer: Clusterer | None,
        *,
        quantile_sample: int,
        membership_sample: int,
        seed: int | None,
    ) -> RecordedLayers:
        names: dict[int, str] = {}
        if model is not None:
            for name, p in model.named_parameters():
                names.setdefault(id(p), clean_name(name))
        model_params = set(names)  # id() of the model's parameters
        params: list[Tensor] = []
        group_of: list[int] = []
        seen: set[int] = set()
        if optimizer is not None:
            for gi, group in enumerate(optimizer.param_groups):
                for pi, p in enumerate(group["params"]):
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                    params.append(p)
                    group_of.append(gi)
                    names.setdefault(id(p), f"group{gi}.param{pi}")
        elif model is not None:
            params = [p for p in model.parameters() if p.requires_grad]
            group_of = [0] * len(params)
        if model is not None and params:
            _warn_unnamed(params, model_params)
        if model is not None:  # model order for the tables
            order = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
            rows = sorted(range(len(params)), key=lambda i: order.get(id(params[i]), 1 << 30))
            params = [params[i] for i in rows]
            group_of = [group_of[i] for i in rows]
        if clusterer is not None:
            clustered = {id(p) for p in clusterer.clustered_params()}
        else:  # what SGG would cluster: tensors with two or more dimensions
            clustered = {id(p) for p in params if p.dim() >= 2}
        layers = cls(
            params=params,
            names=[names[id(p)] for p in params],
            group_of=group_of,
            clustered=clustered,
            sharding=Sharding(params),
            index={id(p): i for i, p in enumerate(params)},
        )
        layers._place_samples(quantile_sample, membership_sample, seed)
        return layers

    def _place_samples(self, quantile_sample: int, membership_sample: int, seed: int | None):
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        for i, p in enumerate(self.params):
            device = local(p).device
            q = stats.quantile_positions(p.numel(), quantile_sample, gen)
            m = stats.sample_positions(p.numel(), membership_sample, gen)
            self.quantile_positions.append(q.to(device))
            self.membership_positions.append(m.to(device))
            if self.sharding.is_sharded(i):
                self.quantile_local[i] = self.sharding.local_positions(i, p.shape, q)
                self.membership_local[i] = self.sharding.local_positions(i, p.shape, m)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def device(self) -> torch.device | None:
        return local(self.params[0]).device if self.params else None

    def local_params(self) -> list[Tensor]:
        """The parameters (detached), or for sharded ones the rank's local shard."""
        if self.sharding.active:
            return [local(p.detach()) for p in self.params]
        return [p.detach() for p in self.params]

    def quantile_sample(self, i: int, values: Tensor, k: int) -> Tensor:
        """(k,) float32 values of layer i's local tensor at its quantile positions; for a
        sharded layer only the positions in this rank's block (zeros elsewhere: summed over the
        ranks, the whole sample)."""
        if i in self.quantile_local:
            slots, lidx = self.quantile_local[i]
            return self.sharding.gather_sample(i, values, slots, lidx, k).float()
        return values.reshape(-1).index_select(0, self.quantile_positions[i]).float()

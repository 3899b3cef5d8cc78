"""Rank-0 recording under torch.distributed (DDP, torchrun, accelerate, the HF Trainer).

One training run writes one run directory, and only the global rank 0 writes it: every rank
computes the same SGG clustering (identical all-reduced gradients give identical momenta, and the
clustering is deterministic), so rank 0's view is the run's view. On the other ranks
`rank_zero_recorder` returns a `NullRecorder` with the same public API that touches no file.

    from recorder.distributed import rank_zero_recorder

    with rank_zero_recorder("runs/ddp", optimizer=opt, model=ddp.module, config=cfg) as rec:
        ...
        rec.log_step(loss=loss)

Sharded parameters (FSDP2 `DTensor`s) are the exception: the recorder's statistics are combined
across ranks, so `rank_zero_recorder` returns a `Recorder` on every rank, and only rank 0 writes.

The loss a rank sees is its local loss; all-reduce it first if the run should hold the global
mean (see docs/integrations.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from recorder.recorder import Recorder, unwrap_optimizer
from recorder.sharding import is_sharded

__all__ = [
    "NullRecorder",
    "get_rank",
    "is_rank_zero",
    "rank_zero_recorder",
    "unwrap_optimizer",
]


def get_rank() -> int:
    """Global rank: the process group's when initialised, else `$RANK` (torchrun), else 0."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_rank_zero() -> bool:
    return get_rank() == 0


class NullRecorder:
    """The `Recorder` API doing nothing: what ranks other than 0 hold. Writes no file."""

    def __init__(self, run_dir: str | os.PathLike[str] | None = None, **_: object) -> None:
        self.run_dir = run_dir
        self.closed = False
        self._step = 0

    def log_step(
        self,
        step: int | None = None,
        *,
        loss: Tensor | float | None = None,
        tokens: int | None = None,
    ) -> None:
        self._step = self._step + 1 if step is None else max(self._step, int(step))

    def log_eval(
        self,
        *,
        loss: Tensor | float | None = None,
        step: int | None = None,
        split: str = "val",
        tokens: int | None = None,
        batch_losses: Sequence[float] | None = None,
    ) -> None:
        pass

    def flush(self) -> None:
        pass

    def compact(self) -> list[str]:
        return []

    def close(self, status: str = "finished", error: BaseException | None = None) -> None:
        self.closed = True

    @property
    def step(self) -> int:
        return self._step

    def __enter__(self) -> NullRecorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def rank_zero_recorder(
    run_dir: str | os.PathLike[str], *args: Any, **kwargs: Any
) -> Recorder | NullRecorder:
    """`Recorder(run_dir, ...)` on global rank 0, a `NullRecorder` on every other rank.

    Sharded (FSDP2, `DTensor`) parameters: a `Recorder` on every rank, because its statistics are
    combined across the ranks (collectives in the optimizer's hooks); only rank 0 writes.

    The optimizer may be `accelerate`'s `AcceleratedOptimizer`: it is unwrapped (see
    `unwrap_optimizer`). Pass the unwrapped model (`ddp.module`) so that layers keep their names.
    """
    if args:
        args = (unwrap_optimizer(args[0]), *args[1:])
    if kwargs.get("optimizer") is not None:
        kwargs["optimizer"] = unwrap_optimizer(kwargs["optimizer"])
    opt = args[0] if args else kwargs.get("optimizer")
    if is_rank_zero() or has_sharded_params(opt):
        return Recorder(run_dir, *args, **kwargs)
    return NullRecorder(run_dir)


def has_sharded_params(opt: torch.optim.Optimizer | None) -> bool:
    groups = getattr(opt, "param_groups", None) or []
    return any(is_sharded(p) for g in groups for p in g["params"])

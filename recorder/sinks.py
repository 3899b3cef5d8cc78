"""The sink protocol: where the recorder mirrors each step's scalars (TensorBoard, W&B, MLflow).

A sink is any object with these two methods; `Recorder(..., sinks=[...])` calls `log_scalars`
once per step row when the rows are flushed (in step order, host numbers only: no tensor, no
device sync of its own) and `close` when the recorder closes. With no sinks nothing is built.
A sink that raises is warned about once and then skipped: mirroring never stops a training.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

# The scalar names a sink receives (those known for the step; absent ones are left out).
SCALAR_NAMES = (
    "loss",
    "lr",
    "grad_norm",
    "update_norm",
    "param_norm",
    "optimizer_time",
    "tokens",
    "sgg_factor_mean",  # element-weighted mean SGG factor over the clustered layers
    "reclustered",  # 1.0 on a step that re-clustered, else 0.0
)


@runtime_checkable
class ScalarSink(Protocol):
    """Receives the scalars of each recorded step."""

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """`step` is the optimizer step (1-based); `scalars` maps names in `SCALAR_NAMES` to
        finite or non-finite floats (a diverged loss is NaN)."""

    def close(self) -> None:
        """Flush and release; called once, from `Recorder.close()`."""


class SinkFanout:
    """The recorder's sinks: each step's scalars to every sink, in step order. A sink that
    raises is warned about once and skipped from then on: mirroring never stops a training.
    Called from the background writer's thread (`log`) and, once it is idle, from `close`."""

    def __init__(self, sinks: Sequence[ScalarSink]) -> None:
        for sink in sinks:
            if not isinstance(sink, ScalarSink):
                raise ValueError(f"sinks: {sink!r} lacks log_scalars(step, scalars) / close()")
        self.sinks: tuple[ScalarSink, ...] = tuple(sinks)
        self._failed: set[int] = set()  # id() of the sinks that raised

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def log(self, rows: Iterable[tuple[int, dict[str, float]]]) -> None:
        for step, scalars in rows:
            for sink in self.sinks:
                self._call(sink, "log_scalars", step, scalars)

    def close(self) -> None:
        for sink in self.sinks:
            self._call(sink, "close")

    def _call(self, sink: ScalarSink, method: str, *args: object) -> None:
        if id(sink) in self._failed:
            return
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # mirroring never stops a training
            self._failed.add(id(sink))
            warnings.warn(
                f"recorder sink {sink!r} failed ({exc}); it is skipped from now on", stacklevel=3
            )

"""The sink protocol: where the recorder mirrors each step's scalars (TensorBoard, W&B, MLflow).

A sink is any object with these two methods; `Recorder(..., sinks=[...])` calls `log_scalars`
once per step row when the rows are flushed (in step order, host numbers only: no tensor, no
device sync of its own) and `close` when the recorder closes. With no sinks nothing is built.
A sink that raises is warned about once and then skipped: mirroring never stops a training.
"""

from __future__ import annotations

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

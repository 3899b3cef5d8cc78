"""The recorder's state, one dataclass per concern, shared explicitly by `Recorder` and its hooks.

- `OptimizerView`: the optimizer and its introspection handles (SGG, or a shadow clustering);
- `StepState`: where the recording stands (the step, tokens, the clock) and what one optimizer
  step carries from its pre-hook to its post-hook;
- `HistogramSchedule`: when whole-layer histograms are taken and how fine they are.

The run's identity and files are `recorder.flushing.RunFiles`; the flush policy is
`recorder.flushing.FlushPolicy`. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

if TYPE_CHECKING:
    from sgg import ClusterState

# A point in time: `time.perf_counter()`, or a recorded CUDA event (read at flush: no sync).
ClockPoint: TypeAlias = "float | torch.cuda.Event"
Timing: TypeAlias = "tuple[ClockPoint, ClockPoint]"


class Clusterer(Protocol):
    """SGG's read-only introspection (docs/introspection.md): what the recorder reads from an
    `sgg.SGG` it records, or from the observe-only shadow it runs beside another optimizer."""

    reclustered_last_step: bool
    global_mda: Tensor | None

    def clustered_params(self) -> list[Tensor]: ...

    def cluster_state(self, p: Tensor) -> ClusterState | None: ...

    def register_recluster_hook(
        self, hook: Callable[[Clusterer, int], None]
    ) -> RemovableHandle: ...


class ShadowClusterer(Clusterer, Protocol):
    """An observe-only `sgg.SGG` beside a non-SGG optimizer: stepped by the recorder after
    each base step, on the optimizer's clock."""

    sgg_step: int

    def observe_step(self) -> None: ...


@dataclass
class OptimizerView:
    """The optimizer the recorder reads, and the handles of the hooks it registered on it."""

    optimizer: torch.optim.Optimizer | None
    sgg: Clusterer | None = None  # the optimizer itself when it is an SGG
    shadow: ShadowClusterer | None = None  # observe-only clustering (`Recorder(shadow=)`)
    has_step_hooks: bool = False  # torch's step pre/post hooks (else log_step measures)
    handles: list[RemovableHandle] = field(default_factory=list)

    @property
    def clusterer(self) -> Clusterer | None:
        """Whose clustering is recorded: SGG's, or the shadow's."""
        return self.sgg if self.sgg is not None else self.shadow

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups if self.optimizer is not None else []

    def detach(self) -> None:
        """Remove every hook this recorder registered (idempotent)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@dataclass
class StepState:
    """Where the recording stands. `step` is the optimizer's step count (the run's clock);
    the rest is what one optimizer step carries from its pre-hook to its post-hook."""

    step: int = 0  # optimizer steps taken, including those before a resume
    tokens: int | None = None  # cumulative tokens (None until a log_step gives tokens)
    time_offset: float = 0.0  # wall_time of the last kept row (a resume continues the clock)
    t0: float = field(default_factory=time.monotonic)
    in_step: bool = False  # between the pre- and the post-step hook
    started: ClockPoint | None = None  # the pre-hook's clock point
    snapshot: list[Tensor] | None = None  # parameters before the step (update_norm="snapshot")
    factor_mean: Tensor | None = None  # latest model-wide mean SGG factor (0-d, on device)
    recluster_steps: set[int] = field(default_factory=set)  # steps whose re-cluster hook fired

    def wall(self) -> float:
        """Seconds since the run started, continued across resumes."""
        return self.time_offset + (time.monotonic() - self.t0)

    @property
    def snapshot_bytes(self) -> int:
        return sum(t.nbytes for t in self.snapshot) if self.snapshot is not None else 0


@dataclass(frozen=True)
class HistogramSchedule:
    """Whole-layer momentum / adaptive-lr histograms: at every re-cluster (per cluster), and
    for runs without a clustering every `every` steps (0: never)."""

    every: int
    bins: int

    def due_without_clusters(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0


def clock(device: torch.device | None) -> ClockPoint:
    """A point in time: a recorded CUDA event on a CUDA run (read at flush: no sync now),
    else `time.perf_counter()`."""
    if device is not None and device.type == "cuda":
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def seconds(timing: Timing | None) -> float | None:
    """Seconds between two clock points (read now: a CUDA event waits for the device)."""
    if timing is None:
        return None
    start, end = timing
    if isinstance(start, float) and isinstance(end, float):
        return end - start
    assert not isinstance(start, float) and not isinstance(end, float)
    end.synchronize()
    return start.elapsed_time(end) / 1000.0

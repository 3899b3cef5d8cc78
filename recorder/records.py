"""What the recorder buffers between flushes: typed rows, still holding device tensors.

The hooks and `log_step` fill these (`recorder.buffer`); a flush detaches every row up to a
step as one `PendingRows` and hands it to the background writer, which turns it into table
columns (`recorder.columns`). Once buffered a tensor is never written to again, so the writer
thread may read it while training goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from torch import Tensor

from recorder.state import Timing


@dataclass
class StepRow:
    """One optimizer step's row of the `steps` (and `lrs`) table."""

    wall: float | None = None  # seconds since the run started
    loss: Tensor | float | None = None  # a 0-d tensor stays on its device until the flush
    tokens: int | None = None  # cumulative
    norms: dict[str, Tensor] = field(default_factory=dict)  # column -> (L,) per-layer norms
    lrs: list[float] | None = None  # one per param group
    reclustered: bool = False
    timing: Timing | None = None  # the optimizer step's start and end
    factor: Tensor | None = None  # model-wide mean SGG factor in force (0-d)


class LayerStats(NamedTuple):
    """Per-layer statistics of one step: {column: (L,) tensor} (`layers` table)."""

    step: int
    columns: dict[str, Tensor]


@dataclass
class LayerClusters:
    """One clustered layer's clustering at a re-cluster (tensors cloned: they are kept)."""

    row: int  # the layer's row in `RecordedLayers`
    sizes: Tensor
    centers: Tensor
    mda: Tensor
    raw: Tensor
    factors: Tensor
    transitions: Tensor | None
    members: Tensor  # cluster of each membership-sample position
    positions: Tensor  # the membership-sample positions


@dataclass
class ClusterRecord:
    """One re-cluster: `clusters`, `transitions` and `membership` rows."""

    step: int
    shadow: bool
    global_mda: Tensor | None
    layers: list[LayerClusters]

    @property
    def table_rows(self) -> int:
        return sum(r.sizes.numel() * (1 + r.sizes.numel()) + r.members.numel() for r in self.layers)


class LayerHistogram(NamedTuple):
    """Momentum and adaptive-lr histograms of one layer: edges (bins + 1,) and counts
    (1 + K, bins), row 0 the whole layer, row 1 + c cluster c."""

    row: int
    m_edges: Tensor
    m_counts: Tensor
    a_edges: Tensor
    a_counts: Tensor

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return (self.m_edges, self.m_counts, self.a_edges, self.a_counts)


class HistogramRecord(NamedTuple):
    step: int
    shadow: bool
    layers: list[LayerHistogram]

    @property
    def table_rows(self) -> int:
        return sum(2 * h.m_counts.numel() for h in self.layers)


@dataclass(frozen=True)
class EvalRow:
    """One row of the `evals` table (host numbers: an eval is rare)."""

    step: int
    tokens: int | None
    wall_time: float
    split: str
    loss: float
    loss_std: float | None
    n_batches: int | None


@dataclass
class PendingRows:
    """Every row of one flush, detached from the buffer: what the writer thread converts."""

    steps: list[int] = field(default_factory=list)
    rows: list[StepRow] = field(default_factory=list)  # one per step, in step order
    layers: list[LayerStats] = field(default_factory=list)
    clusters: list[ClusterRecord] = field(default_factory=list)
    histograms: list[HistogramRecord] = field(default_factory=list)
    evals: list[EvalRow] = field(default_factory=list)

"""Buffering: the rows waiting for the next flush, kept as device tensors (`recorder.records`).

The hooks and `log_step` add rows here; a flush `detach`es every row up to a step as one
`PendingRows` for the background writer, which turns it into columns (`recorder.columns`):
device tensors become numbers there, off the training thread. The buffer also counts what it
holds, so that it stays bounded (`max_buffer_rows`) and its peak device memory is known.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from recorder.records import (
    ClusterRecord,
    EvalRow,
    HistogramRecord,
    LayerHistogram,
    LayerStats,
    PendingRows,
    StepRow,
)


class RecordBuffer:
    """Rows waiting for the next flush."""

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.rows: dict[int, StepRow] = {}  # step -> pending `steps` row
        self.layer_items: list[LayerStats] = []
        self.cluster_items: list[ClusterRecord] = []
        self.histogram_items: list[HistogramRecord] = []
        self.evals: list[EvalRow] = []
        self.pending_rows = 0  # table rows waiting (bounds the buffer: max_buffer_rows)
        self.tensor_bytes = 0
        self.peak_tensor_bytes = 0

    # ------------------------------------------------------------------ adding
    def row(self, step: int) -> StepRow:
        """The pending `steps` row of `step` (created empty)."""
        row = self.rows.get(step)
        if row is None:
            row = self.rows[step] = StepRow()
            self.pending_rows += 1
        return row

    def add_tensors(self, tensors: Iterable[Tensor], rows: int = 0) -> None:
        self.tensor_bytes += sum(t.nbytes for t in tensors)
        self.peak_tensor_bytes = max(self.peak_tensor_bytes, self.tensor_bytes)
        self.pending_rows += rows

    def add_layers(self, step: int, columns: dict[str, Tensor]) -> None:
        self.layer_items.append(LayerStats(step, columns))
        self.add_tensors(columns.values(), rows=self.n_layers)

    def add_clusters(self, record: ClusterRecord) -> None:
        self.cluster_items.append(record)
        self.pending_rows += record.table_rows

    def add_histograms(self, step: int, shadow: bool, layers: list[LayerHistogram]) -> None:
        record = HistogramRecord(step, shadow, layers)
        self.histogram_items.append(record)
        self.add_tensors(t for h in layers for t in h.tensors)
        self.pending_rows += record.table_rows

    def add_eval(self, row: EvalRow) -> None:
        self.evals.append(row)
        self.pending_rows += 1

    # ------------------------------------------------------------------ flushing
    def detach(self, upto: int | None) -> PendingRows:
        """Remove and return every row with step <= upto (all when None) and every eval."""

        def due(step: int) -> bool:
            return upto is None or step <= upto

        steps = sorted(s for s in self.rows if due(s))
        out = PendingRows(
            steps=steps,
            rows=[self.rows.pop(s) for s in steps],
            layers=[x for x in self.layer_items if due(x.step)],
            clusters=[x for x in self.cluster_items if due(x.step)],
            histograms=[x for x in self.histogram_items if due(x.step)],
            evals=self.evals,
        )
        self.layer_items = [x for x in self.layer_items if not due(x.step)]
        self.cluster_items = [x for x in self.cluster_items if not due(x.step)]
        self.histogram_items = [x for x in self.histogram_items if not due(x.step)]
        self.evals = []
        self.pending_rows = (
            len(self.rows)
            + self.n_layers * len(self.layer_items)
            + sum(x.table_rows for x in self.cluster_items)
            + sum(x.table_rows for x in self.histogram_items)
        )
        self.tensor_bytes = sum(t.nbytes for x in self.layer_items for t in x.columns.values())
        self.tensor_bytes += sum(
            t.nbytes for x in self.histogram_items for h in x.layers for t in h.tensors
        )
        return out

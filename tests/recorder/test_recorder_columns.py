"""Buffered rows as table columns (`recorder.columns`, run on the writer thread): what is not
measured is null, a diverged loss stays NaN, histogram edges keep float64."""

from __future__ import annotations

import torch

from recorder import columns
from recorder.records import (
    ClusterRecord,
    HistogramRecord,
    LayerClusters,
    LayerHistogram,
    LayerStats,
    PendingRows,
    StepRow,
)
from runformat import schema


def _table(name: str, cols: dict) -> dict:
    return schema.build_table(name, cols).to_pydict()


def test_columns_keep_nan_losses_null_unmeasured_norms_and_float64_edges():
    nan = float("nan")
    rows = [
        StepRow(wall=1.0, loss=torch.tensor(nan), tokens=8, lrs=[0.1, 0.2],
                norms={"grad_norm": torch.tensor([3.0, 4.0])}),
        StepRow(wall=2.0, loss=0.5, tokens=16, lrs=[0.1, 0.2], reclustered=True),
    ]  # fmt: skip
    stats = {c: torch.tensor([1.0, nan]) for c in schema.LAYER_STAT_COLUMNS}
    edges = torch.tensor([0.1, 0.2, 0.30000000000000004], dtype=torch.float64)
    counts = torch.tensor([[1, 2]])
    layer = LayerClusters(
        row=1, sizes=torch.tensor([2, 1]), centers=torch.tensor([0.0, 1.0]),
        mda=torch.tensor([0.5, 0.5]), raw=torch.tensor([1.0, 2.0]),
        factors=torch.tensor([1.0, 1.5]), transitions=None,
        members=torch.tensor([0, 1], dtype=torch.uint8), positions=torch.tensor([3, 7]),
    )  # fmt: skip
    pending = PendingRows(
        steps=[1, 2],
        rows=rows,
        layers=[LayerStats(2, stats)],
        clusters=[ClusterRecord(step=2, shadow=False, global_mda=None, layers=[layer])],
        histograms=[HistogramRecord(2, False, [LayerHistogram(0, edges, counts, edges, counts)])],
    )
    tables = columns.tables(pending, ["a", "b"], [2, 3])
    steps = _table("steps", tables["steps"])
    assert steps["step"] == [1, 2] and steps["grad_norm"] == [5.0, None]  # 2: not measured
    assert steps["loss"][0] != steps["loss"][0] and steps["loss"][1] == 0.5  # NaN: diverged
    assert _table("lrs", tables["lrs"])["group"] == [0, 1, 0, 1]
    assert _table("layers", tables["layers"])["m_mean"] == [1.0, None]
    clusters = _table("clusters", tables["clusters"])
    assert clusters["layer"] == ["b", "b"] and clusters["global_mda"] == [None, None]
    membership = _table("membership", tables["membership"])
    assert membership["position"] == [3, 7] and membership["cluster"] == [0, 1]
    hist = _table("histograms", tables["histograms"])
    assert hist["bin_right"][1] == 0.30000000000000004  # float64 edges, not rounded to float32
    assert hist["count"] == [1, 2, 1, 2] and tables["transitions"] == {}
    scalars = dict(columns.sink_scalars(tables["steps"], rows))
    assert scalars[1]["grad_norm"] == 5.0 and "grad_norm" not in scalars[2]
    assert scalars[2]["reclustered"] == 1.0 and scalars[1]["tokens"] == 8.0

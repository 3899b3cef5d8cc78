"""Tables, columns, types and the format version of a run directory (docs/run-format.md).

Readers accept every version up to `FORMAT_VERSION`: a column added by a later version is
nullable, so an older chunk reads as the newer schema with that column null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

FORMAT_NAME = "sgg-run"
# 1: the first format. 2: steps.optimizer_time, evals.loss_std / n_batches, run.json `host`.
FORMAT_VERSION = 2

RUN_JSON = "run.json"
TABLES_DIR = "tables"
CHECKPOINT = "checkpoint.pt"

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"
STATUSES = (STATUS_RUNNING, STATUS_FINISHED, STATUS_FAILED)

QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
QUANTILE_NAMES = ("q05", "q25", "q50", "q75", "q95")

HIST_MOMENTUM = "momentum"
HIST_ADAPTIVE_LR = "adaptive_lr"
WHOLE_LAYER = -1  # `cluster` value of a whole-layer histogram

PARQUET_COMPRESSION = "zstd"


def _fields(kind: pa.DataType, *names: str) -> list[pa.Field]:
    return [pa.field(n, kind) for n in names]


STEPS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("wall_time", pa.float64()),
        pa.field("loss", pa.float64()),
        pa.field("tokens", pa.int64()),
        pa.field("grad_norm", pa.float64()),
        pa.field("update_norm", pa.float64()),
        pa.field("param_norm", pa.float64()),
        pa.field("lr", pa.float64()),
        pa.field("reclustered", pa.bool_()),
        pa.field("optimizer_time", pa.float64()),  # version 2: seconds inside optimizer.step
    ]
)

LRS = pa.schema(
    [pa.field("step", pa.int64()), pa.field("group", pa.int32()), pa.field("lr", pa.float64())]
)

EVALS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("tokens", pa.int64()),
        pa.field("wall_time", pa.float64()),
        pa.field("split", pa.string()),
        pa.field("loss", pa.float64()),
        pa.field("loss_std", pa.float64()),  # version 2: std of the per-batch eval losses
        pa.field("n_batches", pa.int64()),  # version 2: how many batches `loss` averages
    ]
)

# Per-layer statistics (float32), the value columns of `layers` after step, layer and numel.
LAYER_STAT_COLUMNS: tuple[str, ...] = (
    "grad_norm",
    "param_norm",
    "update_norm",
    "update_to_weight",
    "m_mean",
    "m_std",
    "m_abs_mean",
    *(f"m_{q}" for q in QUANTILE_NAMES),
    "v_mean",
    "v_q50",
    *(f"alr_{q}" for q in QUANTILE_NAMES),
    "factor_mean",
)

LAYERS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("numel", pa.int64()),
        *_fields(pa.float32(), *LAYER_STAT_COLUMNS),
    ]
)

CLUSTERS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("size", pa.int64()),
        *_fields(pa.float32(), "center", "mda", "global_mda", "raw_factor", "factor"),
        pa.field("shadow", pa.bool_()),
    ]
)

TRANSITIONS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("from_cluster", pa.int32()),
        pa.field("to_cluster", pa.int32()),
        pa.field("count", pa.int64()),
        pa.field("shadow", pa.bool_()),
    ]
)

MEMBERSHIP = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("cluster", pa.int32()),
        pa.field("shadow", pa.bool_()),
    ]
)

HISTOGRAMS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("quantity", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("bin", pa.int32()),
        pa.field("bin_left", pa.float64()),
        pa.field("bin_right", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("shadow", pa.bool_()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "steps": STEPS,
    "lrs": LRS,
    "evals": EVALS,
    "layers": LAYERS,
    "clusters": CLUSTERS,
    "transitions": TRANSITIONS,
    "membership": MEMBERSHIP,
    "histograms": HISTOGRAMS,
}

# Rows with the same key in two chunks (a resumed run's overlap): the later chunk wins.
ROW_KEYS: dict[str, tuple[str, ...]] = {"steps": ("step",), "evals": ("step", "split")}


def column_types(table: str) -> dict[str, pa.DataType]:
    """{column: Arrow type} of one table, in schema order."""
    return {f.name: f.type for f in TABLES[table]}


def build_table(
    table: str, columns: Mapping[str, Sequence[Any]], *, nan_is_null: bool = False
) -> pa.Table:
    """A table with exactly the schema's columns (missing ones become nulls); unknown columns
    or columns of different lengths are a ValueError naming them. NaN stays NaN (a diverged
    loss is data) unless `nan_is_null`."""
    schema = TABLES[table]
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"unknown columns for table {table!r}: {sorted(unknown)}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of table {table!r} have different lengths: {sorted(lengths)}")
    rows = lengths.pop() if lengths else 0
    arrays = [
        pa.array(columns[f.name], type=f.type, from_pandas=nan_is_null)
        if f.name in columns
        else pa.nulls(rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)

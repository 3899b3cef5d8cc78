"""Columns: one flush's buffered rows (`records.PendingRows`) as the run format's table columns.

This is where device tensors become numbers: a few stacked transfers per table, run by the
background writer (`recorder.flushing`), never on the training thread. Knows the run format's
columns, not files. A value that was not measured (NaN in a per-layer tensor) is null; a NaN
loss is kept (it diverged).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from recorder import stats
from recorder.records import (
    ClusterRecord,
    EvalRow,
    HistogramRecord,
    LayerStats,
    PendingRows,
    StepRow,
)
from recorder.state import seconds
from runformat import schema

STEP_NORMS = ("grad_norm", "param_norm", "update_norm")  # global norms in the `steps` table
SINK_COLUMNS = ("loss", "lr", "grad_norm", "update_norm", "param_norm", "optimizer_time")

Columns = dict[str, Any]  # column name -> a list, a NumPy array or an Arrow array


def _nullable(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    """An Arrow array in which NaN (not measured) is null."""
    return pa.array(values, mask=np.isnan(values), type=kind)


def tables(pending: PendingRows, names: list[str], numel: list[int]) -> dict[str, Columns]:
    """{table: columns} of every table one flush writes, in the order they are written."""
    return {
        "steps": steps_columns(pending.steps, pending.rows),
        "lrs": lrs_columns(pending.steps, pending.rows),
        "evals": evals_columns(pending.evals),
        "layers": layer_columns(pending.layers, names, numel),
        **cluster_columns(pending.clusters, names),
        "histograms": histogram_columns(pending.histograms, names),
    }


def _global_norms(rows: list[StepRow]) -> dict[str, np.ndarray]:
    """{norm: (n,) float64, NaN where not measured}: global norms from the per-layer ones, all
    moved to the host in one transfer."""
    n = len(rows)
    parts, where = [], []
    for column in STEP_NORMS:
        have = [k for k, r in enumerate(rows) if column in r.norms]
        if have:
            layer_norms = torch.stack([rows[k].norms[column] for k in have])  # (n, L)
            parts.append(stats.global_norm(layer_norms))
            where.append((column, have))
    out = {column: np.full(n, np.nan) for column in STEP_NORMS}
    if parts:
        values = torch.cat([p.to(parts[0].device) for p in parts]).cpu().numpy()
        offset = 0
        for column, have in where:
            out[column][have] = values[offset : offset + len(have)]
            offset += len(have)
    return out


def _losses(rows: list[StepRow]) -> list[float | None]:
    losses: list[float | None] = [None] * len(rows)
    tensor_rows = [k for k, r in enumerate(rows) if isinstance(r.loss, Tensor)]
    if tensor_rows:
        values = torch.stack([rows[k].loss.float().reshape(()) for k in tensor_rows])  # type: ignore[union-attr]
        for k, v in zip(tensor_rows, values.cpu().tolist(), strict=True):
            losses[k] = v
    for k, r in enumerate(rows):
        if isinstance(r.loss, float):
            losses[k] = r.loss
    return losses


def steps_columns(steps: list[int], rows: list[StepRow]) -> Columns:
    columns: Columns = {
        "step": steps,
        "wall_time": [r.wall for r in rows],
        "loss": _losses(rows),
        "tokens": [r.tokens for r in rows],
        "lr": [r.lrs[0] if r.lrs else None for r in rows],
        "reclustered": [r.reclustered for r in rows],
        "optimizer_time": [seconds(r.timing) for r in rows],
    }
    for column, values in _global_norms(rows).items():
        columns[column] = _nullable(values, pa.float64())
    return columns


def sink_scalars(columns: Columns, rows: list[StepRow]) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, scalars) of each flushed step row, for the sinks (`recorder.sinks`)."""
    factors = [float(r.factor) if r.factor is not None else None for r in rows]
    values = {c: pa.array(columns[c]).to_pylist() for c in SINK_COLUMNS}
    for k, step in enumerate(columns["step"]):
        scalars = {c: float(values[c][k]) for c in SINK_COLUMNS if values[c][k] is not None}
        if columns["tokens"][k] is not None:
            scalars["tokens"] = float(columns["tokens"][k])
        if factors[k] is not None:
            scalars["sgg_factor_mean"] = float(factors[k])
        scalars["reclustered"] = float(columns["reclustered"][k])
        yield int(step), scalars


def lrs_columns(steps: list[int], rows: list[StepRow]) -> Columns:
    columns: dict[str, list[Any]] = {"step": [], "group": [], "lr": []}
    for s, r in zip(steps, rows, strict=True):
        for group, lr in enumerate(r.lrs or []):
            columns["step"].append(s)
            columns["group"].append(group)
            columns["lr"].append(lr)
    return columns


def evals_columns(evals: list[EvalRow]) -> Columns:
    return {n: [getattr(e, n) for e in evals] for n in schema.EVALS.names} if evals else {}


def layer_columns(items: list[LayerStats], names: list[str], numel: list[int]) -> Columns:
    if not items:
        return {}
    n = len(names)
    stat_names = schema.LAYER_STAT_COLUMNS
    block = torch.stack([torch.stack([c[name] for name in stat_names], 1) for _, c in items])
    block = block.cpu().numpy().reshape(len(items) * n, len(stat_names)).astype(np.float32)
    columns: Columns = {
        "step": np.repeat([s for s, _ in items], n),
        "layer": names * len(items),
        "numel": np.tile(numel, len(items)),
    }
    for j, name in enumerate(stat_names):  # j: the position `stat_names` gave it just above
        columns[name] = _nullable(np.ascontiguousarray(block[:, j]), pa.float32())
    return columns


def _host(t: Tensor) -> np.ndarray:
    """A tensor's values on the host, in its dtype (bfloat16, which NumPy lacks, as float32)."""
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()


def cluster_columns(records: list[ClusterRecord], names: list[str]) -> dict[str, Columns]:
    """The `clusters`, `transitions` and `membership` columns of some re-clusters."""
    parts: dict[str, dict[str, list[Any]]] = {
        t: {k: [] for k in schema.TABLES[t].names}
        for t in ("clusters", "transitions", "membership")
    }

    def add(table: str, rows: int, values: dict[str, Any]) -> None:
        for key, value in values.items():
            parts[table][key].append(np.full(rows, value) if np.ndim(value) == 0 else value)

    for record in records:
        gm = np.nan if record.global_mda is None else float(record.global_mda.cpu())
        for layer in record.layers:
            key = {"step": record.step, "layer": names[layer.row], "shadow": record.shadow}
            k = layer.sizes.numel()
            add("clusters", k, {**key, "cluster": np.arange(k), "size": _host(layer.sizes),
                "center": _host(layer.centers), "mda": _host(layer.mda), "global_mda": gm,
                "raw_factor": _host(layer.raw), "factor": _host(layer.factors)})  # fmt: skip
            if layer.transitions is not None:
                kk = layer.transitions.shape[0]
                from_to = {"from_cluster": np.repeat(np.arange(kk), kk),
                           "to_cluster": np.tile(np.arange(kk), kk)}  # fmt: skip
                count = _host(layer.transitions).reshape(-1)
                add("transitions", kk * kk, {**key, **from_to, "count": count})
            members = _host(layer.members).reshape(-1)
            position = _host(layer.positions).reshape(-1)
            add("membership", members.size, {**key, "position": position, "cluster": members})
    out: dict[str, Columns] = {}
    for table, cols in parts.items():
        out[table] = {k: np.concatenate(v) for k, v in cols.items()} if cols["step"] else {}
    if out["clusters"]:
        out["clusters"]["global_mda"] = _nullable(out["clusters"]["global_mda"], pa.float32())
    return out


def histogram_columns(items: list[HistogramRecord], names: list[str]) -> Columns:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in schema.HISTOGRAMS.names}
    for step, shadow, layers in items:
        for h in layers:
            name = names[h.row]
            for quantity, edges, counts in (
                (schema.HIST_MOMENTUM, h.m_edges, h.m_counts),
                (schema.HIST_ADAPTIVE_LR, h.a_edges, h.a_counts),
            ):
                e = _host(edges)
                c = _host(counts)
                k1, bins = c.shape
                rows = k1 * bins
                parts["step"].append(np.full(rows, step))
                parts["layer"].append(np.full(rows, name, dtype=object))
                parts["quantity"].append(np.full(rows, quantity, dtype=object))
                parts["cluster"].append(np.repeat(np.arange(-1, k1 - 1), bins))
                parts["bin"].append(np.tile(np.arange(bins), k1))
                parts["bin_left"].append(np.tile(e[:-1], k1))
                parts["bin_right"].append(np.tile(e[1:], k1))
                parts["count"].append(c.reshape(-1))
                parts["shadow"].append(np.full(rows, shadow))
    if not parts["step"]:
        return {}
    return {k: np.concatenate(v) for k, v in parts.items()}

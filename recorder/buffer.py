"""Buffering: pending rows kept as device tensors, turned into table columns at flush.

The recorder's hooks add rows here (step rows, per-layer columns, cluster records, histograms,
evals); `take` builds the columns of every table for the rows up to a step, which is where
device tensors become numbers (a few transfers per flush, none per step), and `forget` drops
what was written. Knows the run format's columns, not files: writing is `recorder.writer`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recorder import stats
from runformat import schema

STEP_NORMS = ("grad_norm", "param_norm", "update_norm")  # global norms in the `steps` table
SINK_COLUMNS = ("loss", "lr", "grad_norm", "update_norm", "param_norm", "optimizer_time")


def seconds(timing: tuple[Any, Any] | None) -> float | None:
    """Seconds between two clock points (floats from perf_counter, or CUDA events: read now)."""
    if timing is None:
        return None
    start, end = timing
    if isinstance(start, float):
        return end - start
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if x != x else float(x) for x in a.tolist()]


class RecordBuffer:
    """Rows waiting for the next flush, and the columns they become."""

    def __init__(self, layer_names: list[str], layer_numel: list[int]) -> None:
        self.layer_names = layer_names
        self.layer_numel = layer_numel
        self.rows: dict[int, dict[str, Any]] = {}  # step -> pending `steps` row
        self.layer_items: list[tuple[int, dict[str, Tensor]]] = []
        self.cluster_items: list[dict[str, Any]] = []
        self.histogram_items: list[tuple[int, bool, list[tuple[int, tuple[Tensor, ...]]]]] = []
        self.evals: list[dict[str, Any]] = []
        self.pending_rows = 0  # table rows waiting (bounds the buffer: max_buffer_rows)
        self.tensor_bytes = 0
        self.peak_tensor_bytes = 0

    # ------------------------------------------------------------------ adding
    def row(self, step: int) -> dict[str, Any]:
        """The pending `steps` row of `step` (created empty)."""
        row = self.rows.get(step)
        if row is None:
            row = self.rows[step] = {}
            self.pending_rows += 1
        return row

    def add_tensors(self, tensors: Iterator[Tensor] | list[Tensor], rows: int = 0) -> None:
        self.tensor_bytes += sum(t.nbytes for t in tensors)
        self.peak_tensor_bytes = max(self.peak_tensor_bytes, self.tensor_bytes)
        self.pending_rows += rows

    def add_layers(self, step: int, columns: dict[str, Tensor]) -> None:
        self.layer_items.append((step, columns))
        self.add_tensors(list(columns.values()), rows=len(self.layer_names))

    def add_clusters(self, record: dict[str, Any], rows: int) -> None:
        self.cluster_items.append(record)
        self.pending_rows += rows

    def add_histograms(
        self, step: int, shadow: bool, items: list[tuple[int, tuple[Tensor, ...]]]
    ) -> None:
        self.histogram_items.append((step, shadow, items))
        self.add_tensors([t for _, h in items for t in h])
        self.pending_rows += sum(2 * h[1].numel() for _, h in items)

    # ------------------------------------------------------------------ flushing
    def take(self, upto: int | None) -> tuple[dict[str, dict[str, Any]], list[int]]:
        """({table: columns}, the steps they hold) for every row with step <= upto (all when
        None). Nothing is forgotten until `forget`."""
        steps = sorted(s for s in self.rows if upto is None or s <= upto)
        rows = [self.rows[s] for s in steps]

        def due(step: int) -> bool:
            return upto is None or step <= upto

        tables = {
            "steps": self.steps_columns(steps, rows),
            "lrs": self.lrs_columns(steps, rows),
            "evals": self.evals_columns(self.evals),
            "layers": self.layer_columns([x for x in self.layer_items if due(x[0])]),
            **self.cluster_columns([x for x in self.cluster_items if due(x["step"])]),
            "histograms": self.histogram_columns([x for x in self.histogram_items if due(x[0])]),
        }
        return tables, steps

    def forget(self, steps: list[int], upto: int | None, n_evals: int) -> None:
        """Drop what `take(upto)` returned (it is on disk)."""
        for s in steps:
            del self.rows[s]

        def keep(step: int) -> bool:
            return upto is not None and step > upto

        self.layer_items = [x for x in self.layer_items if keep(x[0])]
        self.cluster_items = [x for x in self.cluster_items if keep(x["step"])]
        self.histogram_items = [x for x in self.histogram_items if keep(x[0])]
        self.evals = self.evals[n_evals:]
        self.pending_rows = len(self.rows)
        self.tensor_bytes = sum(t.nbytes for _, c in self.layer_items for t in c.values())

    def steps_columns(self, steps: list[int], rows: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(steps)
        global_norms: dict[str, np.ndarray] = {}
        parts, where = [], []
        for column in STEP_NORMS:
            have = [k for k, r in enumerate(rows) if column in r.get("norms", {})]
            if have:
                layer_norms = torch.stack([rows[k]["norms"][column] for k in have])  # (n, L)
                parts.append(stats.global_norm(layer_norms))
                where.append((column, have))
        if parts:
            values = torch.cat([p.to(parts[0].device) for p in parts]).cpu().numpy()  # sync
            offset = 0
            for column, have in where:
                full = np.full(n, np.nan)
                full[have] = values[offset : offset + len(have)]
                offset += len(have)
                global_norms[column] = full
        losses: list[float | None] = [None] * n
        tensor_rows = [k for k, r in enumerate(rows) if torch.is_tensor(r.get("loss"))]
        if tensor_rows:
            values = torch.stack([rows[k]["loss"].float().reshape(()) for k in tensor_rows])
            for k, v in zip(tensor_rows, values.cpu().tolist(), strict=True):
                losses[k] = v
        for k, r in enumerate(rows):
            if isinstance(r.get("loss"), float):
                losses[k] = r["loss"]
        columns: dict[str, Any] = {
            "step": steps,
            "wall_time": [r.get("wall") for r in rows],
            "loss": losses,
            "tokens": [r.get("tokens") for r in rows],
            "lr": [r["lrs"][0] if r.get("lrs") else None for r in rows],
            "reclustered": [bool(r.get("reclustered", False)) for r in rows],
            "optimizer_time": [seconds(r.get("timing")) for r in rows],
        }
        for column in STEP_NORMS:
            values = global_norms.get(column)
            columns[column] = [None] * n if values is None else _nan_to_none(values)
        return columns

    @staticmethod
    def sink_scalars(
        columns: dict[str, Any], rows: list[dict[str, Any]]
    ) -> Iterator[tuple[int, dict[str, float]]]:
        """(step, scalars) of each flushed step row, for the sinks (`recorder.sinks`)."""
        factors = [r.get("factor") for r in rows]
        factors = [float(f) if torch.is_tensor(f) else f for f in factors]
        for k, step in enumerate(columns["step"]):
            scalars = {c: float(columns[c][k]) for c in SINK_COLUMNS if columns[c][k] is not None}
            if columns["tokens"][k] is not None:
                scalars["tokens"] = float(columns["tokens"][k])
            if factors[k] is not None:
                scalars["sgg_factor_mean"] = float(factors[k])
            scalars["reclustered"] = float(columns["reclustered"][k])
            yield int(step), scalars

    @staticmethod
    def lrs_columns(steps: list[int], rows: list[dict[str, Any]]) -> dict[str, Any]:
        columns: dict[str, list[Any]] = {"step": [], "group": [], "lr": []}
        for s, r in zip(steps, rows, strict=True):
            for group, lr in enumerate(r.get("lrs") or []):
                columns["step"].append(s)
                columns["group"].append(group)
                columns["lr"].append(lr)
        return columns

    @staticmethod
    def evals_columns(evals: list[dict[str, Any]]) -> dict[str, list[Any]]:
        names = schema.EVALS.names
        return {n: [e.get(n) for e in evals] for n in names} if evals else {}

    def layer_columns(self, items: list[tuple[int, dict[str, Tensor]]]) -> dict[str, Any]:
        if not items:
            return {}
        n = len(self.layer_names)
        names = schema.LAYER_STAT_COLUMNS
        block = torch.stack([torch.stack([c[name] for name in names], 1) for _, c in items])
        block = block.cpu().numpy().reshape(len(items) * n, len(names)).astype(np.float32)
        columns: dict[str, Any] = {
            "step": np.repeat([s for s, _ in items], n),
            "layer": self.layer_names * len(items),
            "numel": np.tile(self.layer_numel, len(items)),
        }
        for j, name in enumerate(names):  # j: the position `names` gave it just above
            columns[name] = _nan_to_none(block[:, j])
        return columns

    def cluster_columns(self, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        clusters: dict[str, list[Any]] = {k: [] for k in schema.CLUSTERS.names}
        transitions: dict[str, list[Any]] = {k: [] for k in schema.TRANSITIONS.names}
        membership: dict[str, list[Any]] = {k: [] for k in schema.MEMBERSHIP.names}
        for record in records:
            step, shadow = record["step"], record["shadow"]
            gm = record["global_mda"]
            gm = None if gm is None else float(gm.cpu())
            for layer in record["layers"]:
                name = self.layer_names[layer["i"]]
                sizes = layer["sizes"].cpu().tolist()
                k = len(sizes)
                values = {
                    key: layer[key].float().cpu().tolist()
                    for key in ("centers", "mda", "raw", "factors")
                }
                clusters["step"] += [step] * k
                clusters["layer"] += [name] * k
                clusters["cluster"] += list(range(k))
                clusters["size"] += sizes
                clusters["center"] += values["centers"]
                clusters["mda"] += values["mda"]
                clusters["global_mda"] += [gm] * k
                clusters["raw_factor"] += values["raw"]
                clusters["factor"] += values["factors"]
                clusters["shadow"] += [shadow] * k
                if layer["transitions"] is not None:
                    counts = layer["transitions"].cpu()
                    kk = counts.shape[0]
                    transitions["step"] += [step] * (kk * kk)
                    transitions["layer"] += [name] * (kk * kk)
                    transitions["from_cluster"] += np.repeat(np.arange(kk), kk).tolist()
                    transitions["to_cluster"] += np.tile(np.arange(kk), kk).tolist()
                    transitions["count"] += counts.reshape(-1).tolist()
                    transitions["shadow"] += [shadow] * (kk * kk)
                members = layer["members"].cpu().tolist()
                membership["step"] += [step] * len(members)
                membership["layer"] += [name] * len(members)
                membership["position"] += layer["positions"].cpu().tolist()
                membership["cluster"] += members
                membership["shadow"] += [shadow] * len(members)
        return {"clusters": clusters, "transitions": transitions, "membership": membership}

    def histogram_columns(self, items: list[tuple[int, bool, list[Any]]]) -> dict[str, Any]:
        parts: dict[str, list[Any]] = {k: [] for k in schema.HISTOGRAMS.names}
        for step, shadow, layers in items:
            for i, (m_edges, m_counts, a_edges, a_counts) in layers:
                name = self.layer_names[i]
                for quantity, edges, counts in (
                    (schema.HIST_MOMENTUM, m_edges, m_counts),
                    (schema.HIST_ADAPTIVE_LR, a_edges, a_counts),
                ):
                    e = edges.cpu().numpy()
                    c = counts.cpu().numpy()
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

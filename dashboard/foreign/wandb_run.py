"""Read a local W&B run folder (offline or synced) through wandb's own records (extra `wandb`).

A run folder is `wandb/offline-run-<time>-<id>/` or `wandb/run-<time>-<id>/` holding
`run-<id>.wandb`: wandb's append-only transaction log, in which every record is one of wandb's
own `wandb_internal_pb2.Record` protobuf messages (run and config, history rows, summary, exit).
wandb no longer ships a Python reader for this log, so the framing (a 7-byte header, then
32 KiB blocks of records, each with a CRC-32 of its type byte and data, split across blocks as
FIRST/MIDDLE/LAST pieces) is read here and every record is parsed by wandb's protobuf classes.
A record whose checksum fails (the torn tail of a run still being written) ends the reading.

History rows are keyed by wandb's `_step` (one per `log` call). A metric's x axis is, as in
W&B's own charts, the step metric declared for it (`define_metric(..., step_metric=...)`), else
the trainer's step when logged (`train/global_step` from the HF Trainer, `trainer/global_step`
from Lightning's `WandbLogger`), else `_step`.
"""

from __future__ import annotations

import fnmatch
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.foreign import mapping
from dashboard.foreign.names import DEFAULT_NAMES, MetricNames

HEADER = b":W&B\xe1\xbe\x00"  # ident, magic 0xBEE1, version 0
BLOCK = 32 * 1024
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def log_file(run_dir: Path) -> Path | None:
    """The run's `run-<id>.wandb` log (None: not a wandb run folder)."""
    try:
        logs = sorted(p for p in run_dir.iterdir() if p.suffix == ".wandb" and p.is_file())
    except OSError:
        return None
    return logs[0] if logs else None


def is_run_dir(run_dir: Path) -> bool:
    return log_file(run_dir) is not None


def raw_records(data: bytes) -> Iterator[bytes]:
    """The record payloads of a wandb transaction log, in order; stops at a torn record."""
    if not data.startswith(HEADER):
        raise ValueError("not a wandb transaction log (bad header)")
    pos = len(HEADER)
    pending: bytes | None = None
    size = len(data)
    while pos + RECORD_HEADER.size <= size:
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER.size:  # a block's zero padding
            pos += left
            continue
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            return  # torn or damaged: everything before it is good
        pos = start + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            yield pending + chunk
            pending = None
        else:
            return


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None


def read(run_dir: Path, names: MetricNames = DEFAULT_NAMES) -> dict[str, Any]:
    """{"scalars", "config", "name", "status", "created", "messages"} of one wandb run folder."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = log_file(run_dir)
    if path is None:
        raise FileNotFoundError(f"no .wandb log in {run_dir}")
    data = path.read_bytes()
    config: dict[str, Any] = {}
    rows: list[dict[str, float]] = []
    step_metrics: dict[str, str] = {}  # metric name or glob -> its step metric (define_metric)
    name = None
    status = None
    created = None
    for payload in raw_records(data):
        rec = pb.Record()
        try:
            rec.ParseFromString(payload)
        except Exception:
            break
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            name = rec.run.display_name or rec.run.run_id or name
            if rec.run.HasField("start_time"):
                created = rec.run.start_time.seconds + rec.run.start_time.nanos * 1e-9
            _config_update(config, rec.run.config)
        elif kind == "config":
            _config_update(config, rec.config)
        elif kind == "history":
            row: dict[str, float] = {}
            for item in rec.history.item:
                v = _json(item.value_json)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    row[_key(item)] = float(v)
            if rec.history.HasField("step") and "_step" not in row:
                row["_step"] = float(rec.history.step.num)
            rows.append(row)
        elif kind == "metric" and rec.metric.step_metric:
            step_metrics[rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
        elif kind == "exit":
            status = "finished" if rec.exit.exit_code == 0 else "failed"
    config.pop("_wandb", None)
    return {
        "scalars": _long_form(rows, names, step_metrics),
        "config": config,
        "name": name,
        "status": status,
        "created": created,
        "messages": [],
    }


def _config_update(config: dict[str, Any], cfg: Any) -> None:
    for item in cfg.update:
        v = _json(item.value_json)
        if isinstance(v, dict) and set(v) == {"value", "desc"}:  # config.yaml style
            v = v["value"]
        config[_key(item)] = v
    for item in cfg.remove:
        config.pop(_key(item), None)


def _long_form(
    rows: list[dict[str, float]], names: MetricNames, step_metrics: dict[str, str]
) -> pd.DataFrame:
    if not rows:
        return mapping.empty_scalars()
    wide = pd.DataFrame(rows)
    logged = [c for c in wide.columns if not c.startswith("_")]
    default = names.pick("step", logged) or "_step"
    wall = wide["_timestamp"] if "_timestamp" in wide else pd.Series(np.nan, index=wide.index)
    axes: dict[str, list[str]] = {}  # step column -> the metrics charted against it
    for tag in logged:  # a step metric is kept as a series too (it tells who wrote the run)
        axis = step_metrics.get(tag) or next(
            (x for g, x in step_metrics.items() if fnmatch.fnmatchcase(tag, g)), default
        )
        axes.setdefault(axis if axis in wide else "_step", []).append(tag)
    frames = []
    for axis, tags in axes.items():
        if axis not in wide:
            continue
        # wandb's `_step` counts log calls; a step metric logged alongside (the trainer's
        # step) is the real x axis; rows without it take the last one before them
        step = wide[axis].ffill()
        keep = step.notna().to_numpy()
        long = (
            wide.loc[keep, tags]
            .assign(_x=step[keep].astype(np.int64), _w=wall[keep])
            .melt(id_vars=["_x", "_w"], var_name="tag", value_name="value")
            .dropna(subset=["value"])
        )
        frames.append(
            pd.DataFrame(
                {
                    "tag": long["tag"].to_numpy(object),
                    "step": long["_x"].to_numpy(np.int64),
                    "wall_time": long["_w"].to_numpy(np.float64),
                    "value": long["value"].to_numpy(np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else mapping.empty_scalars()

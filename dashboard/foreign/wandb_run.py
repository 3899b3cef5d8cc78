"""Read a local W&B run folder (offline or synced) through wandb's own records (extra `wandb`).

A run folder is `wandb/offline-run-<time>-<id>/` or `wandb/run-<time>-<id>/` holding
`run-<id>.wandb`: wandb's append-only transaction log, in which every record is one of wandb's
own `wandb_internal_pb2.Record` protobuf messages (run and config, history rows, summary, exit).
wandb no longer ships a Python reader for this log, so the framing (a 7-byte header, then
32 KiB blocks of records, each with a CRC-32 of its type byte and data, split across blocks as
FIRST/MIDDLE/LAST pieces) is read here and every record is parsed by wandb's protobuf classes.
A record whose checksum fails loses the rest of its block; reading goes on at the next block
(as LevelDB, whose format this is, does) and the page is told what was lost
("incomplete: 190 of 200 history rows read: `run-x.wandb` is damaged ..."). A torn last record
is a run still being written when the log changed in the last two minutes, else damage. A log
with no exit record that is no longer written to is a run that never ended: "stopped (killed or
crashed)", not "finished".

History rows are keyed by wandb's `_step` (one per `log` call). A metric's x axis is, as in
W&B's own charts, the step metric declared for it (`define_metric(..., step_metric=...)`), else
the trainer's step when logged (`train/global_step` from the HF Trainer, `trainer/global_step`
from Lightning's `WandbLogger`, or a plain `step` / `global_step` key), else `_step`. `_step`
counts `log` calls from 0, so on that axis the user's step is `_step + 1`, unless the run gave
its steps explicitly (`wandb.log(row, step=s)`: wandb's telemetry records `set_step_log`),
when `_step` is the user's own count and is kept.
"""

from __future__ import annotations

import fnmatch
import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.foreign import mapping
from dashboard.foreign.damage import STOPPED, Damage
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


@dataclass
class LogScan:
    """The records of a transaction log, where each began, and what could not be read."""

    records: list[tuple[int, bytes]] = field(default_factory=list)  # (byte offset, payload)
    damaged: list[tuple[int, int]] = field(default_factory=list)  # unreadable byte ranges
    torn_at: int | None = None  # the log ends inside a record that begins at this byte


def scan(data: bytes) -> LogScan:
    """Every whole record of a wandb transaction log, read past damage as LevelDB's own reader
    does: a record whose checksum fails (or whose header makes no sense) loses the rest of its
    32 KiB block, and reading goes on at the next block, where records start afresh (pieces of a
    record begun in the lost part are dropped with it). A record cut off by the end of the file
    is a torn tail: a run still being written, or a log cut short."""
    if not data.startswith(HEADER):
        raise ValueError("not a wandb transaction log (bad header)")
    out = LogScan()
    pos = len(HEADER)
    size = len(data)
    pending: tuple[int, bytes] | None = None  # (start, pieces so far) of a FIRST..LAST record
    while pos < size:
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER.size:  # a block's zero padding
            pos += left
            continue
        if pos + RECORD_HEADER.size > size:
            out.torn_at = pending[0] if pending else pos
            break
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        fits = length <= left - RECORD_HEADER.size and kind in (FULL, FIRST, MIDDLE, LAST)
        if fits and start + length > size:  # the writer has not finished this record
            out.torn_at = pending[0] if pending else pos
            break
        chunk = data[start : start + length]
        if not fits or zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            lost_from = pending[0] if pending else pos
            pending = None
            pos = min(pos + left, size)  # the next block
            _lose(out, lost_from, pos)
            continue
        if kind in (MIDDLE, LAST) and pending is None:  # the rest of a record lost above
            _lose(out, pos, start + length)
            pos = start + length
            continue
        if kind == FULL:
            if pending is not None:  # a FIRST without its LAST
                _lose(out, pending[0], pos)
                pending = None
            out.records.append((pos, chunk))
        elif kind == FIRST:
            if pending is not None:
                _lose(out, pending[0], pos)
            pending = (pos, chunk)
        elif kind == MIDDLE:
            pending = (pending[0], pending[1] + chunk)
        else:
            out.records.append((pending[0], pending[1] + chunk))
            pending = None
        pos = start + length
    if pending is not None and out.torn_at is None:
        out.torn_at = pending[0]
    return out


def _lose(out: LogScan, a: int, b: int) -> None:
    """Add bytes a..b to the unreadable ranges (merged with the last one when they touch)."""
    if out.damaged and a <= out.damaged[-1][1]:
        out.damaged[-1] = (min(a, out.damaged[-1][0]), max(b, out.damaged[-1][1]))
    else:
        out.damaged.append((a, b))


def raw_records(data: bytes) -> Iterator[bytes]:
    """The record payloads of a wandb transaction log, in order (past damaged blocks)."""
    for _, payload in scan(data).records:
        yield payload


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None


def read(
    run_dir: Path,
    names: MetricNames = DEFAULT_NAMES,
    *,
    live: bool | None = None,
    auto_offset: bool = True,
) -> dict[str, Any]:
    """{"scalars", "config", "name", "status", "created", "messages", "damage", "step_offset",
    "step_rule"} of one wandb run folder. `live`: the log is still being written (a torn last
    record is then expected, not damage; None: when the log changed in the last
    `mapping.LIVE_SECONDS`). `auto_offset`: map `_step` to the user's count
    (False when the user fixed the offset in foreign-metrics.json)."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = log_file(run_dir)
    if path is None:
        raise FileNotFoundError(f"no .wandb log in {run_dir}")
    data = path.read_bytes()
    if live is None:
        live = time.time() - path.stat().st_mtime < mapping.LIVE_SECONDS
    log = scan(data)
    config: dict[str, Any] = {}
    rows: list[dict[str, float]] = []
    row_at: list[int] = []  # byte offset of each history row's record
    step_metrics: dict[str, str] = {}  # metric name or glob -> its step metric (define_metric)
    name = None
    status = None
    created = None
    explicit = False  # `wandb.log(..., step=...)` was called (wandb's own telemetry says so)
    for at, payload in log.records:
        rec = pb.Record()
        try:
            rec.ParseFromString(payload)
        except Exception:  # a record of another wandb version: skip it, keep the rest
            continue
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            name = rec.run.display_name or rec.run.run_id or name
            if rec.run.HasField("start_time"):
                created = rec.run.start_time.seconds + rec.run.start_time.nanos * 1e-9
            _config_update(config, rec.run.config)
            explicit |= rec.run.telemetry.feature.set_step_log
        elif kind == "telemetry":
            explicit |= rec.telemetry.feature.set_step_log
        elif kind == "config":
            _config_update(config, rec.config)
        elif kind == "history":
            rows.append(_history_row(rec.history))
            row_at.append(at)
        elif kind == "metric" and rec.metric.step_metric:
            step_metrics[rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
        elif kind == "exit":
            status = "finished" if rec.exit.exit_code == 0 else "failed"
    config.pop("_wandb", None)
    # wandb's `_step` counts `log` calls from 0; the user's first step is 1. Given explicitly
    # (`log(row, step=s)`), it is the user's own count and is kept as it is.
    offset = int(auto_offset and not explicit)
    scalars, x, on_step = _long_form(rows, names, step_metrics, offset)
    rule = _step_rule(explicit) if on_step else None  # some metrics charted against `_step`
    damage = _damage(path, data, log, rows, row_at, x, live=live and status is None)
    if status is None and not live:  # no exit record, and no longer written: it never ended
        status = STOPPED
    return {
        "scalars": scalars,
        "config": config,
        "name": name,
        "status": status,
        "created": created,
        "messages": [],
        "damage": [damage] if damage else [],
        "step_offset": offset if on_step else 0,
        "step_rule": rule,
    }


def _history_row(history: Any) -> dict[str, float]:
    """A history record's numbers by metric name, with wandb's `_step`."""
    row: dict[str, float] = {}
    for item in history.item:
        v = _json(item.value_json)
        if isinstance(v, int | float) and not isinstance(v, bool):
            row[_key(item)] = float(v)
    if history.HasField("step") and "_step" not in row:
        row["_step"] = float(history.step.num)
    return row


def _step_rule(explicit: bool) -> str:
    """How the run's `_step` became the page's step."""
    if explicit:
        return "`_step` as logged (wandb.log was given step=)"
    return "`_step` + 1 (wandb counts log calls from 0)"


def _damage(
    path: Path,
    data: bytes,
    log: LogScan,
    rows: list[dict[str, float]],
    row_at: list[int],
    x: np.ndarray,
    *,
    live: bool,
) -> Damage | None:
    """The log's unreadable ranges and torn tail as one `Damage` (None: whole, or a live run's
    unfinished last record). Rows: the history rows read; `x` their steps as charted."""
    torn = log.torn_at is not None and not live
    if not log.damaged and not torn:
        return None
    parts = []
    if log.damaged:
        spans = ", ".join(f"{a:,}-{b - 1:,}" for a, b in log.damaged[:3])
        more = f" and {len(log.damaged) - 3} more" if len(log.damaged) > 3 else ""
        parts.append(
            f"bytes {spans}{more} of {len(data):,} could not be read (a record there fails "
            "its checksum; the rest of its 32 KiB block is skipped)"
        )
    if torn:
        parts.append(
            f"it ends in the middle of a record (byte {log.torn_at:,} of {len(data):,}), "
            "as a log the writer never finished: killed, or the file is cut short"
        )
    at = np.asarray(row_at, dtype=np.int64)
    first = log.damaged[0][0] if log.damaged else log.torn_at
    before = x[at < first]
    last = int(before.max()) if len(before) and np.isfinite(before).any() else None
    resumed = None
    if log.damaged:
        after = x[at >= log.damaged[0][1]]
        after = after[np.isfinite(after)]
        resumed = int(after.min()) if len(after) else None
    return Damage(
        file=path.name,
        unit="history rows",
        read=len(rows),
        total=_rows_written(rows, row_at, log) if not torn else None,
        cause="is damaged: " + "; ".join(parts),
        last_step=last,
        resumed_step=resumed,
        torn_tail=torn,
    )


def _rows_written(rows: list[dict[str, float]], row_at: list[int], log: LogScan) -> int | None:
    """How many history rows the log held, from the gaps in wandb's `_step` where bytes were
    lost, when the rows read are evenly spaced elsewhere (None: it cannot tell)."""
    steps = np.array([r.get("_step", np.nan) for r in rows], dtype=np.float64)
    if len(steps) < 2 or not np.isfinite(steps).all():
        return None
    at = np.asarray(row_at, dtype=np.int64)
    diffs = np.diff(steps)
    # a pair of neighbouring rows read on both sides of a lost range
    across = np.zeros(len(diffs), dtype=bool)
    for a, b in log.damaged:
        across |= (at[:-1] < a) & (at[1:] >= b)
    regular = diffs[~across]
    if not len(regular) or not np.all(regular == regular[0]) or regular[0] <= 0:
        return None
    if any(a < at[0] or b > at[-1] for a, b in log.damaged):
        return None  # lost before the first row or after the last: how many, unknown
    gaps = diffs[across] / regular[0] - 1
    if not np.all(gaps == np.round(gaps)) or (gaps < 0).any():
        return None
    return len(rows) + int(gaps.sum())


def _config_update(config: dict[str, Any], cfg: Any) -> None:
    for item in cfg.update:
        v = _json(item.value_json)
        if isinstance(v, dict) and set(v) == {"value", "desc"}:  # config.yaml style
            v = v["value"]
        config[_key(item)] = v
    for item in cfg.remove:
        config.pop(_key(item), None)


def _long_form(
    rows: list[dict[str, float]], names: MetricNames, step_metrics: dict[str, str], offset: int
) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """(long-form scalars, each row's step on the default axis, whether any metric is charted
    against `_step`) of the history rows; `offset` is added to steps on the `_step` axis."""
    if not rows:
        return mapping.empty_scalars(), np.array([], dtype=np.float64), False
    wide = pd.DataFrame(rows)
    # (row, metric) where the run logged a NaN: kept (it diverged); a metric absent from a
    # row was not logged there and is dropped
    nan_cells = {(i, k) for i, r in enumerate(rows) for k, v in r.items() if v != v}
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
        step = _axis(wide, axis, offset)
        keep = step.notna().to_numpy()
        long = (
            wide.loc[keep, tags]
            .assign(_x=step[keep].astype(np.int64), _w=wall[keep])
            .melt(id_vars=["_x", "_w"], var_name="tag", value_name="value", ignore_index=False)
        )
        written = long["value"].notna().to_numpy()
        if nan_cells:
            cells = zip(long.index, long["tag"], strict=True)
            written = written | np.fromiter((c in nan_cells for c in cells), bool, len(long))
        long = long[written]
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
    x = _axis(wide, default if default in wide else "_step", offset)
    scalars = pd.concat(frames, ignore_index=True) if frames else mapping.empty_scalars()
    return scalars, x.to_numpy(np.float64), "_step" in axes


def _axis(wide: pd.DataFrame, axis: str, offset: int) -> pd.Series:
    if axis not in wide:
        return pd.Series(np.nan, index=wide.index)
    step = wide[axis].ffill()
    return step + offset if axis == "_step" else step

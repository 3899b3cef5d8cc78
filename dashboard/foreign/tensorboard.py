"""Read a TensorBoard log directory with TensorBoard's own `EventAccumulator` (extra `tensorboard`).

A run is a folder holding `events.out.tfevents.*` files (as `SummaryWriter`, `tensorboardX`,
Lightning's `TensorBoardLogger` and the HF Trainer write them); event folders below it (what
`SummaryWriter.add_hparams` and `add_scalars` create) belong to it, their tags prefixed by the
sub-folder. Read: scalars (the classic `simple_value` and the tensor-based ones of TF2 /
`tensorboardX`), histograms, the hparams plugin's values, the HF Trainer's `args` text (its
`TrainingArguments` as JSON) and Lightning's `hparams.yaml`. The accumulators are kept for the
runs read last, so a live run's refresh reads only the events appended since (TensorBoard's
reader also drops the steps a restarted run wrote again, like TensorBoard itself).

Damage: TensorBoard's reader stops at a record cut off or failing its CRC and says so only in a
debug log (`DataLossError`, swallowed by its event loader), so the framing is checked here and
each damaged file is named ("incomplete: 301 records read: `events...` is cut off ..."). The
newest file of a run written to in the last two minutes is being appended to: its unfinished
last record is not damage.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dashboard.foreign import mapping
from dashboard.foreign.damage import Damage

EVENT_PREFIX = "events.out.tfevents."
HPARAMS_YAML = "hparams.yaml"  # Lightning's TensorBoardLogger / CSVLogger
RECORD_LENGTH = struct.Struct("<Q")  # each record: this length, 4 CRC bytes, data, 4 CRC bytes
KEEP_ACCUMULATORS = 8  # live runs whose readers stay open for incremental refreshes

_LOCK = threading.Lock()
_ACCUMULATORS: OrderedDict[str, tuple[Any, dict[str, int]]] = OrderedDict()  # acc, file sizes


def event_dirs(run_dir: Path) -> list[Path]:
    """The run folder and its sub-folders that hold event files (symlinks not followed)."""
    out = []
    for d in [run_dir, *sorted(p for p in run_dir.rglob("*") if p.is_dir())]:
        if d.is_symlink() or any(part.startswith(".") for part in d.relative_to(run_dir).parts):
            continue
        try:
            if any(f.name.startswith(EVENT_PREFIX) and f.is_file() for f in d.iterdir()):
                out.append(d)
        except OSError:
            continue
    return out


def file_signature(run_dir: Path) -> tuple:
    sig = []
    for d in event_dirs(run_dir):
        for f in sorted(d.iterdir()):
            if f.name.startswith(EVENT_PREFIX) or f.name == HPARAMS_YAML:
                try:
                    st = f.stat()
                except OSError:
                    continue
                sig.append((str(f), st.st_size, st.st_mtime_ns))
    y = run_dir / HPARAMS_YAML
    if y.is_file() and y.parent not in event_dirs(run_dir):
        st = y.stat()
        sig.append((str(y), st.st_size, st.st_mtime_ns))
    return tuple(sig)


def _accumulator(d: Path) -> Any:
    """The (cached) accumulator of one event folder, reloaded: only new events are read."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    key = str(d)
    sizes = _event_sizes(d)
    with _LOCK:
        acc, seen = _ACCUMULATORS.pop(key, (None, {}))
    if acc is not None and any(sizes.get(f, -1) < n for f, n in seen.items()):
        acc = None  # a file shrank or went (rewritten, cut): appending readers would be stale
    if acc is None:
        acc = ea.EventAccumulator(
            key,
            size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.HISTOGRAMS: 0},  # 0: keep every event
        )
    acc.Reload()
    with _LOCK:
        _ACCUMULATORS[key] = (acc, sizes)
        while len(_ACCUMULATORS) > KEEP_ACCUMULATORS:
            _ACCUMULATORS.popitem(last=False)
    return acc


def _event_sizes(d: Path) -> dict[str, int]:
    out = {}
    for f in d.iterdir():
        if f.name.startswith(EVENT_PREFIX):
            try:
                out[f.name] = f.stat().st_size
            except OSError:
                continue
    return out


def forget(run_dir: Path | None = None) -> None:
    """Drop the open readers of `run_dir` (all when None)."""
    with _LOCK:
        for cache in (_ACCUMULATORS, _SCANS):
            for key in [k for k in cache if run_dir is None or Path(k).is_relative_to(run_dir)]:
                del cache[key]


def _scalar_frame(tag: str, events: list[Any], value: Any) -> pd.DataFrame:
    n = len(events)
    return pd.DataFrame(
        {
            "tag": np.full(n, tag, dtype=object),
            "step": np.fromiter((e.step for e in events), np.int64, n),
            "wall_time": np.fromiter((e.wall_time for e in events), np.float64, n),
            "value": np.fromiter((value(e) for e in events), np.float64, n),
        }
    )


def _tensor_scalar(e: Any) -> float:
    from tensorboard.util import tensor_util

    arr = tensor_util.make_ndarray(e.tensor_proto)
    return float(arr.reshape(-1)[0]) if arr.size == 1 else float("nan")


def _text(e: Any) -> str | None:
    from tensorboard.util import tensor_util

    arr = tensor_util.make_ndarray(e.tensor_proto).reshape(-1)
    if not arr.size:
        return None
    v = arr[0]
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _hparams(acc: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams import metadata

    out: dict[str, Any] = {}
    try:
        contents = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    except KeyError:  # no hparams in this folder
        return out
    for content in contents.values():
        try:
            info = metadata.parse_session_start_info_plugin_data(content)
        except Exception:
            continue
        for k, v in info.hparams.items():
            kind = v.WhichOneof("kind")
            out[k] = getattr(v, kind) if kind else None
    return out


def _histograms(tag: str, events: list[Any]) -> dict[str, list[np.ndarray]]:
    cols: dict[str, list[np.ndarray]] = {
        c: [] for c in ("step", "bin", "bin_left", "bin_right", "count")
    }
    for e in events:
        h = e.histogram_value
        right = np.asarray(h.bucket_limit, np.float64)
        counts = np.asarray(h.bucket, np.float64)
        if not len(right):
            continue
        left = np.concatenate([[h.min], right[:-1]])
        right = np.minimum(right, max(h.max, left[-1]))  # the last limit is a huge sentinel
        n = len(right)
        cols["step"].append(np.full(n, e.step, np.int64))
        cols["bin"].append(np.arange(n, dtype=np.int32))
        cols["bin_left"].append(left)
        cols["bin_right"].append(right)
        cols["count"].append(np.round(counts).astype(np.int64))
    return cols


@dataclass(frozen=True)
class FileScan:
    """An event file's record framing (lengths only: cheap), as TensorBoard's writer lays it
    out: a uint64 length, its masked CRC-32C, the data, the data's masked CRC-32C."""

    records: int  # whole records
    end: int  # where the whole records end (== size for a whole file)
    size: int
    tail: tuple[int, ...]  # where the last few whole records begin


def frame_scan(data: bytes, keep: int = 8, since: FileScan | None = None) -> FileScan:
    """The framing of `data`; `since`: the scan of an earlier, shorter copy of the same file
    (a live run's): only what was appended after its whole records is walked."""
    pos, n = (since.end, since.records) if since is not None else (0, 0)
    tail: deque[int] = deque(since.tail if since is not None else (), maxlen=keep)
    size = len(data)
    unpack = RECORD_LENGTH.unpack_from
    while pos + RECORD_LENGTH.size + 4 <= size:
        end = pos + RECORD_LENGTH.size + 4 + unpack(data, pos)[0] + 4
        if end > size:
            break
        tail.append(pos)
        pos, n = end, n + 1
    return FileScan(n, pos, size, tuple(tail))


_SCANS: OrderedDict[str, FileScan] = OrderedDict()  # the newest files' scans, for live runs


def _scan(f: Path, data: bytes) -> FileScan:
    """`frame_scan`, continued from this file's last scan when it only grew (append-only)."""
    key = str(f)
    with _LOCK:
        old = _SCANS.pop(key, None)
    since = old if old is not None and old.size <= len(data) and _same(old, data) else None
    sc = frame_scan(data, since=since)
    with _LOCK:
        _SCANS[key] = sc
        while len(_SCANS) > 4 * KEEP_ACCUMULATORS:
            _SCANS.popitem(last=False)
    return sc


def _same(old: FileScan, data: bytes) -> bool:
    """Whether `data` still holds `old`'s last whole record where it was (not a new file)."""
    if not old.tail:
        return old.end == 0
    at = old.tail[-1]
    return at + RECORD_LENGTH.size + 8 + RECORD_LENGTH.unpack_from(data, at)[0] == old.end


def _record_offset(data: bytes, index: int) -> int:
    pos = 0
    for _ in range(index):
        pos += RECORD_LENGTH.size + 4 + RECORD_LENGTH.unpack_from(data, pos)[0] + 4
    return pos


def _event_at(data: bytes, at: int) -> Any:
    from tensorboard.compat.proto import event_pb2

    (n,) = RECORD_LENGTH.unpack_from(data, at)
    start = at + RECORD_LENGTH.size + 4
    try:
        return event_pb2.Event.FromString(data[start : start + n])
    except Exception:
        return None


def _header_ok(data: bytes, at: int) -> bool:
    """Whether the length at `at` matches its CRC (a cut record has a good header; a damaged
    length does not)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    head = data[at : at + RECORD_LENGTH.size + 4]
    if len(head) < RECORD_LENGTH.size + 4:
        return True  # too short to tell: cut
    return masked_crc32c(head[:8]) == struct.unpack_from("<I", head, 8)[0]


def records_tensorboard_reads(path: Path) -> int:
    """How many records TensorBoard's own record reader yields before it stops (the end, a
    cut-off record or a failed CRC: `DataLossError`, which its event loader swallows). Slow
    (a CRC in Python per record): only for files already suspected of damage."""
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    reader = pywrap_tensorflow.PyRecordReader_New(str(path), 0, None, None)
    n = 0
    while True:
        try:
            reader.GetNext()
        except (errors.OutOfRangeError, errors.DataLossError):
            return n
        n += 1


def _taken(acc: Any, data: bytes, sc: FileScan) -> bool | None:
    """Whether TensorBoard took the file's last summary event (its tag's events hold that
    step and wall time); None when the last records hold no summary (cannot tell)."""
    for at in reversed(sc.tail):
        ev = _event_at(data, at)
        if ev is None:
            return False  # a whole record that does not parse: damaged
        if not ev.HasField("summary") or not ev.summary.value:
            continue
        tag = ev.summary.value[0].tag
        tags = acc.Tags()
        for kind, get in (
            ("scalars", acc.Scalars),
            ("tensors", acc.Tensors),
            ("histograms", acc.Histograms),
        ):
            if tag in tags.get(kind, []):
                return any(
                    e.step == ev.step and e.wall_time == ev.wall_time for e in get(tag)[-16:]
                )
        return False  # its tag was never read
    return None


def _damage(d: Path, prefix: str, acc: Any) -> list[Damage]:
    """What TensorBoard silently did not read in one event folder: a file cut off mid-record
    (except the newest file while it is written to: its writer is still appending), or a
    record whose CRC fails (TensorBoard's reader stops at it and says so only in a debug log).
    The framing of every file is checked (cheap); a failed CRC is suspected when TensorBoard
    did not take the newest file's last summary, and is then confirmed, and the records read
    counted, with TensorBoard's own record reader."""
    files = sorted(f for f in d.iterdir() if f.name.startswith(EVENT_PREFIX) and f.is_file())
    out = []
    now = time.time()
    for i, f in enumerate(files):
        try:
            data = f.read_bytes()
            live = now - f.stat().st_mtime < mapping.LIVE_SECONDS
        except OSError:
            continue
        sc = _scan(f, data)
        newest = i == len(files) - 1
        cut = sc.end != sc.size and not (newest and live)  # live: the unfinished record
        suspect = cut or (newest and _taken(acc, data, sc) is False)
        if not suspect:
            continue
        n = records_tensorboard_reads(f)
        if n >= sc.records and not cut:
            continue  # a false alarm: all of it was read
        at = _record_offset(data, n)
        before = _event_at(data, _record_offset(data, n - 1)) if n else None
        if n < sc.records or not _header_ok(data, at):
            cause = (
                f"is damaged: record {n + 1:,} (byte {at:,} of {sc.size:,}) fails its "
                "checksum, and TensorBoard stops reading the file there"
            )
        else:
            cause = (
                f"is cut off in the middle of record {n + 1:,} (byte {at:,} of {sc.size:,}): "
                "truncated, or its writer was killed"
            )
        out.append(
            Damage(
                file=prefix + f.name,
                unit="records",
                read=n,
                total=sc.records if n < sc.records and not cut else None,
                cause=cause,
                last_step=int(before.step) if before is not None else None,
                torn_tail=cut and newest,
            )
        )
    return out


def read(run_dir: Path) -> dict[str, Any]:
    """{"scalars": long-form DataFrame, "config": dict, "histograms": Arrow table or None,
    "messages": [...], "damage": [Damage]} for one TensorBoard run folder."""
    frames: list[pd.DataFrame] = []
    config: dict[str, Any] = {}
    hist_parts: list[tuple[str, dict[str, list[np.ndarray]]]] = []
    messages: list[str] = []
    damage: list[Damage] = []
    for d in event_dirs(run_dir):
        prefix = d.relative_to(run_dir).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        try:
            acc = _accumulator(d)
        except Exception as e:  # a damaged file: say so, keep what else there is
            where = f" in `{prefix.rstrip('/')}`" if prefix else ""
            messages.append(f"TensorBoard could not read the events{where} ({e})")
            continue
        damage += _damage(d, prefix, acc)
        tags = acc.Tags()
        for tag in tags.get("scalars", []):
            frames.append(_scalar_frame(prefix + tag, acc.Scalars(tag), lambda e: e.value))
        for tag in tags.get("tensors", []):
            plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
            events = acc.Tensors(tag)
            if plugin == "scalars":
                frames.append(_scalar_frame(prefix + tag, events, _tensor_scalar))
            elif plugin == "text" and tag.split("/")[0] == "args" and events:
                text = _text(events[-1])  # the HF Trainer's TrainingArguments as JSON
                try:
                    args = json.loads(text) if text else None
                except json.JSONDecodeError:
                    args = None
                if isinstance(args, dict):
                    config = {**args, **config}
        for tag in tags.get("histograms", []):
            hist_parts.append((prefix + tag, _histograms(tag, acc.Histograms(tag))))
        config.update(_hparams(acc))
    yaml_config, note = _hparams_yaml(run_dir)
    config = {**yaml_config, **config}
    if note:
        messages.append(note)
    scalars = pd.concat(frames, ignore_index=True) if frames else mapping.empty_scalars()
    return {
        "scalars": scalars,
        "config": config,
        "histograms": _histogram_table(hist_parts),
        "messages": messages,
        "damage": damage,
    }


def _hparams_yaml(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    from dashboard.foreign import csv_logger

    return csv_logger.hparams(run_dir / HPARAMS_YAML)


def _histogram_table(parts: list[tuple[str, dict[str, list[np.ndarray]]]]) -> pa.Table | None:
    from runformat import schema

    cols: dict[str, list[np.ndarray]] = {
        c: [] for c in ("step", "layer", "bin", "bin_left", "bin_right", "count")
    }
    for tag, p in parts:
        for c, arrays in p.items():
            cols[c] += arrays
        cols["layer"] += [np.full(len(a), tag, dtype=object) for a in p["step"]]
    if not cols["step"]:
        return None
    data = {c: np.concatenate(v) for c, v in cols.items()}
    n = len(data["step"])
    data["quantity"] = np.full(n, "tensorboard", dtype=object)  # the tag says what it is of
    data["cluster"] = np.full(n, schema.WHOLE_LAYER, np.int32)
    data["shadow"] = np.zeros(n, dtype=bool)
    return schema.build_table("histograms", data)

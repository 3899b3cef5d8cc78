"""Read a TensorBoard log directory with TensorBoard's own `EventAccumulator` (extra `tensorboard`).

A run is a folder holding `events.out.tfevents.*` files (as `SummaryWriter`, `tensorboardX`,
Lightning's `TensorBoardLogger` and the HF Trainer write them); event folders below it (what
`SummaryWriter.add_hparams` and `add_scalars` create) belong to it, their tags prefixed by the
sub-folder. Read: scalars (the classic `simple_value` and the tensor-based ones of TF2 /
`tensorboardX`), histograms, the hparams plugin's values, the HF Trainer's `args` text (its
`TrainingArguments` as JSON) and Lightning's `hparams.yaml`. The accumulators are kept for the
runs read last, so a live run's refresh reads only the events appended since (TensorBoard's
reader also drops the steps a restarted run wrote again, like TensorBoard itself).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dashboard.foreign import mapping

EVENT_PREFIX = "events.out.tfevents."
HPARAMS_YAML = "hparams.yaml"  # Lightning's TensorBoardLogger / CSVLogger
KEEP_ACCUMULATORS = 8  # live runs whose readers stay open for incremental refreshes

_LOCK = threading.Lock()
_ACCUMULATORS: OrderedDict[str, Any] = OrderedDict()


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
    with _LOCK:
        acc = _ACCUMULATORS.pop(key, None)
    if acc is None:
        acc = ea.EventAccumulator(
            key,
            size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.HISTOGRAMS: 0},  # 0: keep every event
        )
    acc.Reload()
    with _LOCK:
        _ACCUMULATORS[key] = acc
        while len(_ACCUMULATORS) > KEEP_ACCUMULATORS:
            _ACCUMULATORS.popitem(last=False)
    return acc


def forget(run_dir: Path | None = None) -> None:
    """Drop the open readers of `run_dir` (all when None)."""
    with _LOCK:
        for key in [k for k in _ACCUMULATORS if run_dir is None or Path(k).is_relative_to(run_dir)]:
            del _ACCUMULATORS[key]


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


def read(run_dir: Path) -> dict[str, Any]:
    """{"scalars": long-form DataFrame, "config": dict, "histograms": Arrow table or None,
    "messages": [...]} for one TensorBoard run folder."""
    frames: list[pd.DataFrame] = []
    config: dict[str, Any] = {}
    hist_parts: list[tuple[str, dict[str, list[np.ndarray]]]] = []
    messages: list[str] = []
    for d in event_dirs(run_dir):
        prefix = d.relative_to(run_dir).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        try:
            acc = _accumulator(d)
        except Exception as e:  # a damaged file: say so, keep what else there is
            messages.append(f"`{d.name}`: TensorBoard could not read the events ({e}).")
            continue
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
    config = {**_hparams_yaml(run_dir), **config}
    scalars = pd.concat(frames, ignore_index=True) if frames else mapping.empty_scalars()
    return {
        "scalars": scalars,
        "config": config,
        "histograms": _histogram_table(hist_parts),
        "messages": messages,
    }


def _hparams_yaml(run_dir: Path) -> dict[str, Any]:
    path = run_dir / HPARAMS_YAML
    if not path.is_file():
        return {}
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


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

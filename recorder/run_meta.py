"""`run.json` as the recorder builds it: metadata of the run, its host, model and recording.

Reading and validation are `runformat.run_json`'s; writes are atomic (`runformat.atomic`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import math
import os
import platform
import socket
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from recorder.writer import RecorderError, atomic_write_json
from runformat import run_info, run_json, schema, storage


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def jsonable(obj: Any) -> Any:
    """A JSON-able copy of `obj` (dataclasses, tuples, paths, 0-d tensors, non-finite floats)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if hasattr(obj, "item") and getattr(obj, "numel", lambda: 2)() == 1:
        return jsonable(obj.item())  # 0-d tensor or numpy scalar
    if isinstance(obj, Path | storage.ObjectPath):
        return str(obj)
    return repr(obj)


def package_versions(extra: Iterable[str] = ()) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "sgg-toolkit", "pyarrow", "numpy", "transformers", *extra):
        key = name.replace("-", "_")
        try:
            out[key] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def _cpu_model() -> str:
    """The CPU's marketing name where the OS tells it (Linux /proc/cpuinfo), else platform's."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info(device: Any = None) -> dict[str, Any]:
    """Where the run ran, so that wall times are compared only between runs on the same host
    and hardware: hostname, platform, CPU model, torch threads, device name, torch version."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": None,
        "device": "cpu",
        "torch": None,
    }
    try:
        import torch
    except ImportError:  # run.json written without torch (tests, tools)
        return info
    info["torch_threads"] = torch.get_num_threads()
    info["torch"] = torch.__version__
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(dev)
    else:
        info["device"] = dev.type if dev.type != "cpu" else f"cpu ({info['cpu']})"
    return info


def model_summary(model: Any, clustered: set[int] | None = None) -> dict[str, Any] | None:
    """Layer names, shapes and parameter counts of a torch module (None without a model)."""
    if model is None:
        return None
    clustered = clustered or set()
    layers = []
    total = trainable = 0
    for name, p in model.named_parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
        layers.append(
            {
                "name": name,
                "shape": list(p.shape),
                "numel": p.numel(),
                "clustered": id(p) in clustered,
            }
        )
    return {
        "class": type(model).__name__,
        "num_parameters": total,
        "num_trainable": trainable,
        "layers": layers,
    }


def new_run_json(
    *,
    name: str,
    config: Any,
    optimizer: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    seed: int | None,
    recording: Mapping[str, Any],
    device: Any = None,
    source: str = "recorded",
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new run's run.json. `source` says what recorded it ("recorded": the Recorder in the
    user's loop, "hf" / "lightning": their callbacks); `settings`: what a callback knows of the
    training that `config` may not hold (the TrainingArguments), read into `description`."""
    now = utc_now()
    meta = {
        "format": schema.FORMAT_NAME,
        "format_version": schema.FORMAT_VERSION,
        "run_id": uuid.uuid4().hex,
        "name": name,
        "status": schema.STATUS_RUNNING,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "host": host_info(device),
        "last_flushed_step": None,
        "segments": [{"segment": 0, "resume_step": None, "started_at": now}],
        "optimizer": jsonable(optimizer),
        "config": jsonable(config),
        "model": jsonable(model),
        "seed": seed,
        "versions": package_versions(),
        "recording": jsonable(recording),
        "compacted": [],
    }
    meta["description"] = describe(meta, source=source, settings=settings)
    return meta


def describe(
    meta: Mapping[str, Any], *, source: str = "recorded", settings: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """run.json's `description` (runformat.run_info) of a run this recorder writes: its
    gradient norm is the gradient the optimizer received, after any clipping."""
    hints = jsonable(settings) if settings is not None else None
    info = run_info.derive(meta, hints=hints, source=source, grad_norm=run_info.POST_CLIP)
    return info.to_json()


def read_run_json(run_dir: storage.Where) -> dict[str, Any]:
    """The run.json of `run_dir` (a folder or a store prefix), validated; a `RecorderError`
    when this recorder cannot continue it (FileNotFoundError when there is none)."""
    path = storage.locate(run_dir) / schema.RUN_JSON
    try:
        meta = run_json.read(run_dir)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RecorderError(0, f"cannot read {path}: {exc}", str(path)) from exc
    if meta.get("format") != schema.FORMAT_NAME:
        raise RecorderError(0, f"{path} is not an {schema.FORMAT_NAME} run.json", str(path))
    checked = run_json.validate(meta, reader="this recorder")
    if checked.fatal is not None or not isinstance(meta.get("format_version"), int):
        raise RecorderError(
            0,
            f"{path} has format_version {meta.get('format_version')!r}; this recorder knows up "
            f"to {schema.FORMAT_VERSION}",
            str(path),
        )
    return meta


def write_run_json(run_dir: storage.Where, meta: dict[str, Any]) -> None:
    """Replace run.json whole (a temp file and a rename on disk, one object on a store)."""
    meta["updated_at"] = utc_now()
    atomic_write_json(storage.locate(run_dir) / schema.RUN_JSON, meta)

"""Load one foreign run into run-format tables, cached by the signature of the files behind it.

A foreign run is named by its `source` (the dict that discovery puts in its run.json-shaped
meta): `kind` ("tensorboard", "wandb", "mlflow"), `path` (the run folder, or the MLflow store)
and for MLflow the `run_id`. Loading reads it with its library, maps it (mapping.py) and keeps
the result until the files change: (path, size, mtime) of the event files, the `.wandb` log, the
MLflow run's metric files or database; finished runs are also kept on disk (disk_cache.py) for
the next dashboard process. A reader error becomes a message, never an exception.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dashboard.foreign import disk_cache, mapping
from dashboard.foreign.names import MetricNames

KINDS = ("tensorboard", "wandb", "mlflow")
LABELS = {"tensorboard": "TensorBoard", "wandb": "Weights & Biases", "mlflow": "MLflow"}
MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
MAX_CACHED_RUNS = 64


def available(kind: str) -> bool:
    """Whether the library that reads `kind` is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec(MODULES[kind]) is not None
    except (ImportError, ValueError):
        return False


def missing_extra_message(kind: str, where: str) -> str:
    """What the page says when a folder holds runs of a kind whose library is not installed."""
    return (
        f"{where} holds {LABELS[kind]} runs; reading them needs the `{kind}` extra: "
        f"`pip install '.[{kind}]'` (or `pip install 'sgg-toolkit[{kind}]'`)."
    )


@dataclass
class Loaded:
    """One foreign run, mapped: run.json-shaped `meta` and run-format Arrow tables."""

    meta: dict[str, Any]
    tables: dict[str, pa.Table] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    signature: tuple = ()


def signature(source: dict[str, Any]) -> tuple:
    """(path, size, mtime_ns) of every file the run is read from: changes when it is written."""
    path = Path(source["path"])
    kind = source["kind"]
    if kind == "tensorboard":
        from dashboard.foreign import tensorboard

        return tensorboard.file_signature(path)
    if kind == "wandb":
        from dashboard.foreign import wandb_run

        files = [wandb_run.log_file(path)]
    elif path.is_file():  # MLflow SQLite store: the database and its write-ahead log
        files = [path, path.with_name(path.name + "-wal")]
    else:  # MLflow file store: the run's folder
        run_dir = path / str(source.get("experiment_id")) / str(source.get("run_id"))
        files = [run_dir / "meta.yaml"]
        for sub in ("metrics", "params"):
            d = run_dir / sub
            if d.is_dir():
                files += sorted(p for p in d.rglob("*") if p.is_file())
    sig = []
    for f in files:
        try:
            st = f.stat() if f is not None else None
        except OSError:
            continue
        if st is not None:
            sig.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(sig)


_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple, Loaded] = OrderedDict()
_STATS = {"loads": 0}


def clear_cache() -> None:
    """Forget every loaded run and TensorBoard's open readers (the next read is cold)."""
    from dashboard.foreign import tensorboard

    with _LOCK:
        _CACHE.clear()
    tensorboard.forget()


def loads() -> int:
    """How many times a foreign run was read by its library (tests check the caches with it)."""
    return _STATS["loads"]


def load(source: dict[str, Any], names: MetricNames | None = None) -> Loaded:
    """The run behind `source`, from the cache when its files have not changed (names: those
    saved in `source` by discovery, else the defaults)."""
    if names is None:
        names = MetricNames.from_dict(source.get("metric_names"))
    key = (source["kind"], str(source["path"]), source.get("run_id"), repr(names))
    sig = signature(source)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit.signature == sig:
            _CACHE.move_to_end(key)
            return hit
    disk_key = disk_cache.key((key, sig))
    stored = disk_cache.get(disk_key)
    if stored is not None:  # read by an earlier process: the files have not changed since
        loaded = Loaded(meta=stored[0], tables=stored[1], messages=stored[2], signature=sig)
        with _LOCK:
            _CACHE[key] = loaded
        return loaded
    _STATS["loads"] += 1
    try:
        loaded = _read(source, names)
    except Exception as e:  # a damaged or unexpected file: say so, never fail the page
        where = source.get("rel") or Path(source["path"]).name
        loaded = Loaded(
            meta={},
            messages=[
                f"`{where}`: {LABELS[source['kind']]} run could not be read "
                f"({type(e).__name__}: {e})."
            ],
        )
    loaded.signature = sig
    if loaded.meta and loaded.meta.get("status") != "running":  # live runs change every refresh
        disk_cache.put(disk_key, loaded.meta, loaded.tables, loaded.messages)
    with _LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > MAX_CACHED_RUNS:
            _CACHE.popitem(last=False)
    return loaded


def _read(source: dict[str, Any], names: MetricNames) -> Loaded:
    kind = source["kind"]
    path = Path(source["path"])
    updated = max((s[2] for s in signature(source)), default=None)
    updated = updated / 1e9 if updated is not None else None
    if kind == "tensorboard":
        from dashboard.foreign import tensorboard

        raw = tensorboard.read(path)
        raw.update(name=path.name, status=None, created=None)
    elif kind == "wandb":
        from dashboard.foreign import wandb_run

        raw = wandb_run.read(path, names)
        raw["name"] = raw["name"] or path.name
    else:
        from dashboard.foreign import mlflow_store

        raw = mlflow_store.read(path, source["run_id"])
        updated = raw.get("updated") or updated
    scalars: pd.DataFrame = raw["scalars"]
    writer = written_by(kind, path, scalars, raw["config"])
    offset = names.step_offset if names.step_offset is not None else int(writer == "lightning")
    if offset:
        scalars = scalars.assign(step=scalars["step"] + offset)
    t0 = mapping.first_time(scalars)
    steps, chosen = mapping.steps_table(scalars, names, t0)
    evals, eval_chosen = mapping.evals_table(scalars, names, t0)
    logged = sorted(scalars["tag"].unique().tolist()) if len(scalars) else []
    created = raw.get("created") or (t0 if t0 else None)
    meta = mapping.build_meta(
        kind=kind,
        name=str(raw["name"]),
        config=raw["config"],
        steps=steps,
        evals=evals,
        chosen={**chosen, **{f"eval:{s}": t for s, t in eval_chosen.items()}},
        logged=logged,
        source={k: v for k, v in source.items() if k != "kind"},
        status=raw.get("status"),
        created=created,
        updated=updated,
    )
    meta["source"].update(logged=logged, writer=writer, step_offset=offset)
    tables: dict[str, pa.Table] = {}
    if steps is not None:
        tables["steps"] = steps
        lr = steps.column("lr")
        if lr.null_count < steps.num_rows:
            from runformat import schema

            keep = pc.is_valid(lr)
            tables["lrs"] = schema.build_table(
                "lrs",
                {
                    "step": steps.column("step").filter(keep),
                    "group": pa.array([0] * int(pc.sum(keep).as_py()), pa.int32()),
                    "lr": lr.filter(keep),
                },
            )
    if evals is not None:
        tables["evals"] = evals
    hist = raw.get("histograms")
    if hist is not None:
        if offset:
            i = hist.schema.get_field_index("step")
            hist = hist.set_column(i, "step", pc.add(hist.column("step"), offset))
        tables["histograms"] = hist
    messages = list(raw.get("messages") or [])
    if steps is None and evals is None:
        where = source.get("rel") or path.name
        messages.append(
            f"`{where}`: none of the logged metrics ({', '.join(logged[:8]) or 'none'}) is a "
            "loss, learning rate, gradient norm or token count under a known name; see "
            "docs/integrations.md, 'Foreign runs' to name them."
        )
    return Loaded(meta=meta, tables=tables, messages=messages)


def written_by(kind: str, path: Path, scalars: pd.DataFrame, config: dict[str, Any]) -> str | None:
    """ "lightning" when Lightning's logger wrote the run (it counts steps from 0: TensorBoard's
    `hparams.yaml` beside the events, W&B's `trainer/global_step`, MLflow's per-step `epoch`
    without the HF Trainer's `logging_steps` param), "hf" for the HF Trainer, else None."""
    logged = set(scalars["tag"].unique()) if len(scalars) else set()
    if {"train/epoch", "train/global_step"} & logged or "logging_steps" in config:
        return "hf"
    if kind == "tensorboard" and (path / "hparams.yaml").is_file():
        return "lightning"
    if kind == "wandb" and "trainer/global_step" in logged:
        return "lightning"
    if kind == "mlflow" and "epoch" in logged:
        return "lightning"
    return None


def read_table(
    meta: dict[str, Any],
    table: str,
    columns: tuple[str, ...] | None = None,
    names: MetricNames | None = None,
) -> tuple[pd.DataFrame | None, list[str], tuple]:
    """(DataFrame or None when not recorded, messages, signature) of one foreign run's table,
    with the run format's columns and types (a recorded run's `read_table` gives the same)."""
    source = meta.get("source") or {}
    loaded = load(source, names)
    t = loaded.tables.get(table)
    if t is None:
        return None, list(loaded.messages), loaded.signature
    if columns is not None:
        t = t.select([c for c in dict.fromkeys(("step", *columns)) if c in t.column_names])
    return t.to_pandas(), list(loaded.messages), loaded.signature

"""Load one foreign run into run-format tables, cached by the signature of the files behind it.

A foreign run is named by its `source` (the dict that discovery puts in its run.json-shaped
meta): `kind` ("tensorboard", "wandb", "mlflow", "csv": Lightning's CSVLogger), `path` (the
run folder, or the MLflow store) and for MLflow the `run_id`. Loading reads it with its
library, maps it (mapping.py) and keeps the result until the files change: (path, size,
mtime) of the event files, the `.wandb` log, the CSV, the MLflow run's metric files or
database; finished runs are also kept on disk (disk_cache.py) for the next dashboard process.
A reader error becomes a message, never an exception, and a
damaged file a message naming it ("`rel`: incomplete: N of M records read: ..."): these
messages reach the page through `read_table` (shown at the top, beside the run, while it is on
show: `Ctx.problems`) and through discovery (the run list's problems).
"""

from __future__ import annotations

import datetime as dt
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
from dashboard.foreign.damage import STOPPED
from dashboard.foreign.damage import message as damage_message
from dashboard.foreign.names import MetricNames
from dashboard.metrics.logged import note_nonfinite_loss

KINDS = ("tensorboard", "wandb", "mlflow", "csv")
LABELS = {
    "tensorboard": "TensorBoard",
    "wandb": "Weights & Biases",
    "mlflow": "MLflow",
    "csv": "Lightning CSVLogger",
}
MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "csv": "pandas"}
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
    elif kind == "csv":
        from dashboard.foreign import csv_logger

        files = [path / csv_logger.METRICS_CSV, path / csv_logger.HPARAMS_YAML]
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
        if hit is not None and hit.signature == sig and not _went_quiet(hit):
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
        loaded = Loaded(
            meta={},
            messages=[
                f"`{_where(source)}`: {LABELS[source['kind']]} run could not be read "
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


def _went_quiet(hit: Loaded) -> bool:
    """A run read while its files were being written that has not been written to since: read
    it again once, so that a torn last record it was left with is now named as damage."""
    meta = hit.meta
    if meta.get("status") != "running" or meta.get("source", {}).get("kind") == "mlflow":
        return False
    updated = meta.get("updated_at")
    if not updated:
        return False
    t = dt.datetime.fromisoformat(updated.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.timezone.utc) - t).total_seconds() >= mapping.LIVE_SECONDS


def _where(source: dict[str, Any], name: str | None = None) -> str:
    """How the page names the run in its messages (as `Ctx.problems` matches them)."""
    return source.get("rel") or name or Path(source["path"]).name


def _read(source: dict[str, Any], names: MetricNames) -> Loaded:
    kind = source["kind"]
    path = Path(source["path"])
    updated = max((s[2] for s in signature(source)), default=None)
    updated = updated / 1e9 if updated is not None else None
    raw = _read_raw(kind, path, source, names)
    if raw.get("updated"):
        updated = raw["updated"]
    damage = list(raw.get("damage") or [])
    if raw.get("status") is None and any(d.torn_tail for d in damage):
        raw["status"] = STOPPED  # it ends mid-record and is no longer written: never finished
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
    meta["source"].update(
        logged=logged,
        writer=writer,
        step_offset=offset or int(raw.get("step_offset") or 0),
        damaged=[d.file for d in damage],
    )
    if raw.get("step_rule") and not offset:
        meta["source"]["step_rule"] = raw["step_rule"]
    where = _where(source, meta.get("name"))
    messages = [f"`{where}`: {m}" for m in raw.get("messages") or []]
    messages += [f"`{where}`: {damage_message(d, offset)}" for d in damage]
    if not logged:
        messages.append(f"`{where}`: it logged no metrics (an empty run): nothing to compare")
    elif steps is None and evals is None:
        messages.append(
            f"`{where}`: none of the logged metrics ({', '.join(logged[:8]) or 'none'}) is a "
            "loss, learning rate, gradient norm or token count under a known name; see "
            "docs/integrations.md, 'Foreign runs' to name them."
        )
    return Loaded(
        meta=meta, tables=_tables(steps, evals, raw.get("histograms"), offset), messages=messages
    )


def _read_raw(kind: str, path: Path, source: dict[str, Any], names: MetricNames) -> dict[str, Any]:
    """What the kind's reader returns, with `name`, `status` and `created` always present."""
    if kind == "tensorboard":
        from dashboard.foreign import tensorboard

        raw = tensorboard.read(path)
        raw.update(name=path.name, status=None, created=None)
    elif kind == "csv":
        from dashboard.foreign import csv_logger

        raw = csv_logger.read(path)
        raw.update(name=csv_logger.run_name(path), status=None, created=None)
    elif kind == "wandb":
        from dashboard.foreign import wandb_run

        raw = wandb_run.read(path, names, auto_offset=names.step_offset is None)
        raw["name"] = raw["name"] or path.name
    else:
        from dashboard.foreign import mlflow_store

        raw = mlflow_store.read(path, source["run_id"])
    return raw


def _tables(
    steps: pa.Table | None, evals: pa.Table | None, hist: pa.Table | None, offset: int
) -> dict[str, pa.Table]:
    """The run-format tables: `steps` (and `lrs` from its lr), `evals`, `histograms`."""
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
    if hist is not None:
        if offset:
            i = hist.schema.get_field_index("step")
            hist = hist.set_column(i, "step", pc.add(hist.column("step"), offset))
        tables["histograms"] = hist
    return tables


def has_loss(meta: dict[str, Any]) -> bool:
    """Whether a run has loss data to compare: a recorded run always; a foreign run when a
    training or evaluation loss was found among its metrics (an empty mirror has none)."""
    source = meta.get("source")
    if not isinstance(source, dict):
        return True
    columns = source.get("columns") or {}
    return "loss" in columns or any(str(c).startswith("eval:") for c in columns)


def written_by(kind: str, path: Path, scalars: pd.DataFrame, config: dict[str, Any]) -> str | None:
    """ "lightning" when Lightning's logger wrote the run (it counts steps from 0: TensorBoard's
    or the CSVLogger's `hparams.yaml` beside the events / metrics.csv, W&B's
    `trainer/global_step`, MLflow's per-step `epoch` without the HF Trainer's `logging_steps`
    param), "hf" for the HF Trainer, else None."""
    logged = set(scalars["tag"].unique()) if len(scalars) else set()
    if {"train/epoch", "train/global_step"} & logged or "logging_steps" in config:
        return "hf"
    if kind in ("tensorboard", "csv") and (path / "hparams.yaml").is_file():
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
    df = t.to_pandas()
    if table == "steps":  # pandas reads a null loss (not logged) as NaN too: note which were
        note_nonfinite_loss(df, t)  # really logged NaN/inf, as the loader does for ours
    return df, list(loaded.messages), loaded.signature

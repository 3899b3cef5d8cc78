"""Find TensorBoard, W&B and MLflow runs under a folder, by file names, without their libraries.

What marks a run: a folder with `events.out.tfevents.*` files (TensorBoard; event folders
below it belong to it), a folder with a `run-<id>.wandb` log (W&B), a folder with Lightning's
CSVLogger `metrics.csv` (a `step` column), an MLflow file store (`mlruns/`) or an MLflow
SQLite database (each of its runs is one run). What looks like a run but cannot be read is
said, with the reason: a Lightning `version_N` folder with no metrics, a wandb run folder
without its log, a `metrics.csv` without steps, an `mlflow.db` that is not an MLflow database
(listed as an unreadable run, its problem beside it). Folders holding our own
`run.json` are left to the loader, symlinked folders are not followed and dot-folders are
skipped, as in the loader. A kind whose library is not installed is reported once per folder
with the extra to install, so the dashboard still starts without any of them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.foreign import csv_logger, mapping, reader
from dashboard.foreign.damage import STOPPED
from dashboard.foreign.mlflow_store import (
    SQLITE_SUFFIXES,
    is_file_store,
    is_sqlite_store,
    not_a_store_reason,
)
from dashboard.foreign.names import DEFAULT_NAMES, MetricNames, names_for
from dashboard.foreign.tensorboard import EVENT_PREFIX

MAX_DIRS_SCANNED = 20_000
RUN_JSON = "run.json"


@dataclass(frozen=True)
class ForeignRun:
    """A foreign run as the loader's `Run` holds one: `meta` is run.json-shaped, with `source`."""

    path: Path
    rel: str
    meta: dict = field(compare=False, hash=False)
    problems: tuple[str, ...] = ()
    readable: bool = True


@dataclass
class Found:
    runs: list[ForeignRun]
    messages: list[str]


def find(
    root: Path, refused: list[str] | None = None, not_read: list[tuple[Path, str]] | None = None
) -> list[tuple[str, Path]]:
    """(kind, path) of every foreign run folder or store under `root` (resolved), by names.
    A run whose files are symbolic links is refused (the loader reads only files under the
    root, and the libraries would follow the links): its folder is added to `refused`. What
    looks like a run but cannot be read is added to `not_read` with the reason."""
    out: list[tuple[str, Path]] = []
    not_read = not_read if not_read is not None else []
    walk = os.walk(root, followlinks=False)
    for scanned, (dirpath, dirnames, filenames) in enumerate(walk, start=1):
        if scanned > MAX_DIRS_SCANNED:
            break
        here = Path(dirpath)
        # dot-folders are private; wandb's `latest-run` repeats a run folder
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "latest-run")
        if RUN_JSON in filenames:  # one of our runs: the loader's
            dirnames[:] = []
            continue
        marked = [f for f in filenames if f.startswith(EVENT_PREFIX) or f.endswith(".wandb")]
        if marked:
            kind = "tensorboard" if marked[0].startswith(EVENT_PREFIX) else "wandb"
            dirnames[:] = []  # sub-folders' events (hparams, add_scalars) belong to this run
            if any((here / f).is_symlink() for f in marked):
                if refused is not None:
                    refused.append(_rel(here, root) or ".")
                continue
            out.append((kind, here))
            continue
        if is_file_store(here):
            out.append(("mlflow", here))
            dirnames[:] = []
            continue
        if csv_logger.METRICS_CSV in filenames and csv_logger.is_run_dir(here):
            if (here / csv_logger.METRICS_CSV).is_symlink():
                if refused is not None:
                    refused.append(_rel(here, root) or ".")
            else:
                out.append(("csv", here))
            continue
        reason = _not_a_run_reason(here, filenames)
        if reason:
            not_read.append((here, reason))
        for f in sorted(filenames):
            path = here / f
            if not f.lower().endswith(SQLITE_SUFFIXES) or path.is_symlink():
                continue
            if is_sqlite_store(path):
                out.append(("mlflow", here / f))
            elif reason := not_a_store_reason(path):
                not_read.append((path, reason))
    return out


WANDB_RUN_DIR = re.compile(r"^(offline-)?run-\d{8}_\d{6}-\w+$")


def _not_a_run_reason(here: Path, filenames: list[str]) -> str | None:
    """Why a folder that looks like a run (a Lightning log folder, a wandb run folder) is not
    one that can be read; None when it does not look like one."""
    reason = csv_logger.not_read_reason(here, filenames)
    if reason:
        return reason
    if WANDB_RUN_DIR.match(here.name) and here.parent.name == "wandb":
        return (
            "it is a wandb run folder without its `run-<id>.wandb` log (wandb writes the log "
            "while the run runs; a folder downloaded from the W&B server does not hold it)"
        )
    return None


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "" if rel == "." else rel


def discover(root: Path, names: MetricNames | None = None) -> Found:
    """Every readable foreign run under `root`, read (cached by file signature), plus messages
    for what could not be read. `names`: default, the defaults extended by the folder's
    `foreign-metrics.json`."""
    messages: list[str] = []
    if names is None:
        names, messages = names_for(root)
    runs: list[ForeignRun] = []
    missing: dict[str, list[str]] = {}
    refused: list[str] = []
    not_read: list[tuple[Path, str]] = []
    found = find(root, refused, not_read)
    messages += [f"`{r}`: its run files are symbolic links; refused." for r in refused]
    for path, reason in not_read:
        rel = _rel(path, root) or "."
        if path.is_file():  # a store: listed as an unreadable run, its problem beside it
            source = {"kind": "mlflow", "path": str(path), "rel": rel}
            damaged, why = reason.startswith("damaged: "), reason.removeprefix("damaged: ")
            word = "damaged: " if damaged else ""
            problem = f"`{rel}`: {word}`{path.name}` is not read: {why}."
            runs.append(ForeignRun(path, rel, {"source": source}, (problem,), readable=False))
        else:
            messages.append(f"`{rel}` is not read: {reason}.")
    for kind, path in found:
        rel = _rel(path, root)
        if not reader.available(kind):
            missing.setdefault(kind, []).append(rel or ".")
            continue
        if kind == "mlflow":
            runs += _mlflow_runs(path, rel, names, messages)
            continue
        source = {"kind": kind, "path": str(path), "rel": rel, **_names(names)}
        runs.append(_run(source, path, rel, names))
    for kind, where in missing.items():
        shown = ", ".join(f"`{w}`" for w in where[:3]) + (" ..." if len(where) > 3 else "")
        messages.append(reader.missing_extra_message(kind, shown))
    return Found(runs, messages)


def _names(names: MetricNames) -> dict[str, Any]:
    return {} if names == DEFAULT_NAMES else {"metric_names": names.to_dict()}


def _run(source: dict[str, Any], path: Path, rel: str, names: MetricNames) -> ForeignRun:
    loaded = reader.load(source, names)
    if not loaded.meta:
        return ForeignRun(path, rel, {"source": source}, tuple(loaded.messages), readable=False)
    meta = _fresh_status(loaded.meta)
    return ForeignRun(path, rel, meta, tuple(loaded.messages))


def _fresh_status(meta: dict[str, Any]) -> dict[str, Any]:
    """A run without an explicit end (TensorBoard, Lightning's CSV) is "running" while its
    files are being written: recomputed at every discovery, since the cached meta does not
    age."""
    if meta["source"]["kind"] not in ("tensorboard", "csv") or meta.get("status") == STOPPED:
        return meta  # a stopped run (its log ends mid-record) changes only when its files do
    updated = meta.get("updated_at")
    t = dt.datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None
    now = dt.datetime.now(dt.timezone.utc)
    live = t is not None and (now - t).total_seconds() < mapping.LIVE_SECONDS
    status = "running" if live else "finished"
    if status == meta.get("status"):
        return meta
    return {**meta, "status": status, "finished_at": None if live else updated}


_MLFLOW_LISTS: dict[tuple, list[dict[str, Any]]] = {}


def _mlflow_runs(
    store: Path, rel: str, names: MetricNames, messages: list[str]
) -> list[ForeignRun]:
    from dashboard.foreign import mlflow_store

    sig = _store_signature(store)
    try:
        listed = _MLFLOW_LISTS.get(sig)
        if listed is None:
            listed = mlflow_store.list_runs(store)
            _MLFLOW_LISTS.clear()  # one store's listing at a time is plenty
            _MLFLOW_LISTS[sig] = listed
    except Exception as e:
        messages.append(f"`{rel or store.name}`: the MLflow store could not be listed ({e}).")
        return []
    runs = []
    for r in listed:
        run_rel = "/".join(p for p in (rel, r["experiment_id"], r["run_id"]) if p)
        source = {
            "kind": "mlflow",
            "path": str(store),
            "rel": run_rel,
            "run_id": r["run_id"],
            "experiment_id": r["experiment_id"],
            "experiment": r["experiment"],
            **_names(names),
        }
        run_path = store / r["experiment_id"] / r["run_id"] if store.is_dir() else store
        runs.append(_run(source, run_path, run_rel, names))
    return runs


def _store_signature(store: Path) -> tuple:
    """Changes when a run or experiment is added (file store: its folders; SQLite: the file)."""
    try:
        if store.is_file():
            st = store.stat()
            return (str(store), st.st_size, st.st_mtime_ns)
        return (
            str(store),
            tuple(
                (e.name, tuple(sorted(c.name for c in e.iterdir())))
                for e in sorted(store.iterdir())
                if e.is_dir() and not e.name.startswith(".")
            ),
        )
    except OSError:
        return (str(store),)

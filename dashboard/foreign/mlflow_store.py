"""Read runs from a local MLflow tracking store through `MlflowClient` (extra `mlflow`).

Two kinds of store are found in a folder: a file store (`mlruns/`: experiment folders holding
`meta.yaml`, each run a folder with `meta.yaml`, `metrics/`, `params/`) and a SQLite database
(`mlflow.db` or any `*.db` / `*.sqlite` file with MLflow's tables). Each run of the store is one
dashboard run; its params are the config, its metrics' histories the scalars (MLflow keeps a
timestamp in milliseconds per value). Recent MLflow refuses to *open* a file store unless
`MLFLOW_ALLOW_FILE_STORE=true` (it only wants new data in a database); reading old runs is fine,
so the reader sets it for its own client.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.foreign import mapping

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_MAGIC = b"SQLite format 3\x00"
MLFLOW_TABLES = frozenset({"runs", "metrics", "experiments"})


def is_file_store(d: Path) -> bool:
    """An MLflow file store: `<exp id>/meta.yaml` for some experiment, plus `.trash` or
    experiment `0` (what `FileStore` creates) — checked by names only, no parsing."""
    try:
        if not ((d / ".trash").is_dir() or (d / "0" / "meta.yaml").is_file()):
            return False
        return any((e / "meta.yaml").is_file() for e in d.iterdir() if e.is_dir())
    except OSError:
        return False


def is_sqlite_store(f: Path) -> bool:
    """A SQLite file with MLflow's `runs`, `metrics` and `experiments` tables (read-only check)."""
    if f.suffix.lower() not in SQLITE_SUFFIXES or not f.is_file():
        return False
    tables = _sqlite_tables(f)
    return isinstance(tables, set) and tables >= MLFLOW_TABLES


def _sqlite_tables(f: Path) -> set[str] | str:
    """The table names of a SQLite file, or why it could not be opened as one."""
    try:
        with f.open("rb") as fh:
            if fh.read(16) != SQLITE_MAGIC:
                return "its first bytes are not SQLite's header"
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except (OSError, sqlite3.Error) as e:
        return f"SQLite cannot read it ({e})"


def not_a_store_reason(f: Path) -> str | None:
    """Why a database file that looks like an MLflow store is not read ("damaged: ..." when it
    is not a readable database; None: it is a store, or nothing says it was meant to be one).
    Named like one (`mlflow.db`, `mlruns.sqlite`): any failure is said; any other `*.db`: only
    a damaged SQLite file (a database of another program is none of ours)."""
    if f.suffix.lower() not in SQLITE_SUFFIXES or not f.is_file():
        return None
    named = any(w in f.name.lower() for w in ("mlflow", "mlruns"))
    tables = _sqlite_tables(f)
    if isinstance(tables, set):
        if tables >= MLFLOW_TABLES or not named:
            return None
        return "it is an SQLite database without MLflow's tables (runs, metrics, experiments)"
    if tables.startswith("its first bytes"):
        return f"damaged: it is not an SQLite database ({tables})" if named else None
    return f"damaged: {tables}"


def store_uri(store: Path) -> str:
    return f"sqlite:///{store}" if store.is_file() else store.as_uri()


@contextlib.contextmanager
def _client(store: Path):
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # reading an existing file store
    try:
        from mlflow import MlflowClient

        yield MlflowClient(tracking_uri=store_uri(store))
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def list_runs(store: Path) -> list[dict[str, Any]]:
    """[{"run_id", "experiment_id", "experiment", "name"}] of every active run in the store."""
    from mlflow.entities import ViewType

    out = []
    with _client(store) as client:
        for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
            token = None
            while True:
                page = client.search_runs(
                    [exp.experiment_id],
                    run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=1000,
                    page_token=token,
                )
                for r in page:
                    out.append(
                        {
                            "run_id": r.info.run_id,
                            "experiment_id": exp.experiment_id,
                            "experiment": exp.name,
                            "name": r.info.run_name or r.info.run_id,
                        }
                    )
                token = page.token
                if not token:
                    break
    return out


_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed", "RUNNING": "running"}


def read(store: Path, run_id: str) -> dict[str, Any]:
    """{"scalars", "config", "name", "status", "created", "updated", "messages"} of one run."""
    with _client(store) as client:
        run = client.get_run(run_id)
        frames = []
        for key in sorted(run.data.metrics):
            hist = client.get_metric_history(run_id, key)
            n = len(hist)
            frames.append(
                pd.DataFrame(
                    {
                        "tag": np.full(n, key, dtype=object),
                        "step": np.fromiter((m.step for m in hist), np.int64, n),
                        "wall_time": np.fromiter((m.timestamp for m in hist), np.float64, n)
                        / 1000.0,
                        "value": np.fromiter((m.value for m in hist), np.float64, n),
                    }
                )
            )
    scalars = (
        pd.concat(frames, ignore_index=True).sort_values(["tag", "step"], kind="stable")
        if frames
        else mapping.empty_scalars()
    )
    info = run.info
    return {
        "scalars": scalars,
        "config": dict(run.data.params),
        "name": info.run_name or info.run_id,
        "status": _STATUS.get(str(info.status)),
        "created": info.start_time / 1000.0 if info.start_time else None,
        "updated": info.end_time / 1000.0 if info.end_time else None,
        "messages": [],
    }

"""Keep mapped foreign runs on disk, so that a restarted dashboard does not read them again.

Reading a long TensorBoard run is slow (TensorBoard's reader checks every record's CRC in
Python without TensorFlow: seconds for 100,000 steps), while the mapped tables are small
Parquet files. One entry per (run, metric names, file signature), so a changed file is a new
entry and a stale one is never served; entries are written to a temporary folder and renamed
into place (a crash leaves no half entry) and the oldest are removed beyond `MAX_ENTRIES`.
Live runs are not written (the open in-process reader serves their refreshes).

Location: `$SGG_FOREIGN_CACHE`, else `$XDG_CACHE_HOME/sgg-toolkit/foreign`, else
`~/.cache/sgg-toolkit/foreign`; `SGG_FOREIGN_CACHE=off` turns it off. Any error (read-only
home, full disk, a damaged entry) only means reading the run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ENV = "SGG_FOREIGN_CACHE"
VERSION = 4  # bump when an entry changes (3: null for not logged; 4: Lightning run names)
MAX_ENTRIES = 256


def folder() -> Path | None:
    env = os.environ.get(ENV)
    if env is not None and env.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sgg-toolkit" / "foreign"


def key(parts: Any) -> str:
    return hashlib.sha256(repr((VERSION, parts)).encode()).hexdigest()[:32]


def get(k: str) -> tuple[dict[str, Any], dict[str, pa.Table], list[str]] | None:
    """(meta, tables, messages) stored under `k`, or None."""
    root = folder()
    d = root / k if root is not None else None
    if d is None or not d.is_dir():
        return None
    try:
        info = json.loads((d / "entry.json").read_text(encoding="utf-8"))
        tables = {t: pq.read_table(d / f"{t}.parquet") for t in info["tables"]}
        os.utime(d)  # recently used: removed last
        return info["meta"], tables, list(info["messages"])
    except Exception:
        return None


def put(k: str, meta: dict[str, Any], tables: dict[str, pa.Table], messages: list[str]) -> None:
    root = folder()
    if root is None:
        return
    tmp = root / f".{k}.{os.getpid()}.tmp"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for t, table in tables.items():
            pq.write_table(table, tmp / f"{t}.parquet")
        entry = {"meta": meta, "tables": sorted(tables), "messages": messages}
        (tmp / "entry.json").write_text(json.dumps(entry, default=str), encoding="utf-8")
        os.rename(tmp, root / k)
    except OSError:
        pass  # another process wrote it first, or the disk said no: no cache, no harm
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _evict(root)


def _evict(root: Path) -> None:
    with contextlib.suppress(OSError):
        entries = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda d: d.stat().st_mtime)
        for d in entries[: len(entries) - MAX_ENTRIES]:
            shutil.rmtree(d, ignore_errors=True)

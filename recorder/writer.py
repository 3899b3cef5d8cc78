"""Chunk writer: complete Parquet files moved into place atomically. Knows nothing about torch.

Every file this module writes goes to `.<name>.tmp` in the target directory, is fsynced, and is
then renamed with `os.replace`, so a reader (or a crash) only ever sees whole files. Any OSError
on the way (disk full, unwritable directory) becomes a `RecorderError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recorder import schema


class RecorderError(OSError):
    """The recorder cannot write where it was told to; `filename` is the path involved."""


class RunExistsError(RecorderError, FileExistsError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _as_recorder_error(exc: OSError, path: Path, what: str) -> RecorderError:
    code = exc.errno if exc.errno is not None else errno_mod.EIO
    reason = os.strerror(code) if exc.errno is not None else str(exc)
    if code == errno_mod.ENOSPC:
        reason = "no space left on device"
    return RecorderError(code, f"recorder cannot {what} {path}: {reason} ({exc})", str(path))


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call `write(binary_file)` on `.<name>.tmp`, fsync, then `os.replace` it onto `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _as_recorder_error(exc, path, "write") from exc
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Mapping[str, Any]) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def make_dirs(path: Path) -> None:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _as_recorder_error(exc, Path(path), "create directory") from exc


def to_arrow(table: str, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """Build a table with exactly the schema's columns (missing ones become nulls)."""
    sch = schema.TABLES[table]
    unknown = set(columns) - set(sch.names)
    if unknown:
        raise ValueError(f"unknown columns for table {table!r}: {sorted(unknown)}")
    n = {len(v) for v in columns.values()}
    if len(n) > 1:
        raise ValueError(f"columns of table {table!r} have different lengths: {sorted(n)}")
    rows = n.pop() if n else 0
    arrays = [
        pa.array(columns[f.name], type=f.type) if f.name in columns else pa.nulls(rows, f.type)
        for f in sch
    ]
    return pa.Table.from_arrays(arrays, schema=sch)


def write_parquet(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda f: pq.write_table(table, f, compression=schema.PARQUET_COMPRESSION))


def list_chunks(run_dir: Path, table: str, *, superseded: bool = False) -> list[Path]:
    """The table's live chunk files in write order (`schema.live_chunks`: temp files, other
    names and chunks superseded by a compacted file ignored); with `superseded=True` every
    `part-*` and `compact-*` file, live or not."""
    d = Path(run_dir) / schema.TABLES_DIR / table
    if not d.is_dir():
        return []
    names = [p.name for p in d.iterdir()]
    if superseded:
        keep = [
            n
            for n in names
            if schema.parse_chunk_name(n) is not None or schema.parse_compact_name(n) is not None
        ]
        return sorted((d / n for n in keep), key=lambda p: _key(p.name))
    return [d / n for n in schema.live_chunks(names)]


def _key(name: str) -> tuple[int, int, int]:
    part = schema.parse_chunk_name(name)
    return (*part, 0) if part is not None else (*schema.parse_compact_name(name), 1)


def remove_superseded(run_dir: Path, table: str) -> int:
    """Delete the chunks a compacted file supersedes (left by a crash); return how many."""
    live = set(list_chunks(run_dir, table))
    gone = [p for p in list_chunks(run_dir, table, superseded=True) if p not in live]
    for p in gone:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _as_recorder_error(exc, p, "remove") from exc
    if gone:
        _fsync_dir(gone[0].parent)
    return len(gone)


def read_table(run_dir: Path, table: str) -> pa.Table:
    """All chunks of one table concatenated (unreadable chunks skipped)."""
    parts = []
    for p in list_chunks(run_dir, table):
        try:
            parts.append(pq.read_table(p, schema=schema.TABLES[table]))
        except (OSError, pa.ArrowException):
            continue
    if not parts:
        return schema.TABLES[table].empty_table()
    return pa.concat_tables(parts)


class ChunkWriter:
    """Writes chunks `tables/<table>/part-<segment>-<seq>.parquet` of one segment of a run."""

    def __init__(self, run_dir: Path, segment: int) -> None:
        self.run_dir = Path(run_dir)
        self.segment = segment
        self._seq: dict[str, int] = {}
        self.bytes_written = 0
        self.chunks_written = 0

    def _next_path(self, table: str) -> Path:
        d = self.run_dir / schema.TABLES_DIR / table
        if table not in self._seq:
            make_dirs(d)
            files = list_chunks(self.run_dir, table, superseded=True)
            used = [_key(p.name)[1] for p in files if _key(p.name)[0] == self.segment]
            self._seq[table] = max(used, default=-1) + 1
        seq = self._seq[table]
        self._seq[table] += 1
        return d / schema.chunk_name(self.segment, seq)

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> Path | None:
        """Write one complete chunk; nothing is written for zero rows."""
        tbl = to_arrow(table, columns)
        if tbl.num_rows == 0:
            return None
        path = self._next_path(table)
        write_parquet(path, tbl)
        self.chunks_written += 1
        with contextlib.suppress(OSError):
            self.bytes_written += path.stat().st_size
        return path


def truncate_after(run_dir: Path, step: int) -> int:
    """Rewrite (atomically) every chunk holding rows with `step > step`; return rows dropped."""
    dropped = 0
    for table in schema.TABLES:
        remove_superseded(run_dir, table)
        for path in list_chunks(run_dir, table):
            try:
                tbl = pq.read_table(path, schema=schema.TABLES[table])
            except (OSError, pa.ArrowException):
                continue  # corrupt chunk: readers skip it too
            steps = tbl.column("step").to_numpy(zero_copy_only=False)
            keep = steps <= step
            if keep.all():
                continue
            dropped += int((~keep).sum())
            if keep.any():
                write_parquet(path, tbl.filter(pa.array(keep)))
            else:
                try:
                    path.unlink()
                except OSError as exc:
                    raise _as_recorder_error(exc, path, "remove") from exc
    return dropped


def compact(run_dir: Path, table: str, segment: int) -> bool:
    """Replace a table's chunks by one sorted file; return whether anything was compacted.

    Crash-safe without a rename of several files: the merged rows go to
    `compact-<seg>-<seq>.parquet`, whose name says it supersedes every chunk up to (seg, seq)
    (the latest chunk it merged), and only then are those chunks removed. A reader that finds
    both ignores the superseded ones (`schema.live_chunks`), so the table never holds a row twice.
    """
    remove_superseded(run_dir, table)
    chunks = list_chunks(run_dir, table)
    if len(chunks) <= 1:
        return False
    tbl = read_table(run_dir, table)
    tbl = tbl.sort_by([("step", "ascending")])
    seg, seq, _ = max(_key(p.name) for p in chunks)
    target = Path(run_dir) / schema.TABLES_DIR / table / schema.compact_name(seg, seq)
    write_parquet(target, tbl)  # from here on the old chunks are superseded
    remove_superseded(run_dir, table)
    return True

"""Chunk writer: complete Parquet chunks of one run segment, written through `runformat`.

File names, the supersede rule and atomic writes are `runformat`'s; this module adds the
recorder's bookkeeping (sequence numbers, truncation on resume, compaction) and turns any
OSError on the way (disk full, unwritable directory) into a `RecorderError` naming the path.
Knows nothing about torch.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from runformat import atomic, chunks, integrity, schema


class RecorderError(OSError):
    """The recorder cannot write where it was told to; `filename` is the path involved."""


class RunExistsError(RecorderError, FileExistsError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


def _as_recorder_error(exc: OSError, path: Path, what: str) -> RecorderError:
    code = exc.errno if exc.errno is not None else errno_mod.EIO
    reason = os.strerror(code) if exc.errno is not None else str(exc)
    if code == errno_mod.ENOSPC:
        reason = "no space left on device"
    return RecorderError(code, f"recorder cannot {what} {path}: {reason} ({exc})", str(path))


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """`runformat.atomic.atomic_write`, failing with a `RecorderError`."""
    try:
        atomic.atomic_write(path, write)
    except OSError as exc:
        raise _as_recorder_error(exc, Path(path), "write") from exc


def atomic_write_json(path: Path, obj: Mapping[str, Any]) -> None:
    try:
        atomic.atomic_write_json(path, obj)
    except OSError as exc:
        raise _as_recorder_error(exc, Path(path), "write") from exc


def make_dirs(path: Path) -> None:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _as_recorder_error(exc, Path(path), "create directory") from exc


def to_arrow(table: str, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """`runformat.schema.build_table`: exactly the schema's columns, missing ones null."""
    return schema.build_table(table, columns)


def write_parquet(path: Path, table: pa.Table) -> None:
    try:
        atomic.write_parquet(path, table)
    except OSError as exc:
        raise _as_recorder_error(exc, Path(path), "write") from exc


def list_chunks(run_dir: Path, table: str, *, superseded: bool = False) -> list[Path]:
    """The table's live chunk files in write order (`runformat.chunks.live_chunks`); with
    `superseded=True` every `part-*` and `compact-*` file, live or not."""
    d = chunks.table_dir(run_dir, table)
    if not d.is_dir():
        return []
    names = [p.name for p in d.iterdir()]
    if superseded:
        keep = [n for n in names if chunks.chunk_key(n) is not None]
        return sorted((d / n for n in keep), key=lambda p: _key(p.name))
    return [d / n for n in chunks.live_chunks(names)]


def _key(name: str) -> tuple[int, int, int]:
    key = chunks.chunk_key(name)
    assert key is not None, name
    return key


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
        atomic.fsync_dir(gone[0].parent)
    return len(gone)


def damage_warning(run_dir: Path, table: str, error: integrity.DamagedChunk, what: str) -> str:
    """The sentence for a damaged chunk met by the recorder (`what` it does about it)."""
    what_held = integrity.held(error.path)
    sentence = integrity.damage_sentence(table, error.path.name, error.reason, what_held)
    return f"{run_dir}: {sentence}; {what}"


def read_chunk(path: Path, table: str) -> pa.Table:
    """One chunk as the table's schema, page checksums verified (`integrity.DamagedChunk`)."""
    return integrity.read_chunk(path, table, whole_schema=True)


def read_table(run_dir: Path, table: str, *, damaged: str = "skip") -> pa.Table:
    """All chunks of one table concatenated, page checksums verified. A damaged chunk is
    left out with a warning naming it (`damaged="skip"`), or raised (`"raise"`)."""
    parts = []
    for p in list_chunks(run_dir, table):
        try:
            parts.append(read_chunk(p, table))
        except integrity.DamagedChunk as e:
            if damaged == "raise":
                raise
            warnings.warn(damage_warning(run_dir, table, e, "read without it"), stacklevel=2)
        except OSError:
            continue  # removed meanwhile
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
        d = chunks.table_dir(self.run_dir, table)
        if table not in self._seq:
            make_dirs(d)
            files = list_chunks(self.run_dir, table, superseded=True)
            used = [_key(p.name)[1] for p in files if _key(p.name)[0] == self.segment]
            self._seq[table] = max(used, default=-1) + 1
        seq = self._seq[table]
        self._seq[table] += 1
        return d / chunks.chunk_name(self.segment, seq)

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


def _max_step(path: Path) -> float:
    """The largest `step` in a chunk from its Parquet statistics (inf when they are missing or
    the file is unreadable: the caller then reads it)."""
    try:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("step")
        highest = -math.inf
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max:
                return math.inf
            highest = max(highest, stats.max)
        return highest
    except (OSError, pa.ArrowException, ValueError):
        return math.inf


def truncate_after(run_dir: Path, step: int) -> int:
    """Rewrite (atomically) every chunk holding rows with `step > step`; return rows dropped."""
    dropped = 0
    for table in schema.TABLES:
        remove_superseded(run_dir, table)
        for path in list_chunks(run_dir, table):
            if _max_step(path) <= step:
                continue  # the chunk's statistics say it holds no later row: not read
            try:
                tbl = read_chunk(path, table)
            except integrity.DamagedChunk as e:  # kept as it is: readers name it too
                warnings.warn(damage_warning(run_dir, table, e, "left as it is"), stacklevel=2)
                continue
            except OSError:
                continue
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
    both ignores the superseded ones (`runformat.chunks.live_chunks`): no row is read twice.
    """
    remove_superseded(run_dir, table)
    files = list_chunks(run_dir, table)
    if len(files) <= 1:
        return False
    try:
        tbl = read_table(run_dir, table, damaged="raise")
    except integrity.DamagedChunk as e:
        # merging would drop the damaged rows and its name with them: readers could no longer
        # say that something is missing
        warnings.warn(damage_warning(run_dir, table, e, "the table is not compacted"), stacklevel=2)
        return False
    tbl = tbl.sort_by([("step", "ascending")])
    seg, seq, _ = max(_key(p.name) for p in files)
    target = chunks.table_dir(run_dir, table) / chunks.compact_name(seg, seq)
    write_parquet(target, tbl)  # from here on the old chunks are superseded
    remove_superseded(run_dir, table)
    return True

"""Chunk writer: complete Parquet chunks of one run segment, written through `runformat`.

File names, the supersede rule, atomic writes and where a run lives (a local folder or an
object store: `runformat.storage`) are `runformat`'s; this module adds the recorder's
bookkeeping (sequence numbers, truncation on resume, compaction) and turns any OSError on the
way (disk full, unwritable directory, a store that refuses) into a `RecorderError` naming the
path. Knows nothing about torch.

Every function takes a run directory as a `pathlib.Path` or a `storage.ObjectPath` (what
`storage.locate` returns) and returns chunk paths of the same kind; names and signatures are
stable for the recorder's background writer, which calls `ChunkWriter.write`, `compact` and
`atomic_write_json` off the training thread (none holds state shared with another call but
the `ChunkWriter`'s sequence numbers).
"""

from __future__ import annotations

import errno as errno_mod
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from runformat import atomic, chunks, integrity, schema, storage
from runformat.storage import Where


class RecorderError(OSError):
    """The recorder cannot write where it was told to; `filename` is the path involved."""


class RunExistsError(RecorderError, FileExistsError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


def _as_recorder_error(exc: OSError, path: Where, what: str) -> RecorderError:
    code = exc.errno if exc.errno is not None else errno_mod.EIO
    reason = os.strerror(code) if exc.errno is not None else str(exc)
    if code == errno_mod.ENOSPC:
        reason = "no space left on device"
    text = storage.scrub(f"recorder cannot {what} {path}: {reason} ({exc})")
    return RecorderError(code, text, str(path))


def atomic_write(path: Where, write: Callable[[IO[bytes]], Any]) -> int:
    """`runformat.atomic.atomic_write` (a local path or an object), failing with a
    `RecorderError`; returns the bytes written."""
    try:
        return atomic.atomic_write(path, write)
    except OSError as exc:
        raise _as_recorder_error(exc, storage.locate(path), "write") from exc


def atomic_write_json(path: Where, obj: Mapping[str, Any]) -> None:
    try:
        atomic.atomic_write_json(path, obj)
    except OSError as exc:
        raise _as_recorder_error(exc, storage.locate(path), "write") from exc


def make_dirs(path: Where) -> None:
    """A local folder (nothing on a store: a key prefix needs no object)."""
    try:
        storage.make_dirs(storage.locate(path))
    except OSError as exc:
        raise _as_recorder_error(exc, storage.locate(path), "create directory") from exc


def to_arrow(table: str, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """`runformat.schema.build_table`: exactly the schema's columns, missing ones null."""
    return schema.build_table(table, columns)


def write_parquet(path: Where, table: pa.Table) -> int:
    """One whole chunk (`runformat.atomic.write_parquet`); returns its size in bytes."""
    try:
        return atomic.write_parquet(path, table)
    except OSError as exc:
        raise _as_recorder_error(exc, storage.locate(path), "write") from exc


def list_chunks(run_dir: Where, table: str, *, superseded: bool = False) -> list[Where]:
    """The table's live chunk files in write order (`runformat.chunks.live_chunks`); with
    `superseded=True` every `part-*` and `compact-*` file, live or not. One listing (a
    request on a store)."""
    d = chunks.table_dir(run_dir, table)
    try:
        names = storage.list_names(d)
    except OSError as exc:
        raise _as_recorder_error(exc, d, "list") from exc
    if not names:
        return []
    if superseded:
        keep = [n for n in names if chunks.chunk_key(n) is not None]
        return sorted((d / n for n in keep), key=lambda p: _key(p.name))
    return [d / n for n in chunks.live_chunks(names)]


def _key(name: str) -> tuple[int, int, int]:
    key = chunks.chunk_key(name)
    assert key is not None, name
    return key


def remove_superseded(run_dir: Where, table: str) -> int:
    """Delete the chunks a compacted file supersedes (left by a crash); return how many."""
    every = list_chunks(run_dir, table, superseded=True)
    live = set(chunks.live_chunks([p.name for p in every]))
    gone = [p for p in every if p.name not in live]
    for p in gone:
        try:
            storage.delete(p)
        except OSError as exc:
            raise _as_recorder_error(exc, p, "remove") from exc
    if gone:
        atomic.fsync_dir(gone[0].parent)
    return len(gone)


def damage_warning(run_dir: Where, table: str, error: integrity.DamagedChunk, what: str) -> str:
    """The sentence for a damaged chunk met by the recorder (`what` it does about it)."""
    what_held = integrity.held(error.path)
    sentence = integrity.damage_sentence(table, error.path.name, error.reason, what_held)
    return f"{run_dir}: {sentence}; {what}"


def read_chunk(path: Where, table: str) -> pa.Table:
    """One chunk as the table's schema, page checksums verified (`integrity.DamagedChunk`)."""
    return integrity.read_chunk(path, table, whole_schema=True)


def read_table(run_dir: Where, table: str, *, damaged: str = "skip") -> pa.Table:
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

    def __init__(self, run_dir: Where, segment: int) -> None:
        self.run_dir = storage.locate(run_dir)
        self.segment = segment
        self._seq: dict[str, int] = {}
        self.bytes_written = 0
        self.chunks_written = 0

    def _next_path(self, table: str) -> Where:
        d = chunks.table_dir(self.run_dir, table)
        if table not in self._seq:
            make_dirs(d)
            files = list_chunks(self.run_dir, table, superseded=True)
            used = [_key(p.name)[1] for p in files if _key(p.name)[0] == self.segment]
            self._seq[table] = max(used, default=-1) + 1
        seq = self._seq[table]
        self._seq[table] += 1
        return d / chunks.chunk_name(self.segment, seq)

    def write(self, table: str, columns: Mapping[str, Sequence[Any]]) -> Where | None:
        """Write one complete chunk; nothing is written for zero rows. Returns its path."""
        tbl = to_arrow(table, columns)
        if tbl.num_rows == 0:
            return None
        path = self._next_path(table)
        self.bytes_written += write_parquet(path, tbl)
        self.chunks_written += 1
        return path


def _max_step(path: Where) -> float:
    """The largest `step` in a chunk from its Parquet statistics (inf when they are missing or
    the file is unreadable: the caller then reads it)."""
    try:
        meta = pq.read_metadata(storage.open_input(path))
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


def truncate_after(run_dir: Where, step: int) -> int:
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
                    storage.delete(path)
                except OSError as exc:
                    raise _as_recorder_error(exc, path, "remove") from exc
    return dropped


def compact(run_dir: Where, table: str, segment: int) -> bool:
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

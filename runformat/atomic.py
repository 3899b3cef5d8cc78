"""Atomic writes: a reader (or a crash) only ever sees whole files.

On disk every file goes to `.<name>.tmp` beside its target, is fsynced, then `os.replace`d onto
the target and the folder is fsynced. On an object store (`runformat.storage`) the bytes are
built in memory and sent as one object (one PUT, or a multipart upload the store shows only
once completed): the store never shows a part of it, and a rewrite (run.json) replaces the
previous object whole. Errors are the plain `OSError` of the failing call (the temp file
removed); callers turn them into their own messages.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from runformat import integrity, storage


def temp_path(path: Path) -> Path:
    """Where `atomic_write` stages `path` (a name readers skip: it starts with a dot)."""
    return path.with_name(f".{path.name}.tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: not every filesystem allows it;
    nothing to do on an object store)."""
    if storage.is_store(path):
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike[str] | storage.ObjectPath, write: Callable[[IO[bytes]], Any]
) -> int:
    """Call `write(binary_file)`, then make the result appear at `path` whole (on disk: a temp
    file, fsync, `os.replace`; on a store: one object). Returns the bytes written."""
    where = storage.locate(path)
    if storage.is_store(where):
        buf = io.BytesIO()
        write(buf)  # everything first: a failure here sends nothing
        data = buf.getvalue()
        storage.put(where, data)
        return len(data)
    tmp = temp_path(where)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, where)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(where.parent)
    return size


def atomic_write_json(
    path: str | os.PathLike[str] | storage.ObjectPath, obj: Mapping[str, Any]
) -> int:
    """Write `obj` as indented JSON (NaN refused: run.json must be valid JSON)."""
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def write_parquet(path: str | os.PathLike[str] | storage.ObjectPath, table: pa.Table) -> int:
    """Write one complete Parquet chunk atomically (the format's compression, and a checksum
    on every page: `runformat.integrity`); returns its size in bytes."""
    return atomic_write(path, lambda f: integrity.write_chunk(table, f))

"""Atomic writes: a reader (or a crash) only ever sees whole files.

Every file goes to `.<name>.tmp` beside its target, is fsynced, then `os.replace`d onto the
target and the folder is fsynced. Errors are the plain `OSError` of the failing call (the temp
file removed); callers turn them into their own messages.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from runformat import integrity


def temp_path(path: Path) -> Path:
    """Where `atomic_write` stages `path` (a name readers skip: it starts with a dot)."""
    return path.with_name(f".{path.name}.tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(binary_file)` on the temp file, fsync, then `os.replace` it onto `path`."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Mapping[str, Any]) -> None:
    """Write `obj` as indented JSON (NaN refused: run.json must be valid JSON)."""
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def write_parquet(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write one complete Parquet chunk atomically (the format's compression, and a checksum
    on every page: `runformat.integrity`)."""
    atomic_write(path, lambda f: integrity.write_chunk(table, f))

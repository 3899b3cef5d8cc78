"""Chunk file names and THE supersede rule: which chunk files of a table a reader uses.

A table is the folder `tables/<table>/` of Parquet chunks `part-<segment>-<seq>.parquet`, in
write order when sorted by name. A compaction writes `compact-<segment>-<seq>.parquet`, which
supersedes every `part-*` up to (segment, seq) and every older `compact-*`: a crash between
writing a compacted file and removing what it replaces never doubles a row.
"""

from __future__ import annotations

import os

from runformat import storage
from runformat.schema import TABLES_DIR

PART = "part"
COMPACT = "compact"
SUFFIX = ".parquet"


def chunk_name(segment: int, seq: int) -> str:
    """File name of one chunk: sorting names sorts chunks in write order."""
    if not (0 <= segment <= 999):
        raise ValueError(f"segment must be in [0, 999], got {segment!r}")
    if not (0 <= seq <= 999_999):
        raise ValueError(f"seq must be in [0, 999999], got {seq!r}")
    return f"{PART}-{segment:03d}-{seq:06d}{SUFFIX}"


def compact_name(segment: int, seq: int) -> str:
    """File name of a compacted chunk superseding every chunk up to (segment, seq)."""
    return COMPACT + chunk_name(segment, seq)[len(PART) :]


def chunk_key(name: str) -> tuple[int, int, int] | None:
    """(segment, seq, 0 for a part / 1 for a compacted file), or None for any other name
    (temp files `.<name>.tmp` included): sorting keys sorts chunks in write order."""
    if name.startswith(".") or not name.endswith(SUFFIX):
        return None
    kind, _, rest = name[: -len(SUFFIX)].partition("-")
    parts = rest.split("-")
    if kind not in (PART, COMPACT) or len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(kind == COMPACT)


def parse_chunk_name(name: str) -> tuple[int, int] | None:
    """(segment, seq) of a `part-*` file name, or None."""
    key = chunk_key(name)
    return key[:2] if key is not None and key[2] == 0 else None


def parse_compact_name(name: str) -> tuple[int, int] | None:
    """(segment, seq) of a `compact-*` file name, or None."""
    key = chunk_key(name)
    return key[:2] if key is not None and key[2] == 1 else None


def live_chunks(names: list[str]) -> list[str]:
    """The chunk files a reader uses, in write order: with a `compact-S-Q` file present, the
    latest one plus the `part-*` files after (S, Q). Other names are not chunks."""
    keyed = sorted((k, n) for n in names if (k := chunk_key(n)) is not None)
    cut = max((k for k, _ in keyed if k[2] == 1), default=None)
    if cut is None:
        return [n for _, n in keyed]
    return [n for k, n in keyed if k[:2] > cut[:2] or k == cut]


def superseded(names: list[str]) -> set[str]:
    """The chunk files among `names` that a compacted file replaces (not live, not read)."""
    live = set(live_chunks(names))
    return {n for n in names if chunk_key(n) is not None and n not in live}


def table_dir(run_dir: str | os.PathLike[str] | storage.ObjectPath, table: str) -> storage.Where:
    """`<run_dir>/tables/<table>`: the folder of one table's chunks (a key prefix on a
    store)."""
    return storage.locate(run_dir) / TABLES_DIR / table

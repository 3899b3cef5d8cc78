"""Whole chunks only: page checksums written with every chunk and verified on every read.

Parquet's footer has no checksum, but each data page can carry a CRC-32 of its bytes
(`write_page_checksum`); a reader that verifies them (`page_checksum_verification`) fails on a
flipped bit instead of decoding a gradient norm of 29.2 that was 2.05. A chunk that fails any
check is *damaged*: readers leave it out and say so in one sentence (`damage_sentence`), never
show its values. Chunks written before checksums still read (a page without a CRC is not
verified); a cut-short file is found without reading its data (`cut_short`: its last bytes).
Chunks are read from a local path or an object store alike (`runformat.storage`).

Needs pyarrow and the standard library only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from runformat import storage
from runformat.schema import PARQUET_COMPRESSION, TABLES

WRITE_OPTIONS = {"compression": PARQUET_COMPRESSION, "write_page_checksum": True}
VERIFY = {"page_checksum_verification": True}  # keyword arguments of every chunk read
MAGIC = b"PAR1"
CHECKSUM_MISMATCH = "page checksum mismatch"
CUT_SHORT = "corrupt or half-written: it does not end with a Parquet footer"


class DamagedChunk(ValueError):
    """A chunk that cannot be read whole; `reason` says why in words."""

    def __init__(self, path: str | os.PathLike[str] | storage.ObjectPath, reason: str) -> None:
        self.path = storage.locate(path)
        super().__init__(f"{self.path.name}: {reason}")
        self.reason = reason


def write_chunk(table: pa.Table, where) -> None:
    """`pq.write_table` with the format's compression and page checksums (`where`: a path or
    a binary file)."""
    pq.write_table(table, where, **WRITE_OPTIONS)


def scan_format():
    """The Parquet format for `pyarrow.dataset` scans of chunks, verifying page checksums
    (`pyarrow.dataset` is imported here: it imports pandas, which runformat does not need)."""
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(**VERIFY)
    )


def cut_short(path: str | os.PathLike[str] | storage.ObjectPath) -> str | None:
    """Why the file cannot be a whole Parquet file, from its size and last 8 bytes (a footer
    length and the magic), or None when it looks whole. One small read: cheap enough for
    every chunk of every run at listing time on disk (on a store, a request)."""
    try:
        size, head, tail = storage.read_tail(storage.locate(path), 8)
    except OSError:
        return None  # gone (a compaction removed it) or not allowed: a read says which
    if size < 12:
        return CUT_SHORT
    (footer_len,) = struct.unpack("<I", tail[:4])
    if head != MAGIC or tail[4:] != MAGIC or footer_len + 12 > size:
        return CUT_SHORT
    return None


def reason_of(
    error: BaseException, path: str | os.PathLike[str], part: str = "pages"
) -> str | None:
    """The damage a failed read of `path` shows, in words (`part`: "footer" when opening the
    file failed, "pages" when reading its data did); None when the error says nothing about
    the file's bytes (it was removed meanwhile, or may not be read)."""
    if isinstance(error, DamagedChunk):
        return error.reason
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
        return None
    text = str(error)
    if "checksum" in text.lower():
        return CHECKSUM_MISMATCH
    short = cut_short(path)
    if short:
        return short
    detail = " ".join(text.replace("(", "").replace(")", "").split())[:100]
    if part == "footer":
        return f"corrupt or half-written: its Parquet footer cannot be read: {detail}"
    return f"its data pages cannot be decoded: {detail}"


def unexpected_columns(table: str, names: list[str]) -> str | None:
    """Why a chunk's columns are not the table's (a name the format does not define: a flipped
    bit in the footer renames a column), or None. Missing columns are not damage: an older
    version's chunk lacks the columns added since, which read as nulls."""
    known = set(TABLES[table].names)
    odd = [n for n in names if n not in known]
    if not odd:
        return None
    return "its columns are not the format's: " + ", ".join(repr(n) for n in odd[:3])


def read_chunk(
    path: str | os.PathLike[str] | storage.ObjectPath,
    table: str,
    columns: list[str] | tuple[str, ...] | None = None,
    *,
    whole_schema: bool = False,
    size: int | None = None,
    text_as_dictionary: bool = False,
) -> pa.Table:
    """One chunk, page checksums verified: only `columns` that it holds when given; with
    `whole_schema`, exactly the table's schema (columns it lacks as nulls). Raises
    `DamagedChunk` for any damage; OSError when the file is gone or may not be read. `size`:
    the object's size when a listing gave it (a store reads a small object by one GET);
    `text_as_dictionary`: text columns come back dictionary-encoded (`verify_chunk`)."""
    options = dict(VERIFY)
    if text_as_dictionary:
        options["read_dictionary"] = TEXT_COLUMNS[table]
    try:
        pf = pq.ParquetFile(storage.open_input(path, size), **options)
    except Exception as e:
        raise _damaged(e, path, "footer") from e
    with pf:
        names = pf.schema_arrow.names
        odd = unexpected_columns(table, names)
        if odd:
            raise DamagedChunk(path, odd)
        cols = None if columns is None else [c for c in columns if c in names]
        try:
            t = pf.read(columns=cols, use_threads=False)
        except Exception as e:
            raise _damaged(e, path) from e
    if not whole_schema:
        return t
    try:
        return fill_schema(t, table)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DamagedChunk(path, f"its columns have types the format does not define ({e})") from e


# each table's text columns (layer names, quantities, splits): repeated values, which a read
# for verification leaves dictionary-encoded
TEXT_COLUMNS = {
    t: [f.name for f in s if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    for t, s in TABLES.items()
}


def verify_chunk(
    path: str | os.PathLike[str] | storage.ObjectPath, table: str, *, size: int | None = None
) -> int:
    """Check a whole chunk, every page's checksum, and return its rows; `DamagedChunk` when it
    is damaged. Reads what `read_chunk` reads (every page, decompressed and decoded) but keeps
    the text columns as dictionaries instead of building a string per row: the same check in
    half the time for histograms and membership, whose layer names repeat on every row."""
    return read_chunk(path, table, size=size, text_as_dictionary=True).num_rows


def _damaged(error: Exception, path: str | os.PathLike[str], part: str = "pages") -> Exception:
    reason = reason_of(error, path, part)
    return error if reason is None else DamagedChunk(path, reason)


def fill_schema(t: pa.Table, table: str) -> pa.Table:
    """`t` as exactly the table's schema: columns it lacks (an older version) become nulls."""
    schema = TABLES[table]
    arrays = [
        t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class Held:
    """What a chunk's footer says it holds: rows and the range of their steps."""

    rows: int
    first_step: int | None
    last_step: int | None


def held(path: str | os.PathLike[str] | storage.ObjectPath) -> Held | None:
    """Rows and step range from the footer (None when the footer itself is unreadable)."""
    try:
        meta = pq.read_metadata(storage.open_input(path))
        first = last = None
        index = meta.schema.to_arrow_schema().get_field_index("step")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics if index >= 0 else None
            if stats is None or not stats.has_min_max:
                first = last = None
                break
            first = stats.min if first is None else min(first, stats.min)
            last = stats.max if last is None else max(last, stats.max)
        return Held(meta.num_rows, first, last)
    except Exception:
        return None


def damage_sentence(table: str, name: str, reason: str, what: Held | None) -> str:
    """'steps chunk part-000-000001.parquet is damaged (page checksum mismatch); its 100
    steps (1 to 100) are left out': what is missing, as far as the file still says."""
    head = f"{table} chunk {name} is damaged ({reason})"
    if what is None:
        return f"{head}; the {'steps' if table == 'steps' else 'rows'} it holds are left out"
    span = ""
    if what.first_step is not None and what.last_step is not None:
        span = (
            f"{what.first_step}"
            if what.first_step == what.last_step
            else f"{what.first_step} to {what.last_step}"
        )
    verb = "is" if what.rows == 1 else "are"
    if table == "steps":
        unit = "step" if what.rows == 1 else "steps"
        where = f" ({span})" if span else ""
    else:
        unit = "row" if what.rows == 1 else "rows"
        where = f" (steps {span})" if span else ""
    return f"{head}; its {what.rows:,} {unit}{where} {verb} left out"

"""`integrity.verify_chunk` (the check `verify_runs` makes of the tables no view reads next)
finds what `read_chunk` finds, on disk and on the store: flipped bits in a text column's
dictionary, in a number column's pages, a cut-short file; and reads what a whole chunk holds."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from store_helpers import record, upload

from runformat import chunks, integrity, storage


def _page_end(path, column: str) -> int:
    meta = pq.read_metadata(path)
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index(column))
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    return start + col.total_compressed_size


def _flip(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def histograms(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    record(str(run), steps=12, flush_every_steps=12)
    return chunks.table_dir(run, "histograms") / chunks.chunk_name(0, 0)


@pytest.mark.parametrize("damage", ["layer", "count", "cut"])
def test_verify_chunk_finds_what_a_whole_read_finds(histograms, tmp_path, store, damage):
    path = histograms
    assert integrity.verify_chunk(path, "histograms") == pq.read_metadata(path).num_rows
    broken = tmp_path / path.name
    broken.write_bytes(path.read_bytes())
    if damage == "cut":
        broken.write_bytes(path.read_bytes()[:-20])
    else:  # the last bytes of the column's pages: its text dictionary / its numbers
        _flip(broken, _page_end(path, damage) - 3)
    with pytest.raises(integrity.DamagedChunk) as whole:
        integrity.read_chunk(broken, "histograms")
    with pytest.raises(integrity.DamagedChunk) as verified:
        integrity.verify_chunk(broken, "histograms")
    assert verified.value.reason == whole.value.reason
    upload(tmp_path, f"{store}/damaged")
    on_store = storage.locate(f"{store}/damaged") / path.name
    with pytest.raises(integrity.DamagedChunk) as remote:
        integrity.verify_chunk(on_store, "histograms")
    assert remote.value.reason == whole.value.reason
    assert str(remote.value.path) == str(on_store)

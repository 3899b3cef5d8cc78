"""Page checksums (issue 17): every chunk is written with a CRC per page and read verified, so a
flipped bit is a named damaged chunk, never a number; chunks written before still read."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runformat import atomic, chunks, integrity, schema


def steps_table(first: int, n: int) -> pa.Table:
    rng = np.random.default_rng(first)
    steps = np.arange(first, first + n)
    return schema.build_table(
        "steps",
        {
            "step": steps,
            "wall_time": steps * 0.1,
            "loss": 3.0 - np.log1p(steps) * 0.1,
            "grad_norm": rng.lognormal(0.7, 0.2, n),
            "lr": np.full(n, 4e-3),
        },
    )


def page_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of the column chunks (pages) of a Parquet file, from its footer."""
    meta = pq.read_metadata(path)
    out = []
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page else None
            start = start if start is not None else col.data_page_offset
            out.append((start, start + col.total_compressed_size))
    return out


def flipped(path: Path, at: int, bit: int, to: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[at] ^= 1 << bit
    to.write_bytes(bytes(data))
    return to


def value_positions(path: Path, column: str) -> tuple[int, int]:
    """The last bytes of one column's pages: its last page's values (past its header)."""
    meta = pq.read_metadata(path)
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index(column))
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    end = start + col.total_compressed_size
    return end - 16, end


def test_a_flipped_bit_in_a_data_page_is_a_named_damaged_chunk(tmp_path):
    """Flips in the grad_norm values of a chunk written by the format: never read as numbers.
    Without verification (as before) some of the same flips read as other numbers."""
    good = tmp_path / chunks.chunk_name(0, 1)
    original = steps_table(101, 100)
    atomic.write_parquet(good, original)
    lo, hi = value_positions(good, "grad_norm")
    rng = random.Random(3)
    silent = 0
    for k in range(40):
        bad = flipped(good, rng.randrange(lo, hi), rng.randrange(8), tmp_path / f"bad{k}")
        with pytest.raises(integrity.DamagedChunk) as err:
            integrity.read_chunk(bad, "steps")
        assert err.value.reason == integrity.CHECKSUM_MISMATCH
        try:
            unverified = pq.read_table(bad).column("grad_norm")
            silent += not unverified.equals(original.column("grad_norm"))
        except (OSError, pa.ArrowException):
            pass
    assert silent, "no flip went unnoticed without checksums: the test shows nothing"
    what = integrity.held(good)
    sentence = integrity.damage_sentence("steps", good.name, integrity.CHECKSUM_MISMATCH, what)
    assert sentence == (
        "steps chunk part-000-000001.parquet is damaged (page checksum mismatch); its 100 "
        "steps (101 to 200) are left out"
    )


def test_any_flip_in_a_chunk_is_damage_or_changes_nothing(tmp_path):
    """Flips anywhere in the pages (headers included): the read either names the damage or
    returns exactly what was written."""
    good = tmp_path / "part-000-000000.parquet"
    original = steps_table(1, 300)
    atomic.write_parquet(good, original)
    ranges = page_ranges(good)
    rng = random.Random(11)
    for k in range(60):
        lo, hi = rng.choice(ranges)
        bad = flipped(good, rng.randrange(lo, hi), rng.randrange(8), tmp_path / f"b{k}")
        try:
            back = integrity.read_chunk(bad, "steps", whole_schema=True)
        except integrity.DamagedChunk:
            continue
        assert back.equals(original), k


def test_chunks_written_without_checksums_still_read(tmp_path):
    old = tmp_path / "part-000-000000.parquet"
    original = steps_table(1, 50)
    pq.write_table(original, old, compression="zstd")  # as written before issue 17
    assert integrity.read_chunk(old, "steps").equals(original)
    v1 = pa.table({"step": pa.array([1, 2], pa.int64()), "loss": [2.0, 1.5]})  # format 1
    pq.write_table(v1, tmp_path / "v1.parquet")
    back = integrity.read_chunk(tmp_path / "v1.parquet", "steps", whole_schema=True)
    assert back.schema == schema.STEPS and back.column("optimizer_time").null_count == 2


@pytest.mark.parametrize("keep", [0, 3, 11, 0.5, 0.99])
def test_a_cut_short_chunk_is_found_from_its_last_bytes(tmp_path, keep):
    path = tmp_path / "part-000-000000.parquet"
    atomic.write_parquet(path, steps_table(1, 100))
    assert integrity.cut_short(path) is None
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
    assert integrity.cut_short(path) == integrity.CUT_SHORT
    with pytest.raises(integrity.DamagedChunk, match="does not end with a Parquet footer"):
        integrity.read_chunk(path, "steps")
    assert integrity.cut_short(tmp_path / "gone.parquet") is None  # removed: not damage


def test_a_renamed_column_is_damage_a_missing_one_is_an_older_version(tmp_path):
    t = steps_table(1, 10)
    renamed = t.rename_columns(["lozs" if n == "loss" else n for n in t.column_names])
    pq.write_table(renamed, tmp_path / "r.parquet")
    with pytest.raises(integrity.DamagedChunk, match="'lozs'"):
        integrity.read_chunk(tmp_path / "r.parquet", "steps")
    pq.write_table(t.drop_columns(["optimizer_time"]), tmp_path / "m.parquet")
    assert integrity.read_chunk(tmp_path / "m.parquet", "steps").num_rows == 10


def test_a_gone_file_is_not_damage(tmp_path):
    with pytest.raises(FileNotFoundError):
        integrity.read_chunk(tmp_path / "gone.parquet", "steps")


# --------------------------------------------------------------------------- the recorder


def recorded_run(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from recorder import Recorder

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "run"
    gen = torch.Generator().manual_seed(0)
    with Recorder(run, optimizer=opt, model=model, flush_every_steps=10, layer_stride=5) as rec:
        for _ in range(30):
            loss = model(torch.randn(4, 8, generator=gen)).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(loss=loss, tokens=32)
    return run


def test_the_recorders_chunks_carry_checksums_and_damage_is_never_merged_away(tmp_path):
    """A flipped bit in one of the recorder's steps chunks: read without it, with a warning
    naming it; compaction leaves the table as it is (merging would lose the name)."""
    from recorder import writer

    run = recorded_run(tmp_path)
    files = writer.list_chunks(run, "steps")
    assert len(files) == 3
    lo, _ = value_positions(files[1], "loss")
    flipped(files[1], lo + 5, 2, files[1])
    with pytest.raises(integrity.DamagedChunk, match="page checksum mismatch"):
        writer.read_chunk(files[1], "steps")
    with pytest.warns(UserWarning, match=rf"steps chunk {files[1].name} is damaged"):
        steps = writer.read_table(run, "steps")
    assert steps.column("step").to_pylist() == [*range(1, 11), *range(21, 31)]
    with pytest.warns(UserWarning, match="the table is not compacted"):
        assert not writer.compact(run, "steps", 0)
    assert writer.list_chunks(run, "steps") == files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert writer.compact(run, "layers", 0)  # an intact table still compacts
    merged = writer.list_chunks(run, "layers")
    assert len(merged) == 1 and integrity.read_chunk(merged[0], "layers").num_rows > 0

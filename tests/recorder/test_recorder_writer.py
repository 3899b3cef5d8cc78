"""The chunk writer and run.json: atomic files, clear errors, truncation, compaction."""

from __future__ import annotations

import errno
import json

import pyarrow.parquet as pq
import pytest

from recorder import run_meta, writer
from recorder.writer import ChunkWriter, RecorderError
from runformat import chunks, schema


def test_chunk_names_sort_in_write_order():
    names = [chunks.chunk_name(s, q) for s, q in [(0, 0), (0, 1), (0, 10), (1, 0), (2, 3)]]
    assert names == sorted(names)
    assert chunks.parse_chunk_name("part-001-000002.parquet") == (1, 2)
    assert chunks.parse_chunk_name(".part-001-000002.parquet.tmp") is None
    with pytest.raises(ValueError, match="segment"):
        chunks.chunk_name(1000, 0)


def test_layer_columns_match_schema():
    assert schema.LAYERS.names[3:] == list(schema.LAYER_STAT_COLUMNS)
    assert len(schema.LAYER_STAT_COLUMNS) == 4 + 15 + 1


def test_write_reads_back_with_schema_and_nulls(tmp_path):
    w = ChunkWriter(tmp_path, segment=0)
    p1 = w.write("steps", {"step": [1, 2], "loss": [0.5, None]})
    p2 = w.write("steps", {"step": [3], "loss": [0.25]})
    assert w.write("steps", {"step": []}) is None
    assert [p1.name, p2.name] == ["part-000-000000.parquet", "part-000-000001.parquet"]
    t = pq.read_table(p1)
    assert t.schema == schema.STEPS
    assert t.column("loss").to_pylist() == [0.5, None]
    assert t.column("grad_norm").null_count == 2
    assert not list((tmp_path / "tables" / "steps").glob(".*"))  # no temp files left


def test_unknown_column_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown columns"):
        ChunkWriter(tmp_path, 0).write("steps", {"step": [1], "lost": [1.0]})


def test_disk_full_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.pq, "write_table", full)
    with pytest.raises(RecorderError, match="no space left") as info:
        ChunkWriter(tmp_path, 0).write("steps", {"step": [1]})
    assert info.value.errno == errno.ENOSPC
    assert "part-000-000000.parquet" in info.value.filename
    assert list((tmp_path / "tables" / "steps").iterdir()) == []


def test_unwritable_directory_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RecorderError, match="create directory") as info:
        ChunkWriter(f / "run", 0).write("steps", {"step": [1]})
    assert str(f / "run") in info.value.filename


def test_truncate_after_rewrites_only_later_rows(tmp_path):
    w = ChunkWriter(tmp_path, 0)
    w.write("steps", {"step": [1, 2, 3]})
    w.write("steps", {"step": [4, 5]})
    w.write("evals", {"step": [5], "loss": [1.0]})
    dropped = writer.truncate_after(tmp_path, 2)
    assert dropped == 4
    assert writer.read_table(tmp_path, "steps").column("step").to_pylist() == [1, 2]
    assert writer.list_chunks(tmp_path, "evals") == []


def test_compact_merges_chunks_sorted(tmp_path):
    w = ChunkWriter(tmp_path, 0)
    w.write("steps", {"step": [3, 4]})
    w.write("steps", {"step": [1, 2]})
    assert writer.compact(tmp_path, "steps", 0)
    chunks = writer.list_chunks(tmp_path, "steps")
    assert [c.name for c in chunks] == ["compact-000-000001.parquet"]  # supersedes <= (0, 1)
    assert pq.read_table(chunks[0]).column("step").to_pylist() == [1, 2, 3, 4]
    assert not writer.compact(tmp_path, "steps", 0)
    assert w.write("steps", {"step": [5]}).name == "part-000-000002.parquet"  # after it


def test_live_chunks_rule():
    names = [
        "part-000-000000.parquet",
        "part-000-000001.parquet",
        "compact-000-000000.parquet",
        "compact-000-000001.parquet",
        "part-000-000002.parquet",
        "part-001-000000.parquet",
        ".compact-001-000000.parquet.tmp",
        "notes.txt",
    ]
    assert chunks.live_chunks(names) == [
        "compact-000-000001.parquet",
        "part-000-000002.parquet",
        "part-001-000000.parquet",
    ]
    assert chunks.live_chunks(names[:2]) == names[:2]  # no compacted file: as before


@pytest.mark.parametrize("crash", ["after_write", "mid_delete"])
def test_compaction_killed_before_removing_chunks_leaves_no_duplicates(
    tmp_path, monkeypatch, crash
):
    w = ChunkWriter(tmp_path, 0)
    for s in range(3):
        w.write("steps", {"step": [2 * s + 1, 2 * s + 2]})
    real_unlink = type(tmp_path).unlink
    calls = []

    def dies(self, *a, **k):  # the process is killed while removing the old chunks
        calls.append(self.name)
        if crash == "after_write" or len(calls) > 1:
            raise KeyboardInterrupt
        real_unlink(self, *a, **k)

    monkeypatch.setattr(type(tmp_path), "unlink", dies)
    with pytest.raises(KeyboardInterrupt):
        writer.compact(tmp_path, "steps", 0)
    monkeypatch.undo()
    d = tmp_path / "tables" / "steps"
    assert (d / "compact-000-000002.parquet").is_file()
    assert len(list(d.glob("part-*"))) == (3 if crash == "after_write" else 2)
    want = [1, 2, 3, 4, 5, 6]
    assert writer.read_table(tmp_path, "steps").column("step").to_pylist() == want
    # a resumed writer continues after the compacted file, and a later close cleans up
    assert ChunkWriter(tmp_path, 0).write("steps", {"step": [7]}).name == "part-000-000003.parquet"
    assert writer.truncate_after(tmp_path, 7) == 0
    assert sorted(p.name for p in d.iterdir()) == [
        "compact-000-000002.parquet",
        "part-000-000003.parquet",
    ]
    assert writer.compact(tmp_path, "steps", 0)
    assert writer.read_table(tmp_path, "steps").column("step").to_pylist() == [*want, 7]
    assert [p.name for p in d.iterdir()] == ["compact-000-000003.parquet"]


def test_corrupt_chunk_is_skipped_by_read_table(tmp_path):
    w = ChunkWriter(tmp_path, 0)
    w.write("steps", {"step": [1]})
    (tmp_path / "tables" / "steps" / "part-000-000001.parquet").write_bytes(b"garbage")
    assert writer.read_table(tmp_path, "steps").num_rows == 1


def test_run_json_round_trip_and_version_check(tmp_path):
    meta = run_meta.new_run_json(
        name="x", config={"lr": float("inf")}, optimizer=None, model=None, seed=1, recording={}
    )
    run_meta.write_run_json(tmp_path, meta)
    back = run_meta.read_run_json(tmp_path)
    assert back["format_version"] == schema.FORMAT_VERSION
    assert back["config"]["lr"] == "inf"  # strict JSON: non-finite floats become strings
    back["format_version"] = schema.FORMAT_VERSION + 1
    (tmp_path / "run.json").write_text(json.dumps(back))
    with pytest.raises(RecorderError, match="format_version"):
        run_meta.read_run_json(tmp_path)

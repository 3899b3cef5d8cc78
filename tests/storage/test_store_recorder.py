"""The real Recorder writing to a real S3 protocol server (moto, tests/storage/conftest.py):
chunks and run.json appear whole or not at all, resume and compaction work as on disk, and
neither the endpoint nor a credential is written into run.json."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from store_helpers import Training, record

from recorder import writer
from recorder.writer import RecorderError, RunExistsError
from runformat import chunks, integrity, run_json, schema, storage


def _keys(uri: str) -> set[str]:
    where = storage.locate(uri)
    return {k for k, _ in storage.walk(where)[0]}


def test_a_run_recorded_to_s3_reads_back_like_a_local_one(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a local folder named "s3:" would appear here
    rec = record(f"{store}/sgg", steps=20, flush_every_steps=5)
    assert not any(tmp_path.iterdir())
    run = storage.locate(f"{store}/sgg")
    steps = writer.read_table(run, "steps")
    assert steps.column("step").to_pylist() == list(range(1, 21))
    assert len(writer.list_chunks(run, "steps")) == 4  # 4 flushes of 5 steps
    assert writer.read_table(run, "clusters").num_rows > 0  # SGG's clustering recorded
    meta = run_json.read(run)
    assert meta["status"] == "finished" and meta["last_flushed_step"] == 20
    assert meta["name"] == "sgg"
    text = json.dumps(meta)
    assert os.environ["AWS_ENDPOINT_URL"] not in text and "127.0.0.1" not in text
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text.replace('"testing"', "")
    assert rec.writer.bytes_written == sum(st.size for k, st in storage.walk(run)[0] if "/" in k)
    assert all(not k.rsplit("/", 1)[-1].startswith(".") for k in _keys(f"{store}/sgg"))


def test_a_failed_write_leaves_no_object(store, monkeypatch):
    run = storage.locate(f"{store}/r")
    real = pq.write_table

    def half_then_fail(table, where, **kwargs):
        where.write(b"PAR1 half a chunk")  # bytes reach the buffer, then the writer dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(RecorderError, match="no space left on device"):
        writer.write_parquet(run / "tables/steps/part-000-000000.parquet", _table())
    monkeypatch.setattr(pq, "write_table", real)
    assert _keys(str(run)) == set()  # nothing, not a part


def _table():
    return writer.to_arrow("steps", {"step": [1, 2], "loss": [1.0, 0.5]})


def test_run_json_rewrites_replace_the_object_whole(store):
    run = Training(f"{store}/live", flush_every_steps=3)
    where = storage.locate(f"{store}/live")
    seen = []
    for _ in range(4):
        run.steps(3)
        run.rec.flush()  # chunks, then run.json rewritten (waits for a background writer)
        seen.append(run_json.read(where)["last_flushed_step"])  # always whole JSON
    run.rec.close()
    assert seen == [3, 6, 9, 12]


def test_resume_on_the_store_drops_later_rows_like_on_disk(store):
    first = Training(f"{store}/run", flush_every_steps=4)
    first.steps(10)
    saved = first.checkpoint()  # step 10, every row up to it written
    first.steps(3)
    first.rec.flush()  # rows 11-13 written, then the job dies (never closed)
    where = storage.locate(f"{store}/run")
    assert run_json.read(where)["last_flushed_step"] == 13
    resumed = Training(f"{store}/run", checkpoint=saved, mode="resume", flush_every_steps=4)
    assert resumed.rec.step == 10
    resumed.steps(5)
    resumed.rec.close()
    assert writer.read_table(where, "steps").column("step").to_pylist() == list(range(1, 16))
    meta = run_json.read(where)
    assert [s["resume_step"] for s in meta["segments"]] == [None, 10]
    assert meta["status"] == "finished" and meta["last_flushed_step"] == 15


def test_new_overwrite_and_a_foreign_prefix_behave_as_on_disk(store):
    record(f"{store}/run", steps=5)
    with pytest.raises(RunExistsError, match="already holds a run"):
        Training(f"{store}/run")
    Training(f"{store}/run", mode="overwrite").rec.close()
    assert run_json.read(storage.locate(f"{store}/run"))["last_flushed_step"] in (None, 0)
    storage.put(storage.locate(f"{store}/other/notes.txt"), b"not a run")
    with pytest.raises(RunExistsError, match="holds no run"):
        Training(f"{store}/other")
    with pytest.raises(RecorderError, match="no run"):
        Training(f"{store}/nothing", mode="resume")


def test_compaction_on_the_store_and_a_crash_before_the_old_chunks_go(store):
    rec = record(f"{store}/c", steps=12, flush_every_steps=3, compact_on_close=True)
    where = rec.run_dir
    names = [p.name for p in writer.list_chunks(where, "steps")]
    assert names == [chunks.compact_name(0, 3)]
    assert writer.read_table(where, "steps").column("step").to_pylist() == list(range(1, 13))
    # a crash between writing a compacted object and removing what it supersedes
    extra = record(f"{store}/d", steps=12, flush_every_steps=3)
    steps = writer.list_chunks(extra.run_dir, "steps")
    merged = writer.read_table(extra.run_dir, "steps")
    writer.write_parquet(steps[0].parent / chunks.compact_name(0, 3), merged)
    assert len(writer.list_chunks(extra.run_dir, "steps", superseded=True)) == 5
    assert writer.read_table(extra.run_dir, "steps").num_rows == 12  # not 24
    assert writer.remove_superseded(extra.run_dir, "steps") == 4


def test_an_unreachable_store_fails_with_a_recorder_error_naming_the_uri(store, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(RecorderError) as err:
        Training(f"{store}/x")
    assert f"{store}/x" in str(err.value) and "127.0.0.1:9" not in str(err.value)


def test_table_dirs_are_key_prefixes(store):
    assert str(chunks.table_dir(f"{store}/r", "steps")) == f"{store}/r/{schema.TABLES_DIR}/steps"


def test_a_chunk_past_the_multipart_threshold_arrives_whole_and_reads_by_ranges(store, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    n = 1_500_000  # ~12 MB of incompressible doubles: a multipart upload
    table = writer.to_arrow("steps", {"step": np.arange(1, n + 1), "loss": rng.random(n)})
    path = storage.locate(f"{store}/big") / "part-000-000000.parquet"
    size = writer.write_parquet(path, table)
    assert size > 10 * 2**20 and storage.stat(path).size == size
    monkeypatch.setattr(storage, "WHOLE_READ_BYTES", 2**20)  # read by ranged GETs instead
    back = integrity.read_chunk(path, "steps", ["step", "loss"], size=size)
    assert back.num_rows == n
    assert back.column("loss").combine_chunks().equals(table.column("loss").combine_chunks())

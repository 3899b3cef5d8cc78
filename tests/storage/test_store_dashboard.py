"""The dashboard on a real S3 protocol server (moto): `--runs s3://bucket/prefix` lists and
draws the runs (Streamlit AppTest), a running remote run grows on refresh with only its new
chunks read, run.json is read again only when it changed or its run is live, and damaged
objects are named with the same sentences as the same damage on disk."""

from __future__ import annotations

import random
import sys
import threading

import pyarrow.parquet as pq
import pytest
from store_helpers import Training, record, upload
from streamlit.testing.v1 import AppTest

from dashboard import loader
from dashboard.app import ENV_ROOT
from runformat import chunks, integrity, schema, storage

APP = str(__import__("pathlib").Path(loader.__file__).with_name("app.py"))


def page(uri: str, monkeypatch) -> AppTest:
    """The page as `streamlit run dashboard/app.py -- --runs URI` starts it."""
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py", "--runs", uri])
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    kinds = ("warning", "info", "error", "markdown", "caption")
    return "\n".join(str(e.value) for k in kinds for e in getattr(at, k))


def test_the_page_draws_runs_recorded_to_s3(store, monkeypatch):
    record(f"{store}/sgg-s0", steps=20)
    record(f"{store}/adamw-s0", steps=20, optimizer="adamw")
    loader.clear_caches()
    at = page(store, monkeypatch)
    assert not at.error, [e.value for e in at.error]
    assert any(f"2 run(s) found in `{store}`" in x.label for x in at.expander)
    assert at.sidebar.text_input(key="runs_root").value == store
    assert len(at.get("plotly_chart")) >= 1 or "Summary" in texts(at)


def test_a_running_remote_run_grows_on_refresh_reading_only_new_chunks(store, monkeypatch):
    run = Training(f"{store}/live", flush_every_steps=5)
    run.steps(10)
    run.rec.flush()  # written (a flush may go on in the recorder's background writer)
    loader.clear_caches()
    at = page(store, monkeypatch)
    assert "step 10 so far" in texts(at)
    before = {s for r in loader.discover_runs(store).runs for t in r.listing.values() for s in t}
    assert loader.wait_for_checks()  # the rest of the run on show, checked in the background
    real, reads = integrity.read_chunk, []

    def counting(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(integrity, "read_chunk", counting)
    run.steps(5)  # a second flush appears on the store
    run.rec.flush()
    at.run()
    assert not at.exception
    assert "step 15 so far" in texts(at) and "step 10 so far" not in texts(at)
    found = loader.discover_runs(store).runs[0]
    new = {s[0] for t in found.listing.values() for s in t} - {s[0] for s in before}
    assert reads and set(reads) <= new  # only the new chunks are read
    steps = loader.read_table(found, "steps", found.path).df
    assert steps["step"].tolist() == list(range(1, 16))
    run.rec.close()
    assert loader.discover_runs(store).runs[0].status == "finished"


def test_run_json_is_read_again_only_when_changed_or_live(store, monkeypatch):
    record(f"{store}/done", steps=5)
    live = Training(f"{store}/live", flush_every_steps=5)
    live.steps(5)
    live.rec.flush()
    loader.clear_caches()
    real, reads = storage.read_bytes, []

    def counting(where, *args, **kwargs):
        if where.name == schema.RUN_JSON:
            reads.append(where.parent.name)
        return real(where, *args, **kwargs)

    monkeypatch.setattr(storage, "read_bytes", counting)
    loader.discover_runs(store)
    assert sorted(reads) == ["done", "live"]
    reads.clear()
    loader.discover_runs(store)
    assert reads == ["live"]  # the finished run's run.json is unchanged: not read again
    live.rec.close()


def _damage(folder):
    """A cut-short evals chunk and flipped bits in a steps chunk's gradient norms."""
    evals = chunks.table_dir(folder, "evals") / chunks.chunk_name(0, 0)
    evals.write_bytes(evals.read_bytes()[:-30])
    steps = chunks.table_dir(folder, "steps") / chunks.chunk_name(0, 1)
    meta = pq.read_metadata(steps)
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("grad_norm"))
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    end = start + col.total_compressed_size
    data = bytearray(steps.read_bytes())
    rng = random.Random(8)
    for _ in range(8):
        data[rng.randrange(end - 16, end)] ^= 1 << rng.randrange(8)
    steps.write_bytes(bytes(data))


def test_damaged_objects_are_named_as_on_disk(store, tmp_path, monkeypatch):
    local = tmp_path / "runs"
    record(str(local / "run"), steps=20)
    _damage(local / "run")
    upload(local / "run", f"{store}/run")
    loader.clear_caches()
    said = {}
    for root in (local, store):
        disc = loader.discover_runs(root)
        loader.verify_runs(disc.runs, disc.root)  # what the Summary does for the runs on show
        assert loader.wait_for_checks()  # on a store its reads go on side by side
        run = loader.discover_runs(root).runs[0]
        said[str(root)] = (run.damage, loader.read_table(run, "steps", disc.root).messages)
    assert said[store] == said[str(local)]
    damage = said[store][0]
    assert len(damage) == 2 and all("is damaged" in d for d in damage)
    assert any("evals chunk part-000-000000.parquet" in d for d in damage)
    assert any("steps chunk part-000-000001.parquet" in d for d in damage)
    loader.clear_caches()
    at = page(store, monkeypatch)
    for _ in range(5):  # the Summary checks the runs on show whole within a few page runs
        if "part-000-000000.parquet" in texts(at):
            break
        at.run()
    shown = texts(at)
    assert "evals chunk part-000-000000.parquet is damaged" in shown
    assert "steps chunk part-000-000001.parquet is damaged" in shown


def test_a_store_folder_with_foreign_runs_says_they_are_read_locally_only(store, tmp_path):
    record(f"{store}/ours", steps=5)
    storage.put(storage.locate(f"{store}/tb/events.out.tfevents.1.host"), b"\x00" * 32)
    disc = loader.discover_runs(store)
    assert [r.rel for r in disc.runs] == ["ours"]
    assert any("`tb`" in m and "local folders only" in m for m in disc.messages), disc.messages


def test_an_empty_prefix_a_missing_bucket_and_a_bad_uri_are_said(store, s3_server):
    empty = loader.discover_runs(store)
    assert empty.root is not None and not empty.runs
    assert any("No runs found" in m for m in empty.messages)
    missing = loader.discover_runs("s3://no-such-bucket-here/x")
    assert missing.messages == ["The bucket of `s3://no-such-bucket-here/x` does not exist."]
    assert all(s3_server.split("//")[1] not in m for m in missing.messages)
    bad = loader.discover_runs("s3://key:hunter2pass@bucket/x")
    assert bad.root is None and "hunter2pass" not in bad.messages[0]
    assert "s3://bucket/x" in bad.messages[0] and "credentials" in bad.messages[0]


def test_a_local_copy_and_the_store_list_the_same_runs(store, tmp_path):
    local = tmp_path / "runs"
    record(str(local / "a" / "r1"), steps=5)
    record(str(local / "r2"), steps=5, optimizer="adamw")
    for rel in ("a/r1", "r2"):
        upload(local / rel, f"{store}/{rel}")
    loader.clear_caches()
    on_disk, on_store = loader.discover_runs(local), loader.discover_runs(store)
    assert [r.rel for r in on_disk.runs] == [r.rel for r in on_store.runs] == ["a/r1", "r2"]
    assert [r.meta for r in on_disk.runs] == [r.meta for r in on_store.runs]
    for a, b in zip(on_disk.runs, on_store.runs, strict=True):
        left = loader.read_table(a, "steps", on_disk.root).df
        right = loader.read_table(b, "steps", on_store.root).df
        assert left.equals(right)


def test_the_chunks_on_show_are_fetched_once_ahead_of_the_page(store, monkeypatch):
    """On a store the Summary's chunks are fetched ahead, side by side, and every read waits
    for its fetch instead of sending its own requests: no chunk is read twice."""
    record(f"{store}/sgg-s0", steps=30, flush_every_steps=10)
    record(f"{store}/adamw-s0", steps=30, flush_every_steps=10, optimizer="adamw")
    loader.clear_caches()
    real, reads = integrity.read_chunk, []

    def counting(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(integrity, "read_chunk", counting)
    at = page(store, monkeypatch)
    assert loader.wait_for_checks()
    at.run()
    assert not at.exception
    steps = [p for p in reads if "/tables/steps/" in p]
    assert len(steps) >= 4 and len(reads) == len(set(reads)), sorted(reads)


def test_prefetch_on_a_store_returns_at_once_and_reads_wait_for_their_fetch(store):
    """A store that does not answer yet: `prefetch` starts the fetches and returns (the page
    works on the first runs while the others arrive); a read then waits for its fetch."""
    for name in ("a", "b"):
        record(f"{store}/{name}", steps=20, flush_every_steps=10)
    loader.clear_caches()
    disc = loader.discover_runs(store)
    gate, real, before = threading.Event(), storage.read_bytes, loader.chunk_reads()

    def held(where, *args, **kwargs):
        assert gate.wait(30)
        return real(where, *args, **kwargs)

    jobs = [(run, table, None) for run in disc.runs for table in ("steps", "evals")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage, "read_bytes", held)
        done = threading.Event()
        threading.Thread(target=lambda: (loader.prefetch(jobs, disc.root), done.set())).start()
        assert done.wait(10)  # returned while every fetch is still held
        gate.set()
        steps = loader.read_table(disc.runs[0], "steps", disc.root)
    assert steps.df["step"].tolist() == list(range(1, 21))
    assert loader.chunk_reads() - before == sum(
        len(loader.listed_chunks(r, t, disc.root)) for r, t, _ in jobs
    )

"""The loader: discovery, validation, safety, per-chunk cache; never raises on bad data."""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dash_fixtures import BAD_CASES, small_run

from dashboard import loader


def test_discovers_runs_recursively(synthetic_root, tmp_path):
    d = loader.discover_runs(synthetic_root)
    assert [r.rel for r in d.runs] == ["adamw-base", "adamw-plain", "sgg-k3"]
    assert d.messages == []
    sgg = d.runs[2]
    assert sgg.optimizer == "sgg" and sgg.hyperparameters["lr"] == 1e-3 and sgg.last_step == 600
    nested = tmp_path / "a" / "b"
    small_run(nested, "deep", optimizer="sgg")
    assert [r.rel for r in loader.discover_runs(tmp_path).runs] == ["a/b/deep"]


@pytest.mark.parametrize("make", ["missing", "empty", "no_runs", "file"])
def test_empty_or_missing_roots_give_messages(tmp_path, make):
    root = tmp_path / "root"
    if make == "empty":
        root.mkdir()
    elif make == "no_runs":
        (root / "x").mkdir(parents=True)
        (root / "x" / "notes.txt").write_text("hi")
    elif make == "file":
        root.write_text("")
    d = loader.discover_runs(root)
    assert d.runs == [] and len(d.messages) == 1


def test_reads_tables_and_projects_columns(synthetic_root):
    d = loader.discover_runs(synthetic_root)
    run = d.runs[2]
    res = loader.read_table(run, "steps", d.root)
    assert res.messages == [] and res.n_chunks == 6
    assert len(res.df) == 600 and res.df["step"].is_monotonic_increasing
    assert str(res.df["loss"].dtype) == "float64"
    part = loader.read_table(run, "steps", d.root, ("loss",))
    assert list(part.df.columns) == ["step", "loss"]
    assert loader.read_table(d.runs[1], "clusters", d.root).df is None  # not recorded


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_become_messages(bad_root, case):
    root, bad = bad_root(case)
    d = loader.discover_runs(root)
    by = {r.rel: r for r in d.runs}
    assert {"baseline", "intact"} <= set(by)
    msgs = []
    for r in d.runs:
        msgs += list(r.problems)
        for t in loader.TABLES:
            res = loader.read_table(r, t, d.root)
            msgs += res.messages
    assert loader.read_table(by["intact"], "steps", d.root).df is not None
    text = " ".join(msgs)
    expected = {
        "corrupt_chunk": "corrupt or half-written",
        "newer_version": "format version 99",
        "invalid_json": "not valid JSON",
        "symlink_escape": "points outside; refused",
    }.get(case)
    if expected:
        assert expected in text
    if case in ("newer_version", "invalid_json"):
        assert not by[bad].readable
    if case == "corrupt_chunk":
        assert len(loader.read_table(by[bad], "steps", d.root).df) == 500  # one chunk lost
    if case == "stalled":
        assert loader.display_status(by[bad]) == "stopped (killed or crashed)"
    if case == "half_written_tmp":
        assert msgs == []


def test_running_with_fresh_heartbeat_is_running(tmp_path):
    small_run(tmp_path, "live", status="running")
    run = loader.discover_runs(tmp_path).runs[0]
    assert loader.display_status(run) == "running"
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    assert loader.display_status(run, later) == "stopped (killed or crashed)"


def test_only_new_chunks_are_read(tmp_path):
    run_dir = small_run(tmp_path, "live", status="running")
    d = loader.discover_runs(tmp_path)
    run = d.runs[0]
    first = loader.read_table(run, "steps", d.root)
    before = loader.chunk_reads()
    again = loader.read_table(run, "steps", d.root)
    assert loader.chunk_reads() == before and again.df is first.df
    new = first.df.iloc[:10].assign(step=lambda f: f["step"] + 600)
    path = run_dir / "tables" / "steps" / "part-000-000006.parquet"
    pq.write_table(pa.Table.from_pandas(new, preserve_index=False), path)
    grown = loader.read_table(run, "steps", d.root)
    assert loader.chunk_reads() == before + 1
    assert len(grown.df) == 610 and grown.signature != first.signature


def test_duplicate_steps_keep_the_latest(tmp_path):
    run_dir = small_run(tmp_path, "r")
    src = run_dir / "tables" / "steps" / "part-000-000005.parquet"
    t = pq.read_table(src).to_pandas()
    t["loss"] = 123.0
    pq.write_table(
        pa.Table.from_pandas(t, preserve_index=False),
        run_dir / "tables" / "steps" / "part-001-000000.parquet",
    )
    d = loader.discover_runs(tmp_path)
    df = loader.read_table(d.runs[0], "steps", d.root).df
    assert len(df) == 600 and (df["loss"].iloc[-100:] == 123.0).all()


def test_symlinked_run_folder_outside_is_not_followed(tmp_path, synthetic_root):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(synthetic_root, root / "elsewhere")
    assert loader.discover_runs(root).runs == []


def test_run_json_missing_fields_are_tolerated(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps({"status": "finished"}))
    run = loader.discover_runs(tmp_path).runs[0]
    assert run.readable and run.optimizer == "unknown optimizer" and run.name == "r"
    assert any("format_version" in p for p in run.problems)


def test_bulk_read_equals_per_file_reads_and_survives_a_bad_chunk(tmp_path, monkeypatch):
    run_dir = small_run(tmp_path, "many", flush_every_steps=25)  # 24 chunks: bulk path
    d = loader.discover_runs(tmp_path)
    run = d.runs[0]
    bulk = loader.read_table(run, "steps", d.root, ("loss", "grad_norm")).df
    loader.clear_caches()
    monkeypatch.setattr(loader, "BULK_MIN_CHUNKS", 10**9)
    single = loader.read_table(run, "steps", d.root, ("loss", "grad_norm")).df
    assert bulk.equals(single) and len(bulk) == 600
    monkeypatch.undo()
    loader.clear_caches()
    (run_dir / "tables" / "steps" / "part-000-000005.parquet").write_bytes(b"not parquet")
    res = loader.read_table(run, "steps", d.root)
    assert len(res.df) == 575 and "corrupt or half-written" in res.messages[0]


def test_compacted_file_supersedes_its_chunks_after_a_crash(tmp_path):
    # A compaction killed after writing compact-000-000003 but before removing the chunks it
    # merged (parts 0..3): those parts are ignored, later parts are read, no row is doubled.
    run_dir = small_run(tmp_path, "r")
    d_steps = run_dir / "tables" / "steps"
    parts = sorted(d_steps.glob("part-*.parquet"))
    merged = pa.concat_tables([pq.read_table(p) for p in parts[:4]]).to_pandas()
    merged["loss"] = -1.0  # marks the rows that came from the compacted file
    pq.write_table(
        pa.Table.from_pandas(merged, preserve_index=False), d_steps / "compact-000-000003.parquet"
    )
    names = [p.name for p in d_steps.iterdir()]
    assert loader.superseded(names) == {p.name for p in parts[:4]}
    loader.clear_caches()
    d = loader.discover_runs(tmp_path)
    res = loader.read_table(d.runs[0], "steps", d.root)
    assert res.n_chunks == 1 + len(parts) - 4 and not res.messages
    df = res.df
    assert df["step"].is_unique and len(df) == 600
    assert (df["loss"].iloc[: len(merged)] == -1.0).all()
    assert not (df["loss"].iloc[len(merged) :] == -1.0).any()
    # the crash finished: the chunks are gone, the same table
    for p in parts[:4]:
        p.unlink()
    again = loader.read_table(d.runs[0], "steps", d.root).df
    assert again.equals(df)


def test_superseded_rule_keeps_runs_without_compacted_files_as_they_were():
    names = ["part-000-000000.parquet", "part-000-000001.parquet", "part-001-000000.parquet"]
    assert loader.superseded(names) == set()
    names += ["compact-000-000001.parquet", "compact-000-000000.parquet", "x.parquet"]
    assert loader.superseded(names) == {
        "part-000-000000.parquet",
        "part-000-000001.parquet",
        "compact-000-000000.parquet",
    }

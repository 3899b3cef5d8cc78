"""The run-format module: chunk names, the supersede rule, run.json validation, atomic writes,
and that it (and the dashboard reading through it) never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runformat import atomic, chunks, run_json, schema


def test_chunk_names_sort_in_write_order_and_parse_back():
    names = [chunks.chunk_name(s, q) for s, q in [(0, 0), (0, 1), (0, 10), (1, 0), (2, 3)]]
    assert sorted(names) == names
    assert chunks.parse_chunk_name("part-001-000002.parquet") == (1, 2)
    assert chunks.parse_compact_name("compact-001-000002.parquet") == (1, 2)
    for other in (".part-001-000002.parquet.tmp", "x.parquet", "part-1.parquet", "run.json"):
        assert chunks.chunk_key(other) is None
    with pytest.raises(ValueError, match="segment"):
        chunks.chunk_name(1000, 0)
    with pytest.raises(ValueError, match="seq"):
        chunks.chunk_name(0, -1)


def test_supersede_rule():
    parts = ["part-000-000000.parquet", "part-000-000001.parquet", "part-001-000000.parquet"]
    assert chunks.live_chunks(parts[::-1]) == parts and chunks.superseded(parts) == set()
    names = [*parts, "compact-000-000001.parquet", "compact-000-000000.parquet", "x.parquet"]
    assert chunks.live_chunks(names) == ["compact-000-000001.parquet", "part-001-000000.parquet"]
    assert chunks.superseded(names) == {
        "part-000-000000.parquet",
        "part-000-000001.parquet",
        "compact-000-000000.parquet",
    }


@pytest.mark.parametrize(
    ("meta", "fatal", "problem"),
    [
        ({"format": "sgg-run", "format_version": 1, "status": "finished"}, None, None),
        ({"format": "sgg-run", "format_version": 2, "status": "running"}, None, None),
        ({"status": "finished"}, None, "format_version"),
        ({"format_version": True, "status": "finished"}, None, "format_version"),
        ({"format": "other", "format_version": 1, "status": "finished"}, None, "'other'"),
        ({"format_version": 1, "status": "odd"}, None, "unknown status"),
        ({"format_version": 1, "status": "failed", "error": {"message": "boom"}}, None, "boom"),
        ({"format_version": 99, "status": "finished"}, "format version 99", None),
        ([1, 2], "not a JSON object", None),
    ],
)
def test_run_json_validation(meta, fatal, problem):
    checked = run_json.validate(meta)
    if fatal is None:
        assert checked.fatal is None
    else:
        assert fatal in checked.fatal
    if problem is None:
        assert checked.problems == ()
    else:
        assert any(problem in p for p in checked.problems)


def test_run_json_read(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_json.read(tmp_path)
    (tmp_path / "run.json").write_text("[1]")
    with pytest.raises(ValueError, match="object"):
        run_json.read(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ValueError):
        run_json.read(tmp_path)
    atomic.atomic_write_json(tmp_path / "run.json", {"status": "running"})
    assert run_json.read(tmp_path) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.json"
    atomic.atomic_write_json(path, {"v": 1})

    def fail(f):
        f.write(b"half")
        raise OSError(28, "no space left on device")

    with pytest.raises(OSError):
        atomic.atomic_write(path, fail)
    assert json.loads(path.read_text()) == {"v": 1}
    assert not atomic.temp_path(path).exists()
    with pytest.raises(ValueError):
        atomic.atomic_write_json(path, {"v": float("nan")})  # run.json must be valid JSON


def test_build_table_follows_the_schema(tmp_path):
    t = schema.build_table("steps", {"step": [1, 2], "loss": [1.5, float("nan")]})
    assert t.schema == schema.STEPS and t.column("grad_norm").null_count == 2
    assert t.column("loss").null_count == 0  # NaN is data (a diverged loss)
    assert (
        schema.build_table("steps", {"loss": [float("nan")]}, nan_is_null=True)
        .column("loss")
        .null_count
        == 1
    )
    with pytest.raises(ValueError, match="bogus"):
        schema.build_table("steps", {"step": [1], "bogus": [1]})
    with pytest.raises(ValueError, match="different lengths"):
        schema.build_table("steps", {"step": [1], "loss": [1.0, 2.0]})
    atomic.write_parquet(tmp_path / "x.parquet", t)
    back = pq.read_table(tmp_path / "x.parquet")
    assert back.schema == t.schema and back.column("step").to_pylist() == [1, 2]


def test_version_1_chunks_read_as_version_2_with_nulls(tmp_path):
    v1 = pa.table({"step": pa.array([1], pa.int64()), "loss": pa.array([2.0])})
    pq.write_table(v1, tmp_path / "p.parquet")
    back = pq.read_table(tmp_path / "p.parquet", schema=schema.STEPS)
    assert back.column("optimizer_time").null_count == 1
    new_columns = {"steps": {"optimizer_time"}, "evals": {"loss_std", "n_batches"}}
    for table, names in new_columns.items():
        assert names <= set(schema.TABLES[table].names)
        assert all(schema.TABLES[table].field(n).nullable for n in names)


def test_runformat_and_the_dashboard_import_without_torch():
    code = (
        "import importlib, pkgutil, sys\n"
        "import runformat, runformat.atomic, runformat.chunks, runformat.run_json\n"
        "assert 'pandas' not in sys.modules, 'runformat imported pandas'\n"
        "import dashboard\n"
        "for m in pkgutil.walk_packages(dashboard.__path__, 'dashboard.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'torch' or n.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "assert 'sgg' not in sys.modules and 'recorder' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr

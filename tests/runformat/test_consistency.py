"""One schema: what the recorder writes (a real Recorder on a real torch run), what the
dashboard's loader expects and what the test fixtures produce are all `runformat.schema`."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch

from dashboard import loader
from recorder import Recorder
from recorder.writer import list_chunks
from runformat import run_json, schema
from sgg import SGG, SGGConfig
from tests.fixtures.synthetic_run import SyntheticRun, make_demo_runs, write_run


def _chunk_schemas(run_dir):
    return {t: [pq.read_schema(p) for p in list_chunks(run_dir, t)] for t in schema.TABLES}


def _assert_every_chunk_is_the_schema(run_dir, tables):
    found = _chunk_schemas(run_dir)
    for t in tables:
        assert found[t], f"no {t} chunk written"
    for t, schemas in found.items():
        for s in schemas:
            assert s.remove_metadata().equals(schema.TABLES[t]), t


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = SGG(
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        n_clusters=3,
        recluster_interval=3,
        update_impl="eager",
    )
    run_dir = tmp_path_factory.mktemp("rec") / "sgg"
    with Recorder(run_dir, optimizer=opt, model=model, layer_stride=2, flush_every_steps=4) as rec:
        for step in range(1, 10):
            loss = model(torch.randn(4, 8)).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=32)
            if step % 4 == 0:
                rec.log_eval(loss=loss.item(), step=step)
    return run_dir


def test_the_recorder_writes_the_schema(recorded_run):
    _assert_every_chunk_is_the_schema(recorded_run, schema.TABLES)
    checked = run_json.validate(run_json.read(recorded_run))
    assert checked.fatal is None and checked.problems == ()
    assert run_json.read(recorded_run)["format_version"] == schema.FORMAT_VERSION


def test_the_fixtures_write_the_schema(tmp_path):
    sgg_run = write_run(tmp_path, SyntheticRun(name="s", steps=300, recluster_interval=50))
    adamw = write_run(tmp_path, SyntheticRun(name="a", optimizer="adamw", steps=300))
    _assert_every_chunk_is_the_schema(sgg_run, schema.TABLES)
    _assert_every_chunk_is_the_schema(adamw, ("steps", "lrs", "evals", "layers", "histograms"))
    for run in (sgg_run, adamw):
        checked = run_json.validate(run_json.read(run))
        assert checked.fatal is None and checked.problems == ()


def test_fixture_configs_use_sggconfig_field_names(tmp_path):
    fields = {f.name for f in dataclasses.fields(SGGConfig)}
    for run in make_demo_runs(tmp_path, steps=600, n_layers=4):
        opt = run_json.read(run)["optimizer"]
        for key in ("sgg", "shadow"):
            if opt[key] is not None:
                assert set(opt[key]) <= fields, set(opt[key]) - fields


def test_the_loader_expects_the_schema_and_reads_both(recorded_run, tmp_path):
    assert tuple(schema.TABLES) == loader.TABLES
    assert loader.KNOWN_FORMAT_VERSION == schema.FORMAT_VERSION
    for t in schema.TABLES:
        assert loader.EXPECTED[t] == schema.column_types(t)
    write_run(tmp_path, SyntheticRun(name="fixture", steps=300, recluster_interval=50))
    (tmp_path / "recorded").symlink_to(recorded_run, target_is_directory=True)
    import shutil

    shutil.copytree(recorded_run, tmp_path / "copy")
    d = loader.discover_runs(tmp_path)
    assert sorted(r.rel for r in d.runs) == ["copy", "fixture"]
    for run in d.runs:
        assert run.readable and not run.problems
        for t in schema.TABLES:
            res = loader.read_table(run, t, d.root)
            assert not res.messages
            assert res.df is not None, (run.rel, t)
            assert list(res.df.columns) == schema.TABLES[t].names

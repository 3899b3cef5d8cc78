"""SGG + Recorder under DistributedDataParallel: 2 CPU processes (gloo), rank-0 recording."""

from __future__ import annotations

import json

import pytest
import torch
from ddp_worker import single_process, worker
from integration_helpers import SGG_OPTIONS, STEPS, read_table, render_every_view, spawn_ranks

pytestmark = pytest.mark.e2e

WORLD = 2


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    return spawn_ranks(worker, tmp_path_factory.mktemp("ddp"), "ddp", WORLD)


def test_ranks_hold_identical_clustering_and_parameters(ddp_run):
    _, results = ddp_run
    assert results[0]["reclusters"] == STEPS - STEPS % SGG_OPTIONS["recluster_interval"]
    for key, parts in results[0]["gathered"].items():
        for r in range(1, WORLD):
            assert torch.equal(parts[0], parts[r]), f"rank {r} disagrees with rank 0 on {key}"
    factors = results[0]["gathered"]["factors"][0]
    assert not torch.all(factors == 1), "the test must exercise non-trivial factors"


def test_ddp_matches_single_process_on_the_global_batch(ddp_run):
    _, results = ddp_run
    ddp = {k: v[0] for k, v in results[0]["gathered"].items()}
    ref = single_process()
    # DDP averages the two half-batch mean gradients: equal to the full-batch mean up to rounding.
    torch.testing.assert_close(ddp["params"], ref["params"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ddp["factors"], ref["factors"], rtol=1e-4, atol=1e-5)
    agree = (ddp["assignments"] == ref["assignments"]).float().mean().item()
    assert agree > 0.99, f"only {agree:.4f} of the assignments agree with one process"


def test_only_rank_zero_writes_one_readable_run(ddp_run):
    run_dir, results = ddp_run
    assert [r["recorder"] for r in results] == ["Recorder"] + ["NullRecorder"] * (WORLD - 1)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished"
    assert meta["pid"] == results[0]["pid"]
    assert meta["last_flushed_step"] == STEPS
    assert [p.name for p in run_dir.parent.iterdir()] == ["ddp"]  # nobody wrote elsewhere
    steps = read_table(run_dir, "steps")
    assert steps["step"].tolist() == list(range(1, STEPS + 1))
    assert steps["loss"].notna().all()
    assert steps["reclustered"].sum() == STEPS // SGG_OPTIONS["recluster_interval"]
    clusters = read_table(run_dir, "clusters")
    assert sorted(set(clusters["step"])) == list(
        range(SGG_OPTIONS["recluster_interval"], STEPS + 1, SGG_OPTIONS["recluster_interval"])
    )
    # the factors in the run are the ones every rank ended with
    last = clusters[clusters["step"] == clusters["step"].max()]
    final = results[0]["gathered"]["factors"][0]
    torch.testing.assert_close(torch.tensor(last["factor"].to_numpy()), final)


def test_dashboard_loader_reads_the_ddp_run(ddp_run):
    loader = pytest.importorskip("dashboard.loader")
    run_dir, _ = ddp_run
    found = loader.discover_runs(run_dir.parent)
    assert [r.rel for r in found.runs] == ["ddp"]
    run = found.runs[0]
    assert run.readable and run.has_clustering and run.status == "finished"
    for table in ("steps", "layers", "clusters"):
        res = loader.read_table(run, table, found.root)
        assert res.df is not None and not res.messages, (table, res.messages)
    assert len(loader.read_table(run, "steps", found.root).df) == STEPS


def test_dashboard_shows_the_ddp_run(ddp_run, monkeypatch):
    run_dir, _ = ddp_run
    assert run_dir.name in render_every_view(run_dir.parent, monkeypatch)

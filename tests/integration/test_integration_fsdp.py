"""SGG under FSDP2 (``fully_shard``): 2 CPU processes (gloo), sharded parameters and moments.

Every rank gathers each layer's momentum at a re-cluster and runs the same clustering, so the
factors are identical across ranks and agree with one process on the same global batch; each
rank keeps the assignments of its own shard (an uneven (5, 32) weight exercises 3 + 2 rows).
The run is recorded: every rank holds a Recorder (its statistics are combined across the ranks),
rank 0 alone writes, and the run matches a recorded single-process run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from integration_helpers import (
    SGG_OPTIONS,
    STEPS,
    all_gather_each,
    make_optimizer,
    process_group,
    read_table,
    spawn_ranks,
    train,
)

from recorder import Recorder
from recorder.distributed import NullRecorder, rank_zero_recorder
from sgg import SGG

pytestmark = pytest.mark.e2e

WORLD = 2

# mp.spawn pickles `worker` by reference: the children import this module (pytest put its
# folder on sys.path, which spawn hands down to them).
RECORDING = dict(seed=0, layer_stride=2, flush_every_steps=5, membership_sample=64)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    # Linear(32, 5): a (5, 32) weight and a (5,) bias, sharded unevenly on 2 ranks (3 + 2 rows)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 5),
        torch.nn.Linear(5, 4),
    )


def shard(model: torch.nn.Module) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    return model


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def fingerprint(model, opt: SGG) -> dict[str, torch.Tensor]:
    """What must agree, whole (sharded tensors gathered): parameters and per clustered layer
    the rank's assignments (its shard), sizes, MDAs and factors."""
    st = [opt.cluster_state(p) for p in opt.clustered_params()]
    return {
        "params": torch.cat([_full(p.detach()).reshape(-1) for p in model.parameters()]),
        "sizes": torch.cat([s.sizes for s in st]),
        "mda": torch.cat([s.mda for s in st]),
        "factors": torch.cat([s.factors for s in st]),
        "global_mda": opt.global_mda.reshape(1),
        "transitions": torch.cat([s.transitions.reshape(-1) for s in st]),
    }


def worker(rank: int, world: int, init_file: str, run_dir: str, out_dir: str) -> None:
    with process_group(rank, world, init_file):
        model = shard(make_model())
        opt = make_optimizer(model)
        # every rank gets a Recorder (sharded parameters); only rank 0 writes
        with rank_zero_recorder(run_dir, optimizer=opt, model=model, **RECORDING) as rec:
            train(model, opt, rec, rank, world)
        names = {id(p): n for n, p in model.named_parameters()}
        states = {
            names[id(p)]: {
                k: getattr(opt.cluster_state(p), k).clone()
                for k in ("sizes", "centers", "mda", "raw_factors", "factors", "transitions")
            }
            for p in opt.clustered_params()
        }
        gathered = all_gather_each(fingerprint(model, opt), world)
        # each rank's shard of the assignments, in parameter order (uneven lengths)
        assign = [opt.cluster_state(p).assignments.clone() for p in opt.clustered_params()]
        torch.save(
            {
                "gathered": gathered,
                "assignments": assign,
                "recorder": type(rec).__name__,
                "writes": bool(getattr(getattr(rec, "_files", None), "writes", False)),
                "states": states,
                "names": [names[id(p)] for p in opt.clustered_params()],
                "global_mda_now": opt.global_mda.clone(),
                "pid": os.getpid(),
                "reclusters": opt.last_recluster_step,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )


def single_process(run_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """The same training in one process on the whole global batch (no sharding), recorded in
    `run_dir` when given."""
    model = make_model()
    opt = make_optimizer(model)
    if run_dir is None:
        train(model, opt, NullRecorder(), 0, 1)
    else:
        with Recorder(run_dir, optimizer=opt, model=model, **RECORDING) as rec:
            train(model, opt, rec, 0, 1)
    out = fingerprint(model, opt)
    out["assignments"] = [opt.cluster_state(p).assignments.clone() for p in opt.clustered_params()]
    return out


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    pytest.importorskip("torch.distributed.fsdp")
    if not hasattr(torch.distributed.fsdp, "fully_shard"):
        pytest.skip("FSDP2 fully_shard is not available in this torch")
    return spawn_ranks(worker, tmp_path_factory.mktemp("fsdp"), "fsdp", WORLD)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "single"
    out = single_process(run_dir)
    out["run_dir"] = run_dir
    return out


def test_ranks_hold_identical_factors_and_statistics(fsdp_run):
    _, results = fsdp_run
    assert results[0]["reclusters"] == STEPS - STEPS % SGG_OPTIONS["recluster_interval"]
    for key, parts in results[0]["gathered"].items():
        for r in range(1, WORLD):
            assert torch.equal(parts[0], parts[r]), f"rank {r} disagrees with rank 0 on {key}"
    factors = results[0]["gathered"]["factors"][0]
    assert not torch.all(factors == 1), "the test must exercise non-trivial factors"


def test_each_rank_keeps_its_shard_of_the_assignments(fsdp_run, reference):
    _, results = fsdp_run
    for i, ref in enumerate(reference["assignments"]):
        shards = [results[r]["assignments"][i] for r in range(WORLD)]
        assert all(s.dtype == torch.uint8 for s in shards)
        assert sum(s.numel() for s in shards) == ref.numel()
        agree = (torch.cat(shards) == ref).float().mean().item()
        assert agree > 0.99, f"layer {i}: only {agree:.4f} of the assignments agree"
    # the (5, 32) weight is sharded unevenly: 3 rows on rank 0, 2 on rank 1
    assert [results[r]["assignments"][2].numel() for r in range(WORLD)] == [96, 64]


def test_fsdp_matches_single_process_on_the_global_batch(fsdp_run, reference):
    _, results = fsdp_run
    fsdp = {k: v[0] for k, v in results[0]["gathered"].items()}
    # FSDP reduce-scatters the two half-batch mean gradients: the full-batch mean up to rounding;
    # everything SGG computes at a re-cluster is computed on whole (gathered) layers.
    torch.testing.assert_close(fsdp["params"], reference["params"], rtol=1e-4, atol=1e-5)
    for key in ("factors", "mda", "global_mda"):
        torch.testing.assert_close(fsdp[key], reference[key], rtol=1e-4, atol=1e-6)
    # sizes and (all-reduced) transition counts: equal unless rounding moved an element
    assert (fsdp["sizes"] - reference["sizes"]).abs().sum() <= 2
    assert (fsdp["transitions"] - reference["transitions"]).abs().sum() <= 4


def test_rank_zero_run_directory(fsdp_run):
    run_dir, results = fsdp_run
    assert [r["recorder"] for r in results] == ["Recorder"] * WORLD
    assert [r["writes"] for r in results] == [True] + [False] * (WORLD - 1)
    # one run directory, written by rank 0 alone
    assert [p.parent for p in run_dir.parent.rglob("run.json")] == [run_dir]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["last_flushed_step"] == STEPS
    assert meta["pid"] == results[0]["pid"]
    assert not list(run_dir.rglob(".*"))  # no temp file left
    steps = read_table(run_dir, "steps")  # pyarrow alone
    assert steps["step"].tolist() == list(range(1, STEPS + 1))
    assert steps[["grad_norm", "loss"]].notna().all().all()  # update/param norms: layer steps
    assert steps[["param_norm", "update_norm"]].notna().any().all()
    # the dashboard's loader opens every table without a complaint
    from dashboard import loader

    loader.clear_caches()
    disc = loader.discover_runs(run_dir.parent)
    assert [r.path for r in disc.runs] == [run_dir.resolve()]
    run = disc.runs[0]
    assert loader.display_status(run) == "finished" and not run.problems
    for table in ("steps", "lrs", "layers", "clusters", "transitions", "membership", "histograms"):
        res = loader.read_table(run, table, disc.root)
        assert res.df is not None and len(res.df) and not res.messages, table


def test_recorded_clusters_are_sggs_introspection(fsdp_run):
    run_dir, results = fsdp_run
    r0 = results[0]
    clusters = read_table(run_dir, "clusters")
    last = clusters[clusters["step"] == STEPS]
    assert sorted(set(last["layer"])) == sorted(r0["names"])
    for name, st in r0["states"].items():
        rows = last[last["layer"] == name].sort_values("cluster")
        assert rows["size"].tolist() == st["sizes"].tolist()
        assert rows["size"].sum() == sum(s.numel() for s in _layer_assignments(results, name))
        for col, key in (
            ("center", "centers"),
            ("mda", "mda"),
            ("raw_factor", "raw_factors"),
            ("factor", "factors"),
        ):
            assert rows[col].tolist() == st[key].float().tolist(), (name, col)
        assert (rows["global_mda"] == r0["global_mda_now"].item()).all()
        tr = read_table(run_dir, "transitions")
        tr = tr[(tr["step"] == STEPS) & (tr["layer"] == name)]
        assert tr["count"].tolist() == st["transitions"].reshape(-1).tolist()
    # membership: global flat positions; the cluster is the whole layer's assignment there
    mb = read_table(run_dir, "membership")
    for name in r0["names"]:
        whole = torch.cat(_layer_assignments(results, name))
        rows = mb[(mb["step"] == STEPS) & (mb["layer"] == name)]
        assert len(rows) == min(whole.numel(), RECORDING["membership_sample"])
        want = whole[torch.tensor(rows["position"].to_numpy())].tolist()
        assert rows["cluster"].tolist() == want, name
    # histograms: every element of the layer counted once per quantity
    hist = read_table(run_dir, "histograms")
    h = hist[(hist["step"] == STEPS) & (hist["cluster"] == -1)]
    for name, st in r0["states"].items():
        for q in ("momentum", "adaptive_lr"):
            rows = h[(h["layer"] == name) & (h["quantity"] == q)]
            assert rows["count"].sum() == int(st["sizes"].sum()), (name, q)


def _layer_assignments(results, name: str) -> list[torch.Tensor]:
    i = results[0]["names"].index(name)
    return [r["assignments"][i] for r in results]


def test_recorded_statistics_match_a_single_process_run(fsdp_run, reference):
    run_dir, _ = fsdp_run
    ref_dir = reference["run_dir"]
    steps, ref = read_table(run_dir, "steps"), read_table(ref_dir, "steps")
    for col in ("grad_norm", "param_norm", "update_norm", "loss", "lr"):
        torch.testing.assert_close(
            torch.tensor(steps[col].to_numpy()),
            torch.tensor(ref[col].to_numpy()),
            rtol=1e-4,
            atol=1e-6,
            equal_nan=True,  # update/param norms: on layer-statistics steps only
            msg=col,
        )
    assert steps["reclustered"].tolist() == ref["reclustered"].tolist()
    layers, ref_layers = read_table(run_dir, "layers"), read_table(ref_dir, "layers")
    assert layers[["step", "layer", "numel"]].equals(ref_layers[["step", "layer", "numel"]])
    # sums, norms and the quantiles of the same global sample positions: to rounding
    for col in layers.columns[3:]:
        a = torch.tensor(layers[col].to_numpy(dtype="float64"))
        b = torch.tensor(ref_layers[col].to_numpy(dtype="float64"))
        torch.testing.assert_close(a, b, rtol=2e-3, atol=1e-6, equal_nan=True, msg=col)
    mb, ref_mb = read_table(run_dir, "membership"), read_table(ref_dir, "membership")
    assert mb["position"].tolist() == ref_mb["position"].tolist()
    assert (mb["cluster"] == ref_mb["cluster"]).mean() > 0.99

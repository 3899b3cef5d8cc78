"""W&B offline runs and MLflow runs (file store and SQLite), written by the libraries themselves."""

from __future__ import annotations

import numpy as np
import pytest
from foreign_writers import EVAL_EVERY, STEPS, loss_at, lr_at, write_mlflow_hf, write_wandb_hf

from dashboard import foreign, loader
from runformat import schema


def _by_name(root):
    found = foreign.discover(root.resolve())
    return {r.meta.get("name"): r for r in found.runs}, found.messages


def _check_hf_tables(meta, with_tokens=False):
    steps, msgs, _ = foreign.read_table(meta, "steps")
    assert msgs == []
    assert list(steps.columns) == schema.STEPS.names
    assert steps["step"].tolist() == list(range(1, STEPS + 1))
    np.testing.assert_allclose(steps["loss"], [loss_at(s) for s in range(1, STEPS + 1)])
    np.testing.assert_allclose(steps["lr"], [lr_at(s) for s in range(1, STEPS + 1)])
    assert steps["grad_norm"].isna().all() and steps["tokens"].isna().all()
    evals, _, _ = foreign.read_table(meta, "evals")
    assert evals["step"].tolist() == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    np.testing.assert_allclose(evals["loss"], [loss_at(s) + 0.5 for s in evals["step"]])
    assert set(evals["split"]) == {"val"}
    assert (evals["wall_time"] >= 0).all()


# --------------------------------------------------------------------------- wandb


def test_wandb_offline_runs_group_by_seed(wandb_env):
    d0 = write_wandb_hf(wandb_env, "adamw-s0", seed=0)
    write_wandb_hf(wandb_env, "adamw-s1", seed=1)
    runs, messages = _by_name(wandb_env)
    assert set(runs) == {"adamw-s0", "adamw-s1"}, messages
    r0 = runs["adamw-s0"]
    assert r0.path == d0.resolve() and r0.meta["source"]["kind"] == "wandb"
    assert r0.meta["status"] == "finished"  # the exit record
    assert r0.meta["optimizer"]["name"] == "adamw"
    assert r0.meta["config"]["model"] == {"d": 8}  # nested config kept
    assert [runs[n].meta["seed"] for n in ("adamw-s0", "adamw-s1")] == [0, 1]
    # runs that differ only in the seed have the same config apart from it
    c0, c1 = (dict(runs[n].meta["config"]) for n in ("adamw-s0", "adamw-s1"))
    assert {k: v for k, v in c0.items() if k != "seed"} == {
        k: v for k, v in c1.items() if k != "seed"
    }
    from dashboard.metrics.groups import seed_groups

    assert len(seed_groups({n: x.meta for n, x in runs.items()})) == 1  # one group, two seeds
    # the step axis is the trainer's train/global_step, not wandb's count of log calls
    _check_hf_tables(r0.meta)


def test_wandb_torn_log_keeps_what_came_before(wandb_env):
    d = write_wandb_hf(wandb_env, "cut")
    (log,) = d.glob("*.wandb")
    data = log.read_bytes()
    log.write_bytes(data[: len(data) // 2])  # a run killed mid-write
    runs, _ = _by_name(wandb_env)
    steps, _, _ = foreign.read_table(runs["cut"].meta, "steps")
    assert 0 < len(steps) < STEPS
    assert steps["step"].tolist() == list(range(1, len(steps) + 1))


# --------------------------------------------------------------------------- mlflow


def test_mlflow_file_store(mlflow_file_store):
    store = mlflow_file_store
    ids = {write_mlflow_hf(store.as_uri(), f"adamw-s{s}", seed=s): s for s in (0, 1)}
    runs, messages = _by_name(store.parent)
    assert set(runs) == {"adamw-s0", "adamw-s1"}, messages
    r = runs["adamw-s1"]
    assert r.meta["source"]["run_id"] in ids and r.meta["seed"] == 1
    assert r.rel == f"mlruns/{r.meta['source']['experiment_id']}/{r.meta['source']['run_id']}"
    assert r.meta["config"]["lr"] == pytest.approx(1e-3)  # params come as strings
    assert r.meta["status"] == "finished"
    _check_hf_tables(r.meta)
    run = loader.Run(r.path, r.rel, r.meta)
    assert run.learning_rate == pytest.approx(1e-3) and run.optimizer == "adamw"
    # the two seeds form one seed group, as two recorded runs would
    from dashboard.metrics.groups import seed_groups

    assert list(seed_groups({n: x.meta for n, x in runs.items()}).values()) == [
        ["adamw-s0", "adamw-s1"]
    ]


@pytest.mark.slow
def test_mlflow_sqlite_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    db = tmp_path / "tracking" / "mlflow.db"
    db.parent.mkdir()
    write_mlflow_hf(f"sqlite:///{db}", "adamw-sql", seed=4)
    runs, messages = _by_name(tmp_path)
    assert set(runs) == {"adamw-sql"}, messages
    r = runs["adamw-sql"]
    assert r.rel.startswith("tracking/mlflow.db/") and r.meta["seed"] == 4
    _check_hf_tables(r.meta)

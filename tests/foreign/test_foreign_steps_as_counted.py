"""Foreign runs read exactly what was logged, at the step numbers the user counted: each tool's
own writer (SummaryWriter, plain and stepped `wandb.log`, MLflow's fluent API on a file store
and a SQLite store, Lightning's TensorBoard, CSV and MLflow loggers); values at three steps per
metric equal what was logged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from foreign_writers import (
    EVAL_EVERY,
    STEPS,
    assert_read_as_logged,
    write_mlflow_loop,
    write_summarywriter,
    write_wandb_loop,
)

from dashboard import foreign


def _only_run(root):
    found = foreign.discover(root.resolve())
    assert len(found.runs) == 1, (found.runs, found.messages)
    return found.runs[0]


def test_summarywriter_reads_at_the_steps_given(tmp_path):
    logged = write_summarywriter(tmp_path / "tb" / "loop")
    run = _only_run(tmp_path)
    assert run.meta["source"]["step_offset"] == 0
    assert_read_as_logged(run.meta, logged)


def test_plain_wandb_log_reads_at_the_users_one_based_steps(wandb_env):
    """`wandb.log(row)`: wandb's `_step` is 0 for the first call; the user's first step is 1,
    so the first loss is at step 1 and the evaluations at 10, 20, 30 (not 9, 19, 29)."""
    _, logged = write_wandb_loop(wandb_env, "plain", stepped=False)
    run = _only_run(wandb_env)
    assert run.meta["source"]["step_offset"] == 1
    assert "+ 1" in run.meta["source"]["step_rule"]
    assert_read_as_logged(run.meta, logged)
    evals, _, _ = foreign.read_table(run.meta, "evals")
    assert evals["step"].tolist() == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))


def test_stepped_wandb_log_keeps_the_steps_given(wandb_env):
    """`wandb.log(row, step=s)`: the user's own count, kept as it is."""
    _, logged = write_wandb_loop(wandb_env, "stepped", stepped=True)
    run = _only_run(wandb_env)
    assert run.meta["source"]["step_offset"] == 0
    assert "as logged" in run.meta["source"]["step_rule"]
    assert_read_as_logged(run.meta, logged)


def test_wandb_steps_given_from_zero_stay_at_zero(wandb_env):
    """A user who counts from 0 and says so (`step=0` first) sees step 0: the rule reads
    whether steps were given, not what the first one was."""
    import wandb

    run = wandb.init(project="loops", dir=str(wandb_env), name="from-zero")
    for s in range(5):
        run.log({"loss": 1.0 / (s + 1)}, step=s)
    run.finish()
    from foreign_writers import wait_for_wandb_exit

    (d,) = (wandb_env / "wandb").glob("offline-run-*")
    wait_for_wandb_exit(d)
    steps, _, _ = foreign.read_table(_only_run(wandb_env).meta, "steps")
    assert steps["step"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(steps["loss"], [1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5])


def test_mlflow_fluent_api_on_a_file_store(mlflow_file_store):
    logged = write_mlflow_loop(mlflow_file_store.as_uri(), "loop")
    run = _only_run(mlflow_file_store.parent)
    assert run.meta["optimizer"]["name"] == "adamw"
    assert_read_as_logged(run.meta, logged, rtol=0)


@pytest.mark.slow
def test_mlflow_fluent_api_on_a_sqlite_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    db = tmp_path / "tracking" / "mlflow.db"
    db.parent.mkdir()
    logged = write_mlflow_loop(f"sqlite:///{db}", "loop-sql")
    run = _only_run(tmp_path)
    assert run.rel.startswith("tracking/mlflow.db/")
    assert_read_as_logged(run.meta, logged, rtol=0)


# --------------------------------------------------------------------------- Lightning

LIGHTNING_STEPS, LIGHTNING_EVAL = 8, 4


def _fit(tmp_path, loggers) -> dict[str, dict[int, float]]:
    """A tiny fit; returns what it logged, keyed by the user's step (optimizer steps done,
    counting the one being taken: Lightning's global_step + 1 in training_step; the evaluation
    after the 4th step is at step 4)."""
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import LearningRateMonitor

    logged: dict[str, dict[int, float]] = {"loss": {}, "lr": {}, "val": {}}

    class Module(pl.LightningModule):
        def __init__(self, lr: float = 5e-3, seed: int = 3):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(8, 4)
            self._val: list[float] = []

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            logged["loss"][self.global_step + 1] = float(loss.detach())
            logged["lr"][self.global_step + 1] = self.hparams.lr
            return loss

        def validation_step(self, batch, batch_idx):
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("val_loss", loss)
            self._val.append(float(loss))

        def on_validation_epoch_end(self):
            logged["val"][self.global_step] = float(np.mean(self._val))
            self._val.clear()

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    gen = torch.Generator().manual_seed(0)
    n = 4 * LIGHTNING_EVAL
    data = torch.utils.data.TensorDataset(
        torch.randn(n, 8, generator=gen), torch.randn(n, 4, generator=gen)
    )
    load = torch.utils.data.DataLoader(data, batch_size=4)
    pl.Trainer(
        max_steps=LIGHTNING_STEPS,
        logger=loggers,
        callbacks=[LearningRateMonitor(logging_interval="step")],
        log_every_n_steps=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    ).fit(Module(), load, load)
    return logged


def test_lightning_tensorboard_csv_and_mlflow_loggers(tmp_path, mlflow_file_store):
    pytest.importorskip("tensorboard")
    pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

    logged = _fit(
        tmp_path,
        [
            TensorBoardLogger(str(tmp_path / "runs"), name="tb"),
            CSVLogger(str(tmp_path / "runs"), name="csv"),
            MLFlowLogger("pl", tracking_uri=mlflow_file_store.as_uri()),
        ],
    )
    assert sorted(logged["loss"]) == list(range(1, LIGHTNING_STEPS + 1))
    assert sorted(logged["val"]) == [4, 8]
    found = foreign.discover((tmp_path / "runs").resolve())
    by_kind = {r.meta["source"]["kind"]: r for r in found.runs}
    assert set(by_kind) == {"tensorboard", "csv"}, found.messages
    (ml,) = foreign.discover(mlflow_file_store.resolve()).runs
    for run in (by_kind["tensorboard"], by_kind["csv"], ml):
        assert run.meta["source"]["writer"] == "lightning", run.rel
        assert run.meta["optimizer"]["name"] == "adamw" and run.meta["seed"] == 3
        assert_read_as_logged(run.meta, logged)
    csv = by_kind["csv"]
    assert csv.rel == "csv/version_0"
    assert csv.meta["config"] == {"lr": 5e-3, "seed": 3}  # hparams.yaml
    assert csv.meta["source"]["columns"] == {
        "loss": "train_loss",
        "lr": "lr-AdamW",
        "eval:val": "val_loss",
    }

"""The default metric names against what the real loggers write: the HF Trainer's TensorBoard,
W&B and MLflow callbacks and Lightning's TensorBoard, W&B and MLflow loggers, each training a
tiny model for a few steps; the reader must find loss, lr, grad norm and eval loss unaided."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from foreign_writers import wait_for_wandb_exit

from dashboard import foreign

STEPS, EVAL_EVERY = 8, 4


def _runs(root):
    found = foreign.discover(root.resolve())
    assert found.runs, found.messages
    return found.runs


def _check(run, *, grad_norm: bool, lr: float):
    steps, msgs, _ = foreign.read_table(run.meta, "steps")
    assert msgs == [] and run.readable
    assert steps["step"].tolist() == list(range(1, STEPS + 1)), steps["step"].tolist()
    assert steps["loss"].notna().all() and np.isfinite(steps["loss"]).all()
    assert steps["lr"].notna().all()
    assert steps["grad_norm"].notna().all() == grad_norm
    evals, _, _ = foreign.read_table(run.meta, "evals")
    assert evals["step"].tolist() == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert set(evals["split"]) == {"val"} and evals["loss"].notna().all()
    assert run.meta["optimizer"]["name"] == "adamw"
    assert run.meta["optimizer"]["hyperparameters"]["lr"] == pytest.approx(lr)
    assert run.meta["seed"] == 3
    return steps, evals


# --------------------------------------------------------------------------- HF Trainer


def _hf_trainer(tmp_path, report_to: list[str], monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "runs" / "hf-tb"))
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8,
    )
    ids = torch.randint(0, 32, (32, 8), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": x, "labels": x} for x in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=2e-3,
        seed=3,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=EVAL_EVERY,
        save_strategy="no",
        report_to=report_to,
        run_name="hf-adamw",
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=LlamaForCausalLM(cfg), args=args, train_dataset=data, eval_dataset=data).train()


def test_hf_trainer_tensorboard_wandb_mlflow(tmp_path, monkeypatch, wandb_env, mlflow_file_store):
    """One Trainer run reporting to all three (the names each callback writes differ)."""
    pytest.importorskip("tensorboard")
    import wandb

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_file_store.as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "baselines")
    _hf_trainer(tmp_path, ["tensorboard", "wandb", "mlflow"], monkeypatch)
    wandb.finish()  # the Trainer leaves its W&B run open (you may log more after train())
    (d,) = (wandb_env / "wandb").glob("offline-run-*")
    wait_for_wandb_exit(d)
    (tb,) = _runs(tmp_path / "runs")
    (wb,) = _runs(wandb_env / "wandb")
    (ml,) = _runs(mlflow_file_store)
    assert tb.meta["source"]["columns"]["loss"] == "train/loss"
    assert wb.meta["source"]["columns"]["loss"] == "train/loss" and wb.meta["name"] == "hf-adamw"
    assert ml.meta["source"]["columns"]["loss"] == "loss"
    results = []
    for run in (tb, wb, ml):
        assert run.meta["source"]["writer"] == "hf" and run.meta["source"]["step_offset"] == 0
        results.append(_check(run, grad_norm=True, lr=2e-3))
    for steps, evals in results[1:]:  # the same numbers through each tool
        np.testing.assert_allclose(steps["loss"], results[0][0]["loss"], rtol=1e-5)
        np.testing.assert_allclose(evals["loss"], results[0][1]["loss"], rtol=1e-5)


# --------------------------------------------------------------------------- Lightning


def _lightning(tmp_path, logger):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import LearningRateMonitor

    class Module(pl.LightningModule):
        def __init__(self, lr: float = 5e-3, seed: int = 3):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(8, 4)

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(4 * EVAL_EVERY, 8, generator=gen), torch.randn(4 * EVAL_EVERY, 4, generator=gen)
    )
    load = torch.utils.data.DataLoader(data, batch_size=4)
    pl.Trainer(
        max_steps=STEPS,
        logger=logger,
        callbacks=[LearningRateMonitor(logging_interval="step")],
        log_every_n_steps=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    ).fit(Module(), load, load)


def test_lightning_tensorboard_wandb_mlflow_loggers(tmp_path, wandb_env, mlflow_file_store):
    """One fit logging to all three of Lightning's loggers."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("lightning")
    import wandb
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    loggers = [
        TensorBoardLogger(str(tmp_path / "runs"), name="pl"),
        WandbLogger(project="pl", save_dir=str(wandb_env), name="pl-adamw"),
        MLFlowLogger("pl", tracking_uri=mlflow_file_store.as_uri()),
    ]
    _lightning(tmp_path, loggers)
    wandb.finish()
    (d,) = (wandb_env / "wandb").glob("offline-run-*")
    wait_for_wandb_exit(d)
    (tb,) = _runs(tmp_path / "runs")
    (wb,) = _runs(wandb_env / "wandb")
    (ml,) = _runs(mlflow_file_store)
    assert tb.rel == "pl/version_0"
    assert tb.meta["source"]["columns"] == {
        "loss": "train_loss",
        "lr": "lr-AdamW",
        "eval:val": "val_loss",
    }
    results = []
    for run in (tb, wb, ml):
        # Lightning's loggers count from 0: its step 0 is our step 1 (the evaluation after the
        # 4th optimizer step, logged at its step 3, is at our step 4)
        assert run.meta["source"]["writer"] == "lightning", run.rel
        assert run.meta["source"]["step_offset"] == 1
        results.append(_check(run, grad_norm=False, lr=5e-3))
    for steps, evals in results[1:]:
        np.testing.assert_allclose(steps["loss"], results[0][0]["loss"], rtol=1e-5)
        np.testing.assert_allclose(evals["loss"], results[0][1]["loss"], rtol=1e-5)

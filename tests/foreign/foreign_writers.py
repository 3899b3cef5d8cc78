"""Foreign runs written by the real libraries (TensorBoard's SummaryWriter, wandb offline, MLflow's
client) for the foreign-run reader's tests. (A module of its own, not conftest: every test room
has a conftest, and `import conftest` would find whichever came first.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

STEPS = 30
EVAL_EVERY = 10


def loss_at(step: int) -> float:
    return 4.0 / (1.0 + 0.1 * step)


def lr_at(step: int) -> float:
    return 1e-3 * (1.0 - step / (2 * STEPS))


def write_tensorboard_hf(run_dir: Path, seed: int = 0, steps: int = STEPS, new_style=False):
    """What the HF Trainer's TensorBoard callback writes: `train/*` and `eval/*` scalars, the
    TrainingArguments as the `args` text, and hparams."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    args = {"learning_rate": 1e-3, "seed": seed, "optim": "adamw_torch", "output_dir": "out"}
    w.add_text("args", json.dumps(args))
    for s in range(1, steps + 1):
        w.add_scalar("train/loss", loss_at(s) + 0.01 * seed, s, new_style=new_style)
        w.add_scalar("train/learning_rate", lr_at(s), s, new_style=new_style)
        w.add_scalar("train/num_input_tokens_seen", 64 * s, s, new_style=new_style)
        if s % EVAL_EVERY == 0:
            w.add_scalar("eval/loss", loss_at(s) + 0.5, s, new_style=new_style)
    w.add_histogram("weights/fc", np.array([0.1, 0.2, 0.2, 0.5, -0.3]), 5)
    w.close()
    return run_dir


def write_wandb_hf(root: Path, name: str, seed: int = 0, steps: int = STEPS) -> Path:
    """A wandb offline run as the HF Trainer's W&B callback logs it (`train/global_step` as the
    step metric, one `log` call per logging step and per evaluation)."""
    import wandb

    run = wandb.init(
        project="baselines",
        dir=str(root),
        name=name,
        config={"learning_rate": 1e-3, "seed": seed, "optim": "adamw_torch", "model": {"d": 8}},
    )
    for s in range(1, steps + 1):
        run.log({"train/loss": loss_at(s), "train/learning_rate": lr_at(s), "train/global_step": s})
        if s % EVAL_EVERY == 0:
            run.log({"eval/loss": loss_at(s) + 0.5, "train/global_step": s})
    run.finish()
    (d,) = [p for p in (root / "wandb").iterdir() if p.name.endswith(run.id)]
    wait_for_wandb_exit(d)
    return d


def wait_for_wandb_exit(run_dir: Path, timeout: float = 60.0) -> None:
    """wandb's service writes the offline log after `finish()` returns: wait for its exit
    record (the last one) before reading."""
    from dashboard.foreign import wandb_run

    deadline = time.monotonic() + timeout
    while wandb_run.read(run_dir)["status"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"wandb did not finish writing {run_dir}")
        time.sleep(0.1)


def write_mlflow_hf(uri: str, name: str, seed: int = 0, steps: int = STEPS) -> str:
    """An MLflow run as the HF Trainer's MLflow callback logs it (`loss`, `learning_rate`,
    `eval_loss`, params as strings)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("baselines")
    exp_id = exp.experiment_id if exp else client.create_experiment("baselines")
    run = client.create_run(exp_id, run_name=name)
    rid = run.info.run_id
    params = {"learning_rate": 1e-3, "seed": seed, "optim": "adamw_torch", "output_dir": "o"}
    t = 1_700_000_000_000
    metrics = []
    for s in range(1, steps + 1):
        metrics += [Metric("loss", loss_at(s), t + 100 * s, s)]
        metrics += [Metric("learning_rate", lr_at(s), t + 100 * s, s)]
        if s % EVAL_EVERY == 0:
            metrics += [Metric("eval_loss", loss_at(s) + 0.5, t + 100 * s + 50, s)]
    client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(rid)
    return rid

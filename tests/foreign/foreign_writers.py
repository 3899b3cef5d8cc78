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


# ------------------------------------------------------------- as a user counts their steps


def grad_norm_at(step: int) -> float:
    return 1.0 + 0.25 * np.sin(step)


def user_logged(steps: int = STEPS) -> dict[str, dict[int, float]]:
    """What the user's loop logs at its step s = 1..steps (their own count): loss, lr and the
    gradient norm every step, an evaluation loss every EVAL_EVERY steps."""
    out: dict[str, dict[int, float]] = {"loss": {}, "lr": {}, "grad_norm": {}, "val": {}}
    for s in range(1, steps + 1):
        out["loss"][s] = loss_at(s)
        out["lr"][s] = lr_at(s)
        out["grad_norm"][s] = grad_norm_at(s)
        if s % EVAL_EVERY == 0:
            out["val"][s] = loss_at(s) + 0.5
    return out


def write_summarywriter(run_dir: Path, steps: int = STEPS) -> dict[str, dict[int, float]]:
    """A plain loop with torch's SummaryWriter, `add_scalar(name, value, step)`."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    logged = user_logged(steps)
    w = SummaryWriter(str(run_dir))
    for s in range(1, steps + 1):
        w.add_scalar("train/loss", logged["loss"][s], s)
        w.add_scalar("train/learning_rate", logged["lr"][s], s)
        w.add_scalar("train/grad_norm", logged["grad_norm"][s], s)
        if s in logged["val"]:
            w.add_scalar("eval/loss", logged["val"][s], s)
    w.close()
    return logged


def write_wandb_loop(
    root: Path, name: str, *, stepped: bool, steps: int = STEPS
) -> tuple[Path, dict[str, dict[int, float]]]:
    """A plain loop with one `wandb.log(row)` per step (the evaluation in the same row), or
    `wandb.log(row, step=s)` when `stepped`."""
    import wandb

    logged = user_logged(steps)
    run = wandb.init(project="loops", dir=str(root), name=name, config={"lr": 1e-3, "seed": 0})
    for s in range(1, steps + 1):
        row = {"loss": logged["loss"][s], "lr": logged["lr"][s]}
        row["grad_norm"] = logged["grad_norm"][s]
        if s in logged["val"]:
            row["val_loss"] = logged["val"][s]
        if stepped:
            run.log(row, step=s)
        else:
            run.log(row)
    run.finish()
    (d,) = [p for p in (root / "wandb").iterdir() if p.name.endswith(run.id)]
    wait_for_wandb_exit(d)
    return d, logged


def write_mlflow_loop(uri: str, name: str, steps: int = STEPS) -> dict[str, dict[int, float]]:
    """A plain loop with MLflow's own fluent API: `mlflow.log_metrics(row, step=s)`."""
    import mlflow

    logged = user_logged(steps)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("loops")
    with mlflow.start_run(run_name=name):
        mlflow.log_params({"learning_rate": 1e-3, "seed": 0, "optimizer": "adamw"})
        for s in range(1, steps + 1):
            row = {"loss": logged["loss"][s], "learning_rate": logged["lr"][s]}
            row["grad_norm"] = logged["grad_norm"][s]
            if s in logged["val"]:
                row["eval_loss"] = logged["val"][s]
            mlflow.log_metrics(row, step=s)
    return logged


def three_steps(series: dict[int, float]) -> list[int]:
    """First, middle and last step of a logged series."""
    keys = sorted(series)
    return [keys[0], keys[len(keys) // 2], keys[-1]]


def assert_read_as_logged(meta: dict, logged: dict[str, dict[int, float]], rtol=1e-6) -> None:
    """Values at three steps per metric equal what was logged, at the user's step numbers."""
    from dashboard import foreign

    steps, msgs, _ = foreign.read_table(meta, "steps")
    assert msgs == [], msgs
    by_step = steps.set_index("step")
    for col in ("loss", "lr", "grad_norm"):
        if col not in logged or not logged[col]:
            continue
        assert sorted(by_step.index[by_step[col].notna()]) == sorted(logged[col]), col
        for s in three_steps(logged[col]):
            np.testing.assert_allclose(by_step.at[s, col], logged[col][s], rtol=rtol, err_msg=col)
    if logged.get("val"):
        evals, _, _ = foreign.read_table(meta, "evals")
        val = evals[evals["split"] == "val"].set_index("step")["loss"]
        assert sorted(val.index) == sorted(logged["val"])
        for s in three_steps(logged["val"]):
            np.testing.assert_allclose(val[s], logged["val"][s], rtol=rtol, err_msg="val")


def record_sgg(run_dir: Path, seed: int = 0, sinks=(), steps: int = 12) -> None:
    """A run recorded by our own Recorder (SGG on a tiny model), optionally mirrored."""
    import torch

    from recorder import Recorder
    from sgg import SGG

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-3), n_clusters=2, recluster_interval=5)
    cfg = {"lr": 1e-3, "seed": seed, "optimizer": "sgg"}
    with Recorder(
        run_dir, optimizer=opt, model=model, config=cfg, seed=seed, sinks=list(sinks)
    ) as rec:
        for step in range(1, steps + 1):
            x = torch.randn(16, 8)
            loss = torch.nn.functional.mse_loss(model(x), x[:, :4])
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=16 * step)


def age(path: Path, seconds: float = 3600.0) -> None:
    """Make a file look written `seconds` ago (a run that stopped long ago, not a live one)."""
    import os

    t = time.time() - seconds
    os.utime(path, (t, t))

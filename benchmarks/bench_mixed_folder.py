"""A mixed folder opens fast: `python -m benchmarks.bench_mixed_folder`.

Builds (in a temporary folder) what a team's folder looks like after a few weeks: 12 runs
recorded by us (copies of the 200-step runs in sample_runs/) beside 12 foreign baselines written
by each tool's own writer, 200 steps each, as the HF Trainer logs them: 3 TensorBoard
(`SummaryWriter`), 3 W&B offline runs (`wandb.log(row)`), 3 MLflow runs in one SQLite store and
3 Lightning `CSVLogger` runs. Then measures the dashboard's cold load (a fresh process: discover,
read, the default Summary page; the foreign runs' disk cache off, so every foreign file is read)
with `benchmarks.bench_dashboard.measure`. Target: cold <= 5 s (issue 17).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bench_dashboard import measure

REPO = Path(__file__).resolve().parents[1]
STEPS = 200
EVAL_EVERY = 25


def loss_at(step: int, seed: int) -> float:
    return 5.5 / (1.0 + 0.02 * step) + 0.01 * seed


def lr_at(step: int) -> float:
    return 4e-3 * min(1.0, step / 20)


def hf_args(seed: int) -> dict:
    return {"learning_rate": 4e-3, "seed": seed, "optim": "adamw_torch", "max_steps": STEPS}


def write_tensorboard(run_dir: Path, seed: int) -> None:
    import json

    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    w.add_text("args", json.dumps(hf_args(seed)))
    for s in range(1, STEPS + 1):
        w.add_scalar("train/loss", loss_at(s, seed), s)
        w.add_scalar("train/learning_rate", lr_at(s), s)
        w.add_scalar("train/grad_norm", 1.0 + 0.1 * ((s * 7) % 5), s)
        if s % EVAL_EVERY == 0:
            w.add_scalar("eval/loss", loss_at(s, seed) + 0.3, s)
    w.close()


def write_wandb(root: Path, seed: int) -> None:
    import wandb

    run = wandb.init(
        project="baselines", dir=str(root), name=f"wandb-s{seed}", config=hf_args(seed)
    )
    for s in range(1, STEPS + 1):
        row = {"train/loss": loss_at(s, seed), "train/learning_rate": lr_at(s)}
        run.log({**row, "train/global_step": s})
        if s % EVAL_EVERY == 0:
            run.log({"eval/loss": loss_at(s, seed) + 0.3, "train/global_step": s})
    run.finish()


def write_mlflow(store: Path, seed: int) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("baselines")
    exp_id = exp.experiment_id if exp else client.create_experiment("baselines")
    rid = client.create_run(exp_id, run_name=f"mlflow-s{seed}").info.run_id
    t = 1_700_000_000_000
    metrics = []
    for s in range(1, STEPS + 1):
        metrics += [Metric("loss", loss_at(s, seed), t + 100 * s, s)]
        metrics += [Metric("learning_rate", lr_at(s), t + 100 * s, s)]
        if s % EVAL_EVERY == 0:
            metrics += [Metric("eval_loss", loss_at(s, seed) + 0.3, t + 100 * s + 50, s)]
    for i in range(0, len(metrics), 900):  # MLflow caps a batch at 1,000 metrics
        client.log_batch(rid, metrics=metrics[i : i + 900])
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in hf_args(seed).items()])
    client.set_terminated(rid)


def write_csv_logger(root: Path, seed: int) -> None:
    from lightning.pytorch.loggers import CSVLogger

    log = CSVLogger(str(root), name=f"lightning-s{seed}")
    log.log_hyperparams({"lr": 4e-3, "seed": seed, "optimizer": "adamw"})
    for s in range(STEPS):  # Lightning counts global_step from 0
        log.log_metrics({"train_loss": loss_at(s + 1, seed)}, step=s)
        if (s + 1) % EVAL_EVERY == 0:
            log.log_metrics({"val_loss": loss_at(s + 1, seed) + 0.3}, step=s)
    log.save()
    log.finalize("success")


def build(root: Path) -> None:
    recorded = sorted(p for p in (REPO / "sample_runs").iterdir() if (p / "run.json").is_file())
    for p in recorded[:12]:
        shutil.copytree(p, root / "recorded" / p.name)
    foreign = root / "foreign"
    (foreign / "mlflow").mkdir(parents=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    for seed in range(3):
        write_tensorboard(foreign / "tensorboard" / f"tb-s{seed}", seed)
        write_wandb(foreign, seed)
        write_mlflow(foreign / "mlflow", seed)
        write_csv_logger(foreign / "lightning_logs", seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    try:
        t = time.perf_counter()
        build(tmp)
        print(f"built 12 recorded + 12 foreign runs in {time.perf_counter() - t:.0f} s: {tmp}")
        os.environ["SGG_FOREIGN_CACHE"] = "off"  # cold: every foreign file is read
        print(f"load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        measure("mixed folder (12 recorded + 12 foreign)", tmp, a.repeat, cold_target=5.0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Two records of one HF Trainer setup for the like-for-like tests, written by the real writers:
the recorder as its HF callback writes (config.training_arguments nested, the gradient norm
after clipping) and TensorBoard's SummaryWriter as the Trainer's TensorBoard callback writes
(the TrainingArguments as the flat `args` text, `train/grad_norm` before clipping). Fast: a tiny
linear model instead of the Trainer (tests/integration/test_integration_hf.py runs the real
Trainer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

STEPS = 30
LOG_EVERY = 10


def hf_args(**over: Any) -> dict[str, Any]:
    """A real `TrainingArguments(...).to_dict()` (its ~150 settings, as the Trainer logs them)."""
    from transformers import TrainingArguments

    kw = dict(
        output_dir="out",
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=LOG_EVERY,
        seed=0,
        report_to="none",
        use_cpu=True,
    )
    kw.update(over)
    return TrainingArguments(**kw).to_dict()


def _batches(seed: int):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        yield torch.randn(4, 8, generator=gen), torch.randn(4, 2, generator=gen)


def write_recorded_hf(run_dir: Path, args: dict[str, Any], *, sgg: bool = True) -> dict:
    """The recorder's HF callback's record: SGG(AdamW) with the Trainer's clipping before each
    step, the loss logged every `logging_steps` (the mean since the last log) and null between.
    Returns {step: logged loss}."""
    from recorder import Recorder
    from sgg import SGG

    torch.manual_seed(args["seed"])
    model = torch.nn.Linear(8, 2)
    base = torch.optim.AdamW(model.parameters(), lr=args["learning_rate"], weight_decay=0.0)
    opt = SGG(base, n_clusters=2, recluster_interval=10, update_impl="eager") if sgg else base
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / STEPS)  # "linear"
    logged, since = {}, []
    every = args["logging_steps"]
    with Recorder(
        run_dir,
        optimizer=opt,
        model=model,
        config={"training_arguments": args},
        seed=args["seed"],
        source="hf",
        settings=args,
    ) as rec:
        for step, (x, y) in enumerate(_batches(args["seed"]), start=1):
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad()
            since.append(float(loss.detach()))
            if step % every == 0:
                logged[step] = sum(since) / len(since)
                since = []
                rec.log_step(step, loss=logged[step])
            else:
                rec.log_step(step)
    return logged


def write_tensorboard_hf(run_dir: Path, args: dict[str, Any], grad_norm: float = 2.0) -> dict:
    """What the HF Trainer's TensorBoard callback writes: the arguments as the `args` text, and
    at every logging step `train/loss`, `train/learning_rate` and `train/grad_norm` (the norm
    before clipping: above max_grad_norm). Returns {tag: {step: value}}."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    w.add_text("args", json.dumps(args, indent=2))
    out: dict[str, dict[int, float]] = {"train/loss": {}, "train/grad_norm": {}}
    for step in range(args["logging_steps"], STEPS + 1, args["logging_steps"]):
        loss, norm = 1.0 / step, grad_norm * (1.0 + 0.1 * (step % 3))
        lr = args["learning_rate"] * (1.0 - step / STEPS)
        w.add_scalar("train/loss", loss, step)
        w.add_scalar("train/learning_rate", lr, step)
        w.add_scalar("train/grad_norm", norm, step)
        w.add_scalar("train/epoch", step / STEPS, step)
        out["train/loss"][step], out["train/grad_norm"][step] = loss, norm
    w.close()
    return out

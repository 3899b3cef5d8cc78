"""`sgg-train` / `python -m sgg_train`: train a small LLaMA-style byte-level LM, recorded.

The model is built from a `LlamaConfig` (no weights downloaded) and trained on the text of the
standard library's `pydoc_data.topics`, with the last 10% held out for the eval loss. The data
order depends only on `--seed` (its own generator), so an SGG run and an AdamW run with the same
seed see the same batches step by step. It records through the recorder's public API only.

    python -m sgg_train --optimizer sgg --lr 3e-3 --steps 1000 --out runs/sgg
    python -m sgg_train --optimizer adamw --shadow --lr 3e-3 --steps 1000 --out runs/adamw
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from recorder import Recorder, RecorderError, RecorderOptions, RunExistsError
from runformat import schema
from runformat.atomic import atomic_write
from sgg_train.config import TrainConfig, add_training_options
from sgg_train.data import eval_windows, load_corpus, sample_batch, split_corpus
from sgg_train.model import (
    LR_SCHEDULE,
    build_model,
    build_optimizer,
    lm_loss,
    lr_lambda,
    sgg_options,
)


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: torch.Tensor, batch_size: int) -> list[float]:
    """The loss of each eval batch (their spread lets a single run carry an uncertainty)."""
    was = model.training
    model.eval()
    losses = [lm_loss(model, w).item() for w in windows.split(batch_size)]
    model.train(was)
    return losses


def _log_eval(rec: Recorder, step: int, batch_losses: list[float]) -> float:
    """Log the per-batch eval losses (the recorder stores their mean, sd and count)."""
    rec.log_eval(step=step, batch_losses=batch_losses)
    return sum(batch_losses) / len(batch_losses)


# ---------------------------------------------------------------------------------------- loop
def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Whole or not at all: a job killed while saving keeps the previous checkpoint."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except OSError as exc:
        raise RecorderError(exc.errno or 5, f"cannot write {path}: {exc}", str(path)) from exc


@dataclasses.dataclass
class _Session:
    """Everything one run trains with, fresh or restored from its checkpoint."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator  # the data order's own generator
    train_data: torch.Tensor
    val: torch.Tensor  # the fixed held-out windows
    start: int  # steps already trained


def _load_checkpoint(cfg: TrainConfig, mode: str) -> dict[str, Any] | None:
    """The checkpoint to resume from (None for a new run); fails before anything is built."""
    run_dir = cfg.run_dir
    ckpt_path = run_dir / schema.CHECKPOINT
    if mode == "new" and (run_dir / schema.RUN_JSON).exists():
        raise RunExistsError(
            17, f"{run_dir} already holds a run; pass --resume or --overwrite", str(run_dir)
        )
    if mode != "resume":
        return None
    if not ckpt_path.is_file():
        raise RecorderError(
            2, f"cannot resume {run_dir}: no {schema.CHECKPOINT} in it", str(ckpt_path)
        )
    with ckpt_path.open("rb") as f:  # a local file or an object (--out s3://...)
        return torch.load(f, map_location="cpu", weights_only=False)


def _session(cfg: TrainConfig, ckpt: dict[str, Any] | None) -> _Session:
    train_data, val_data = split_corpus(load_corpus(), cfg.val_fraction)
    val = eval_windows(val_data, cfg.eval_batches * cfg.batch_size, cfg.seq_len)
    model = build_model(cfg)
    opt = build_optimizer(cfg, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        start = int(ckpt["step"])
    return _Session(model, opt, sched, gen, train_data, val, start)


def _recorder_options(cfg: TrainConfig) -> RecorderOptions:
    return RecorderOptions(
        layer_stride=cfg.layer_stride,
        flush_every_steps=cfg.flush_every,
        flush_every_seconds=cfg.flush_seconds,
        histogram_every=cfg.histogram_every,
        histogram_bins=cfg.histogram_bins,
        membership_sample=cfg.membership_sample,
        compact_on_close=cfg.compact,
    )


def train(cfg: TrainConfig, mode: str = "new") -> dict[str, Any]:
    """Train and record one run; returns a small summary (final losses, steps, seconds)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    s = _session(cfg, _load_checkpoint(cfg, mode))
    summary: dict[str, Any] = {"run_dir": str(cfg.run_dir), "start_step": s.start}
    t0 = time.perf_counter()
    with Recorder(
        cfg.run_dir,
        optimizer=s.opt,
        model=s.model,
        config=cfg,
        mode=mode,
        seed=cfg.seed,
        resume_step=s.start if mode == "resume" else None,
        shadow=sgg_options(cfg) if cfg.shadow else None,
        options=_recorder_options(cfg),
        settings={"lr_schedule": LR_SCHEDULE},  # model.lr_lambda: warm-up, then cosine decay
    ) as rec:
        loss, val_loss = _steps(cfg, s, rec)
    summary.update(final_loss=loss, final_val_loss=val_loss, seconds=time.perf_counter() - t0)
    return summary


def _steps(cfg: TrainConfig, s: _Session, rec: Recorder) -> tuple[float, float]:
    """The training loop from `s.start`; returns the last train and validation losses."""
    bar = _progress(cfg, s.start)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    loss = torch.tensor(float("nan"))
    val_loss = float("nan")
    for step in range(s.start + 1, cfg.steps + 1):
        batch = sample_batch(s.train_data, cfg.batch_size, cfg.seq_len, s.gen)
        loss = lm_loss(s.model, batch)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
        s.opt.step()
        s.opt.zero_grad(set_to_none=True)
        s.sched.step()
        rec.log_step(step, loss=loss.detach(), tokens=tokens_per_step)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_loss = _log_eval(rec, step, evaluate(s.model, s.val, cfg.batch_size))
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0):
            rec.flush()  # the checkpoint never runs ahead of the recorded steps
            obj = _checkpoint(cfg, s.model, s.opt, s.sched, s.gen, step)
            save_checkpoint(cfg.run_dir / schema.CHECKPOINT, obj)
        if bar is not None:
            bar.update(1)
            if step % 10 == 0 or step == cfg.steps:
                bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_loss:.3f}")
    if bar is not None:
        bar.close()
    return float(loss.detach()), val_loss


def _checkpoint(cfg, model, opt, sched, gen, step) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "data_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "step": step,
        "config": dataclasses.asdict(cfg),
    }


def _progress(cfg: TrainConfig, start: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"{cfg.optimizer} lr={cfg.lr:g}",
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
    )


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, str]:
    p = argparse.ArgumentParser(
        prog="sgg-train",
        description=__doc__.split("\n\n")[0],
        epilog="`sgg-train sweep --help`: many runs (optimizers x learning rates x seeds).",
    )
    add_training_options(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--overwrite", action="store_true", help="delete the run in --out first")
    ns = vars(p.parse_args(argv))
    mode = "resume" if ns.pop("resume") else "overwrite" if ns.pop("overwrite") else "new"
    ns.pop("overwrite", None)
    try:
        cfg = TrainConfig(**ns)
    except ValueError as exc:
        p.error(str(exc))
    return cfg, mode


def main(argv: Sequence[str] | None = None) -> int:
    """`sgg-train ...`: train and record one run."""
    cfg, mode = parse_args(argv)
    try:
        summary = train(cfg, mode)
    except RecorderError as exc:
        print(f"sgg-train: error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(
        f"{summary['run_dir']}: final train loss {summary['final_loss']:.4f}, "
        f"val loss {summary['final_val_loss']:.4f} ({summary['seconds']:.0f} s)"
    )
    return 0

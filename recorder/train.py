"""`python -m recorder.train` (`sgg-train`): a small LLaMA-style byte-level LM, recorded.

The model is built from a `LlamaConfig` (no weights downloaded) and trained on the text of the
standard library's `pydoc_data.topics`, with the last 10% held out for the eval loss. The data
order depends only on `--seed` (its own generator), so an SGG run and an AdamW run with the same
seed see the same batches step by step.

    python -m recorder.train --optimizer sgg --lr 3e-3 --steps 1000 --out runs/sgg
    python -m recorder.train --optimizer adamw --shadow --lr 3e-3 --steps 1000 --out runs/adamw
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from recorder.recorder import Recorder, RecorderOptions
from recorder.writer import RecorderError, RunExistsError, atomic_write
from runformat import schema

VOCAB_SIZE = 256  # bytes


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # optimizer
    optimizer: str = "sgg"  # "sgg" (SGG wrapping AdamW) or "adamw"
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 50  # linear warm-up from 0
    weight_decay: float = 0.1  # decoupled, on tensors with >= 2 dims only
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 0.0  # clip the global gradient norm to this (0: off)
    # SGG (for --optimizer sgg, and for the shadow clustering of --optimizer adamw --shadow)
    n_clusters: int = 3
    recluster_interval: int = 100
    scale_decay: float = 0.99  # beta3: EMA decay of the cluster factors
    # data and schedule
    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    seed: int = 0
    val_fraction: float = 0.1
    eval_every: int = 100  # eval loss every this many steps (and at the end)
    eval_batches: int = 4  # fixed held-out batches per evaluation
    # model
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    # recording
    out: str = ""  # run directory (default runs/<optimizer>-lr<lr>)
    layer_stride: int = 10
    shadow: bool = False  # adamw only: record an observe-only SGG clustering
    flush_every: int = 100  # steps per chunk
    flush_seconds: float = 30.0
    histogram_every: int = 500  # whole-layer histograms when nothing clusters
    histogram_bins: int = 64
    membership_sample: int = 256  # positions per layer whose cluster is recorded
    compact: bool = True  # merge each table's chunks into one file at the end
    checkpoint_every: int = 200  # 0: never
    threads: int = 0  # torch threads (0: torch's default)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgg", "adamw"):
            raise ValueError(f"optimizer must be 'sgg' or 'adamw', got {self.optimizer!r}")
        if self.shadow and self.optimizer != "adamw":
            raise ValueError("shadow clustering is for --optimizer adamw")
        for name in (
            "steps",
            "batch_size",
            "seq_len",
            "d_model",
            "layers",
            "heads",
            "eval_every",
            "eval_batches",
            "histogram_bins",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.optimizer}-lr{self.lr:g}")


# ---------------------------------------------------------------------------------------- data
def load_corpus() -> torch.Tensor:
    """The bytes of `pydoc_data.topics` (values joined in sorted key order) as uint8."""
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


def split_corpus(data: torch.Tensor, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    n_val = int(len(data) * val_fraction)
    return data[: len(data) - n_val], data[len(data) - n_val :]


def sample_batch(
    data: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator
) -> torch.Tensor:
    """(batch, seq_len + 1) int64 windows at random offsets drawn from `gen` only."""
    starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(seq_len + 1)
    return data[idx].long()


def eval_windows(data: torch.Tensor, n: int, seq_len: int) -> torch.Tensor:
    """n evenly spaced windows over the held-out data (the same at every evaluation)."""
    starts = torch.linspace(0, len(data) - seq_len - 2, n).long()
    return data[starts[:, None] + torch.arange(seq_len + 1)].long()


# ---------------------------------------------------------------------------------------- model
def build_model(cfg: TrainConfig) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    inter = int(math.ceil(8 * cfg.d_model / 3 / 32) * 32)
    mcfg = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=cfg.d_model,
        intermediate_size=inter,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.seq_len,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(mcfg)


def lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    base = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if cfg.optimizer == "adamw":
        return base
    from sgg import SGG

    return SGG(base, **sgg_options(cfg))


def sgg_options(cfg: TrainConfig) -> dict[str, Any]:
    """SGG's options; its k-means seed follows `--seed`, so one seed is one full replicate."""
    return {
        "n_clusters": cfg.n_clusters,
        "recluster_interval": cfg.recluster_interval,
        "scale_decay": cfg.scale_decay,
        "seed": cfg.seed,
    }


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up, then cosine decay to `min_lr_ratio` at the last step."""

    def f(step: int) -> float:  # step: scheduler steps taken (0 for the first optimizer step)
        s = step + 1
        if s <= cfg.warmup_steps:
            return s / max(cfg.warmup_steps, 1)
        t = (s - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
        t = min(max(t, 0.0), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


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
    atomic_write(path, lambda f: torch.save(obj, f))


def train(cfg: TrainConfig, mode: str = "new") -> dict[str, Any]:
    """Train and record one run; returns a small summary (final losses, steps, seconds)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    run_dir = cfg.run_dir
    ckpt_path = run_dir / schema.CHECKPOINT
    ckpt = None
    if mode == "new" and (run_dir / schema.RUN_JSON).exists():  # fail before building anything
        raise RunExistsError(
            17, f"{run_dir} already holds a run; pass --resume or --overwrite", str(run_dir)
        )
    if mode == "resume":
        if not ckpt_path.is_file():
            raise RecorderError(
                2, f"cannot resume {run_dir}: no {schema.CHECKPOINT} in it", str(ckpt_path)
            )
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)

    data = load_corpus()
    train_data, val_data = split_corpus(data, cfg.val_fraction)
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

    options = RecorderOptions(
        layer_stride=cfg.layer_stride,
        flush_every_steps=cfg.flush_every,
        flush_every_seconds=cfg.flush_seconds,
        histogram_every=cfg.histogram_every,
        histogram_bins=cfg.histogram_bins,
        membership_sample=cfg.membership_sample,
        compact_on_close=cfg.compact,
    )
    shadow = sgg_options(cfg) if cfg.shadow else None
    tokens_per_step = cfg.batch_size * cfg.seq_len
    summary: dict[str, Any] = {"run_dir": str(run_dir), "start_step": start}
    t0 = time.perf_counter()
    with Recorder(
        run_dir,
        optimizer=opt,
        model=model,
        config=cfg,
        mode=mode,
        seed=cfg.seed,
        resume_step=start if mode == "resume" else None,
        shadow=shadow,
        options=options,
    ) as rec:
        bar = _progress(cfg, start)
        loss = torch.tensor(float("nan"))
        val_loss = float("nan")
        for step in range(start + 1, cfg.steps + 1):
            batch = sample_batch(train_data, cfg.batch_size, cfg.seq_len, gen)
            loss = lm_loss(model, batch)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            rec.log_step(step, loss=loss.detach(), tokens=tokens_per_step)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val_loss = _log_eval(rec, step, evaluate(model, val, cfg.batch_size))
            if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0):
                rec.flush()  # the checkpoint never runs ahead of the recorded steps
                save_checkpoint(ckpt_path, _checkpoint(cfg, model, opt, sched, gen, step))
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == cfg.steps:
                    bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_loss:.3f}")
        if bar is not None:
            bar.close()
    summary.update(
        final_loss=float(loss.detach()), final_val_loss=val_loss, seconds=time.perf_counter() - t0
    )
    return summary


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


# ---------------------------------------------------------------------------------------- CLI
# TrainConfig fields that `sgg-train sweep` sets per run (or per sweep) itself.
SWEPT = ("optimizer", "lr", "seed", "out", "threads", "progress")


def add_training_options(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one --option per TrainConfig field (except `skip`), defaults from TrainConfig."""
    d = TrainConfig()

    def add(name: str, *flags: str, **kw: Any) -> None:
        if name not in skip:
            p.add_argument(*flags, **kw)

    add("optimizer", "--optimizer", choices=("sgg", "adamw"), default=d.optimizer)
    add("lr", "--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--beta1", type=float, default=d.beta1)
    p.add_argument("--beta2", type=float, default=d.beta2)
    p.add_argument("--eps", type=float, default=d.eps)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0: off")
    p.add_argument("--n-clusters", type=int, default=d.n_clusters)
    p.add_argument("--recluster-interval", type=int, default=d.recluster_interval)
    p.add_argument("--scale-decay", type=float, default=d.scale_decay, help="SGG's beta3")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    add("seed", "--seed", type=int, default=d.seed)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-batches", type=int, default=d.eval_batches)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--heads", type=int, default=d.heads)
    add("out", "--out", default=d.out, help="run directory (default runs/<opt>-lr<lr>)")
    p.add_argument("--layer-stride", type=int, default=d.layer_stride)
    p.add_argument("--shadow", action="store_true", help="adamw: observe-only SGG clustering")
    p.add_argument("--flush-every", type=int, default=d.flush_every, help="steps per chunk")
    p.add_argument("--flush-seconds", type=float, default=d.flush_seconds)
    p.add_argument("--histogram-every", type=int, default=d.histogram_every)
    p.add_argument("--histogram-bins", type=int, default=d.histogram_bins)
    p.add_argument("--membership-sample", type=int, default=d.membership_sample)
    p.add_argument("--no-compact", dest="compact", action="store_false")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--no-checkpoint", dest="checkpoint_every", action="store_const", const=0)
    add("threads", "--threads", type=int, default=d.threads, help="0: torch's default")
    add("progress", "--no-progress", dest="progress", action="store_false")


def config_argv(cfg: TrainConfig) -> list[str]:
    """The command-line options that `parse_args` turns back into `cfg` (for subprocesses)."""
    argv: list[str] = []
    d = TrainConfig()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value == getattr(d, f.name):
            continue
        if f.name == "compact":
            argv.append("--no-compact")
        elif f.name == "progress":
            argv.append("--no-progress")
        elif f.name == "shadow":
            argv.append("--shadow")
        else:
            argv += [
                f"--{f.name.replace('_', '-')}",
                repr(value) if isinstance(value, float) else str(value),
            ]
    return argv


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
    """`sgg-train ...` trains one run; `sgg-train sweep ...` runs a sweep (recorder.sweep)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["sweep"]:
        from recorder.sweep import main as sweep_main

        return sweep_main(args[1:])
    cfg, mode = parse_args(args)
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


if __name__ == "__main__":
    sys.exit(main())

"""The training command's settings: one frozen `TrainConfig` and its command-line options.

`sgg-train` and `sgg-train sweep` share these options (`add_training_options`), and a sweep
turns a config back into the command line of one run (`config_argv`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runformat import storage


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
        if self.out:
            try:
                storage.locate(self.out)
            except ValueError as e:
                raise ValueError(f"out: {e}") from None  # the message never echoes a secret

    @property
    def run_dir(self) -> Path | storage.ObjectPath:
        """The run directory: a local path, or an object store prefix for `--out s3://...`
        (`runformat.storage.locate`; a URI with credentials or an endpoint is a ValueError)."""
        return storage.locate(self.out or f"runs/{self.optimizer}-lr{self.lr:g}")


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

"""The training command's model, loss, optimizer and learning-rate schedule.

A small LLaMA-style byte-level LM built from a `LlamaConfig` (no weights downloaded); AdamW with
decay on tensors of two or more dimensions, wrapped by SGG for `--optimizer sgg`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from sgg_train.config import TrainConfig
from sgg_train.data import VOCAB_SIZE


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


LR_SCHEDULE = "cosine"  # what run.json calls `lr_lambda`, in the HF Trainer's name for it


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

"""Writes ``sgg_checkpoint_v1.pt``: an SGG checkpoint and where training goes after it.

Run once with the code of commit 6e0872a (before issue 19's refactor of ``sgg/``) and kept: a
later ``SGG`` must load it and continue exactly (tests/sgg/test_checkpoint_format.py). Do not
regenerate it with newer code: the file stands for checkpoints users already have.

    python tests/sgg/data/make_checkpoint.py
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from sgg import SGG

HERE = Path(__file__).resolve().parent
STEPS_BEFORE, STEPS_AFTER = 10, 10


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def make_optimizer(model: nn.Module) -> SGG:
    ps = list(model.parameters())
    groups = [{"params": ps[:2], "lr": 1e-2}, {"params": ps[2:], "lr": 3e-3}]
    return SGG(
        torch.optim.AdamW(groups, weight_decay=0.1),
        recluster_interval=4,
        scale_decay=0.5,
        update_impl="eager",
    )


def train(model: nn.Module, opt: SGG, steps: int) -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 3, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def main() -> None:
    model = make_model()
    opt = make_optimizer(model)
    train(model, opt, STEPS_BEFORE)
    # state_dict() returns the live tensors: copies, before training goes on
    checkpoint = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
    train(model, opt, STEPS_AFTER)
    after = {name: t.clone() for name, t in model.state_dict().items()}
    factors = [opt.cluster_state(p).factors.clone() for p in opt.clustered_params()]
    torch.save(
        {"checkpoint": checkpoint, "after": after, "factors_after": factors},
        HERE / "sgg_checkpoint_v1.pt",
    )


if __name__ == "__main__":
    main()

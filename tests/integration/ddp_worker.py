"""The DDP training used by test_integration_ddp.py: one function per process, and the same
training in one process on the same global batch (the reference)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from recorder.distributed import rank_zero_recorder
from sgg import SGG

GLOBAL_BATCH = 8
STEPS = 24
SGG_OPTIONS = dict(n_clusters=3, recluster_interval=4, scale_decay=0.5, update_impl="eager")


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Linear(32, 4)
    )


def make_optimizer(model: torch.nn.Module) -> SGG:
    return SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), **SGG_OPTIONS)


def batch(step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's equal share of the global batch of `step` (the whole batch when world=1)."""
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 8, generator=gen)
    y = torch.randn(GLOBAL_BATCH, 4, generator=gen)
    n = GLOBAL_BATCH // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def train(model, net, opt, rec, rank: int, world: int) -> None:
    for step in range(1, STEPS + 1):
        x, y = batch(step, rank, world)
        loss = torch.nn.functional.mse_loss(net(x), y)  # a mean: DDP's average is the global mean
        loss.backward()
        opt.step()
        opt.zero_grad()
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)  # the global mean loss for the record (a sync; cheap here)
            logged /= world
        rec.log_step(step, loss=logged, tokens=x.numel())


def fingerprint(model, opt: SGG) -> dict[str, torch.Tensor]:
    """Everything that must agree: parameters, and per clustered layer assignments and factors."""
    st = [opt.cluster_state(p) for p in opt.clustered_params()]
    return {
        "params": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
        "assignments": torch.cat([s.assignments.reshape(-1).long() for s in st]),
        "factors": torch.cat([s.factors for s in st]),
        "sizes": torch.cat([s.sizes for s in st]),
    }


def worker(rank: int, world: int, init_file: str, run_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = make_model()
        net = DDP(model)
        opt = make_optimizer(net)
        with rank_zero_recorder(
            run_dir, optimizer=opt, model=model, config={"world": world}, seed=0, layer_stride=1
        ) as rec:
            train(model, net, opt, rec, rank, world)
        fp = fingerprint(model, opt)
        gathered = {}
        for key, t in fp.items():
            parts = [torch.empty_like(t) for _ in range(world)]
            dist.all_gather(parts, t)
            gathered[key] = parts
        torch.save(
            {
                "gathered": gathered,
                "recorder": type(rec).__name__,
                "pid": os.getpid(),
                "reclusters": opt.last_recluster_step,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def single_process(run_dir: str | None = None) -> dict[str, torch.Tensor]:
    """The same training in one process on the whole global batch."""
    from recorder.distributed import NullRecorder

    model = make_model()
    opt = make_optimizer(model)
    rec = NullRecorder()
    train(model, model, opt, rec, 0, 1)
    return fingerprint(model, opt)

"""The DDP training used by test_integration_ddp.py: one function per process, and the same
training in one process on the same global batch (the reference)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from integration_helpers import all_gather_each, make_optimizer, process_group, train
from torch.nn.parallel import DistributedDataParallel as DDP

from recorder.distributed import rank_zero_recorder
from sgg import SGG


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Linear(32, 4)
    )


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
    with process_group(rank, world, init_file):
        model = make_model()
        net = DDP(model)
        opt = make_optimizer(net)
        with rank_zero_recorder(
            run_dir, optimizer=opt, model=model, config={"world": world}, seed=0, layer_stride=1
        ) as rec:
            train(net, opt, rec, rank, world)
        torch.save(
            {
                "gathered": all_gather_each(fingerprint(model, opt), world),
                "recorder": type(rec).__name__,
                "pid": os.getpid(),
                "reclusters": opt.last_recluster_step,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )


def single_process(run_dir: str | None = None) -> dict[str, torch.Tensor]:
    """The same training in one process on the whole global batch."""
    from recorder.distributed import NullRecorder

    model = make_model()
    opt = make_optimizer(model)
    rec = NullRecorder()
    train(model, opt, rec, 0, 1)
    return fingerprint(model, opt)

"""Tiny models and data shared by the integration tests (DDP, FSDP, Trainer, PEFT, accelerate).

Spawned workers import this module too (by name: pytest put this folder on sys.path, which
spawn hands down to the children).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from runformat.chunks import live_chunks
from sgg import SGG

VOCAB = 64
SEQ = 8

# the distributed tests (DDP, FSDP): the same training on WORLD ranks and in one process
GLOBAL_BATCH = 8
STEPS = 24
SGG_OPTIONS = dict(n_clusters=3, recluster_interval=4, scale_decay=0.5, update_impl="eager")


def make_optimizer(model: torch.nn.Module) -> SGG:
    return SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), **SGG_OPTIONS)


def batch(step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's equal share of the global batch of `step` (the whole batch when world=1)."""
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 8, generator=gen)
    y = torch.randn(GLOBAL_BATCH, 4, generator=gen)
    n = GLOBAL_BATCH // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def train(net, opt, rec, rank: int, world: int) -> None:
    """STEPS steps of `net` (wrapped or sharded, or the plain model when world=1)."""
    for step in range(1, STEPS + 1):
        x, y = batch(step, rank, world)
        # a mean: DDP and FSDP average the ranks' gradients, so this is the global mean
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)  # the global mean loss for the record (a sync; cheap here)
            logged /= world
        rec.log_step(step, loss=logged, tokens=x.numel())


@contextlib.contextmanager
def process_group(rank: int, world: int, init_file: str) -> Iterator[None]:
    """A gloo process group (one CPU thread per rank), destroyed on the way out."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_gather_each(tensors: dict[str, torch.Tensor], world: int) -> dict[str, list]:
    """Every rank's copy of each tensor, in rank order."""
    gathered = {}
    for key, t in tensors.items():
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        gathered[key] = parts
    return gathered


def _run_rank(rank: int, worker: Callable, *args) -> None:
    """Run one rank's `worker`, then leave without the interpreter's teardown: torch 2.13's gloo
    sometimes aborts at process exit ("terminate called without an active exception", seen with
    plain AdamW and no SGG code: 4 of 10 two-rank runs here) after all work is done. A worker
    that raises still reports its exception through mp.spawn as usual."""
    worker(rank, *args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn_ranks(worker: Callable, tmp: Path, name: str, world: int) -> tuple[Path, list[dict]]:
    """Run `worker(rank, world, init_file, run_dir, out_dir)` on `world` processes; return the
    run directory (tmp/runs/name) and what each rank saved as out_dir/rank{r}.pt."""
    run_dir, out = tmp / "runs" / name, tmp / "out"
    out.mkdir()
    mp.spawn(
        _run_rank,
        args=(worker, world, str(tmp / "init"), str(run_dir), str(out)),
        nprocs=world,
        join=True,
    )
    results = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(world)]
    return run_dir, results


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=SEQ,
    )
    return LlamaForCausalLM(cfg)


class TokenData(torch.utils.data.Dataset):
    """`n` fixed random token sequences (labels = inputs: causal LM loss)."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def read_table(run_dir: Path, table: str):
    """A table of a run directory read with pyarrow (every live chunk, in write order)."""
    d = Path(run_dir) / "tables" / table
    names = [p.name for p in d.iterdir()] if d.is_dir() else []
    files = [d / n for n in live_chunks(names)]  # compacted files supersede their chunks
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def render_every_view(root: Path, monkeypatch) -> set[str]:
    """Open `root` in the real dashboard script (Streamlit AppTest), visit every view, and
    return the run names its tables list; fails on any exception or error element."""
    from streamlit.testing.v1 import AppTest

    from dashboard.app import ENV_ROOT, VIEWS

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(str(repo / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    listed: set[str] = set()
    for view in VIEWS:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
        assert not at.error, (view, [e.value for e in at.error])
        for df in at.dataframe:
            if "Run" in df.value.columns:
                listed |= set(df.value["Run"].astype(str))
    return listed

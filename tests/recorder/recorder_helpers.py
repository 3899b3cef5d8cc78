"""Shared tiny models and a minimal stand-in for SGG's documented introspection."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.utils.hooks import RemovableHandle

from recorder.writer import list_chunks
from runformat import schema


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Linear(16, 3)
    )


def train_steps(model, opt, n, rec=None, start=1, seed=0):
    gen = torch.Generator().manual_seed(seed + start)
    for step in range(start, start + n):
        x = torch.randn(4, 8, generator=gen)
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        if rec is not None:
            rec.log_step(step, loss=loss, tokens=32)


def read(run_dir: Path, table: str):
    parts = [pq.read_table(p) for p in list_chunks(run_dir, table)]
    import pyarrow as pa

    return (pa.concat_tables(parts) if parts else schema.TABLES[table].empty_table()).to_pandas()


@dataclasses.dataclass(frozen=True)
class FakeClusterState:
    assignments: torch.Tensor
    sizes: torch.Tensor
    centers: torch.Tensor
    mda: torch.Tensor
    raw_factors: torch.Tensor
    factors: torch.Tensor
    transitions: torch.Tensor | None
    last_recluster_step: int | None


class FakeSGG:
    """The documented introspection API over AdamW, without torch's step hooks (so the recorder's
    fallback path runs). Clusters by momentum terciles; factors are arbitrary but deterministic."""

    def __init__(self, base, n_clusters=3, recluster_interval=5, observe_only=False):
        self.base_optimizer = base
        self.param_groups = base.param_groups
        self.state = base.state
        self.config = {"n_clusters": n_clusters, "recluster_interval": recluster_interval}
        self.k = n_clusters
        self.t = recluster_interval
        self.sgg_step = 0
        self.last_recluster_step = None
        self.reclustered_last_step = False
        self.global_mda = None
        self.observe_only = observe_only
        self._states = {}
        self._hooks = collections.OrderedDict()

    def clustered_params(self):
        return [p for g in self.param_groups for p in g["params"] if p.dim() >= 2]

    def cluster_state(self, p):
        return self._states.get(id(p))

    def register_recluster_hook(self, fn):
        h = RemovableHandle(self._hooks)
        self._hooks[h.id] = fn
        return h

    def zero_grad(self):
        self.base_optimizer.zero_grad()

    def step(self):
        self.base_optimizer.step()
        self.observe_step()

    def observe_step(self):
        self.sgg_step += 1
        self.reclustered_last_step = self.sgg_step % self.t == 0
        if not self.reclustered_last_step:
            return
        devs = []
        for p in self.clustered_params():
            m = self.state[p]["exp_avg"].reshape(-1)
            qs = torch.quantile(m, torch.tensor([1 / 3, 2 / 3]))
            a = torch.bucketize(m, qs).to(torch.uint8)
            sizes = torch.bincount(a.long(), minlength=self.k)
            centers = torch.stack([m[a == c].mean() for c in range(self.k)])
            dev = (m - m.mean()).abs()
            devs.append(dev)
            mda = torch.stack([dev[a == c].median() for c in range(self.k)])
            old = self._states.get(id(p))
            trans = None
            if old is not None:
                trans = torch.bincount(
                    old.assignments.long() * self.k + a.long(), minlength=self.k**2
                ).view(self.k, self.k)
            raw = (mda.mean() / (mda + 1e-12)).clamp(0.1, 10)
            prev = old.factors if old is not None else torch.ones(self.k)
            self._states[id(p)] = FakeClusterState(
                a, sizes, centers, mda, raw, 0.9 * prev + 0.1 * raw, trans, self.sgg_step
            )
        self.global_mda = torch.cat(devs).median()
        self.last_recluster_step = self.sgg_step
        for fn in list(self._hooks.values()):
            fn(self, self.sgg_step)

"""Recording real runs onto the test store: a tiny torch model, SGG over AdamW, the real
Recorder, as the recorder's own tests train (tests/recorder/recorder_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from recorder import Recorder
from runformat import storage
from sgg import SGG

SGG_OPTIONS = {"n_clusters": 3, "recluster_interval": 4, "update_impl": "eager"}


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def batch(step: int) -> torch.Tensor:
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(step))


class Training:
    """A model, its SGG optimizer (restored from `checkpoint` when given) and a Recorder on
    `where`; `steps(n)` trains n more steps."""

    def __init__(
        self, where: str, checkpoint: dict | None = None, optimizer: str = "sgg", **options
    ) -> None:
        self.model = tiny_model()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-2)
        if optimizer == "sgg":
            self.opt = SGG(self.opt, **SGG_OPTIONS)
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.opt.load_state_dict(checkpoint["opt"])
        options.setdefault("flush_every_steps", 5)
        self.rec = Recorder(where, optimizer=self.opt, model=self.model, seed=0, **options)

    def checkpoint(self) -> dict:
        """What a training saves (the optimizer's state_dict() flushes the record first)."""
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def steps(self, n: int) -> None:
        for _ in range(n):
            step = self.rec.step + 1
            loss = self.model(batch(step)).square().mean()
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            self.rec.log_step(loss=loss, tokens=32)
            if step % 5 == 0:
                self.rec.log_eval(batch_losses=[loss.item(), 2 * loss.item()])


def record(where: str, steps: int = 20, **options) -> Recorder:
    """A whole run of `steps` steps at `where`, closed (finished)."""
    run = Training(where, **options)
    with run.rec:
        run.steps(steps)
    return run.rec


def upload(folder: Path, uri: str) -> None:
    """Copy a local run folder onto the store, object by object, as `aws s3 sync` would."""
    where = storage.locate(uri)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            storage.put(where / path.relative_to(folder).as_posix(), path.read_bytes())

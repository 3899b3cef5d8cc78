"""A training job for the SIGKILL-and-resume test on an object store (the local version is
tests/fixtures/kill_resume_worker.py): the record and the checkpoint both live on the store.

    python -m tests.storage.store_kill_worker serve     # fork one job per stdin line

A job line is `URI STEPS`: train SGG over AdamW for STEPS steps, recording to `URI/run` and
checkpointing `URI/checkpoint.pt` every 3 steps (one whole object, `runformat.atomic`); a job
started where a checkpoint is resumes from it. The server imports torch once and must not
touch the store itself (the AWS SDK does not survive a fork), so only the jobs do.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import torch

from recorder import Recorder
from runformat import atomic, storage
from sgg import SGG

CHECKPOINT_EVERY = 3
STEP_PAUSE_S = 0.01


def job(uri: str, steps: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = SGG(
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        n_clusters=3,
        recluster_interval=4,
        update_impl="eager",
    )
    out = storage.locate(uri)
    checkpoint = out / "checkpoint.pt"
    mode = "overwrite"
    if checkpoint.is_file():
        with checkpoint.open("rb") as f:
            state = torch.load(f, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        mode = "resume"
    print(f"ready {os.getpid()}", flush=True)
    options = {"flush_every_steps": 4, "layer_stride": 2, "seed": 0}
    with Recorder(out / "run", optimizer=opt, model=model, mode=mode, **options) as rec:
        for step in range(rec.step + 1, steps + 1):
            x = torch.randn(4, 8, generator=torch.Generator().manual_seed(step))
            loss = model(x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=32)
            if step % 5 == 0:
                rec.log_eval(batch_losses=[loss.item(), 2 * loss.item()])
            if step % CHECKPOINT_EVERY == 0:
                state = {"model": model.state_dict(), "opt": opt.state_dict()}  # flushes
                atomic.atomic_write(checkpoint, lambda f, s=state: torch.save(s, f))
            time.sleep(STEP_PAUSE_S)


def serve() -> None:
    for line in sys.stdin:
        uri, steps = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                job(uri, int(steps))
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    serve()

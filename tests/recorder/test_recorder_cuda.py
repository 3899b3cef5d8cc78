"""On CUDA: the per-step hooks never synchronise with the host (only flushes do)."""

from __future__ import annotations

import pytest
import torch
from recorder_helpers import read, tiny_model

from recorder import Recorder

pytestmark = pytest.mark.cuda


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_between_flushes(tmp_path):
    model = tiny_model().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(4, 8, device="cuda")
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, layer_stride=2, histogram_every=3) as rec:
        for step in range(1, 7):
            loss = model(x).square().mean()
            loss.backward()
            torch.cuda.set_sync_debug_mode("error")
            try:
                opt.step()  # the recorder's hooks run here
                rec.log_step(step, loss=loss.detach(), tokens=32)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            opt.zero_grad()
    steps = read(run, "steps")
    assert steps["step"].tolist() == list(range(1, 7))
    assert steps["grad_norm"].notna().all()
    assert set(read(run, "histograms")["step"]) == {3, 6}

"""The steady step (issue 11): host-side step counts, one compile up front, the same results."""

import copy

import pytest
import torch
from torch import nn

from sgg import SGG
from sgg.update import resolve_update_impl


def needs_compile():
    if resolve_update_impl("compiled") != "compiled":
        pytest.skip("compile unavailable")


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 3))


def loss_of(model, step):
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 8, generator=g), torch.randn(16, 3, generator=g)
    return nn.functional.mse_loss(model(x), y)


@pytest.mark.parametrize("impl", ["eager", "compiled"])
@pytest.mark.parametrize("fused", [False, True])
def test_step_counts_follow_the_base_through_skips_and_loads(impl, fused):
    """Bias correction uses SGG's host-side step counts: they must equal the base's counters
    when a parameter skips steps (no gradient) and after a checkpoint is loaded."""
    if impl == "compiled":
        needs_compile()
    m1, m2 = make_model(), make_model()
    ref = torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=0.1, fused=fused)
    opt = SGG(
        torch.optim.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.1, fused=fused),
        recluster_interval=4,
        scale_bounds=(1.0, 1.0),  # factors pinned to 1: SGG must equal the base exactly
        update_impl=impl,
    )
    for step in range(1, 13):
        for model, o in ((m1, ref), (m2, opt)):
            o.zero_grad()
            loss_of(model, step).backward()
            if step % 3 == 0:
                model[2].weight.grad = None  # this layer skips the step
            o.step()
        if step == 6:  # a checkpoint round trip replaces the step tensors
            opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        assert float(ref.state[p]["step"]) == float(opt.state[q]["step"])
    assert float(opt.state[m2[2].weight]["step"]) == 8


def test_meta_parameters_give_a_clear_error():
    p = nn.Parameter(torch.empty(4, 4, device="meta"))
    p.grad = torch.empty(4, 4, device="meta")
    opt = SGG(torch.optim.AdamW([p]))
    with pytest.raises(RuntimeError, match="meta"):
        opt.step()


def test_nothing_compiles_at_or_after_the_first_recluster():
    """The clustered kernel carries its factor from the first step (all 1 before the first
    re-cluster), so the first re-cluster brings no second compile stall."""
    needs_compile()
    from torch._dynamo.utils import counters

    model = make_model(3)
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=3,
              update_impl="compiled")  # fmt: skip

    def step(i):
        opt.zero_grad()
        loss_of(model, i).backward()
        opt.step()

    step(1)
    compiled_before = sum(counters["stats"].values()), dict(counters["frames"])
    for i in range(2, 8):  # re-clusters at 3 and 6
        step(i)
    assert opt.last_recluster_step == 6
    assert (sum(counters["stats"].values()), dict(counters["frames"])) == compiled_before


def _compiler_settings():
    import torch._dynamo

    return torch._dynamo.config.recompile_limit, torch.fx.experimental._config.use_duck_shape


def test_the_compiled_update_changes_no_process_wide_setting(monkeypatch):
    """The compiler settings the kernel needs (room for 64 recompiles, no duck sizing) hold
    during SGG's calls only: before and after them, and after a failing call, the process's
    own settings are in force. (The kernel's plain body stands in for the compiled one.)"""
    from sgg import update as sgg_update

    before = _compiler_settings()
    monkeypatch.setattr(sgg_update, "_compiled_multi", None)
    sgg_update._get_compiled_multi()  # wraps the kernel (nothing compiles yet): no change
    assert _compiler_settings() == before
    seen = []

    def kernel(*args):
        seen.append(_compiler_settings())
        sgg_update._fused_adam_multi_impl(*args)

    monkeypatch.setattr(sgg_update, "_get_compiled_multi", lambda: kernel)
    model = make_model()
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=3,
              update_impl="compiled")  # fmt: skip
    for i in range(1, 4):  # steady, steady, a re-cluster step (its phases are not the kernel's)
        opt.zero_grad()
        loss_of(model, i).backward()
        opt.step()
    assert seen and all(limit >= 64 and not duck for limit, duck in seen)
    assert _compiler_settings() == before

    def failing(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(sgg_update, "_get_compiled_multi", lambda: failing)
    opt.zero_grad()
    loss_of(model, 4).backward()
    with pytest.raises(RuntimeError, match="no compiler"):
        opt.step()  # a steady step; update_impl="compiled": no fall-back, the failure is raised
    assert _compiler_settings() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fused", [False, True])
def test_no_host_sync_in_the_steady_step_on_cuda(fused):
    model = make_model().cuda()
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2, fused=fused), recluster_interval=50)
    x = torch.randn(16, 8, device="cuda")
    for _ in range(3):  # warm-up: first sight of every step counter may read it once
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")

"""The native CPU kernel (sgg/native.py, sgg/csrc/sgg_adam.cpp) against the eager reference."""

import pytest
import torch
from reference_update import sgg_adam_step_
from torch import nn

from sgg import SGG, extensions, native
from sgg import update as sgg_update
from sgg.hyper import AdamHyper


@pytest.fixture(scope="module")
def module():
    mod = native.load(wait=True)
    if mod is None:
        pytest.skip(f"native kernel unavailable here: {native.failure()}")
    return mod


# sizes around the kernel's 32768-element pieces and its 16-lane vectors
SIZES = [1, 7, 16, 33, 1000, 32768, 32769, 70001]


def _tensors(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, generator=g)
    grad = torch.randn(n, generator=g) * 1e-2
    m = torch.randn(n, generator=g) * 1e-3
    v = torch.rand(n, generator=g) * 1e-4
    assign = torch.randint(0, k, (n,), generator=g).to(torch.uint8)
    scales = torch.rand(k, generator=g) * 4 + 0.25
    return p, grad, m, v, assign, scales


def _reference(p, grad, m, v, factor_of, h):
    sgg_adam_step_(p, grad, m, v, None, factor_of, h=h, impl="eager")


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5, 9])  # 0: no factor; 5, 9: the gather path
@pytest.mark.parametrize(
    "decoupled, maximize, swd, beta1",
    [(True, False, False, 0.9), (True, True, True, 0.9), (False, False, False, 0.9),
     (False, True, False, 0.3), (True, False, True, 0.2)],  # beta1 <= 0.5: lerp from the end
)  # fmt: skip
def test_one_call_over_many_tensors_equals_the_reference(module, k, decoupled, maximize, swd,
                                                          beta1):  # fmt: skip
    h = AdamHyper(lr=3e-3, beta1=beta1, beta2=0.99, eps=1e-8, weight_decay=0.1, step=3.0,
                  decoupled=decoupled, maximize=maximize, scale_weight_decay=swd,
                  n_clusters=max(k, 1))  # fmt: skip
    sets = [_tensors(n, max(k, 1), seed) for seed, n in enumerate(SIZES)]
    ref = [tuple(t.clone() for t in s) for s in sets]
    before = [s[0].clone() for s in sets]
    for p, grad, m, v, assign, scales in ref:
        _reference(p, grad, m, v, (assign, scales) if k else None, h)
    native.adam_(
        module,
        [s[0] for s in sets], [s[1] for s in sets], [s[2] for s in sets], [s[3] for s in sets],
        [s[4] for s in sets] if k else None, [s[5] for s in sets] if k else None, h=h,
    )  # fmt: skip
    for got, want, p0 in zip(sets, ref, before, strict=True):
        assert not torch.equal(got[0], p0)
        for a, b in zip(got[:4], want[:4], strict=True):
            torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)


def test_the_two_phases_equal_the_whole_step(module):
    """A re-cluster step runs the moments, then the parameter update with the new factors."""
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, step=7.0,
                  scale_weight_decay=True, n_clusters=3)  # fmt: skip
    whole = _tensors(50000, 3, 1)
    phased = tuple(t.clone() for t in whole)
    kw = {"h": h}
    p, g, m, v, a, s = whole
    native.adam_(module, [p], [g], [m], [v], [a], [s], **kw)
    p2, g2, m2, v2, a2, s2 = phased
    native.adam_(module, [p2], [g2], [m2], [v2], None, None, phase=native.PHASE_MOMENTS, **kw)
    assert not torch.equal(p2, p) and torch.equal(m2, m) and torch.equal(v2, v)  # moments only
    native.adam_(module, [p2], [g2], [m2], [v2], [a2], [s2], phase=native.PHASE_APPLY, **kw)
    for x, y in ((p, p2), (m, m2), (v, v2)):
        assert torch.equal(x, y)


def test_bad_input_is_refused_with_a_message(module):
    p, g, m, v, a, s = _tensors(10, 3, 0)
    kw = {"h": AdamHyper(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, step=1.0,
                         n_clusters=3)}  # fmt: skip
    with pytest.raises(RuntimeError, match="grad has dtype"):
        native.adam_(module, [p], [g.double()], [m], [v], [a], [s], **kw)
    with pytest.raises(RuntimeError, match="elements"):
        native.adam_(module, [p], [g[:5]], [m], [v], [a], [s], **kw)
    with pytest.raises(RuntimeError, match="factors"):
        native.adam_(module, [p], [g], [m], [v], [a], [s[:2]], **kw)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.Tanh(), nn.Linear(32, 3))


def _train(model, opt, steps):
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 3, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "base_kw, sgg_kw",
    [({"weight_decay": 0.1}, {}), ({"weight_decay": 0.1}, {"scale_weight_decay": True}),
     ({"weight_decay": 0.1, "maximize": True}, {"n_clusters": 5}),
     ({"weight_decay": 0.1, "amsgrad": True}, {})],  # amsgrad: not native, the reference runs
)  # fmt: skip
def test_sgg_native_trains_as_the_eager_reference(module, base_kw, sgg_kw):
    """Steady steps and re-cluster steps (every 3rd), both kernels, 12 steps."""
    runs = {}
    for impl in ("eager", "native"):
        model = _model()
        opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2, **base_kw),
                  recluster_interval=3, update_impl=impl, **sgg_kw)  # fmt: skip
        _train(model, opt, 12)
        runs[impl] = (model, opt)
    (m1, o1), (m2, o2) = runs["eager"], runs["native"]
    for a, b, a0 in zip(m1.parameters(), m2.parameters(), _model().parameters(), strict=True):
        assert not torch.equal(a, a0)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(o1.clustered_params(), o2.clustered_params(), strict=True):
        s1, s2 = o1.cluster_state(a), o2.cluster_state(b)
        assert s1.last_recluster_step == s2.last_recluster_step == 12
        torch.testing.assert_close(s1.factors, s2.factors, rtol=1e-4, atol=1e-5)


def test_the_native_kernel_takes_float32_cpu_tensors_only(module, monkeypatch):
    """bfloat16 parameters go to the compiled kernel (here: its uncompiled body), float32 ones
    to the native kernel, in the same step."""
    calls = []
    real = native.adam_
    monkeypatch.setattr(native, "adam_", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k)))
    model = _model()
    model[3].to(torch.bfloat16)
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=100,
              update_impl="native")  # fmt: skip
    monkeypatch.setattr(
        sgg_update, "_get_compiled_multi", lambda: sgg_update._fused_adam_multi_impl
    )
    x = torch.randn(4, 8)
    opt.zero_grad()
    model[3](model[2](model[1](model[0](x))).bfloat16()).float().sum().backward()
    opt.step()
    assert calls == [1]  # model[0].weight only: model[3] is bfloat16, vectors take torch's fused


def _failed(failure: str) -> extensions._State:
    """An extension state after a failed build (warned already)."""
    state = extensions._State(failure=failure, warned=True, started=True)
    state.done.set()
    return state


@pytest.mark.parametrize("how", ["failed", "SGG_NATIVE=0"])
def test_a_kernel_that_cannot_be_built_falls_back_or_raises(monkeypatch, how):
    if how == "failed":
        monkeypatch.setattr(native.EXTENSION, "_state", _failed("CalledProcessError: no compiler"))
        reason = "no compiler"
    else:  # turned off: nothing is built, the same fallbacks
        monkeypatch.setattr(native.EXTENSION, "_state", extensions._State())
        monkeypatch.setenv("SGG_NATIVE", "0")
        reason = "SGG_NATIVE=0"
    monkeypatch.setattr(
        sgg_update, "_get_compiled_multi", lambda: sgg_update._fused_adam_multi_impl
    )
    model = _model()
    ref = _model()
    auto = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=3,
               update_impl="auto")  # fmt: skip
    eager = SGG(torch.optim.AdamW(ref.parameters(), lr=1e-2), recluster_interval=3,
                update_impl="eager")  # fmt: skip
    monkeypatch.delenv("SGG_UPDATE_IMPL", raising=False)
    _train(model, auto, 4)  # auto: the compiled path (here its uncompiled body) takes over
    _train(ref, eager, 4)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    other = _model()
    strict = SGG(torch.optim.AdamW(other.parameters(), lr=1e-2), update_impl="native")
    with pytest.raises(RuntimeError, match=rf"native.*{reason}"):
        _train(other, strict, 1)
    if how != "failed":
        assert native.EXTENSION.report()["action"] == "off"  # nothing was built or loaded


def test_the_first_step_starts_both_builds_and_waits_for_neither(module, monkeypatch):
    """The first step starts the re-cluster pass and the update kernel in the background (no
    stall at the first re-cluster either) and returns while both are still held up (here: their
    OS locks held by this test); the steps meanwhile and after the switch train as eager."""
    from filelock import FileLock

    from sgg import native_recluster

    exts = (native.EXTENSION, native_recluster.EXTENSION)
    if native_recluster.load(wait=True) is None:
        pytest.skip(f"extension unavailable: {native_recluster.failure()}")
    for ext in exts:
        monkeypatch.setattr(ext, "_state", extensions._State())
    monkeypatch.delenv("SGG_UPDATE_IMPL", raising=False)
    model, ref = _model(), _model()
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=3)
    eager = SGG(torch.optim.AdamW(ref.parameters(), lr=1e-2), recluster_interval=3,
                update_impl="eager")  # fmt: skip
    calls = []
    real = native.adam_
    monkeypatch.setattr(native, "adam_", lambda *a, **k: (calls.append(1), real(*a, **k)))
    locks = [FileLock(str(ext.lock_path())) for ext in exts]
    for lock in locks:
        lock.acquire()
    try:
        _train(model, opt, 4)  # a re-cluster at step 3: the torch path
        assert all(ext.building() for ext in exts) and native.load() is None and not calls
    finally:
        for lock in locks:
            lock.release()
    assert all(ext.load(wait=True) is not None for ext in exts)
    assert [ext.report()["action"] for ext in exts] == ["loaded", "loaded"]
    _train(model, opt, 4)  # native from here on; a re-cluster at step 6
    assert calls  # the switch happened
    _train(ref, eager, 8)
    assert opt.last_recluster_step == eager.last_recluster_step == 6
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

"""SGG vs built-in optimizers, checkpoints, schedulers, edge cases, observe-only."""

import io

import pytest
import torch
from reference_update import sgg_adam_step_
from torch import nn

from sgg import SGG, SGGConfig
from sgg.hyper import AdamHyper
from sgg.update import resolve_update_impl


def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
    ).to(dtype)


def groups(model, **kw):
    ps = list(model.parameters())
    return [{"params": ps[:2], "lr": 1e-2, **kw}, {"params": ps[2:], "lr": 3e-3}]


def data(seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 8, generator=g).to(dtype), torch.randn(32, 3, generator=g).to(dtype)


def train(model, opt, steps, x=None, y=None, sched=None):
    if x is None:
        x, y = data(dtype=next(model.parameters()).dtype)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x).float(), y.float()).backward()
        opt.step()
        if sched is not None:
            sched.step()


def max_diff(m1, m2):
    return max(
        (a.float() - b.float()).abs().max().item()
        for a, b in zip(m1.parameters(), m2.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    "base_cls, kw",
    [
        (torch.optim.AdamW, {"weight_decay": 0.1}),
        (torch.optim.Adam, {"weight_decay": 0.05}),
        (torch.optim.Adam, {"weight_decay": 0.1, "decoupled_weight_decay": True}),
        (torch.optim.AdamW, {"weight_decay": 0.1, "amsgrad": True}),
        (torch.optim.AdamW, {"weight_decay": 0.1, "maximize": True}),
        (torch.optim.Adam, {"amsgrad": True, "maximize": True}),
    ],
)
def test_pinned_factors_reproduce_base(base_cls, kw):
    m1, m2 = make_model(), make_model()
    ref = base_cls(groups(m1), **kw)
    opt = SGG(
        base_cls(groups(m2), **kw), n_clusters=3, recluster_interval=7, scale_bounds=(1.0, 1.0)
    )
    for _ in range(50):
        train(m1, ref, 1)
        train(m2, opt, 1)
    assert opt.last_recluster_step == 49
    assert max_diff(m1, m2) < 1e-6
    # base state format unchanged
    assert set(ref.state_dict()["state"][0]) == set(opt.base_optimizer.state_dict()["state"][0])


def test_no_recluster_yet_is_base_k1():
    m1, m2 = make_model(), make_model()
    ref = torch.optim.AdamW(groups(m1), weight_decay=0.1)
    opt = SGG(
        torch.optim.AdamW(groups(m2), weight_decay=0.1), n_clusters=1, recluster_interval=1000
    )
    train(m1, ref, 50)
    train(m2, opt, 50)
    assert max_diff(m1, m2) < 1e-6


def test_factors_change_training_and_are_finite():
    m1, m2 = make_model(), make_model()
    ref = torch.optim.AdamW(m1.parameters(), lr=1e-2)
    opt = SGG(torch.optim.AdamW(m2.parameters(), lr=1e-2), recluster_interval=5, scale_decay=0.5)
    train(m1, ref, 20)
    train(m2, opt, 20)
    assert max_diff(m1, m2) > 1e-4
    for p in opt.clustered_params():
        cluster = opt.cluster_state(p)
        assert cluster.assignments.dtype == torch.uint8 and cluster.assignments.numel() == p.numel()
        assert torch.isfinite(cluster.factors).all() and cluster.sizes.sum() == p.numel()
        assert cluster.transitions is not None and cluster.transitions.sum() == p.numel()
        assert (cluster.factors >= 0.1).all() and (cluster.factors <= 10).all()
    # 1-d tensors are not clustered
    assert opt.cluster_state(m2[0].bias) is None
    assert len(opt.clustered_params()) == 3


def test_compiled_matches_eager():
    if resolve_update_impl("compiled") != "compiled":
        pytest.skip("compile unavailable")
    m1, m2 = make_model(), make_model()
    o1 = SGG(
        torch.optim.AdamW(groups(m1), weight_decay=0.1, amsgrad=True),
        recluster_interval=4,
        update_impl="eager",
    )
    o2 = SGG(
        torch.optim.AdamW(groups(m2), weight_decay=0.1, amsgrad=True),
        recluster_interval=4,
        update_impl="compiled",
    )
    train(m1, o1, 12)
    train(m2, o2, 12)
    assert max_diff(m1, m2) < 1e-5


@pytest.mark.parametrize("base_cls", [torch.optim.AdamW, torch.optim.NAdam])
def test_checkpoint_resume_is_exact(base_cls, tmp_path):
    def fresh():
        m = make_model()
        return m, SGG(base_cls(groups(m), weight_decay=0.1), recluster_interval=4, scale_decay=0.5)

    m1, o1 = fresh()
    train(m1, o1, 20)

    m2, o2 = fresh()
    train(m2, o2, 10)
    buf = io.BytesIO()
    torch.save({"model": m2.state_dict(), "opt": o2.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m3, o3 = fresh()
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["opt"])
    assert o3.sgg_step == 10 and o3.last_recluster_step == 8
    train(m3, o3, 10)
    assert max_diff(m1, m3) == 0.0
    for p1, p3 in zip(o1.clustered_params(), o3.clustered_params(), strict=True):
        s1, s3 = o1.cluster_state(p1), o3.cluster_state(p3)
        assert torch.equal(s1.assignments, s3.assignments) and torch.equal(s1.factors, s3.factors)


@pytest.mark.parametrize(
    "make_sched",
    [
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=20),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 0.5**s),
    ],
)
def test_schedulers_drive_sgg(make_sched):
    m1, m2 = make_model(), make_model()
    ref = torch.optim.AdamW(m1.parameters(), lr=1e-2)
    opt = SGG(
        torch.optim.AdamW(m2.parameters(), lr=1e-2), scale_bounds=(1.0, 1.0), recluster_interval=3
    )
    s1, s2 = make_sched(ref), make_sched(opt)
    train(m1, ref, 8, sched=s1)
    train(m2, opt, 8, sched=s2)
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"] != 1e-2
    assert max_diff(m1, m2) < 1e-6
    # and the schedule changes the step: compare with no scheduler
    m3 = make_model()
    o3 = SGG(
        torch.optim.AdamW(m3.parameters(), lr=1e-2), scale_bounds=(1.0, 1.0), recluster_interval=3
    )
    train(m3, o3, 8)
    assert max_diff(m2, m3) > 1e-5


def test_hooks_zero_grad_add_param_group():
    m = make_model()
    ps = list(m.parameters())
    opt = SGG(torch.optim.AdamW(ps[:4]), recluster_interval=2)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    h = opt.register_recluster_hook(lambda o, s: calls.append(("re", s)))
    opt.add_param_group({"params": ps[4:], "lr": 1e-4})
    assert len(opt.param_groups) == 2 and opt.base_optimizer.param_groups is opt.param_groups
    train(m, opt, 2)
    assert calls == ["pre", "post", "pre", ("re", 2), "post"]
    h.remove()
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    assert len(opt.clustered_params()) == 3


def test_edge_params_frozen_nograd_empty_scalar_nan():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(6, 5))
    frozen = nn.Parameter(torch.randn(4, 4), requires_grad=False)
    nograd = nn.Parameter(torch.randn(3, 3))
    scalar = nn.Parameter(torch.tensor(1.5))
    empty = nn.Parameter(torch.zeros(0, 4))
    nanp = nn.Parameter(torch.randn(5, 5))
    opt = SGG(
        torch.optim.AdamW([w, frozen, nograd, scalar, empty, nanp], lr=1e-2), recluster_interval=2
    )
    for _ in range(4):
        opt.zero_grad()
        loss = (w**2).sum() + scalar**2 + empty.sum() + (nanp * torch.nan).sum() + (nanp**2).sum()
        loss.backward()
        opt.step()
    assert opt.cluster_state(frozen) is None and opt.cluster_state(scalar) is None
    assert opt.cluster_state(empty) is None
    assert opt.cluster_state(nograd).last_recluster_step is None
    cluster = opt.cluster_state(nanp)
    assert cluster.last_recluster_step == 4 and torch.isfinite(cluster.factors).all()
    assert torch.isfinite(opt.cluster_state(w).factors).all() and torch.isfinite(w).all()
    assert torch.isfinite(opt.global_mda)


def test_sparse_gradient_clear_error():
    emb = nn.Embedding(10, 4, sparse=True)
    opt = SGG(torch.optim.AdamW(emb.parameters()))
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_unsupported_base_clear_error():
    m = make_model()
    with pytest.raises(TypeError, match="exp_avg"):
        SGG(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), recluster_interval=1)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_clusters": 256}, "n_clusters"),
        ({"n_clusters": 2.5}, "n_clusters"),
        ({"recluster_interval": 0}, "recluster_interval"),
        ({"scale_decay": 1.0}, "scale_decay"),
        ({"scale_decay": -0.1}, "scale_decay"),
        ({"scale_bounds": (2.0, 1.0)}, "scale_bounds"),
        ({"scale_bounds": (0.0, 1.0)}, "scale_bounds"),
        ({"scale_bounds": (0.1, float("inf"))}, "scale_bounds"),
        ({"scale_bounds": 3}, "scale_bounds"),
        ({"cluster_on": "sign"}, "cluster_on"),
        ({"global_mda": "mean"}, "global_mda"),
        ({"clamp": "never"}, "clamp"),
        ({"backend": "faiss"}, "backend"),
        ({"update_impl": "triton"}, "update_impl"),
        ({"assignment_device": "gpu"}, "assignment_device"),
        ({"mda_eps": -1.0}, "mda_eps"),
        ({"kmeans_sample_size": 0}, "kmeans_sample_size"),
        ({"median_sample": 10}, "median_sample"),
        ({"median_sample": True}, "median_sample"),
    ],
)
def test_bad_inputs(kw, name):
    with pytest.raises(ValueError, match=name):
        SGGConfig(**kw)
    m = make_model()
    with pytest.raises(ValueError, match=name):
        SGG(torch.optim.AdamW(m.parameters()), **kw)


def test_observe_only_bit_identical_and_same_introspection():
    m1, m2, m3 = make_model(), make_model(), make_model()
    ref = torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=0.1)
    obs = SGG(
        torch.optim.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.1),
        recluster_interval=5,
        observe_only=True,
    )
    adam3 = torch.optim.AdamW(m3.parameters(), lr=1e-2, weight_decay=0.1)
    shadow = SGG(adam3, recluster_interval=5, observe_only=True)
    x, y = data()
    for _ in range(10):
        for m, o in ((m1, ref), (m2, obs), (m3, adam3)):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
        shadow.observe_step()
    assert max_diff(m1, m2) == 0.0 and max_diff(m1, m3) == 0.0
    assert obs.observe_only and obs.last_recluster_step == 10 == shadow.last_recluster_step
    # a real SGG whose momenta equal these (state copied) clusters identically
    real = SGG(torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=0.1), recluster_interval=5)
    real.load_state_dict(obs.state_dict())
    real._recluster_state_check = None
    for p1, p2 in zip(obs.clustered_params(), real.clustered_params(), strict=True):
        a, b = obs.cluster_state(p1), real.cluster_state(p2)
        for f in ("assignments", "factors", "mda", "raw_factors", "centers", "sizes"):
            assert torch.equal(getattr(a, f), getattr(b, f))
    for p2, p3 in zip(obs.clustered_params(), shadow.clustered_params(), strict=True):
        assert torch.equal(obs.cluster_state(p2).factors, shadow.cluster_state(p3).factors)
    assert torch.equal(obs.global_mda, shadow.global_mda)


def test_observe_clusters_same_momenta_as_real_sgg():
    """A real SGG re-clusters m_t of the same step; with pinned factors, m_t equal observe's."""
    m1, m2 = make_model(), make_model()
    obs = SGG(torch.optim.AdamW(m1.parameters(), lr=1e-2), recluster_interval=5, observe_only=True)
    real = SGG(
        torch.optim.AdamW(m2.parameters(), lr=1e-2), recluster_interval=5, scale_bounds=(1.0, 1.0)
    )
    train(m1, obs, 5)
    train(m2, real, 5)
    for p1, p2 in zip(obs.clustered_params(), real.clustered_params(), strict=True):
        a, b = obs.cluster_state(p1), real.cluster_state(p2)
        assert torch.equal(a.assignments, b.assignments)
        torch.testing.assert_close(a.mda, b.mda)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_params(dtype):
    # eps=1e-4: torch's own AdamW yields NaN on fp16 parameters with eps=1e-8 (eps underflows)
    kw = {"lr": 1e-2, "weight_decay": 0.1, "eps": 1e-4}
    m_ref, m_pin, m_lo = (make_model(dtype=dtype) for _ in range(3))
    # the native/compiled kernels compute in float32 as AdamW(fused=True) does; the eager path
    # in the parameters' dtype, as the default AdamW (which underflows v in float16)
    fused = resolve_update_impl("auto") != "eager"
    ref = torch.optim.AdamW(m_ref.parameters(), fused=fused, **kw)
    pin = SGG(
        torch.optim.AdamW(m_pin.parameters(), **kw), recluster_interval=4, scale_bounds=(1.0, 1.0)
    )
    olo = SGG(torch.optim.AdamW(m_lo.parameters(), **kw), recluster_interval=4)
    for m, o in ((m_ref, ref), (m_pin, pin), (m_lo, olo)):
        train(m, o, 12)
    assert max_diff(m_ref, m_pin) < 2e-2  # low-precision rounding of the same arithmetic
    for p in olo.clustered_params():
        assert p.dtype == dtype and olo.state[p]["exp_avg"].dtype == dtype
        cluster = olo.cluster_state(p)
        assert cluster.factors.dtype == torch.float32 and torch.isfinite(cluster.factors).all()
        assert torch.isfinite(p).all()


def test_grad_scaler_cpu():
    m1, m2 = make_model(), make_model()
    ref = torch.optim.AdamW(m1.parameters(), lr=1e-2)
    opt = SGG(
        torch.optim.AdamW(m2.parameters(), lr=1e-2), scale_bounds=(1.0, 1.0), recluster_interval=3
    )
    x, y = data()
    for m, o in ((m1, ref), (m2, opt)):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for _ in range(6):
            o.zero_grad()
            scaler.scale(nn.functional.mse_loss(m(x), y)).backward()
            scaler.unscale_(o)
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            scaler.step(o)
            scaler.update()
    assert opt.sgg_step == 6
    assert max_diff(m1, m2) < 1e-6


def test_closure_and_transformer_layer():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    opt = SGG(torch.optim.AdamW(layer.parameters(), lr=1e-3), recluster_interval=2)
    x = torch.randn(4, 5, 16)

    def closure():
        opt.zero_grad()
        loss = layer(x).pow(2).mean()
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(4)]
    assert losses[-1] < losses[0]
    assert opt.last_recluster_step == 4


def test_assignment_device_cpu_and_sklearn_backend():
    m = make_model()
    opt = SGG(
        torch.optim.AdamW(m.parameters(), lr=1e-2),
        recluster_interval=2,
        assignment_device="cpu",
        backend="sklearn",
    )
    train(m, opt, 4)
    cluster = opt.cluster_state(opt.clustered_params()[0])
    assert cluster.assignments.device.type == "cpu" and cluster.last_recluster_step == 4


def test_multi_tensor_fused_matches_single_tensor_reference():
    """The bucketed (horizontally fused) update, uncompiled, equals the per-tensor reference."""
    from sgg import update as sgg_update

    g = torch.Generator().manual_seed(0)
    shapes = [(5, 7), (3, 4), (11,), (2, 3, 4), (6, 6)]
    for amsgrad, has_f, swd in [(False, True, False), (True, True, True), (False, False, False)]:
        ref = [torch.randn(s, generator=g) for s in shapes]
        grads = [torch.randn(s, generator=g) for s in shapes]
        m0 = [torch.randn(s, generator=g) * 0.1 for s in shapes]
        v0 = [torch.rand(s, generator=g) * 0.1 for s in shapes]
        mx0 = [v + 0.05 for v in v0]
        asg = [torch.randint(0, 3, (r.numel(),), generator=g).to(torch.uint8) for r in ref]
        sc = [torch.rand(3, generator=g) + 0.5 for _ in ref]
        h = sgg_update.AdamHyper(
            lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, step=3.0,
            amsgrad=amsgrad, scale_weight_decay=swd, n_clusters=3,
        )  # fmt: skip
        outs = {}
        for how in ("eager", "multi"):
            p = [r.clone() for r in ref]
            m, v, mx = ([t.clone() for t in ts] for ts in (m0, v0, mx0))
            if how == "eager":
                for i in range(len(p)):
                    sgg_adam_step_(
                        p[i], grads[i], m[i], v[i], mx[i] if amsgrad else None,
                        (asg[i], sc[i]) if has_f else None, h=h, impl="eager",
                    )  # fmt: skip
            else:
                sgg_update.fused_adam_multi_(
                    p, grads, m, v, mx if amsgrad else None,
                    asg if has_f else None, sc if has_f else None,
                    h=h, compiled=False, bucket=2,
                )  # fmt: skip
            outs[how] = p + m + v + mx
        for a, b in zip(outs["eager"], outs["multi"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_single_tensor_compiled_step_equals_the_eager_reference():
    """`sgg_adam_step_(impl="compiled")` runs the bucketed kernel on one tensor."""

    g = torch.Generator().manual_seed(0)
    p = torch.randn(40, 30, generator=g)
    grad = torch.randn(40, 30, generator=g)
    assign = torch.randint(0, 3, (p.numel(),), generator=g).to(torch.uint8)
    scales = torch.tensor([0.5, 1.0, 2.0])
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, step=1.0,
                  n_clusters=3)  # fmt: skip
    outs = []
    for impl in ("eager", "compiled"):
        state = [p.clone(), torch.zeros_like(p), torch.zeros_like(p)]
        sgg_adam_step_(state[0], grad, state[1], state[2], None, (assign, scales), h=h, impl=impl)
        outs.append(state)
    assert not torch.equal(outs[0][0], p)
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

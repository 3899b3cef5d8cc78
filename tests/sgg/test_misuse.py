"""SGG refuses or handles misuse (issue 9): bases, missing gradients, checkpoints, copies, types."""

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

from sgg import SGG, SGGConfig
from sgg import update as sgg_update
from sgg.update import resolve_update_impl


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16, bias=False), nn.Tanh(), nn.Linear(16, 3, bias=False))


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 8, generator=g), torch.randn(32, 3, generator=g)


def train(model, opt, steps, seed=1):
    x, y = batch(seed)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def needs_compile():
    if resolve_update_impl("compiled") != "compiled":
        pytest.skip("compile unavailable")


# ---- bases without Adam moments --------------------------------------------------------------


@pytest.mark.parametrize("observe_only", [False, True])
@pytest.mark.parametrize(
    "make_base",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1),
        lambda ps: torch.optim.RMSprop(ps, lr=0.1),
    ],
)
def test_base_without_adam_moments_refused_at_construction(make_base, observe_only):
    m = make_model()
    with pytest.raises(TypeError, match="exp_avg"):
        SGG(make_base(m.parameters()), recluster_interval=2, observe_only=observe_only)


@pytest.mark.parametrize(
    "base_cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.Adamax]
)
def test_adam_family_accepted(base_cls):
    m = make_model()
    opt = SGG(base_cls(m.parameters(), lr=1e-2), recluster_interval=2)
    train(m, opt, 2)
    assert opt.last_recluster_step == 2


# ---- layers without a gradient ---------------------------------------------------------------


@pytest.mark.parametrize("impl", ["eager", "compiled"])
def test_layer_without_gradient_is_neither_reclustered_nor_advanced(impl):
    if impl == "compiled":
        needs_compile()
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(6, 5))
    b = nn.Parameter(torch.randn(4, 5))
    opt = SGG(
        torch.optim.AdamW([a, b], lr=1e-2), recluster_interval=3, scale_decay=0.5, update_impl=impl
    )

    def step(use_b):
        opt.zero_grad()
        loss = (a**2).sum() + ((b**3).sum() if use_b else 0)
        loss.backward()
        opt.step()

    for _ in range(3):  # re-cluster at 3 with both layers
        step(True)
    before = copy.deepcopy(opt.cluster_state(b))
    b_before, m_before = b.detach().clone(), opt.state[b]["exp_avg"].clone()
    for _ in range(3):  # re-cluster at 6: b has no gradient on any of these steps
        step(False)
    after_a, after_b = opt.cluster_state(a), opt.cluster_state(b)
    assert after_a.last_recluster_step == 6 == opt.last_recluster_step
    assert after_b.last_recluster_step == 3
    for field in ("assignments", "factors", "raw_factors", "mda", "sizes", "centers"):
        assert torch.equal(getattr(after_b, field), getattr(before, field)), field
    # like torch's AdamW: no gradient, no update of the parameter or its moments
    assert torch.equal(b, b_before) and torch.equal(opt.state[b]["exp_avg"], m_before)
    assert float(opt.state[b]["step"]) == 3 and float(opt.state[a]["step"]) == 6


def test_shadow_skips_layers_without_gradient():
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(6, 5)), nn.Parameter(torch.randn(4, 5))
    adam = torch.optim.AdamW([a, b], lr=1e-2)
    shadow = SGG(adam, recluster_interval=2, observe_only=True)
    for _ in range(2):
        adam.zero_grad()
        (a**2).sum().backward()
        adam.step()
        shadow.observe_step()
    assert shadow.cluster_state(a).last_recluster_step == 2
    assert shadow.cluster_state(b).last_recluster_step is None


# ---- checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other, name",
    [
        ({"n_clusters": 2}, "n_clusters"),
        ({"recluster_interval": 4}, "recluster_interval"),
        ({"scale_decay": 0.9}, "scale_decay"),
        ({"cluster_on": "abs"}, "cluster_on"),
        ({"scale_bounds": (0.5, 2.0)}, "scale_bounds"),
    ],
)
def test_load_with_other_options_names_the_difference(other, name):
    m1, m2 = make_model(), make_model()
    saved = SGG(torch.optim.AdamW(m1.parameters()), n_clusters=3, recluster_interval=2)
    train(m1, saved, 2)
    opt = SGG(
        torch.optim.AdamW(m2.parameters()), **{"n_clusters": 3, "recluster_interval": 2, **other}
    )
    with pytest.raises(ValueError, match=name):
        opt.load_state_dict(saved.state_dict())
    assert opt.sgg_step == 0 and len(opt.state) == 0  # nothing was loaded


def test_load_into_other_parameters_is_refused():
    m1 = make_model()
    saved = SGG(torch.optim.AdamW(m1.parameters()), recluster_interval=2)
    train(m1, saved, 2)
    other = nn.Sequential(nn.Linear(8, 16, bias=False), nn.Linear(16, 5, bias=False))
    opt = SGG(torch.optim.AdamW(other.parameters()), recluster_interval=2)
    with pytest.raises(ValueError, match="elements"):
        opt.load_state_dict(saved.state_dict())


def test_load_may_change_where_it_runs():
    m1, m2 = make_model(), make_model()
    saved = SGG(torch.optim.AdamW(m1.parameters()), recluster_interval=2)
    train(m1, saved, 2)
    opt = SGG(
        torch.optim.AdamW(m2.parameters()),
        recluster_interval=2,
        update_impl="eager",
        assignment_device="cpu",
    )
    opt.load_state_dict(saved.state_dict())
    assert opt.sgg_step == 2 and opt.last_recluster_step == 2


def test_load_base_state_dict_continues_as_sgg_from_the_base_step():
    m1, m2 = make_model(), make_model()
    adam = torch.optim.AdamW(m1.parameters(), lr=1e-2)
    train(m1, adam, 7)
    m2.load_state_dict(m1.state_dict())
    opt = SGG(torch.optim.AdamW(m2.parameters(), lr=1e-2), recluster_interval=5)
    base_checkpoint = copy.deepcopy(adam.state_dict())  # torch shares the step tensors on load
    opt.load_state_dict(copy.deepcopy(base_checkpoint))
    assert opt.sgg_step == 7 and opt.last_recluster_step is None and opt.global_mda is None
    for p in opt.clustered_params():
        cs = opt.cluster_state(p)
        assert cs.last_recluster_step is None and torch.equal(cs.factors, torch.ones(3))
    train(m2, opt, 3)
    assert opt.sgg_step == 10 == opt.last_recluster_step
    assert all(float(s["step"]) == opt.sgg_step for s in opt.state.values())
    # the same meaning after SGG state existed: it is replaced, not mixed
    opt.load_state_dict(base_checkpoint)
    assert opt.sgg_step == 7 and opt.last_recluster_step is None


# ---- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kw",
    [
        ((), {"n_clusters": 5}),
        ((5,), {}),
        ((), {"recluster_interval": 10}),
        ((), {"observe_only": True}),
    ],
)
def test_config_with_explicit_options_is_a_type_error(args, kw):
    m = make_model()
    with pytest.raises(TypeError, match="config"):
        SGG(torch.optim.AdamW(m.parameters()), *args, config=SGGConfig(), **kw)


def test_config_alone_and_options_alone():
    m = make_model()
    assert SGG(torch.optim.AdamW(m.parameters()), config=SGGConfig(n_clusters=5)).config == (
        SGGConfig(n_clusters=5)
    )
    assert SGG(torch.optim.AdamW(m.parameters()), 5).config == SGGConfig(n_clusters=5)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"mda_eps": True}, "mda_eps"),
        ({"scale_decay": False}, "scale_decay"),
        ({"n_clusters": True}, "n_clusters"),
        ({"recluster_interval": True}, "recluster_interval"),
        ({"scale_bounds": (True, 2.0)}, "scale_bounds"),
        ({"scale_bounds": (0.1, 2.0, 3.0)}, "scale_bounds"),
        ({"kmeans_max_iter": True}, "kmeans_max_iter"),
        ({"kmeans_sample_size": True}, "kmeans_sample_size"),
        ({"seed": False}, "seed"),
        ({"min_ndim": True}, "min_ndim"),
        ({"observe_only": 1}, "observe_only"),
        ({"scale_weight_decay": "yes"}, "scale_weight_decay"),
    ],
)
def test_booleans_refused_where_numbers_are_expected(kw, name):
    with pytest.raises(ValueError, match=name):
        SGGConfig(**kw)


# ---- copies ----------------------------------------------------------------------------------


def test_deepcopy_continues_like_the_original():
    m = make_model()
    opt = SGG(torch.optim.AdamW(m.parameters(), lr=1e-2), recluster_interval=3, scale_decay=0.5)
    train(m, opt, 4)
    m2, opt2 = copy.deepcopy((m, opt))
    assert opt2.base_optimizer is not opt.base_optimizer
    assert all(p is q for p, q in zip(m2.parameters(), opt2.param_groups[0]["params"], strict=True))
    train(m, opt, 5)
    train(m2, opt2, 5)
    for p, q in zip(m.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
        a, b = opt.cluster_state(p), opt2.cluster_state(q)
        assert torch.equal(a.factors, b.factors) and torch.equal(a.assignments, b.assignments)
    assert opt2.sgg_step == 9 and opt2.last_recluster_step == 9


def test_pickle_round_trip_like_torch_optimizers():
    m = make_model()
    opt = SGG(torch.optim.AdamW(m.parameters(), lr=1e-2), recluster_interval=3)
    opt.register_recluster_hook(lambda o, s: None)  # hooks are not carried, as in torch
    train(m, opt, 3)
    back = pickle.loads(pickle.dumps(opt))
    assert back.sgg_step == 3 and back.last_recluster_step == 3 and back.config == opt.config
    assert len(back._recluster_hooks) == 0
    for p, q in zip(opt.clustered_params(), back.clustered_params(), strict=True):
        assert torch.equal(opt.cluster_state(p).factors, back.cluster_state(q).factors)
        assert torch.equal(opt.state[p]["exp_avg"], back.state[q]["exp_avg"])
    torch.testing.assert_close(back.state_dict()["sgg"]["global_mda"], opt.global_mda)


# ---- non-contiguous state --------------------------------------------------------------------


def test_non_contiguous_state_takes_the_eager_path_for_that_tensor_only():
    needs_compile()

    def fresh(impl):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 4 * 4, 3, bias=False)
        ).to(memory_format=torch.channels_last)  # the conv weight is non-contiguous
        opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), update_impl=impl)
        return model, opt

    x = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    results = []
    for impl in ("eager", "compiled"):
        model, opt = fresh(impl)
        conv, lin = model[0].weight, model[2].weight
        assert not conv.is_contiguous()
        for i in range(3):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no compile-failure warning
                opt.step()
            if i == 0:  # a checkpoint may bring a non-contiguous moment for a plain weight
                m = opt.state[lin]["exp_avg"]
                opt.state[lin]["exp_avg"] = m.t().contiguous().t()
                assert not opt.state[lin]["exp_avg"].is_contiguous()
        results.append([p.detach().clone() for p in model.parameters()])
    assert sgg_update._compile_failed is None  # the process was not switched to eager
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

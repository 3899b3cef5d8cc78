"""Pure clustering and scale-rule functions; the worked example of docs/sgg.md."""

import pytest
import torch

from sgg import SGG
from sgg.clustering import inertia, kmeans_1d, kmeans_1d_sklearn
from sgg.scaling import cluster_mdas, global_mda, update_factors


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def datasets(n=200_000):
    g = gen(123)
    gauss = torch.randn(n, generator=g)
    # Student-t, 3 degrees of freedom, drawn from the seeded generator
    chi2 = torch.randn(3, n, generator=g).square().sum(0)
    heavy = torch.randn(n, generator=g) / (chi2 / 3).sqrt() * 1e-3
    bimodal = torch.cat(
        [torch.randn(n // 2, generator=g) - 4, 0.5 * torch.randn(n // 2, generator=g) + 3]
    )
    mostly_zero = torch.where(
        torch.rand(n, generator=g) < 0.9, torch.zeros(n), torch.randn(n, generator=g)
    )
    return {"gaussian": gauss, "heavy": heavy, "bimodal": bimodal, "mostly_zero": mostly_zero}


@pytest.mark.parametrize("name", ["gaussian", "heavy", "bimodal", "mostly_zero"])
@pytest.mark.parametrize("k", [2, 3])
def test_inertia_within_1pct_of_sklearn(name, k):
    from sklearn.cluster import KMeans

    x = datasets()[name]
    res = kmeans_1d(x, k, generator=gen())
    ours = inertia(x, res.labels, res.centers)
    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(x.double().numpy().reshape(-1, 1))
    assert ours <= 1.01 * km.inertia_ + 1e-12
    assert torch.all(res.centers[1:] >= res.centers[:-1])  # sorted: cluster 0 = smallest


def test_deterministic_and_degenerate_inputs():
    x = torch.randn(100_000, generator=gen(5))
    a, b = kmeans_1d(x, 3, generator=gen(1)), kmeans_1d(x, 3, generator=gen(1))
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centers, b.centers)
    const = kmeans_1d(torch.full((1000,), 2.5), 3, generator=gen())
    assert torch.isfinite(const.centers).all() and const.labels.max() < 3
    two = kmeans_1d(torch.tensor([0.0, 1.0] * 50), 3, generator=gen())
    assert torch.isfinite(two.centers).all()
    assert set(two.labels.tolist()) <= {0, 1, 2} and len(set(two.labels.tolist())) == 2
    nonfinite = torch.tensor([1.0, float("nan"), -1.0, float("inf"), 0.5, -float("inf"), 0.0])
    r = kmeans_1d(nonfinite, 2, generator=gen())
    assert torch.isfinite(r.centers).all()
    nearest0 = int(torch.argmin(r.centers.abs()))
    assert r.labels[1] == r.labels[3] == r.labels[5] == nearest0
    allnan = kmeans_1d(torch.full((10,), float("nan")), 3, generator=gen())
    assert (allnan.labels == 0).all()


def test_over_2_pow_24_elements():
    x = torch.randn(2**24 + 10, generator=gen(3))
    r = kmeans_1d(x, 3, generator=gen())
    assert r.labels.numel() == x.numel()
    sizes = torch.bincount(r.labels, minlength=3)
    assert (sizes > 0).all()
    mda, s, _ = cluster_mdas(x, r.labels, 3)
    assert torch.isfinite(mda).all() and s.sum() == x.numel()


def test_sklearn_backend_sorted_labels():
    x = torch.cat([torch.randn(500, generator=gen()) - 5, torch.randn(500, generator=gen(1)) + 5])
    r = kmeans_1d_sklearn(x, 2, generator=gen())
    assert r.centers[0] < r.centers[1] and (r.labels[:500] == 0).all()


# ---- the worked example of docs/sgg.md ------------------------------------------------------
M = torch.tensor([[-2.0, -1.0, 0.0], [1.0, 2.0, 10.0]])


def test_worked_example_pure_functions():
    labels = torch.tensor([0, 0, 0, 0, 0, 1])
    mda, sizes, dev = cluster_mdas(M.flatten(), labels, 2)
    torch.testing.assert_close(mda, torch.tensor([5 / 3, 25 / 3]))
    assert sizes.tolist() == [5, 1]
    d = global_mda([dev], [mda], [sizes], "all_params")
    torch.testing.assert_close(d, torch.tensor(5 / 3))
    raw, new = update_factors(
        torch.ones(2), mda, sizes, d, bounds=(0.1, 10.0), decay=0.9, eps=0.0, clamp="before_ema"
    )
    torch.testing.assert_close(raw, torch.tensor([1.0, 0.2]))
    torch.testing.assert_close(new, torch.tensor([1.0, 0.92]))
    # the other readings
    d2 = global_mda([dev], [mda], [sizes], "cluster_mdas")
    torch.testing.assert_close(d2, torch.tensor(5 / 3))  # lower median of {5/3, 25/3}
    raw2, new2 = update_factors(
        torch.ones(2),
        mda,
        sizes,
        torch.tensor(100.0),
        bounds=(0.1, 10.0),
        decay=0.9,
        eps=0.0,
        clamp="after_ema",
    )
    torch.testing.assert_close(raw2, torch.tensor([60.0, 12.0]))
    torch.testing.assert_close(new2, torch.tensor([6.9, 2.1]))


def test_worked_example_through_sgg():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    opt = SGG(
        torch.optim.AdamW([p]), n_clusters=2, recluster_interval=1, scale_decay=0.9, mda_eps=0.0
    )
    opt.state[p]["exp_avg"] = M.clone()
    p.grad = torch.zeros_like(p)  # a layer is re-clustered only on a step with a gradient
    opt.observe_step()
    st = opt.cluster_state(p)
    assert st.assignments.tolist() == [0, 0, 0, 0, 0, 1]
    torch.testing.assert_close(st.centers, torch.tensor([0.0, 10.0]))
    torch.testing.assert_close(opt.global_mda, torch.tensor(5 / 3))
    torch.testing.assert_close(st.raw_factors, torch.tensor([1.0, 0.2]))
    torch.testing.assert_close(st.factors, torch.tensor([1.0, 0.92]))
    assert st.transitions is None and st.last_recluster_step == 1 == opt.last_recluster_step


def test_empty_cluster_and_nan_keep_previous_factor():
    prev = torch.tensor([1.5, 0.5, 2.0])
    _raw, new = update_factors(
        prev,
        torch.tensor([1.0, float("nan"), 0.0]),
        torch.tensor([3, 2, 0]),
        torch.tensor(1.0),
        bounds=(0.1, 10.0),
        decay=0.5,
        eps=1e-12,
        clamp="before_ema",
    )
    torch.testing.assert_close(new, torch.tensor([1.25, 0.5, 2.0]))
    _, new = update_factors(
        prev,
        torch.ones(3),
        torch.ones(3, dtype=torch.long),
        torch.tensor(float("nan")),
        bounds=(0.1, 10.0),
        decay=0.5,
        eps=1e-12,
        clamp="before_ema",
    )
    torch.testing.assert_close(new, prev)


def _sgg_with_momenta(momenta, **kw):
    momenta = [m.reshape(-1, 100) for m in momenta]  # 2-D: clustered layers
    ps = [torch.nn.Parameter(torch.zeros(m.shape)) for m in momenta]
    opt = SGG(torch.optim.AdamW(ps), recluster_interval=10**9, **kw)
    for p, m in zip(ps, momenta, strict=True):
        st = opt.state[p]
        st["step"], st["exp_avg"], st["exp_avg_sq"] = torch.tensor(1.0), m.clone(), m * m
    opt._recluster()
    return opt, ps


def test_sampled_medians_close_to_exact():
    """median_sample (default) vs exact medians on layers of different shapes and scales."""
    d = datasets(300_000)
    layers = [d["gaussian"] * 1e-3, d["heavy"], d["bimodal"] * 1e-2, d["mostly_zero"] * 1e-4]
    layers += [torch.randn(3000, generator=gen(5)) * 1e-3]  # small layer: exact in both
    exact, pe = _sgg_with_momenta(layers, median_sample=None)
    sampled, ps = _sgg_with_momenta(layers)
    assert sampled.config.median_sample == 65536
    rel_d = abs(sampled.global_mda.item() / exact.global_mda.item() - 1)
    assert rel_d < 0.02, rel_d
    for a, b in zip(pe, ps, strict=True):
        sa, sb = exact.cluster_state(a), sampled.cluster_state(b)
        assert torch.equal(sa.assignments, sb.assignments)  # same generator stream, same fit
        assert torch.equal(sa.sizes, sb.sizes)
        r_exact = exact.global_mda / sa.mda
        r_sampled = sampled.global_mda / sb.mda
        ok = sa.sizes > 0
        rel = ((r_sampled - r_exact).abs() / r_exact)[ok].max().item()
        assert rel < 0.05, rel  # measured <= ~2% (docs/sgg.md)
    small_e, small_s = exact.cluster_state(pe[-1]), sampled.cluster_state(ps[-1])
    assert torch.equal(small_e.mda, small_s.mda)


def test_weighted_lower_median_matches_lower_median():
    from sgg.scaling import lower_median, weighted_lower_median

    x = torch.randn(1001, generator=gen(1))
    assert weighted_lower_median([x[:500], x[500:]], [1.0, 1.0]) == lower_median(x)
    y = x[:1000]
    assert weighted_lower_median([y], [1.0]) == lower_median(y)
    # a layer subsampled 1:10 counts 10x per point
    w = weighted_lower_median([torch.tensor([1.0, 2.0]), torch.tensor([3.0] * 5)], [10.0, 1.0])
    assert w == 2.0


@pytest.mark.parametrize("k", [2, 3, 8, 9, 40])
def test_labels_equal_bucketize(k):
    """The comparison-count labels (small K) and the int32 bucketize (larger K) equal
    ``torch.bucketize``, also on ties with the boundaries, duplicate boundaries and infinities."""
    from sgg.clustering import _labels_of

    g = gen(7)
    bounds = torch.sort(torch.randn(k - 1, generator=g))[0]
    if k > 2:
        bounds[1] = bounds[0]  # duplicate boundary (two equal centers)
    x = torch.cat(
        [torch.randn(5000, generator=g), bounds, torch.tensor([float("inf"), -float("inf")])]
    )
    lab = _labels_of(x, bounds, k)
    assert lab.dtype == torch.uint8
    assert torch.equal(lab.long(), torch.bucketize(x, bounds))


def test_kmeans_labels_uint8_and_nonfinite():
    x = torch.randn(10_000, generator=gen(3))
    x[::97] = float("nan")
    x[5] = float("inf")
    r = kmeans_1d(x, 3, generator=gen(0))
    assert r.labels.dtype == torch.uint8 and r.labels.numel() == x.numel()
    nearest0 = int(torch.argmin(r.centers.abs()))
    assert (r.labels[::97] == nearest0).all() and r.labels[5] == nearest0
    ok = torch.isfinite(x)
    assert torch.equal(torch.bincount(r.labels[ok].long(), minlength=3), r.sizes)
    # an overflowing float32 sum of finite values still counts as all finite
    big = torch.full((64,), 3e38)
    big[:32] = -3e38
    rb = kmeans_1d(big, 2, generator=gen(0))
    assert rb.sizes.tolist() == [32, 32]


@pytest.mark.parametrize("pow2", [True, False])
def test_weighted_lower_median_packed_equals_generic(pow2):
    """The CPU packed-key path equals the generic sort + cumsum path (ties across layers too)."""
    from sgg import scaling as S

    g = gen(11)
    for t in range(50):
        n_l = int(torch.randint(1, 7, (1,), generator=g))
        vals = [
            torch.randint(0, 30, (int(torch.randint(1, 50, (1,), generator=g)),), generator=g)
            .float()
            .mul_(0.37)
            for _ in range(n_l)
        ]
        if pow2:
            ws = [float(2 ** int(torch.randint(0, 5, (1,), generator=g))) for _ in vals]
        else:
            ws = [float(torch.rand(1, generator=g)) * 3 + 0.1 for _ in vals]
        packed = S._weighted_lower_median_packed([(v, w) for v, w in zip(vals, ws, strict=True)])
        v = torch.cat(vals)
        w = torch.cat(
            [
                torch.full((a.numel(),), b, dtype=torch.float64)
                for a, b in zip(vals, ws, strict=True)
            ]
        )
        vs, order = torch.sort(v)
        cw = torch.cumsum(w[order], 0)
        ref = vs[torch.searchsorted(cw, cw[-1] * 0.5).clamp(max=v.numel() - 1)]
        assert packed is not None and torch.equal(packed, ref), (t, packed, ref)
    # negative values or NaN: generic path
    assert S._weighted_lower_median_packed([(torch.tensor([-1.0, 2.0]), 1.0)]) is None
    assert S._weighted_lower_median_packed([(torch.tensor([float("nan")]), 1.0)]) is None

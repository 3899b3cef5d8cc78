"""The batched re-cluster equals the per-layer reference, bit for bit, on varied layer sets."""

import itertools

import pytest
import torch

from sgg.clustering import kmeans_1d, kmeans_1d_many
from sgg.config import SGGConfig
from sgg.recluster import recluster, transition_counts
from sgg.scaling import (
    lower_median,
    segment_lower_medians,
    weighted_lower_median,
    weighted_lower_median_rows,
)

FIELDS = ("labels", "centers", "sizes", "mda", "raw_factors", "factors")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def momenta(seed=0):
    """Layers of every kind the batched code treats differently: many small ones, a few big
    (subsampled with the small sample sizes used below), norm vectors, constant, NaN/inf, all-NaN,
    fewer distinct values than K, heavy tails (tiny outlier clusters), mostly zeros."""
    g = gen(seed)

    def scale():
        return 10 ** float(torch.rand((), generator=g) * 4 - 6)

    xs = [torch.randn(n, generator=g) * scale() for n in (7, 60, 300, 1000, 2500)]
    xs += [torch.randn(256, generator=g) * 1e-2 + 1.0 for _ in range(3)]  # norm-like vectors
    xs += [torch.randn(n, generator=g) * scale() for n in (12_000, 20_000)]
    xs.append(torch.full((500,), 2.5))  # constant
    xs.append(torch.tensor([0.0, 1.0] * 40))  # two distinct values
    nan = torch.randn(6000, generator=g)
    nan[::7] = float("nan")
    nan[3], nan[11] = float("inf"), -float("inf")
    xs.append(nan)
    xs.append(torch.full((9,), float("nan")))  # nothing finite
    t3 = torch.randn(15_000, generator=g) / (
        torch.randn(3, 15_000, generator=g).square().sum(0) / 3
    )
    xs.append(t3.sqrt() * 1e-3)
    xs.append(torch.where(torch.rand(9000, generator=g) < 0.9, 0.0, torch.randn(9000, generator=g)))
    big_nan = torch.randn(16_000, generator=g)
    big_nan[::3] = float("nan")  # subsampled layer with NaNs: a non-dyadic median weight
    xs.append(big_nan)
    return xs


def assert_same(a, b):
    assert torch.equal(a.global_mda, b.global_mda), (a.global_mda, b.global_mda)
    assert len(a.layers) == len(b.layers)
    for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=True)):
        for f in FIELDS:
            x, y = getattr(la, f), getattr(lb, f)
            assert x.dtype == y.dtype and torch.equal(x, y), (i, f, x, y)


CASES = [
    # (n_clusters, median_sample, kmeans_sample_size, n_init, global_mda)
    (3, 4096, 4096, 2, "all_params"),  # the default shape of things: keep == sample size
    (3, 2048, 4096, 2, "all_params"),  # median sample a prefix of the k-means sample
    (3, 8192, 4096, 2, "all_params"),  # more median points than k-means points (per layer)
    (3, None, 4096, 2, "all_params"),  # exact medians
    (2, 4096, 4096, 3, "all_params"),  # k-means++ draws between layers
    (1, 4096, 4096, 2, "all_params"),
    (9, 4096, 4096, 2, "all_params"),  # bucketize labels
    (3, 4096, 4096, 2, "cluster_mdas"),
    (3, 65536, 65536, 2, "all_params"),  # the defaults: nothing subsampled at these sizes
    # K near or above the points of the small layers (see test_kmeans_as_many_clusters_as_points)
    (7, 4096, 4096, 4, "all_params"),
    (20, 4096, 4096, 2, "all_params"),
]


@pytest.mark.parametrize(("k", "ms", "ss", "n_init", "gm"), CASES)
def test_batched_equals_reference(k, ms, ss, n_init, gm):
    cfg = SGGConfig(
        n_clusters=k, median_sample=ms, kmeans_sample_size=ss, kmeans_n_init=n_init, global_mda=gm
    )
    xs = momenta()
    g = gen(5)
    prev = [torch.rand(k, generator=g) + 0.5 for _ in xs]
    ga, gb = gen(0), gen(0)
    ref = recluster(xs, prev, config=cfg, generator=ga, batched=False)
    got = recluster(iter(xs), prev, config=cfg, generator=gb)
    assert_same(ref, got)
    assert torch.equal(ga.get_state(), gb.get_state())  # the same draws: later steps agree too
    assert ref.global_mda > 0


def test_chunks_and_subsets():
    """Lazy input in small chunks gives the same result; a subset is the reference on it."""
    cfg = SGGConfig(median_sample=4096, kmeans_sample_size=4096)
    xs = momenta(1)
    prev = [torch.ones(3)] * len(xs)
    ref = recluster(xs, prev, config=cfg, generator=gen(), batched=False)
    for chunk in (1, 5000, 30_000):
        assert_same(
            ref, recluster(iter(xs), prev, config=cfg, generator=gen(), chunk_elements=chunk)
        )
    sub = xs[::2]  # e.g. the layers that had a gradient this step
    ref_sub = recluster(sub, prev[::2], config=cfg, generator=gen(), batched=False)
    assert_same(ref_sub, recluster(sub, prev[::2], config=cfg, generator=gen()))
    empty = recluster([], [], config=cfg, generator=gen())
    assert empty.layers == [] and float(empty.global_mda) == 0.0


def test_many_small_and_few_big_layers():
    """LLaMA-like mix at small scale: many equal small matrices, two big ones, norm vectors."""
    g = gen(3)
    shapes = [(64, 64)] * 24 + [(172, 64)] * 12 + [(2048, 64)] * 2 + [(64,)] * 10
    xs = [torch.randn(s, generator=g) * 10 ** float(-4 + 2 * torch.rand(())) for s in shapes]
    cfg = SGGConfig(median_sample=4096, kmeans_sample_size=4096)
    prev = [torch.ones(3)] * len(xs)
    assert_same(
        recluster(xs, prev, config=cfg, generator=gen(), batched=False),
        recluster(xs, prev, config=cfg, generator=gen()),
    )


def test_kmeans_many_equals_kmeans_1d():
    xs = momenta(2)
    ga, gb = gen(0), gen(0)
    ref = [kmeans_1d(x, 3, generator=ga, sample_size=4096, keep_sample=4096) for x in xs]
    many = kmeans_1d_many(xs, 3, generator=gb, sample_size=4096, keep_sample=4096)
    for a, b in zip(ref, many.results, strict=True):
        assert torch.equal(a.labels, b.labels) and torch.equal(a.centers, b.centers)
        assert (a.sizes is None) == (b.sizes is None)
        if a.sizes is not None:
            assert torch.equal(a.sizes, b.sizes) and torch.equal(a.mean, b.mean)
    assert many.rows.shape[0] == len(xs) and many.rows.dtype == torch.float32
    assert torch.equal(ga.get_state(), gb.get_state())


@pytest.mark.parametrize(("k", "n_init"), [(7, 4), (20, 2)])
def test_kmeans_as_many_clusters_as_points(k, n_init):
    """7 points and K >= 7: every point its own center, so the sample inertia is 0 up to
    rounding and came out negative (-1e-23); the near-tie filter then kept no candidate and
    both paths crashed (TypeError). Now the best fit is kept, both paths agree."""
    xs = momenta(1)[:3]
    assert xs[0].numel() == 7
    ga, gb = gen(0), gen(0)
    ref = [kmeans_1d(x, k, generator=ga, sample_size=4096, n_init=n_init) for x in xs]
    many = kmeans_1d_many(xs, k, generator=gb, sample_size=4096, n_init=n_init)
    for a, b in zip(ref, many.results, strict=True):
        assert torch.equal(a.labels, b.labels) and torch.equal(a.centers, b.centers)
        assert torch.equal(a.sizes, b.sizes)
    # 7 distinct points in 7 clusters of one point each (empty clusters beyond)
    assert sorted(ref[0].sizes.tolist())[-7:] == [1] * 7
    assert torch.equal(ga.get_state(), gb.get_state())


def test_segment_lower_medians_equal_lower_median():
    g = gen(4)
    rows, segs = [], []
    for r in range(30):
        n = int(torch.randint(1, 400, (1,), generator=g))
        # few distinct values: many ties in the deviations
        x = torch.sort(torch.randint(-20, 20, (n,), generator=g).float() * 0.37)[0]
        mu = float(x[int(torch.randint(0, n, (1,), generator=g))]) + 0.1 * (r % 3)
        rows.append(torch.cat([x - mu, torch.full((400 - n,), float("inf"))]))
        for _ in range(4):
            a, b = sorted(torch.randint(0, n + 1, (2,), generator=g).tolist())
            segs.append((r, a, b))
    diff = torch.stack(rows)
    row, start, end = (torch.tensor(c) for c in zip(*segs, strict=True))
    got = segment_lower_medians(diff, row, start, end)
    for i, (r, a, b) in enumerate(segs):
        assert got[i] == lower_median(diff[r, a:b].abs()), (r, a, b)


@pytest.mark.parametrize("dyadic", [True, False])
def test_weighted_lower_median_rows_equals_sort(dyadic):
    g = gen(6)
    for trial in range(20):
        blocks, devs, weights = [], [], []
        for _ in range(2):  # two blocks (two chunks of layers)
            nrow, width = int(torch.randint(1, 6, (1,), generator=g)), 50
            rows, lengths, ws = [], [], []
            for _ in range(nrow):
                n = int(torch.randint(0, width + 1, (1,), generator=g))
                x = torch.sort(torch.randint(-9, 9, (n,), generator=g).float() * 0.5)[0]
                d = x - 0.25 * (trial % 2)
                rows.append(torch.cat([d, torch.full((width - n,), float("inf"))]))
                lengths.append(n)
                w = 2.0 ** int(torch.randint(0, 4, (1,), generator=g))
                ws.append(w if dyadic else w * 1.37)
                devs.append(d.abs())
                weights.append(ws[-1])
            blocks.append((torch.stack(rows), torch.tensor(lengths), torch.tensor(ws)))
        got = weighted_lower_median_rows(blocks)
        assert got == weighted_lower_median(devs, weights), trial


def test_invalid_chunk_elements():
    with pytest.raises(ValueError, match="chunk_elements"):
        recluster(
            [torch.ones(4)], [torch.ones(3)], config=SGGConfig(), generator=gen(), chunk_elements=0
        )


@pytest.mark.parametrize("k", [2, 3])
def test_sgg_default_config_many_layers(k):
    """Default sample sizes on layers above and below 65536 elements (one subsampled)."""
    g = gen(9)
    xs = [torch.randn(70_000, generator=g) * 1e-3] + [
        torch.randn(n, generator=g) * 1e-4 for n, _ in itertools.product((900, 4000), range(3))
    ]
    cfg = SGGConfig(n_clusters=k)
    prev = [torch.ones(k)] * len(xs)
    assert_same(
        recluster(xs, prev, config=cfg, generator=gen(), batched=False),
        recluster(xs, prev, config=cfg, generator=gen()),
    )


def test_threaded_full_passes_same_result(monkeypatch):
    """The per-layer full-data passes and row sorts on several threads: the same results."""
    import sgg.clustering as C

    monkeypatch.setattr(C, "_THREADED_MIN_ELEMENTS", 0)
    monkeypatch.setattr(C, "_THREADED_MIN_SORT", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = SGGConfig(median_sample=4096, kmeans_sample_size=4096)
        xs = momenta(3)
        prev = [torch.ones(3)] * len(xs)
        assert_same(
            recluster(xs, prev, config=cfg, generator=gen(), batched=False),
            recluster(xs, prev, config=cfg, generator=gen()),
        )
    finally:
        torch.set_num_threads(threads)


# 11: pair bins past 128 (one bincount per label); 17: the pair index no longer fits in uint8
@pytest.mark.parametrize("k", [1, 3, 11, 16, 17])
def test_transition_counts(k):
    """``transition_counts`` equals a count of the label pairs, layer by layer."""
    g = gen(k)
    sizes = (1, 2, 7, 1000, 70_001)
    prev = [torch.randint(k, (n,), generator=g).to(torch.uint8) for n in sizes]
    new = [torch.randint(k, (n,), generator=g).to(torch.uint8) for n in sizes]
    got = transition_counts(prev, new, k)
    assert len(got) == len(sizes)
    for a, b, t in zip(prev, new, got, strict=True):
        want = torch.zeros(k, k, dtype=torch.long)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            want[i, j] += 1
        assert t.dtype == torch.long and torch.equal(t, want)
    assert transition_counts([], [], k) == []


def test_transition_counts_int64_previous_labels():
    """Previous labels in int64 (e.g. from an old checkpoint): counted like uint8 ones."""
    g = gen(5)
    prev = [torch.randint(3, (n,), generator=g) for n in (5, 1001)]
    new = [torch.randint(3, (n,), generator=g).to(torch.uint8) for n in (5, 1001)]
    want = transition_counts([p.to(torch.uint8) for p in prev], new, 3)
    for t, w in zip(transition_counts(prev, new, 3), want, strict=True):
        assert torch.equal(t, w)

"""The native full-data pass of the re-cluster (sgg/csrc/sgg_recluster.cpp) equals the torch
path bit for bit, and the re-cluster falls back to the torch path when it cannot be built."""

import os
import shutil
import warnings

import pytest
import torch

import sgg.clustering as C
import sgg.native_recluster as N
from sgg.clustering import kmeans_1d_many

native = N.load(wait=True)
needs_native = pytest.mark.skipif(native is None, reason=f"no native build: {N.failure()}")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def torch_pass(x: torch.Tensor, bounds: torch.Tensor, nonfinite: int, k: int):
    """The torch path's labels, sizes and sums (as clustering._assign_full computes them)."""
    if k > 1:
        lab = torch.bucketize(x, bounds).to(torch.uint8)
    else:
        lab = torch.zeros(x.numel(), dtype=torch.uint8)
    fin = torch.isfinite(x)
    lab = torch.where(fin, lab, torch.tensor(nonfinite, dtype=torch.uint8))
    sizes = torch.bincount(lab[fin], minlength=k)[:k]
    sums = torch.bincount(lab[fin], weights=x[fin].double(), minlength=k)[:k]
    return lab, sizes, sums


def layer(n: int, kind: str, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, generator=g) * 1e-3
    if kind == "const":
        x = torch.full((n,), 0.25)
    elif kind == "nonfinite" and n:
        x[:: max(1, n // 5)] = float("nan")
        x[n // 2] = float("inf")
        x[-1] = -float("inf")
    elif kind == "heavy":
        x = x / torch.rand(n, generator=g).clamp(min=1e-6)
    return x


@needs_native
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 9, 17, 256])
def test_native_pass_equals_torch(k):
    g = gen(k)
    xs, bounds, nonfinite = [], [], []
    # sizes around 2^k boundaries and odd sizes; constant, non-finite and heavy-tailed layers
    for n in (0, 1, 7, 255, 256, 257, 4095, 4096, 65537, 300_001):
        for kind in ("randn", "const", "nonfinite", "heavy"):
            x = layer(n, kind, g)
            b = torch.sort(torch.randn(k - 1, generator=g) * 1e-3)[0]
            if k > 2:
                b[1] = b[0]  # equal neighbouring bounds (an empty cluster between)
            xs.append(x)
            bounds.append(b)
            nonfinite.append(int(torch.randint(k, (), generator=g)))
    labels, sizes, sums = N.full_pass(native, xs, bounds, nonfinite, k)
    for j, x in enumerate(xs):
        lab, sz, sm = torch_pass(x, bounds[j], nonfinite[j], k)
        assert torch.equal(labels[j], lab), j
        assert torch.equal(sizes[j], sz), j
        assert torch.equal(sums[j], sm), j  # bit-identical float64 sums (element order)


@needs_native
@pytest.mark.parametrize(("k", "n_init"), [(1, 2), (3, 2), (3, 4), (7, 4), (12, 3)])
def test_kmeans_many_native_equals_torch_path(monkeypatch, k, n_init):
    """kmeans_1d_many with and without the native pass: the same results and draws."""
    g = gen(7)
    xs = [layer(n, kind, g) for n in (5, 300, 70_000, 200_000) for kind in ("randn", "nonfinite")]
    xs += [torch.full((9,), float("nan")), torch.zeros(0), layer(1000, "const", g)]
    xs.append(torch.randn(64, 64, generator=g).t())  # non-contiguous: flattened by a copy
    xs.append(torch.randn(3000, generator=g, dtype=torch.float64))  # float64: the torch path
    kw = {"sample_size": 4096, "n_init": n_init, "keep_sample": 4096}
    ga, gb = gen(0), gen(0)
    got = kmeans_1d_many(xs, k, generator=ga, **kw)
    monkeypatch.setattr(C, "USE_NATIVE_PASS", False)
    ref = kmeans_1d_many(xs, k, generator=gb, **kw)
    assert torch.equal(ga.get_state(), gb.get_state())
    for a, b in zip(ref.results, got.results, strict=True):
        assert a.labels.dtype == b.labels.dtype and torch.equal(a.labels, b.labels)
        assert torch.equal(a.centers, b.centers)
        assert (a.sizes is None) == (b.sizes is None)
        if a.sizes is not None:
            assert torch.equal(a.sizes, b.sizes) and torch.equal(a.mean, b.mean)
    for a, b in zip(ref.bounds, got.bounds, strict=True):
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))


def test_fallback_when_the_build_fails(monkeypatch, tmp_path):
    """A failed build (here: a source that does not compile, built in the background helper)
    warns once; the re-cluster runs the torch path meanwhile and after, same results."""
    from sgg import extensions

    broken = tmp_path / "sgg_recluster.cpp"
    broken.write_text("#error no compiler here\n")
    xs = [torch.randn(n, generator=gen(n)) for n in (100, 5000)]
    want = kmeans_1d_many(xs, 3, generator=gen(0), sample_size=1024)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(N.EXTENSION, "source", broken)
    monkeypatch.setattr(N.EXTENSION, "_state", extensions._State())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say while it builds
        building = kmeans_1d_many(xs, 3, generator=gen(0), sample_size=1024)
    with pytest.warns(RuntimeWarning, match="native re-cluster pass could not be built"):
        assert N.load(wait=True) is None
        got = kmeans_1d_many(xs, 3, generator=gen(0), sample_size=1024)
    if shutil.which(os.environ.get("CXX", "c++")):
        assert "error: #error no compiler here" in N.failure()
    assert N.EXTENSION.report()["action"] == "failed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        again = kmeans_1d_many(xs, 3, generator=gen(0), sample_size=1024)
    for a, b, c, d in zip(want.results, got.results, again.results, building.results,
                          strict=True):  # fmt: skip
        assert torch.equal(a.labels, b.labels) and torch.equal(a.centers, b.centers)
        assert torch.equal(a.sizes, b.sizes) and torch.equal(b.labels, c.labels)
        assert torch.equal(d.labels, a.labels) and torch.equal(d.centers, a.centers)


def test_build_name_changes_with_the_flags(monkeypatch):
    from sgg import extensions

    name = N.EXTENSION.build_name()
    assert name.startswith("sgg_recluster_") and name == N.EXTENSION.build_name()
    monkeypatch.setattr(extensions, "_FLAGS", [*extensions._FLAGS, "-DSGG_TEST"])
    assert N.EXTENSION.build_name() != name


def test_a_build_killed_midway_does_not_hang_the_next_run():
    """A process killed while building leaves torch's "lock" file; the next process must not
    wait for it forever (it did: the kill-resume tests hung on a fresh machine)."""
    import subprocess
    import sys

    if N.load(wait=True) is None:
        pytest.skip(f"extension unavailable: {N.failure()}")
    stale = N.EXTENSION.build_directory() / "lock"
    stale.write_text("")  # what a process killed during the build leaves behind
    code = ("from sgg import native_recluster as n; "
            "assert n.load(wait=True) is not None, n.failure()")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), timeout=120,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert not stale.exists()

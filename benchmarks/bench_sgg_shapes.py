"""SGG's cost across model shapes: steady step and re-cluster vs fused AdamW, in one process.

Rows (parameters / tensors): 1M/20, 10M/20, 10M/200, a LLaMA-style 23M/219 (hidden 256, 24
layers, MLP 688, vocab 8192, with norm vectors), 100M/20. For each row, SGG (default update: the
native kernel; ``--impl compiled`` for the torch.compile one; ``recluster_interval=2``: every
second step re-clusters) and ``torch.optim.AdamW(fused=True)`` step alternately on the same
gradients; the figures are medians of the interleaved timings:

- steady step ratio: SGG step without a re-cluster / fused AdamW step;
- re-cluster step: an SGG step that re-clusters, in fused AdamW steps (and the ``_recluster``
  part of it alone).

At the end the per-step and per-re-cluster costs are fitted as ``a + b * tensors + c * elements``
(least squares over the rows; the basis of docs/cost-model.md).

Run: ``python -m benchmarks.bench_sgg_shapes`` (``--quick`` for fewer repeats, ``--rows 23M/219``
to pick rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from sgg import SGG
from sgg.recluster import recluster


def llama_shapes(
    hidden: int = 256, layers: int = 24, mlp: int = 688, vocab: int = 8192
) -> list[tuple[int, ...]]:
    """Parameter shapes of a LLaMA-style decoder (untied embeddings, RMSNorm weight vectors)."""
    shapes: list[tuple[int, ...]] = [(vocab, hidden)]
    for _ in range(layers):
        shapes += [(hidden, hidden)] * 4  # q, k, v, o
        shapes += [(mlp, hidden), (mlp, hidden), (hidden, mlp)]  # gate, up, down
        shapes += [(hidden,), (hidden,)]  # the two RMSNorm weights
    shapes += [(hidden,), (vocab, hidden)]  # final norm, lm_head
    return shapes


ROWS: dict[str, list[tuple[int, ...]]] = {
    "1M/20": [(250, 200)] * 20,
    "10M/20": [(1000, 500)] * 20,
    "10M/200": [(250, 200)] * 200,
    "23M/219": llama_shapes(),
    "100M/20": [(5000, 1000)] * 20,
}


def make_params(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters whose gradients look like momenta of a real model: per tensor a scale in
    1e-4..1e-2 and one of Gaussian, Student-t(3), 90% zeros, row-correlated."""
    g = torch.Generator().manual_seed(seed)
    ps = []
    for i, shape in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(shape, generator=g) * 0.02)
        scale = 10 ** (-4 + 2 * torch.rand((), generator=g).item())
        z = torch.randn(shape, generator=g)
        if i % 4 == 1:
            z = z / (torch.randn((3, *shape), generator=g).square().sum(0) / 3).sqrt()
        elif i % 4 == 2:
            z = z * (torch.rand(shape, generator=g) < 0.1)
        elif i % 4 == 3 and len(shape) == 2:
            z = z + 0.3 * torch.randn(shape[0], 1, generator=g)
        p.grad = z * scale
        ps.append(p)
    return ps


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_row(name: str, steady_pairs: int, recluster_reps: int, impl: str) -> dict[str, float]:
    shapes = ROWS[name]
    n_el = sum(int(np.prod(s)) for s in shapes)
    p_ref, p_sgg = make_params(shapes), make_params(shapes)
    adamw = torch.optim.AdamW(p_ref, lr=1e-3, weight_decay=0.1, fused=True)
    sgg = SGG(
        torch.optim.AdamW(p_sgg, lr=1e-3, weight_decay=0.1),
        recluster_interval=2,
        update_impl=impl,
    )
    rc_times: list[float] = []
    inner = sgg._recluster

    def timed_recluster(*args, **kwargs) -> None:
        rc_times.append(timed(lambda: inner(*args, **kwargs)))

    sgg._recluster = timed_recluster  # type: ignore[method-assign]
    t0 = time.perf_counter()
    adamw.step()
    sgg.step()  # step 1: builds/loads (native) or compiles the update
    t_first = time.perf_counter() - t0
    sgg.step()  # step 2: the first re-cluster
    t0 = time.perf_counter()
    sgg.step()  # step 3: the first step with factors (nothing may compile here)
    t_factor = time.perf_counter() - t0
    sgg.step()  # step 4: re-cluster (warm)
    rc_times.clear()
    ta_s, ts, ta_r, tr = [], [], [], []  # (AdamW, SGG) steady pairs; (AdamW, SGG) re-cluster
    for i in range(max(steady_pairs, recluster_reps)):
        # the SGG clock is even here: the next step is steady, the one after re-clusters
        if i < steady_pairs:
            ta_s.append(timed(adamw.step))
            ts.append(timed(sgg.step))
        else:
            sgg.step()
        if i < recluster_reps:
            ta_r.append(timed(adamw.step))
            tr.append(timed(sgg.step))
        else:
            sgg.step()
    assert sgg.sgg_step % 2 == 0 and len(rc_times) == max(steady_pairs, recluster_reps)
    t_a, t_s, t_r = (statistics.median(x) for x in (ta_s + ta_r, ts, tr))
    t_rc = statistics.median(rc_times[:recluster_reps])
    pair = statistics.median(s / a for s, a in zip(ts, ta_s, strict=True))
    out = {
        "tensors": len(shapes),
        "elements": n_el,
        "adamw_ms": t_a * 1e3,
        "sgg_ms": t_s * 1e3,
        "ratio": t_s / t_a,
        "pair_ratio": pair,
        "recluster_step_ms": t_r * 1e3,
        "recluster_step_steps": t_r / t_a,
        "recluster_ms": t_rc * 1e3,
        "recluster_steps": t_rc / t_a,
        "first_step_s": t_first,
        "factor_compile_s": t_factor,
    }
    print(
        f"{name:>8}: AdamW {t_a * 1e3:8.2f} ms  SGG {t_s * 1e3:8.2f} ms  steady {t_s / t_a:5.2f}x"
        f" (pairs {pair:4.2f})  re-cluster step {t_r / t_a:6.1f} steps"
        f" (_recluster {t_rc * 1e3:7.1f} ms = {t_rc / t_a:6.1f})"
        f"  [first step {t_first:.1f} s, first step with factors {t_factor:.2f} s]",
        flush=True,
    )
    return out


def run_recluster_only(name: str, reps: int) -> dict[str, float]:
    """The re-cluster alone (no compiled step): the per-layer reference (``batched=False``, the
    algorithm before the batched one) and the batched one, interleaved with fused AdamW steps."""
    shapes = ROWS[name]
    p_ref, p_sgg = make_params(shapes), make_params(shapes)
    adamw = torch.optim.AdamW(p_ref, lr=1e-3, weight_decay=0.1, fused=True)
    sgg = SGG(torch.optim.AdamW(p_sgg, lr=1e-3), recluster_interval=10**9, update_impl="eager")
    adamw.step()
    sgg.step()
    params = sgg.clustered_params()
    qs = [sgg.state[p]["exp_avg"].reshape(-1) for p in params]
    prev = [sgg.cluster_state(p).factors for p in params]

    def run(batched: bool) -> None:
        recluster(qs, prev, config=sgg.config, generator=torch.Generator(), batched=batched)

    run(True)
    ta, t_ref, t_bat, t_opt = [], [], [], []
    for _ in range(reps):
        ta.append(timed(adamw.step))
        t_ref.append(timed(lambda: run(False)))
        ta.append(timed(adamw.step))
        t_bat.append(timed(lambda: run(True)))
        t_opt.append(timed(sgg._recluster))
    t_a, r, b, o = (statistics.median(x) for x in (ta, t_ref, t_bat, t_opt))
    print(
        f"{name:>8}: AdamW {t_a * 1e3:8.2f} ms  re-cluster per layer (before) {r * 1e3:8.1f} ms"
        f" = {r / t_a:6.1f} steps; batched {b * 1e3:8.1f} ms = {b / t_a:6.1f} steps "
        f"({r / b:4.1f}x faster); SGG._recluster {o * 1e3:8.1f} ms = {o / t_a:6.1f} steps",
        flush=True,
    )
    return {
        "tensors": len(shapes),
        "elements": sum(int(np.prod(s)) for s in shapes),
        "adamw_ms": t_a * 1e3,
        "recluster_ms": o * 1e3,
        "reference_ms": r * 1e3,
    }


def fit(rows: dict[str, dict[str, float]], key: str) -> tuple[float, float, float] | None:
    """Least-squares ``key_ms = a + b * tensors + c * elements`` over the rows (None if < 3)."""
    if len(rows) < 3:
        return None
    x = np.array([[1.0, r["tensors"], r["elements"]] for r in rows.values()])
    y = np.array([r[key] for r in rows.values()])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument(
        "--impl",
        default="auto",
        choices=["auto", "native", "compiled", "eager"],
        help="SGG's update_impl (auto: the native kernel on float32 CPU tensors)",
    )
    ap.add_argument(
        "--recluster-only",
        action="store_true",
        help="time only the re-cluster, per-layer reference vs batched (nothing compiles)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, SGG update {args.impl}")
    results = {}
    if args.recluster_only:
        for name in args.rows:
            results[name] = run_recluster_only(name, 3 if args.quick else 7)
        for key, what in (("adamw_ms", "fused AdamW step"), ("recluster_ms", "_recluster")):
            c = fit(results, key)
            if c is not None:
                print(
                    f"fit {what:>35}: {c[0]:8.3f} ms + {c[1] * 1e3:8.2f} us/tensor"
                    f" + {c[2] * 1e6:7.3f} ns/element"
                )
        return
    for name in args.rows:
        big = name.startswith("100M")
        pairs = (4 if big else 10) if args.quick else (8 if big else 30)
        reps = (2 if big else 4) if args.quick else (3 if big else 8)
        results[name] = run_row(name, pairs, reps, args.impl)
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print("\n| parameters / tensors | steady step | re-cluster step | of which `_recluster` |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {r['elements'] / 1e6:.1f}M / {r['tensors']} ({name}) | {r['ratio']:.2f}x "
            f"| {r['recluster_step_steps']:.1f} fused steps | {r['recluster_steps']:.1f} |"
        )
    for r in results.values():
        r["overhead_ms"] = r["sgg_ms"] - r["adamw_ms"]
    for key, what in (
        ("adamw_ms", "fused AdamW step"),
        ("sgg_ms", "SGG steady step"),
        ("overhead_ms", "SGG steady step - fused AdamW step"),
        ("recluster_ms", "_recluster"),
        ("recluster_step_ms", "re-cluster step"),
    ):
        c = fit(results, key)
        if c is not None:
            print(
                f"fit {what:>35}: {c[0]:8.3f} ms + {c[1] * 1e3:8.2f} us/tensor"
                f" + {c[2] * 1e6:7.3f} ns/element"
            )


if __name__ == "__main__":
    main()

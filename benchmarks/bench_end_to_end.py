"""Whole training steps (forward + backward + optimizer step) of ``sgg_train``'s model: SGG
(defaults, T = 500) vs ``torch.optim.AdamW(fused=True)``, interleaved in one process.

Two copies of the same model (same seed) see the same batches; each pair of steps runs one SGG
step and one AdamW step, alternating which goes first. Printed: median step times and their
ratio, mean step times (the mean includes the re-cluster steps, so it is the amortised cost of
training with SGG) and their ratio (target <= 1.01), and the first-step build/compile time of
SGG's update with cold caches (fresh ``TORCH_EXTENSIONS_DIR`` and ``TORCHINDUCTOR_CACHE_DIR``:
the native kernel is built) and warm ones, each measured in a fresh process.

Run: ``python -m benchmarks.bench_end_to_end`` (``--steps 1000`` pairs by default; ``--quick``
for 520 pairs, still one re-cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from sgg import SGG, native, native_recluster
from sgg_train.config import TrainConfig
from sgg_train.data import load_corpus, sample_batch, split_corpus
from sgg_train.model import build_model, lm_loss


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, which: str, interval: int):
    """``sgg_train``'s parameter groups (decay on >= 2-D tensors), SGG or fused AdamW."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kw = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "eps": cfg.eps}
    if which == "adamw":
        return torch.optim.AdamW(groups, fused=True, **kw)
    return SGG(torch.optim.AdamW(groups, **kw), recluster_interval=interval)


def train_step(model, opt, batch) -> None:
    loss = lm_loss(model, batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def first_steps() -> dict[str, float]:
    """In this (fresh) process: the first SGG step (builds or loads the native code), the first
    re-cluster step and the step after it, against a plain fused-AdamW step of the same model."""
    cfg = TrainConfig()
    data, _ = split_corpus(load_corpus(), cfg.val_fraction)
    gen = torch.Generator().manual_seed(0)
    batches = [sample_batch(data, cfg.batch_size, cfg.seq_len, gen) for _ in range(4)]
    m_ref, m_sgg = build_model(cfg), build_model(cfg)
    adamw = make_optimizer(m_ref, cfg, "adamw", 0)
    sgg = make_optimizer(m_sgg, cfg, "sgg", 2)  # re-cluster at step 2: the factor variant at 3
    train_step(m_ref, adamw, batches[0])  # warms up the model code (not the optimizer's)
    t0 = time.perf_counter()
    train_step(m_ref, adamw, batches[1])
    t_adamw = time.perf_counter() - t0
    times = []
    for b in batches[:3]:
        t0 = time.perf_counter()
        train_step(m_sgg, sgg, b)
        times.append(time.perf_counter() - t0)
    # the native kernels build in the background (training does not wait): wait here, untimed,
    # so that the "warm" process finds them built, as a second training run would
    t0 = time.perf_counter()
    native.load(wait=True)
    native_recluster.load(wait=True)
    t_build = time.perf_counter() - t0
    return {
        "background_build_left": t_build,
        "adamw_step": t_adamw,
        "sgg_first": times[0],
        "sgg_first_recluster": times[1],
        "sgg_after_recluster": times[2],
    }


def compile_times() -> dict[str, dict[str, float]]:
    """First steps in fresh processes: "cold" with empty caches (SGG's native kernels build in
    the background while the first steps run), then "warm" with the caches the cold run left."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="sgg-build-cache-") as cache:
        env = dict(
            os.environ,
            TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
            TORCH_EXTENSIONS_DIR=os.path.join(cache, "extensions"),
        )
        env.pop("SGG_UPDATE_IMPL", None)
        for label in ("cold", "warm"):
            res = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_end_to_end", "--first-steps"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000, help="pairs of steps")
    ap.add_argument("--quick", action="store_true", help="520 pairs (one re-cluster)")
    ap.add_argument("--interval", type=int, default=500, help="SGG's T")
    ap.add_argument("--no-compile-times", action="store_true")
    ap.add_argument("--first-steps", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_steps:
        print(json.dumps(first_steps()))
        return
    steps = 520 if args.quick else args.steps
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    cfg = TrainConfig()
    m_ref, m_sgg = build_model(cfg), build_model(cfg)
    n_params = sum(p.numel() for p in m_ref.parameters())
    n_tensors = sum(1 for _ in m_ref.parameters())
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; sgg_train model "
        f"(d_model {cfg.d_model}, {cfg.layers} layers): {n_params:,} parameters in {n_tensors} "
        f"tensors; batch {cfg.batch_size} x {cfg.seq_len}; SGG T = {args.interval}"
    )
    adamw = make_optimizer(m_ref, cfg, "adamw", 0)
    sgg = make_optimizer(m_sgg, cfg, "sgg", args.interval)
    data, _ = split_corpus(load_corpus(), cfg.val_fraction)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(3):  # warm-up (builds or loads SGG's update): not timed
        b = sample_batch(data, cfg.batch_size, cfg.seq_len, gen)
        train_step(m_ref, adamw, b)
        train_step(m_sgg, sgg, b)
    ta, ts = [], []
    for i in range(steps):
        b = sample_batch(data, cfg.batch_size, cfg.seq_len, gen)
        order = ((m_ref, adamw, ta), (m_sgg, sgg, ts))
        for model, opt, acc in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            train_step(model, opt, b)
            acc.append(time.perf_counter() - t0)
    n_rc = sum(1 for s in range(4, steps + 4) if s % args.interval == 0)
    med_a, med_s = statistics.median(ta), statistics.median(ts)
    mean_a, mean_s = statistics.fmean(ta), statistics.fmean(ts)
    pair = statistics.median(s / a for s, a in zip(ts, ta, strict=True))
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(f"{steps} interleaved pairs of training steps ({n_rc} SGG re-cluster(s) among them)")
    print(
        f"median step: fused AdamW {med_a * 1e3:.2f} ms, SGG {med_s * 1e3:.2f} ms  ratio "
        f"{med_s / med_a:.4f} (median of per-pair ratios {pair:.4f})"
    )
    print(
        f"mean step (amortised, incl. re-clusters): AdamW {mean_a * 1e3:.2f} ms, SGG "
        f"{mean_s * 1e3:.2f} ms  ratio {mean_s / mean_a:.4f}  (target <= 1.01)"
    )
    if not args.no_compile_times:
        for label, r in compile_times().items():
            print(
                f"{label} caches: first SGG training step {r['sgg_first']:.2f} s; the first "
                f"re-cluster step {r['sgg_first_recluster']:.2f} s; the step after it "
                f"{r['sgg_after_recluster']:.2f} s (a fused AdamW step: "
                f"{r['adamw_step'] * 1e3:.1f} ms); the background build went on "
                f"{r['background_build_left']:.1f} s after them (training did not wait)"
            )


if __name__ == "__main__":
    main()

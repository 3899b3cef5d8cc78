"""The first optimizer step on a fresh machine: SGG with an EMPTY extension cache against torch's
AdamW, on ``sgg_train``'s model built as the training command builds it.

Each repeat runs each optimizer in a fresh process (nothing warmed up, nothing loaded), with its
own empty ``TORCH_EXTENSIONS_DIR`` and inductor cache: SGG's native kernels are then built in the
background while its first steps run the eager update (sgg/extensions.py). One warm-up forward
and backward runs first (the model's code, not the optimizer's), then one training step is
timed, its ``opt.step()`` apart. The SGG process then keeps training until both native
extensions are in use and reports when that was and the step times before and after.

Printed: medians over the repeats of the first ``opt.step()`` and of the first whole training
step, the ratio SGG / AdamW, and the target: SGG's first step <= 2 x AdamW's + 1 s.

Run: ``python -m benchmarks.bench_first_step`` (``--repeats 3``; each SGG repeat builds both
extensions, ~30-120 s depending on the machine's load; ``--threads N`` as the training
command's: on an oversubscribed machine every parallel region of a 2-thread step can wait a
scheduler slice, which makes first-step times noisy for both optimizers).
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


def one_process(which: str, threads: int) -> dict[str, float]:
    """In this fresh process: the first step of the training command's optimizer ``which``."""
    if threads:  # as the training command's --threads
        torch.set_num_threads(threads)
    from sgg_train.config import TrainConfig
    from sgg_train.data import load_corpus, sample_batch, split_corpus
    from sgg_train.model import build_model, build_optimizer, lm_loss

    cfg = TrainConfig(optimizer=which)
    data, _ = split_corpus(load_corpus(), cfg.val_fraction)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg)
    opt = build_optimizer(cfg, model)
    lm_loss(model, sample_batch(data, cfg.batch_size, cfg.seq_len, gen)).backward()
    opt.zero_grad(set_to_none=True)  # the model's code is warm; the optimizer has not stepped

    def train_step() -> tuple[float, float, float]:
        """(opt.step(), forward + backward, the whole step) in seconds."""
        t0 = time.perf_counter()
        lm_loss(model, sample_batch(data, cfg.batch_size, cfg.seq_len, gen)).backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        return t2 - t1, t1 - t0, time.perf_counter() - t0

    start = time.perf_counter()
    first_opt, first_fwd_bwd, first_whole = train_step()
    out = {"first_step": first_opt, "first_fwd_bwd": first_fwd_bwd, "first_train_step": first_whole}
    if which != "sgg":
        return out
    from sgg import native, native_recluster

    exts = (native.EXTENSION, native_recluster.EXTENSION)
    before = []
    while any(ext.load() is None for ext in exts):
        if all(ext.failure() is not None or ext.load() is not None for ext in exts):
            break  # a build failed: nothing to switch to
        before.append(train_step()[0])
    ready = time.perf_counter() - start
    after = [train_step()[0] for _ in range(20)]
    out.update(
        native_ready_s=ready,
        steps_before_switch=len(before) + 1,
        step_while_building=statistics.median(before) if before else first_opt,
        step_after_switch=statistics.median(after),
        reports=[ext.report() for ext in exts],
    )
    return out


def run_fresh(which: str, threads: int) -> dict:
    """``one_process(which)`` in a fresh process with empty caches."""
    with tempfile.TemporaryDirectory(prefix="sgg-first-step-") as cache:
        env = {k: v for k, v in os.environ.items() if k not in ("SGG_UPDATE_IMPL", "SGG_NATIVE")}
        env.update(
            TORCH_EXTENSIONS_DIR=os.path.join(cache, "extensions"),
            TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_first_step",
                "--one",
                which,
                "--threads",
                str(threads),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--one", choices=("sgg", "adamw"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_process(args.one, args.threads)))
        return
    print(
        f"load average (1, 5, 15 min): {os.getloadavg()}; torch {torch.__version__}; threads "
        f"{args.threads or torch.get_num_threads()} of {os.cpu_count()} CPUs"
    )
    runs: dict[str, list[dict]] = {"adamw": [], "sgg": []}
    for i in range(args.repeats):
        for which in ("adamw", "sgg"):
            r = run_fresh(which, args.threads)
            runs[which].append(r)
            extra = ""
            if which == "sgg":
                extra = (
                    f"; native in use after {r['native_ready_s']:.1f} s "
                    f"({r['steps_before_switch']} steps before; step "
                    f"{r['step_while_building'] * 1e3:.1f} ms while building, "
                    f"{r['step_after_switch'] * 1e3:.1f} ms after); builds: "
                    + ", ".join(
                        f"{x['extension']} {x['action']} {x.get('seconds', 0):.0f} s"
                        for x in r["reports"]
                    )
                )
            print(
                f"repeat {i + 1} {which}: first opt.step() {r['first_step'] * 1e3:.1f} ms, "
                f"first training step {r['first_train_step'] * 1e3:.1f} ms (forward and "
                f"backward {r['first_fwd_bwd'] * 1e3:.1f} ms){extra}",
                flush=True,
            )

    def med(which: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[which])

    a, s = med("adamw", "first_step"), med("sgg", "first_step")
    aw, sw = med("adamw", "first_train_step"), med("sgg", "first_train_step")
    target = 2 * a + 1.0
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(
        f"median over {args.repeats} fresh processes, empty extension cache:\n"
        f"  first opt.step():      AdamW {a * 1e3:.1f} ms, SGG {s * 1e3:.1f} ms, "
        f"ratio {s / a:.2f}; target SGG <= 2 x AdamW + 1 s = {target:.3f} s: "
        f"{'met' if s <= target else 'NOT met'}\n"
        f"  first training step:   AdamW {aw * 1e3:.1f} ms, SGG {sw * 1e3:.1f} ms, "
        f"ratio {sw / aw:.2f} (of which forward and backward, before any optimizer work: AdamW "
        f"{med('adamw', 'first_fwd_bwd') * 1e3:.1f} ms, SGG {med('sgg', 'first_fwd_bwd') * 1e3:.1f}"
        f" ms)\n"
        f"  native kernels in use after {med('sgg', 'native_ready_s'):.1f} s "
        f"(SGG step {med('sgg', 'step_while_building') * 1e3:.1f} ms while building, "
        f"{med('sgg', 'step_after_switch') * 1e3:.1f} ms after)"
    )


if __name__ == "__main__":
    main()

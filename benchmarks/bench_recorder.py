"""Recorder overhead on the demo model: `python -m benchmarks.bench_recorder`.

Two identical models and optimizers train on the same batches in one process, interleaved step by
step (the order alternates every pair); one has a `Recorder` at default settings attached, the
other none. Prints the median ratio of step times (recorded / plain, target <= 1.05), the bytes on
disk per step and per layer, and the memory the recorder holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

from recorder import Recorder, RecorderOptions
from recorder.train import (
    TrainConfig,
    build_model,
    build_optimizer,
    lm_loss,
    load_corpus,
    sample_batch,
)
from recorder.writer import list_chunks


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="interleaved step pairs to time")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--optimizer", choices=("adamw", "sgg"), default="adamw")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(optimizer=args.optimizer, recluster_interval=100)
    data = load_corpus()
    models = [build_model(cfg), build_model(cfg)]  # same seed: identical
    opts = [build_optimizer(cfg, m) for m in models]
    gen = torch.Generator().manual_seed(0)
    tokens = cfg.batch_size * cfg.seq_len
    opt_names = RecorderOptions()

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        rec = Recorder(run, optimizer=opts[1], model=models[1], config=cfg, options=opt_names)
        times: list[list[float]] = [[], []]

        def one(k: int, step: int, batch: torch.Tensor) -> float:
            t = time.perf_counter()
            loss = lm_loss(models[k], batch)
            loss.backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            if k == 1:
                rec.log_step(step, loss=loss.detach(), tokens=tokens)
            return time.perf_counter() - t

        total = args.warmup + args.pairs
        for step in range(1, total + 1):
            batch = sample_batch(data, cfg.batch_size, cfg.seq_len, gen)
            order = (0, 1) if step % 2 else (1, 0)
            for k in order:
                dt = one(k, step, batch)
                if step > args.warmup:
                    times[k].append(dt)
        # Python-side memory of the recorder over a further stretch that includes a flush.
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        for step in range(total + 1, total + 1 + opt_names.flush_every_steps):
            one(1, step, sample_batch(data, cfg.batch_size, cfg.seq_len, gen))
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rec.close()
        n_steps = total + opt_names.flush_every_steps
        n_layers = len(list(models[1].parameters()))
        disk = _du(run)
        layer_bytes = sum(p.stat().st_size for p in list_chunks(run, "layers"))
        layer_rows = (n_steps // opt_names.layer_stride) * n_layers
        results = {
            "median_step_plain_s": statistics.median(times[0]),
            "median_step_recorded_s": statistics.median(times[1]),
            "ratio_of_medians": statistics.median(times[1]) / statistics.median(times[0]),
            "median_pair_ratio": statistics.median(
                b / a for a, b in zip(times[0], times[1], strict=True)
            ),
            "bytes_per_step": disk / n_steps,
            "bytes_per_layer_row": layer_bytes / max(layer_rows, 1),
            "bytes_per_step_per_layer": disk / n_steps / n_layers,
            "tensor_buffer_peak_bytes": rec.peak_buffer_bytes,
            "snapshot_bytes": rec.snapshot_bytes,
            "python_peak_bytes": py_peak - base,
            "chunks": rec.writer.chunks_written,
        }
    print(
        f"demo model: {sum(p.numel() for p in models[0].parameters()):,} parameters in "
        f"{n_layers} tensors; {args.optimizer}; {args.pairs} interleaved pairs; "
        f"options {dataclasses.asdict(opt_names)}"
    )
    for k, v in results.items():
        print(f"  {k:28s} {v:,.4f}" if isinstance(v, float) else f"  {k:28s} {v:,}")
    verdict = "OK" if results["median_pair_ratio"] <= 1.05 else "ABOVE TARGET"
    print(f"  target median ratio <= 1.05: {verdict}")
    return results


if __name__ == "__main__":
    main()

"""Recorder overhead and memory on `sgg_train`'s model: `python -m benchmarks.bench_recorder`.

Overhead (issue 21's setting): identical models and optimizers (d_model 256, 4 layers, batch
16 x 128; SGG with T = 50 by default) train on the same batches in one process, interleaved
step by step (the order rotates every step): one unrecorded, one recorded at today's defaults
(`--with-snapshot` adds one recorded as before issue 9, `update_norm="snapshot"`). Each timed
step is a whole training step (forward, backward, optimizer step, log_step); the recorder's
rows are converted and written by its background writer thread, which competes for the same
cores (`--threads`, torch's intra-op threads, 2 by default). Prints mean and median step times,
the ratios recorded / unrecorded by means and by medians beside the issue's figure before the
background writer (1.046-1.048x by means, 1.025-1.041x by medians; target: mean <= 1.02), the
recorder's time on the training thread and the writer thread's busy time.

Checksums (`--checksums`, no training): the time to write one flush's chunks (the first 100
steps of every table of a sample run) with and without Parquet page checksums, encoded in
memory and written to disk atomically (fsync), medians of --checksum-repeats, and the ratio.

Memory (`--memory`): peak resident memory of fresh processes training a >= 100M-parameter model
of the same family (d_model 1024, 8 layers) unrecorded, recorded at defaults and recorded with
the snapshot: the difference is what the recorder costs.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from recorder import Recorder
from recorder.writer import list_chunks
from runformat import atomic, integrity, schema
from sgg_train.config import TrainConfig
from sgg_train.data import load_corpus
from sgg_train.data import sample_batch as sample
from sgg_train.model import build_model, build_optimizer, lm_loss

SAMPLE_RUN = Path(__file__).resolve().parents[1] / "sample_runs" / "sgg-lr4e-3-T25-s0"
VARIANTS = ("unrecorded", "before: snapshot", "defaults")
RECORDER_SETTINGS = {"before: snapshot": {"update_norm": "snapshot"}, "defaults": {}}
# Issue 21's measurement before the background writer (SGG T = 50, 100 interleaved steps).
BEFORE = {"ratio_of_means": "1.046-1.048", "ratio_of_medians": "1.025-1.041"}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Timers:
    """Seconds the recorder spends on the training thread (its hooks and log_step) and on its
    writer thread, per variant."""

    def __init__(self, n: int) -> None:
        self.inside = [0.0] * n
        self.writer = [0.0] * n

    def reset(self) -> None:
        self.inside = [0.0] * len(self.inside)
        self.writer = [0.0] * len(self.writer)

    def wrap(self, fn, k: int, writer: bool = False):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                (self.writer if writer else self.inside)[k] += time.perf_counter() - t

        return timed


def _time_recorder(rec: Recorder, timers: Timers, k: int) -> None:
    """Re-register the recorder's hooks wrapped in timers; time its writer thread's jobs."""
    hooks = rec._hooks
    rec._view.detach()
    for name in ("pre_step", "post_step", "on_recluster", "on_shadow_recluster"):
        setattr(hooks, name, timers.wrap(getattr(hooks, name), k))
    hooks.attach()
    rec._flusher._write = timers.wrap(rec._flusher._write, k, writer=True)


def overhead(args: argparse.Namespace) -> dict[str, float]:
    cfg = TrainConfig(
        optimizer=args.optimizer,
        d_model=256,
        layers=4,
        batch_size=16,
        seq_len=128,
        recluster_interval=args.recluster_interval,
    )
    variants = VARIANTS if args.with_snapshot else ("unrecorded", "defaults")
    data = load_corpus()
    models = [build_model(cfg) for _ in variants]  # same seed: identical
    opts = [build_optimizer(cfg, m) for m in models]
    gen = torch.Generator().manual_seed(0)
    tokens = cfg.batch_size * cfg.seq_len
    timers = Timers(len(variants))
    with tempfile.TemporaryDirectory() as tmp:
        recorders: list[Recorder | None] = [None] + [
            Recorder(
                Path(tmp) / name.split(":")[0],
                optimizer=opts[k],
                model=models[k],
                **RECORDER_SETTINGS[name],
            )
            for k, name in enumerate(variants[1:], start=1)
        ]
        for k, rec in enumerate(recorders):
            if rec is not None:
                _time_recorder(rec, timers, k)
        times: list[list[float]] = [[] for _ in variants]

        def one(k: int, batch: torch.Tensor) -> float:
            t = time.perf_counter()
            loss = lm_loss(models[k], batch)
            loss.backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            rec = recorders[k]
            if rec is not None:
                t_log = time.perf_counter()
                rec.log_step(loss=loss.detach(), tokens=tokens)
                timers.inside[k] += time.perf_counter() - t_log
            return time.perf_counter() - t

        for step in range(1, args.warmup + args.steps + 1):
            if step == args.warmup + 1:
                timers.reset()
            batch = sample(data, cfg.batch_size, cfg.seq_len, gen)
            for k in [(step + j) % len(variants) for j in range(len(variants))]:
                dt = one(k, batch)
                if step > args.warmup:
                    times[k].append(dt)
        for rec in recorders[1:]:
            assert rec is not None
            rec.close()
        rec = recorders[-1]
        assert rec is not None
        results = _facts(args, models[0], rec, recorders)
    results |= _ratios(variants, times, timers)
    _report(args, variants, results)
    return results


def _facts(args, model, rec: Recorder, recorders) -> dict[str, float]:
    steps = args.warmup + args.steps
    out = {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "layers": float(len(list(model.parameters()))),
        "disk_bytes_per_step (defaults)": _du(rec.run_dir) / steps,
        "chunks (defaults)": float(len(list_chunks(rec.run_dir, "steps"))),
        "tensor_buffer_peak_bytes (defaults)": float(rec.peak_buffer_bytes),
        "snapshot_bytes (defaults)": float(rec.snapshot_bytes),
        "training waited for the writer, s (defaults)": rec.write_wait_seconds,
    }
    if len(recorders) > 2:
        out["snapshot_bytes (before)"] = float(recorders[1].snapshot_bytes)
    return out


def _ratios(variants, times: list[list[float]], timers: Timers) -> dict[str, float]:
    out: dict[str, float] = {}
    base_mean = statistics.fmean(times[0])
    base_median = statistics.median(times[0])
    for k, name in enumerate(variants):
        out[f"mean_step_s [{name}]"] = statistics.fmean(times[k])
        out[f"median_step_s [{name}]"] = statistics.median(times[k])
        if not k:
            continue
        n = len(times[k])
        out[f"ratio_of_means [{name}]"] = statistics.fmean(times[k]) / base_mean
        out[f"ratio_of_medians [{name}]"] = statistics.median(times[k]) / base_median
        # each step against the unrecorded step on the same batch, moments apart: robust to a
        # machine whose load changes during the run
        paired = sorted(t / t0 for t, t0 in zip(times[k], times[0], strict=True))
        trim = len(paired) // 10
        out[f"paired ratio, median [{name}]"] = statistics.median(paired)
        out[f"paired ratio, 10%-trimmed mean [{name}]"] = statistics.fmean(
            paired[trim : len(paired) - trim]
        )
        out[f"recorder_s_per_step, training thread [{name}]"] = timers.inside[k] / n
        out[f"1 + recorder time / unrecorded step [{name}]"] = 1 + timers.inside[k] / n / base_mean
        out[f"writer thread busy s_per_step [{name}]"] = timers.writer[k] / n
    return out


def _report(args, variants, results: dict[str, float]) -> None:
    print(
        f"sgg_train model d_model 256 x 4 layers, batch 16 x 128: {results['parameters']:,.0f} "
        f"parameters; {args.optimizer}"
        f"{f' (T = {args.recluster_interval})' if args.optimizer == 'sgg' else ''}; "
        f"{args.steps} interleaved steps per variant after {args.warmup} warm-up; "
        f"{torch.get_num_threads()} threads"
    )
    for key, value in results.items():
        print(f"  {key:52s} {value:,.4f}")
    means, medians = results["ratio_of_means [defaults]"], results["ratio_of_medians [defaults]"]
    print(
        f"  defaults: {means:.3f}x by means, {medians:.3f}x by medians; issue 21 before the "
        f"background writer: {BEFORE['ratio_of_means']}x by means, {BEFORE['ratio_of_medians']}x "
        f"by medians; target <= 1.02 by means: {'OK' if means <= 1.02 else 'ABOVE TARGET'}"
    )
    if "ratio_of_means [before: snapshot]" in results:
        print(f"  before: snapshot {results['ratio_of_means [before: snapshot]']:.3f}x by means")


def _memory_child(variant: str, steps: int, optimizer: str) -> None:
    """One fresh process: train the big model `steps` steps; print its peak RSS (bytes)."""
    torch.set_num_threads(2)
    cfg = TrainConfig(
        optimizer=optimizer, d_model=1024, layers=8, heads=8, batch_size=2, seq_len=64
    )
    model = build_model(cfg)
    opt = build_optimizer(cfg, model)
    data = load_corpus()
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        rec = None
        if variant != "unrecorded":
            rec = Recorder(Path(tmp) / "r", optimizer=opt, model=model,
                           **RECORDER_SETTINGS[variant])  # fmt: skip
        for _ in range(steps):
            loss = lm_loss(model, sample(data, cfg.batch_size, cfg.seq_len, gen))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if rec is not None:
                rec.log_step(loss=loss.detach())
        if rec is not None:
            rec.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"variant": variant, "peak_rss": peak, "parameters": n}))


def memory(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    n = 0
    for variant in VARIANTS:
        cmd = [sys.executable, "-m", "benchmarks.bench_recorder", "--memory-child", variant,
               "--memory-steps", str(args.memory_steps), "--optimizer", args.optimizer]  # fmt: skip
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        got = json.loads(line.strip().splitlines()[-1])
        out[variant] = got["peak_rss"]
        n = got["parameters"]
    print(
        f"peak memory, {n / 1e6:.1f}M-parameter model (d_model 1024 x 8 layers), "
        f"{args.optimizer}, {args.memory_steps} steps (layer statistics at step 10):"
    )
    for variant in VARIANTS:
        extra = out[variant] - out["unrecorded"]
        print(
            f"  {variant:18s} peak RSS {out[variant] / 2**20:9.1f} MiB   "
            f"recorder: {extra / 2**20:+8.1f} MiB ({extra / (4 * n):+.2f} x fp32 parameters)"
        )
    return out


def _flush_tables(run: Path, upto: int) -> dict[str, pa.Table]:
    """Every table of `run`, rows with step <= `upto`: what one flush writes."""
    out = {}
    for table in schema.TABLES:
        files = list_chunks(run, table)
        if files:
            t = pa.concat_tables([integrity.read_chunk(f, table, whole_schema=True) for f in files])
            out[table] = t.filter(pc.less_equal(t.column("step"), upto))
    return out


def checksum_cost(args: argparse.Namespace) -> dict[str, float]:
    """Chunk write time with and without page checksums, interleaved, medians, ratio."""
    tables = _flush_tables(args.checksum_run, 100)
    plain = {"compression": schema.PARQUET_COMPRESSION}
    variants = {"without checksums": plain, "with checksums": integrity.WRITE_OPTIONS}
    encode: dict[str, list[float]] = {v: [] for v in variants}
    to_disk: dict[str, list[float]] = {v: [] for v in variants}
    size: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.checksum_repeats):
            for name, opts in variants.items():  # interleaved: the machine's load hits both
                t = time.perf_counter()
                for tbl in tables.values():
                    buf = io.BytesIO()
                    pq.write_table(tbl, buf, **opts)
                encode[name].append(time.perf_counter() - t)
                t = time.perf_counter()
                for k, tbl in tables.items():
                    atomic.atomic_write(
                        Path(tmp) / f"{k}.parquet",
                        lambda f, tbl=tbl, opts=opts: pq.write_table(tbl, f, **opts),
                    )
                to_disk[name].append(time.perf_counter() - t)
                size[name] = sum((Path(tmp) / f"{k}.parquet").stat().st_size for k in tables)
    rows = sum(t.num_rows for t in tables.values())
    print(
        f"one flush of {args.checksum_run.name} (steps 1-100): {len(tables)} chunks, {rows:,} "
        f"rows; medians of {args.checksum_repeats} interleaved repeats"
    )
    out = {}
    for what, times in (("encode (in memory)", encode), ("atomic write (fsync)", to_disk)):
        med = {v: statistics.median(ts) for v, ts in times.items()}
        ratio = med["with checksums"] / med["without checksums"]
        out[f"checksum ratio [{what}]"] = ratio
        print(
            f"  {what:22s} without {med['without checksums'] * 1e3:7.2f} ms   with "
            f"{med['with checksums'] * 1e3:7.2f} ms   ratio {ratio:.3f}"
        )
    grow = size["with checksums"] / size["without checksums"]
    print(
        f"  bytes on disk          {size['without checksums']:,} -> {size['with checksums']:,}"
        f" ({grow:.4f}x)"
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--optimizer", choices=("adamw", "sgg"), default="sgg")
    ap.add_argument("--recluster-interval", type=int, default=50, help="SGG's T")
    ap.add_argument("--with-snapshot", action="store_true", help="also the issue-9 recorder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory (100M model)")
    ap.add_argument("--memory-steps", type=int, default=11)
    ap.add_argument("--memory-child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--checksums", action="store_true", help="only the page-checksum write cost")
    ap.add_argument("--checksum-repeats", type=int, default=30)
    ap.add_argument("--checksum-run", type=Path, default=SAMPLE_RUN)
    args = ap.parse_args(argv)
    if args.checksums:
        return checksum_cost(args)
    if args.memory_child:
        _memory_child(args.memory_child, args.memory_steps, args.optimizer)
        return {}
    torch.set_num_threads(args.threads)
    results = overhead(args)
    if args.memory:
        results |= {f"peak_rss [{k}]": v for k, v in memory(args).items()}
    return results


if __name__ == "__main__":
    main()

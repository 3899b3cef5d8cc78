"""The loader's cost for a long TensorBoard run: `python -m benchmarks.bench_foreign`.

Writes (into a temporary folder) a --steps-step TensorBoard run with torch's `SummaryWriter`,
as the HF Trainer logs it (train/loss, train/learning_rate, train/grad_norm every step,
eval/loss every 1,000 steps), and, as the baseline, a recorded run holding the same numbers in
our run format (the recorder's chunks of 1,000 steps). Then measures, in this process, with the
caches cleared before each cold repeat:

- cold: `loader.discover_runs` + `read_table` of steps and evals (what the first page costs);
- warm: the same again, files unchanged (what a rerun of the page costs: the signature cache);
- live: 1,000 more steps appended by the writer, then the same read (what a live refresh costs:
  TensorBoard's reader is kept open and reads only the new events);
- restart: a new dashboard process on the finished run (the mapped tables from the disk cache).

Prints medians over --repeat and the ratios of the TensorBoard run's times to the recorded
run's, measured the same way in the same process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

EVAL_EVERY = 1000


def write_tensorboard(run_dir: Path, steps: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir), max_queue=10_000, flush_secs=3600)
    w.add_text("args", '{"learning_rate": 0.001, "seed": 0, "optim": "adamw_torch"}')
    for s in range(1, steps + 1):
        w.add_scalar("train/loss", 4.0 / (1 + 1e-3 * s), s)
        w.add_scalar("train/learning_rate", 1e-3, s)
        w.add_scalar("train/grad_norm", 0.5, s)
        if s % EVAL_EVERY == 0:
            w.add_scalar("eval/loss", 4.2 / (1 + 1e-3 * s), s)
    w.close()


def write_recorded(run_dir: Path, steps: int) -> None:
    """The same numbers as a recorded run: run.json and 1,000-step chunks, through runformat."""
    from recorder.run_meta import new_run_json, write_run_json
    from runformat import schema

    meta = new_run_json(
        name="recorded",
        config={"lr": 1e-3, "seed": 0},
        optimizer={"name": "adamw", "hyperparameters": {"lr": 1e-3}},
        model=None,
        seed=0,
        recording={},
    )
    meta.update(status="finished", last_flushed_step=steps)
    for table in ("steps", "evals"):
        (run_dir / "tables" / table).mkdir(parents=True)
    for k, start in enumerate(range(1, steps + 1, 1000)):
        s = np.arange(start, min(start + 1000, steps + 1), dtype=np.int64)
        cols = {
            "step": s,
            "wall_time": s * 0.01,
            "loss": 4.0 / (1 + 1e-3 * s),
            "lr": np.full(len(s), 1e-3),
            "grad_norm": np.full(len(s), 0.5),
            "reclustered": np.zeros(len(s), dtype=bool),
        }
        name = f"part-000-{k:06d}.parquet"
        pq.write_table(schema.build_table("steps", cols), run_dir / "tables" / "steps" / name)
        e = s[s % EVAL_EVERY == 0]
        ev = {
            "step": e,
            "wall_time": e * 0.01,
            "split": ["val"] * len(e),
            "loss": 4.2 / (1 + 1e-3 * e),
        }
        pq.write_table(schema.build_table("evals", ev), run_dir / "tables" / "evals" / name)
    write_run_json(run_dir, meta)


def read_all(root: Path) -> int:
    """Discover the one run under `root` and read its steps and evals."""
    from dashboard import loader

    disc = loader.discover_runs(root)
    (run,) = disc.runs
    steps = loader.read_table(run, "steps", disc.root).df
    evals = loader.read_table(run, "evals", disc.root).df
    return len(steps) + len(evals)


def clear() -> None:
    from dashboard import foreign, loader

    loader.clear_caches()
    foreign.clear_cache()


def timed(fn) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.steps < EVAL_EVERY or args.repeat < 1:
        raise ValueError("--steps must be >= 1000 and --repeat >= 1")
    os.environ["SGG_FOREIGN_CACHE"] = "off"  # cold means cold: no entry from an earlier run
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_tensorboard(root / "tb" / "adamw", args.steps)  # each run alone under its root
        print(f"wrote the TensorBoard run ({args.steps:,} steps) in {time.perf_counter() - t:.1f}s")
        write_recorded(root / "recorded" / "adamw", args.steps)
        size = sum(f.stat().st_size for f in (root / "tb" / "adamw").iterdir())
        print(f"event file: {size / 1e6:.1f} MB")
        results: dict[str, dict[str, list[float]]] = {}
        for kind in ("recorded", "tb"):
            cold, warm = [], []
            for _ in range(args.repeat):
                clear()
                dt, n = timed(lambda kind=kind: read_all(root / kind))
                cold.append(dt)
                warm.append(timed(lambda kind=kind: read_all(root / kind))[0])
            results[kind] = {"cold": cold, "warm": warm}
            print(f"{kind:>10}: {n:,} rows")
        # live refresh of the TensorBoard run: the writer appends 1,000 steps
        from torch.utils.tensorboard import SummaryWriter

        live = []
        clear()
        read_all(root / "tb")
        w = SummaryWriter(str(root / "tb" / "adamw"))
        for k in range(args.repeat):
            base = args.steps + k * 1000
            for s in range(base + 1, base + 1001):
                w.add_scalar("train/loss", 1.0, s)
            w.flush()
            live.append(timed(lambda: read_all(root / "tb"))[0])
        w.close()
        # a restarted dashboard on a finished run: the mapped tables come from the disk cache
        os.environ["SGG_FOREIGN_CACHE"] = str(root / "cache")
        old = time.time() - 3600  # the run finished an hour ago (a live run is not stored)
        for f in (root / "tb" / "adamw").iterdir():
            os.utime(f, (old, old))
        clear()
        read_all(root / "tb")  # the first dashboard process reads and stores it
        restart = []
        for _ in range(args.repeat):
            clear()
            restart.append(timed(lambda: read_all(root / "tb"))[0])
    med = {r: {k: statistics.median(v) for k, v in d.items()} for r, d in results.items()}
    print(f"\nmedians over {args.repeat} repeats ({args.steps:,} steps)")
    print(f"{'':>24}{'recorded':>12}{'TensorBoard':>14}{'ratio':>9}")
    for k in ("cold", "warm"):
        a, b = med["recorded"][k], med["tb"][k]
        print(f"{k + ' (discover + read)':>24}{a * 1e3:>10.1f}ms{b * 1e3:>12.1f}ms{b / a:>8.1f}x")
    print(f"{'live (+1,000 steps)':>24}{'':>12}{statistics.median(live) * 1e3:>12.1f}ms")
    print(f"{'restart (disk cache)':>24}{'':>12}{statistics.median(restart) * 1e3:>12.1f}ms")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

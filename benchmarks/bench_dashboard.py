"""Dashboard speed and memory on a long run: `python -m benchmarks.bench_dashboard`.

Generates (into a temporary folder, not the repo) an SGG run and an AdamW baseline of
--steps steps (default 1,000,000) and --layers layers (default 24), written like the recorder
does in chunks (1,000 per table), then measures, each in a fresh process so that no cache
survives (the OS page cache does: the files were just written), for two cases: the SGG run
alone (the target case) and the SGG run compared with the AdamW baseline:

- cold: the first AppTest run of dashboard/app.py (discover, read every chunk, summary view);
- warm: the next rerun of the same page (what a click costs);
- the pure steps behind the cold run, one by one;
- the process's peak resident memory.

Prints medians over --repeat processes. Targets: cold <= 5 s, warm <= 1 s.

`--folder sample_runs` measures the same on an existing folder of real runs instead (the
default page: the Summary of the default comparison, every claim with its interval and its
smallest detectable difference); target there: cold <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(root: Path, steps: int, layers: int) -> None:
    from tests.fixtures.synthetic_run import SyntheticRun, write_run

    common = dict(
        steps=steps,
        n_layers=layers,
        layer_stride=max(1, steps // 10_000),  # 10,000 recorded steps per layer
        recluster_interval=max(10, steps // 100),  # ~1% of the run, as the paper suggests
        histogram_every=max(10, steps // 100),
        flush_every_steps=max(100, steps // 1000),  # 1,000 chunks per table
        eval_every=max(10, steps // 500),
    )
    write_run(root, SyntheticRun(name="adamw", optimizer="adamw", shadow=True, seed=1, **common))
    write_run(root, SyntheticRun(name="sgg", optimizer="sgg", seed=2, **common))


def child(root: Path) -> dict:
    """One measurement in this (fresh) process."""
    sys.path.insert(0, str(REPO))
    os.environ["SGG_DASHBOARD_RUNS"] = str(root)
    t0 = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    from dashboard import loader, metrics, prepare
    from dashboard.app import VIEW_COLUMNS
    from dashboard.foreign import reader as foreign_reader

    t_import = time.perf_counter() - t0

    # the real page first, in this fresh process: nothing is cached but the OS's file pages
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    t = time.perf_counter()
    at.run()
    t_cold = time.perf_counter() - t
    assert not at.exception, at.exception
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)

    # then the pure path, step by step, with the caches cleared again
    loader.clear_caches()
    foreign_reader.clear_cache()
    t = time.perf_counter()
    disc = loader.discover_runs(root)
    t_discover = time.perf_counter() - t
    t = time.perf_counter()
    data = {}
    for r in disc.runs:
        data[r.rel] = (
            loader.read_table(r, "steps", disc.root, VIEW_COLUMNS["steps"]).df,
            loader.read_table(r, "evals", disc.root).df,
        )
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    sums = {k: metrics.summarize(k, "?", "finished", *v) for k, v in data.items()}
    metrics.add_speedups(sums, data, min(sums))
    t_summary = time.perf_counter() - t
    t = time.perf_counter()
    prepare.loss_lines({k: v[0] for k, v in data.items()}, "step", 0.9)
    t_lines = time.perf_counter() - t
    rows = sum(len(v[0]) for v in data.values())

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "import_s": t_import,
        "discover_s": t_discover,
        "read_steps_evals_s": t_read,
        "summaries_s": t_summary,
        "loss_lines_s": t_lines,
        "app_cold_s": t_cold,
        "app_warm_s": statistics.median(warm),
        "peak_rss_mb": peak_mb,
        "step_rows": rows,
        "runs": len(disc.runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", type=Path, default=None, help="reuse runs generated before")
    ap.add_argument("--folder", type=Path, default=None, help="measure this folder of runs")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.child)))
        return
    if a.folder is not None:
        print(f"load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        measure(f"folder {a.folder}", a.folder.resolve(), a.repeat, cold_target=2.0)
        return
    tmp = None
    root = a.runs
    if root is None:
        tmp = tempfile.mkdtemp(prefix="bench-dashboard-")
        root = Path(tmp)
        t = time.perf_counter()
        generate(root, a.steps, a.layers)
        print(
            f"generated 2 runs x {a.steps:,} steps x {a.layers} layers in "
            f"{time.perf_counter() - t:.1f} s into {root}"
        )
    n_files = sum(1 for _ in root.rglob("*.parquet"))
    size_mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
    print(f"{n_files} Parquet chunks, {size_mb:.0f} MiB")
    print(f"load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        for label, case in (
            ("one run (SGG, 1 run x all chunks)", root / "sgg"),
            ("two runs (SGG vs AdamW baseline)", root),
        ):
            measure(label, case, a.repeat)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def measure(label: str, root: Path, repeat: int, cold_target: float = 5.0) -> None:
    results = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_dashboard", "--child", str(root)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"\n== {label}: medians over {len(results)} fresh processes")
    for k, v in med.items():
        print(f"  {k:22s} {v:10.3f}" if isinstance(v, float) else f"  {k:22s} {v}")
    cold_ok = med["app_cold_s"] <= cold_target
    warm_ok = med["app_warm_s"] <= 1.0
    print(
        f"  cold load + summary view: {med['app_cold_s']:.2f} s (target <= {cold_target:g} s: "
        f"{'ok' if cold_ok else 'MISSED'})"
    )
    print(
        f"  warm rerun:               {med['app_warm_s']:.2f} s (target <= 1 s: "
        f"{'ok' if warm_ok else 'MISSED'})"
    )
    print(f"  peak memory (RSS):        {med['peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()

"""Run every benchmark in turn, each in its own process (``python -m benchmarks``).

Each benchmark prints medians and ratios against a baseline measured in the same process; this
runner only sequences them so one command reproduces every figure in docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "benchmarks.bench_sgg",
    "benchmarks.bench_sgg_shapes",
    "benchmarks.bench_end_to_end",
    "benchmarks.bench_first_step",
    "benchmarks.bench_recorder",
    "benchmarks.bench_dashboard",
    "benchmarks.bench_foreign",
)


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"\n=== {module} ===", flush=True)
        if subprocess.call([sys.executable, "-m", module]) != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

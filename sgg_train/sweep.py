"""`sgg-train sweep`: train optimizers x learning rates x seeds, resumably, N runs at a time.

Each run is one `python -m sgg_train` subprocess writing `<out>/<name>`, where the name
encodes the settings (`sgg-lr4e-3-T50-s0`) and run.json's `config` records all of them. Running
the same sweep again skips finished runs, resumes interrupted ones from their checkpoint and
restarts the others, so a killed sweep is continued by re-running its command.

    sgg-train sweep --optimizers sgg adamw --lr 1e-3 4e-3 1.6e-2 --seeds 0 1 2 \\
        --out runs/sweep --jobs 2 --threads 1 --steps 600
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from runformat import schema, storage
from sgg_train.config import SWEPT, TrainConfig, add_training_options, config_argv

# Config fields that change how a run is executed or stored, never its numbers: a finished run
# that differs from the sweep only in these still counts as done.
NOT_SETTINGS = frozenset(
    {"out", "threads", "progress", "flush_every", "flush_seconds", "checkpoint_every"}
)
# SGG options written into an SGG run's name when they differ from TrainConfig's defaults.
NAMED_SGG_OPTIONS = (("n_clusters", "K"), ("recluster_interval", "T"), ("scale_decay", "decay"))


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the sweep does with one run: `action` is skip, new, resume, overwrite or refuse."""

    cfg: TrainConfig
    action: str
    reason: str


def format_number(x: float) -> str:
    """Short and filename-safe: 0.004 -> '4e-3', 0.016 -> '1.6e-2', 0.9 -> '0.9', 50 -> '50'."""
    if x != 0 and (abs(x) < 0.1 or abs(x) >= 1e4):
        mantissa, exponent = f"{x:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{x:g}"


def run_name(cfg: TrainConfig) -> str:
    """`<optimizer>-lr<lr>[-K<k>][-T<t>][-decay<beta3>]-s<seed>`: SGG options only when they
    differ from the defaults and the run is an SGG run."""
    parts = [cfg.optimizer, f"lr{format_number(cfg.lr)}"]
    if cfg.optimizer == "sgg":
        d = TrainConfig()
        for field, label in NAMED_SGG_OPTIONS:
            value = getattr(cfg, field)
            if value != getattr(d, field):
                parts.append(f"{label}{format_number(value)}")
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)


def sweep_configs(
    base: TrainConfig,
    optimizers: Sequence[str],
    lrs: Sequence[float],
    seeds: Sequence[int],
    out: Path,
    shadow: bool = False,
) -> list[TrainConfig]:
    """One config per (seed, lr, optimizer), seed-major, so the optimizers of one seed and lr
    run next to each other. `shadow` (an observe-only clustering) applies to AdamW runs only."""
    for name, values in (("optimizers", optimizers), ("lr", lrs), ("seeds", seeds)):
        if not values:
            raise ValueError(f"{name} must name at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has duplicates: {list(values)!r}")
    cfgs = []
    for seed, lr, opt in itertools.product(seeds, lrs, optimizers):
        cfg = dataclasses.replace(
            base, optimizer=opt, lr=lr, seed=seed, shadow=shadow and opt == "adamw"
        )
        cfgs.append(dataclasses.replace(cfg, out=str(out / run_name(cfg))))
    return cfgs


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a run.json `config` that determine the run's numbers (missing -> default)."""
    full = {**dataclasses.asdict(TrainConfig()), **config}
    return {k: v for k, v in full.items() if k not in NOT_SETTINGS}


def _alive_here(meta: dict[str, Any]) -> bool:
    if meta.get("hostname") != socket.gethostname() or not isinstance(meta.get("pid"), int):
        return False
    try:
        os.kill(meta["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def plan_run(cfg: TrainConfig) -> Plan:
    """Decide from the run directory alone whether this run is done, resumable or to redo."""
    run_dir = cfg.run_dir
    run_json = run_dir / schema.RUN_JSON
    if not run_json.is_file():
        return Plan(cfg, "new", "not started")
    try:
        meta = json.loads(run_json.read_text())
    except (OSError, ValueError) as exc:
        return Plan(cfg, "refuse", f"unreadable run.json ({exc}); delete {run_dir} to redo it")
    config = meta.get("config")
    if not isinstance(config, dict) or settings(config) != settings(dataclasses.asdict(cfg)):
        return Plan(cfg, "refuse", f"{run_dir} holds a run with other settings; not touched")
    status = meta.get("status")
    if status == schema.STATUS_FINISHED:
        return Plan(cfg, "skip", "finished")
    if status == schema.STATUS_RUNNING and _alive_here(meta):
        return Plan(cfg, "refuse", f"still running (pid {meta['pid']}); not touched")
    if (run_dir / schema.CHECKPOINT).is_file():
        return Plan(cfg, "resume", f"{status}: resume from its checkpoint")
    return Plan(cfg, "overwrite", f"{status}: restart")


def _command(plan: Plan) -> list[str]:
    mode = {"new": [], "resume": ["--resume"], "overwrite": ["--overwrite"]}[plan.action]
    return [sys.executable, "-m", "sgg_train", *config_argv(plan.cfg), *mode]


class _Runner:
    """Runs plans as subprocesses; terminates the live ones if the sweep itself is stopped."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def run(self, plan: Plan) -> tuple[int, str]:
        with tempfile.TemporaryFile("w+") as log:
            with self._lock:
                if self.stopping:
                    return -1, "sweep stopped"
                proc = subprocess.Popen(
                    _command(plan), stdout=log, stderr=subprocess.STDOUT, text=True
                )
                self._procs.add(proc)
            try:
                rc = proc.wait()
            finally:
                with self._lock:
                    self._procs.discard(proc)
            log.seek(0)
            lines = log.read().strip().splitlines()
        return rc, "\n".join(lines[-8:])

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            for proc in self._procs:
                proc.terminate()


def _report(fut: Future, plan: Plan, result: dict[str, list[str]], bar: Any) -> None:
    name = plan.cfg.run_dir.name
    rc, tail = fut.result()
    ok = rc == 0 and plan_run(plan.cfg).action == "skip"
    result["finished" if ok else "failed"].append(name)
    msg = f"{name}: {tail.splitlines()[-1] if tail else 'done'}"
    if not ok:
        msg = f"{name}: FAILED (exit {rc})\n{tail}"
    if bar is not None:
        bar.write(msg)
        bar.update(1)
    else:
        print(msg, flush=True)


def run_sweep(
    cfgs: Sequence[TrainConfig], jobs: int = 1, progress: bool = True, dry_run: bool = False
) -> dict[str, list[str]]:
    """Plan and run `cfgs`, `jobs` at a time; returns run names by outcome (skipped, finished,
    failed, refused)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs!r}")
    plans = [plan_run(c) for c in cfgs]
    result: dict[str, list[str]] = {"skipped": [], "finished": [], "failed": [], "refused": []}
    todo = []
    for p in plans:
        name = p.cfg.run_dir.name
        if p.action == "skip":
            result["skipped"].append(name)
        elif p.action == "refuse":
            result["refused"].append(name)
            print(f"sweep: {name}: {p.reason}", file=sys.stderr)
        else:
            todo.append(p)
    if dry_run:
        for p in plans:
            print(f"{p.action:9s} {p.cfg.run_dir}  ({p.reason})")
        return result
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plans), initial=len(plans) - len(todo), unit="run", desc="sweep")
    runner = _Runner()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:  # inside the pool: its shutdown waits for the runs, so stop them first
                futures = {pool.submit(runner.run, p): p for p in todo}
                for fut in as_completed(futures):
                    _report(fut, futures[fut], result, bar)
            except BaseException:
                runner.stop()
                raise
    finally:
        if bar is not None:
            bar.close()
    return result


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sgg-train sweep", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("--optimizers", nargs="+", choices=("sgg", "adamw"), default=["sgg", "adamw"])
    p.add_argument("--lr", nargs="+", type=float, required=True, help="peak learning rates")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="runs/sweep", help="folder that holds one folder per run")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: default)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    add_training_options(p, skip=SWEPT)
    ns = p.parse_args(argv)
    for name in ("jobs",):
        if getattr(ns, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(ns, name)}")
    if ns.threads < 0:
        p.error(f"--threads must be >= 0, got {ns.threads}")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = vars(parse_args(argv))
    sweep = {k: ns.pop(k) for k in ("optimizers", "lr", "seeds", "out", "jobs", "dry_run")}
    progress, shadow = ns.pop("progress"), ns.pop("shadow")
    try:
        base = TrainConfig(**ns, progress=False)
        opts, lrs, seeds = sweep["optimizers"], sweep["lr"], sweep["seeds"]
        cfgs = sweep_configs(base, opts, lrs, seeds, storage.locate(sweep["out"]), shadow)
    except ValueError as exc:
        print(f"sgg-train sweep: error: {exc}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a killed sweep stops its runs too
    try:
        result = run_sweep(cfgs, sweep["jobs"], progress=progress, dry_run=sweep["dry_run"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = ", ".join(f"{len(v)} {k}" for k, v in result.items())
    print(f"sweep {sweep['out']}: {len(cfgs)} runs: {counts}")
    return 1 if result["failed"] or result["refused"] else 0


if __name__ == "__main__":
    sys.exit(main())

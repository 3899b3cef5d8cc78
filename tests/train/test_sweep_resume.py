"""`sgg-train sweep` with tiny real runs: names, parallel runs, and resuming a sweep (finished
runs skipped, failed and killed runs restarted, live or different runs left alone)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.recorder import Recorder
from sgg_train import cli
from sgg_train import config as C
from sgg_train import sweep as S
from sgg_train import train as T

TINY = [
    "--steps", "4", "--warmup-steps", "1", "--d-model", "16", "--layers", "1", "--heads", "2",
    "--seq-len", "16", "--batch-size", "2", "--eval-every", "2", "--eval-batches", "2",
    "--no-checkpoint", "--threads", "1", "--no-progress",
]  # fmt: skip
SWEEP = ["--optimizers", "adamw", "--lr", "1e-3", "4e-3", "--seeds", "0", "1", "--jobs", "2"]
NAMES = ["adamw-lr1e-3-s0", "adamw-lr4e-3-s0", "adamw-lr1e-3-s1", "adamw-lr4e-3-s1"]

# Starts a real recorded run with the sweep's settings, records one step and then dies by
# SIGKILL (run.json stays "running" with a dead pid) or ends "failed".
_BROKEN_RUN = """
import os, signal, sys
from recorder import Recorder
from sgg_train.train import parse_args
cfg, _ = parse_args(sys.argv[2:])
rec = Recorder(cfg.run_dir, config=cfg, seed=cfg.seed, mode="overwrite")
rec.log_step(1, loss=5.0, tokens=32)
rec.flush()
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
rec.close(status="failed", error=RuntimeError("out of memory"))
"""


def _meta(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _configs(out: Path) -> dict[str, C.TrainConfig]:
    ns = vars(S.parse_args([*SWEEP, *TINY, "--out", str(out)]))
    base = C.TrainConfig(
        **{k: v for k, v in ns.items() if k not in ("optimizers", "lr", "seeds", "out", "jobs",
                                                   "dry_run", "progress", "shadow")},
        progress=False,
    )  # fmt: skip
    cfgs = S.sweep_configs(base, ["adamw"], [1e-3, 4e-3], [0, 1], out)
    return {c.run_dir.name: c for c in cfgs}


def _broken(cfg: C.TrainConfig, how: str) -> None:
    argv = C.config_argv(cfg)
    proc = subprocess.run([sys.executable, "-c", _BROKEN_RUN, how, *argv], check=False)
    assert proc.returncode == (-9 if how == "kill" else 0)


def test_names_encode_the_settings():
    cfg = C.TrainConfig(optimizer="sgg", lr=4e-3, seed=2)
    assert S.run_name(cfg) == "sgg-lr4e-3-s2"
    cfg = dataclasses.replace(cfg, lr=1.6e-2, recluster_interval=50, scale_decay=0.9)
    assert S.run_name(cfg) == "sgg-lr1.6e-2-T50-decay0.9-s2"
    adamw = dataclasses.replace(cfg, optimizer="adamw", shadow=True)
    assert S.run_name(adamw) == "adamw-lr1.6e-2-s2"  # SGG options do not name an AdamW run
    assert [S.format_number(x) for x in (1e-3, 3e-4, 0.9, 50, 0.25)] == [
        "1e-3", "3e-4", "0.9", "50", "0.25",
    ]  # fmt: skip


def test_invalid_sweeps_raise_naming_the_argument(tmp_path):
    base = C.TrainConfig()
    with pytest.raises(ValueError, match="seeds"):
        S.sweep_configs(base, ["sgg"], [1e-3], [0, 0], tmp_path)
    with pytest.raises(ValueError, match="lr"):
        S.sweep_configs(base, ["sgg"], [], [0], tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        S.run_sweep([], jobs=0)
    with pytest.raises(SystemExit):
        S.parse_args(["--lr", "1e-3", "--jobs", "0"])


def test_sweep_runs_then_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    # via the training command's entry point, as `sgg-train sweep ...` runs it
    assert cli.main(["sweep", *SWEEP, *TINY, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    first = {n: _meta(out / n) for n in NAMES}
    for name, meta in first.items():
        assert meta["status"] == "finished"
        assert meta["config"]["seed"] == int(name[-1])  # every setting, the seed too
        assert meta["config"]["lr"] == float(name[len("adamw-lr") : name.rindex("-s")])
    assert first["adamw-lr1e-3-s0"]["pid"] != first["adamw-lr1e-3-s1"]["pid"]  # subprocesses

    cfgs = _configs(out)
    _broken(cfgs["adamw-lr1e-3-s0"], "kill")  # killed: "running", dead pid
    _broken(cfgs["adamw-lr4e-3-s0"], "fail")  # failed
    assert _meta(out / "adamw-lr1e-3-s0")["status"] == "running"
    assert _meta(out / "adamw-lr4e-3-s0")["status"] == "failed"
    live = Recorder(out / "adamw-lr4e-3-s1", config=cfgs["adamw-lr4e-3-s1"], mode="overwrite")
    live.log_step(1, loss=5.0, tokens=32)
    live.flush()  # "running", and its pid (this process) is alive: not to be touched
    plans = {p.cfg.run_dir.name: p.action for p in map(S.plan_run, cfgs.values())}
    assert plans == {
        "adamw-lr1e-3-s0": "overwrite",
        "adamw-lr4e-3-s0": "overwrite",
        "adamw-lr1e-3-s1": "skip",
        "adamw-lr4e-3-s1": "refuse",
    }
    capsys.readouterr()
    assert S.main([*SWEEP, *TINY, "--out", str(out), "--dry-run"]) == 1  # 1: one refused
    assert "overwrite " in capsys.readouterr().out
    assert _meta(out / "adamw-lr1e-3-s0")["status"] == "running"  # a dry run changes nothing

    assert S.main([*SWEEP, *TINY, "--out", str(out)]) == 1
    second = {n: _meta(out / n) for n in NAMES}
    assert second["adamw-lr1e-3-s1"] == first["adamw-lr1e-3-s1"]  # skipped, untouched
    for name in ("adamw-lr1e-3-s0", "adamw-lr4e-3-s0"):  # restarted from scratch, finished
        assert second[name]["status"] == "finished"
        assert second[name]["run_id"] != first[name]["run_id"]
        assert second[name]["last_flushed_step"] == 4
    assert second["adamw-lr4e-3-s1"]["status"] == "running"  # the live run: left alone
    live.close()

    assert S.main([*SWEEP, *TINY, "--out", str(out)]) == 0  # all finished: nothing to do
    assert {n: _meta(out / n)["run_id"] for n in NAMES} == {
        n: m["run_id"] for n, m in second.items()
    }


def test_a_run_with_other_settings_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "sweep"
    cfg = _configs(out)["adamw-lr1e-3-s0"]
    T.train(dataclasses.replace(cfg, steps=3))  # same name, other settings
    before = _meta(cfg.run_dir)
    result = S.run_sweep([cfg], progress=False)
    assert result["refused"] == ["adamw-lr1e-3-s0"]
    assert _meta(cfg.run_dir) == before
    # the settings that only say how a run was executed do not count
    same = dataclasses.replace(cfg, steps=3, threads=2, flush_seconds=5.0, out=str(cfg.run_dir))
    assert S.plan_run(same).action == "skip"


def test_terminating_the_sweep_stops_its_runs(tmp_path):
    out = tmp_path / "sweep"
    argv = [*SWEEP[:2], "--lr", "1e-3", "--seeds", "0", *TINY, "--out", str(out)]
    argv[argv.index("--steps") + 1] = "1000000"
    argv += ["--flush-seconds", "0.2"]
    sweep = subprocess.Popen([sys.executable, "-m", "sgg_train", "sweep", *argv])
    run_json = out / "adamw-lr1e-3-s0" / "run.json"
    deadline = time.monotonic() + 120
    while not (run_json.is_file() and _meta(run_json.parent)["last_flushed_step"]):
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    pid = _meta(run_json.parent)["pid"]
    sweep.terminate()
    assert sweep.wait(timeout=60) != 0
    for _ in range(100):  # the run was terminated with the sweep, not left behind
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the run outlived its sweep")
    killed = dataclasses.replace(_configs(out)["adamw-lr1e-3-s0"], steps=1_000_000)
    assert S.plan_run(killed).action == "overwrite"  # and the next sweep restarts it

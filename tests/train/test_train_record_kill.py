"""End to end: `python -m sgg_train` killed with SIGKILL mid-run, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recorder.writer import list_chunks
from runformat import schema

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--d-model", "32", "--layers", "1", "--heads", "2", "--seq-len", "32", "--batch-size", "4",
    "--eval-every", "50", "--eval-batches", "1", "--layer-stride", "5", "--threads", "1",
    "--no-progress",
]  # fmt: skip


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sgg_train", *TINY, "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "SGG_UPDATE_IMPL": "eager", "PYTHONUNBUFFERED": "1"}


def _meta(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _steps(run: Path) -> list[int]:
    out: list[int] = []
    for chunk in list_chunks(run, "steps"):
        out += pq.read_table(chunk).column("step").to_pylist()
    return out


def test_sigkill_leaves_readable_chunks_and_resume_has_no_duplicates(tmp_path):
    run = tmp_path / "run"
    args = ["--optimizer", "adamw", "--flush-every", "5", "--checkpoint-every", "10"]
    proc = subprocess.Popen(
        _cmd(run, *args, "--steps", "5000", "--no-compact"), cwd=ROOT, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if (_meta(run).get("last_flushed_step") or 0) >= 33 and (
                    run / "checkpoint.pt"
                ).exists():
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("the training run never flushed 33 steps")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    meta = _meta(run)  # run.json is always whole
    assert meta["status"] == "running" and meta["pid"] == proc.pid
    with pytest.raises(ProcessLookupError):
        os.kill(meta["pid"], 0)  # the writer is gone: a stale "running" run
    last = meta["last_flushed_step"]
    for table in schema.TABLES:
        for chunk in list_chunks(run, table):
            pq.read_table(chunk)  # every complete chunk reads back
    steps = _steps(run)
    assert len(steps) == len(set(steps))
    assert sorted(s for s in steps if s <= last) == list(range(1, last + 1))

    import torch

    ckpt_step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert ckpt_step <= last
    total = last + 12
    done = subprocess.run(
        _cmd(run, *args, "--steps", str(total), "--resume"), cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = _meta(run)
    assert meta["status"] == "finished" and meta["last_flushed_step"] == total
    assert [s["resume_step"] for s in meta["segments"]] == [None, ckpt_step]
    assert sorted(_steps(run)) == list(range(1, total + 1))  # each step exactly once


def test_existing_run_directory_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    done = subprocess.run(
        _cmd(run, "--steps", "2"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "already holds a run" in done.stderr and "--resume" in done.stderr
    done = subprocess.run(
        _cmd(tmp_path / "nowhere", "--steps", "2", "--resume"), cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "cannot resume" in done.stderr


def test_sgg_run_through_the_command(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        _cmd(run, "--optimizer", "sgg", "--steps", "20", "--recluster-interval", "10",
             "--no-checkpoint"),
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = _meta(run)
    assert meta["status"] == "finished" and meta["optimizer"]["name"] == "sgg"
    assert meta["config"]["recluster_interval"] == 10 and not (run / "checkpoint.pt").exists()
    assert len(list_chunks(run, "steps")) == 1
    clusters = pq.read_table(list_chunks(run, "clusters")[0]).to_pandas()
    assert sorted(clusters["step"].unique()) == [10, 20]

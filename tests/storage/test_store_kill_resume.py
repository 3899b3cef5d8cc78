"""SIGKILL a training job at random moments while it records to (and checkpoints on) a real S3
protocol server, resume it from its last checkpoint each time, and compare the record with an
uninterrupted run's: no duplicate, no gap, the same losses and clustering (the object store
version of tests/e2e/test_kill_resume_random.py)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.writer import read_table
from runformat import run_json, storage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 8
STEPS = 90
WINDOW_S = 2.0


class Server:
    """The worker server: `run` forks one job, killed `kill_after` seconds after it is ready."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.store_kill_worker"],
            cwd=ROOT,
            env={**os.environ, "SGG_UPDATE_IMPL": "eager", "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def _line(self) -> list[str]:
        line = self.proc.stdout.readline()
        assert line, f"worker server died: {self.log.read_text()[-3000:]}"
        return line.split()

    def run(self, uri: str, kill_after: float | None = None) -> int:
        self.proc.stdin.write(f"{uri} {STEPS}\n")
        self.proc.stdin.flush()
        kind, pid = self._line()
        assert kind == "pid"
        while True:
            words = self._line()
            if words[0] == "exit":
                return int(words[2])
            if words == ["ready", pid] and kill_after is not None:
                time.sleep(kill_after)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


KEYS = {
    "steps": ["step", "loss", "tokens", "reclustered"],
    "evals": ["step", "split", "loss", "loss_std", "n_batches"],
    "layers": ["step", "layer"],
    "clusters": ["step", "layer", "cluster", "size", "factor"],
}


def _tables(run: storage.ObjectPath) -> dict:
    out = {}
    for table, columns in KEYS.items():
        df = read_table(run, table).to_pandas()[columns]
        out[table] = df.sort_values(columns[:3]).reset_index(drop=True)
    return out


def _same_record(got: storage.ObjectPath, want: storage.ObjectPath) -> None:
    a, b = _tables(got), _tables(want)
    assert b["steps"]["step"].tolist() == list(range(1, STEPS + 1))
    assert a["steps"]["step"].tolist() == list(range(1, STEPS + 1))  # no duplicate, no gap
    for table in KEYS:
        assert len(a[table]) == len(b[table]), table
        for column in KEYS[table]:
            x, y = a[table][column], b[table][column]
            if x.dtype.kind == "f":
                close = (x - y).abs() <= 1e-6 * y.abs() + 1e-12
                assert (close | (x.isna() & y.isna())).all(), (table, column)
            else:
                assert x.tolist() == y.tolist(), (table, column)


def test_random_sigkills_on_the_store_then_resume_give_the_uninterrupted_record(store, tmp_path):
    server = Server(tmp_path / "worker.log")
    reference, killed = f"{store}/reference", f"{store}/killed"
    try:
        assert server.run(reference) == 0, server.log.read_text()[-3000:]
        rng = random.Random("store-kills")
        codes, resumed = [], 0
        for _ in range(TRIALS):
            code = server.run(killed, kill_after=rng.uniform(0, WINDOW_S))
            codes.append(code)
            with contextlib.suppress(OSError):  # how many times this record was resumed
                segments = run_json.read(storage.locate(killed) / "run")["segments"]
                resumed = max(resumed, len(segments) - 1)
            if code == 0:  # finished before its kill moment: already the whole record
                _same_record(storage.locate(killed) / "run", storage.locate(reference) / "run")
                storage.delete_tree(storage.locate(killed))
        assert set(codes) <= {0, -signal.SIGKILL}, server.log.read_text()[-3000:]
        assert codes.count(-signal.SIGKILL) >= TRIALS // 2
        assert resumed >= 1  # some job resumed from a checkpoint on the store
        assert server.run(killed) == 0, server.log.read_text()[-3000:]
    finally:
        server.close()
    run = storage.locate(killed) / "run"
    _same_record(run, storage.locate(reference) / "run")
    meta = run_json.read(run)
    assert meta["status"] == "finished" and meta["last_flushed_step"] == STEPS

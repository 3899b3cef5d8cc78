"""SIGKILL at random moments, resume from the last checkpoint, compare with an uninterrupted run.

For a plain training loop and for the Hugging Face Trainer: 20 trials each, every trial a
process killed at a random moment (during start-up, a step, a flush, a checkpoint or a resume's
truncation), the next one resuming from whatever checkpoint is on disk. The record at the end
must hold the same rows as an uninterrupted run's: no duplicate, no gap, the same losses and
the same clustering. The processes are forked from one server that imported torch once
(`tests/fixtures/kill_resume_worker.py serve`), so the trials cost seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.writer import read_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20


class Server:
    """The worker server: `run` forks one job, `kill_after` SIGKILLs it at a random moment."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.kill_resume_worker", "serve"],
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

    def run(self, flavour: str, out: Path, steps: int, kill_after: float | None = None) -> int:
        """Run one job (killed `kill_after` seconds after it is ready); its exit code."""
        self.proc.stdin.write(f"{flavour} {out} {steps}\n")
        self.proc.stdin.flush()
        kind, pid = self._line()
        assert kind == "pid"
        while True:
            words = self._line()
            if words[0] == "exit":
                return int(words[2])
            if words == ["ready", pid] and kill_after is not None:
                time.sleep(kill_after)
                # the job may have finished (and been reaped) before the
                # kill moment; the server still reports its exit code on the next line
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _tables(run: Path) -> dict:
    """Raw rows of the tables the comparison covers (duplicates would show: no dedup here)."""
    out = {}
    keys = {
        "steps": ["step", "loss", "tokens", "reclustered"],
        "evals": ["step", "split", "loss", "loss_std", "n_batches"],
        "layers": ["step", "layer"],
        "clusters": ["step", "layer", "cluster", "size", "factor"],
        "transitions": ["step", "layer", "from_cluster", "to_cluster", "count"],
    }
    for table, columns in keys.items():
        df = read_table(run, table).to_pandas()[columns]
        order = ["step"] if table == "steps" else columns[:3]
        out[table] = df.sort_values(order).reset_index(drop=True)
    return out


def _compare(got_run: Path, want_run: Path, steps: int) -> None:
    want, got = _tables(want_run), _tables(got_run)
    assert want["steps"]["step"].tolist() == list(range(1, steps + 1))
    assert got["steps"]["step"].tolist() == list(range(1, steps + 1))  # no duplicate, no gap
    assert got["steps"]["loss"].notna().all()
    assert len(want["clusters"]) and len(want["transitions"])
    for table in want:
        assert len(got[table]) == len(want[table]), table
        for column in want[table]:
            a, b = got[table][column], want[table][column]
            if a.dtype.kind == "f":
                close = (a - b).abs() <= 1e-6 * b.abs() + 1e-12
                assert (close | (a.isna() & b.isna())).all(), (table, column)
            else:
                assert a.tolist() == b.tolist(), (table, column)


@pytest.mark.parametrize(
    ("flavour", "steps", "window_s"),
    [("loop", 240, 0.5), ("trainer", 150, 1.0)],
)
def test_random_sigkills_then_resume_give_the_uninterrupted_record(
    tmp_path, flavour, steps, window_s
):
    if flavour == "trainer":
        pytest.importorskip("transformers")
    server = Server(tmp_path / "worker.log")
    try:
        assert server.run(flavour, tmp_path / "reference", steps) == 0, server.log.read_text()
        rng = random.Random(f"{flavour}-kills")
        codes = []
        for _ in range(TRIALS):
            killed = tmp_path / "killed"
            code = server.run(flavour, killed, steps, kill_after=rng.uniform(0, window_s))
            codes.append(code)
            if code == 0:
                # The job finished before its kill moment (it resumed close to the end). That
                # record must already be the uninterrupted one; then start a fresh sequence, as
                # nobody relaunches a finished training (the HF Trainer, resumed from its final
                # checkpoint, takes one more step, which the recorder would faithfully record).
                _compare(killed / "run", tmp_path / "reference" / "run", steps)
                shutil.rmtree(killed)
        assert set(codes) <= {0, -signal.SIGKILL}, server.log.read_text()[-3000:]
        assert codes.count(-signal.SIGKILL) >= TRIALS // 2  # most were killed mid-run
        assert server.run(flavour, tmp_path / "killed", steps) == 0, server.log.read_text()
    finally:
        server.close()
    _compare(tmp_path / "killed" / "run", tmp_path / "reference" / "run", steps)
    if flavour == "loop":
        assert len(_tables(tmp_path / "killed" / "run")["evals"]) == steps // 5

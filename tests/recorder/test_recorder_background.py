"""The background writer (issue 21): rows are written off the training thread, behind a bounded
queue. A store that stalls does not stall training until the queue is full (then a warning
names the queue and training waits); flush(), a checkpoint's state_dict() and close() wait for
the writer; a failed write is in run.json at once and raised by the next log_step.

A stalled store is a `ChunkWriter.write` that waits for a gate the test opens: no timing."""

from __future__ import annotations

import errno
import json
import threading
import warnings

import pytest
import torch
from recorder_helpers import read, tiny_model, train_steps

from recorder import Recorder, RecorderError
from recorder.background import BackgroundWriter
from recorder.writer import ChunkWriter

WAIT_S = 60.0  # generous bound on waits that end at once when the recorder is right


class StalledStore:
    """`ChunkWriter.write` held at a gate (the store stalls) until `open()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()  # the writer thread is inside a write
        real = ChunkWriter.write

        def write(writer, table, columns):
            self.entered.set()
            assert self.gate.wait(WAIT_S), "the test never opened the gate"
            return real(writer, table, columns)

        monkeypatch.setattr(ChunkWriter, "write", write)

    def open(self) -> None:
        self.gate.set()


def _recorder(tmp_path, flush_every_steps=1, **kw):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rec = Recorder(
        tmp_path / "r",
        optimizer=opt,
        model=model,
        flush_every_steps=flush_every_steps,
        flush_every_seconds=1e6,  # flushes by steps only, however slow the machine
        **kw,
    )
    return model, opt, rec


def _in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_a_stalled_store_does_not_stall_training_until_the_queue_is_full(tmp_path, monkeypatch):
    store = StalledStore(monkeypatch)
    model, opt, rec = _recorder(tmp_path, max_queued_flushes=3)
    train_steps(model, opt, 1, rec)
    assert store.entered.wait(WAIT_S)  # step 1's flush is being written (stalled)
    # steps 2-4's flushes wait in the queue (3 flushes): log_step returns
    trained = _in_thread(lambda: train_steps(model, opt, 3, rec, start=2))
    trained.join(WAIT_S)
    assert not trained.is_alive(), "log_step waited for a stalled store with room in the queue"
    assert store.entered.is_set() and read(tmp_path / "r", "steps").empty
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocked = _in_thread(lambda: train_steps(model, opt, 1, rec, start=5))
        blocked.join(1.0)
        assert blocked.is_alive(), "a full queue must make training wait, not drop a flush"
        store.open()
        blocked.join(WAIT_S)
    assert not blocked.is_alive()
    said = [str(w.message) for w in caught]
    assert any("queue of 3 flushes is full" in m and "training waits" in m for m in said), said
    assert any("training waited" in m and "queue of 3 flushes was full" in m for m in said), said
    assert rec.write_wait_seconds > 0
    rec.close()
    assert read(tmp_path / "r", "steps")["step"].tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("how", ["flush", "state_dict", "close"])
def test_flush_state_dict_and_close_wait_for_the_writer(tmp_path, monkeypatch, how):
    store = StalledStore(monkeypatch)
    model, opt, rec = _recorder(tmp_path, flush_every_steps=100)
    train_steps(model, opt, 3, rec)
    assert not store.entered.is_set()  # nothing flushed yet
    call = {"flush": rec.flush, "state_dict": opt.state_dict, "close": rec.close}[how]
    waiting = _in_thread(call)
    assert store.entered.wait(WAIT_S)
    waiting.join(1.0)
    assert waiting.is_alive(), f"{how} returned before its rows were written"
    store.open()
    waiting.join(WAIT_S)
    assert not waiting.is_alive()
    # on return, the rows and run.json are on disk
    assert read(tmp_path / "r", "steps")["step"].tolist() == [1, 2, 3]
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["last_flushed_step"] == 3
    rec.close()


def test_a_failed_write_is_in_run_json_at_once_and_raised_by_the_next_log_step(
    tmp_path, monkeypatch
):
    model, opt, rec = _recorder(tmp_path, flush_every_steps=2)
    train_steps(model, opt, 2, rec)
    rec.flush()
    failed = threading.Event()

    def full(writer, table, columns):
        failed.set()
        raise RecorderError(errno.ENOSPC, "recorder cannot write: no space left on device")

    monkeypatch.setattr(ChunkWriter, "write", full)
    train_steps(model, opt, 2, rec, start=3)  # the flush of steps 3-4 fails on the writer thread
    assert failed.wait(WAIT_S)
    background = rec._flusher.background
    background.wait()  # the failure is recorded (a test's peek: log_step does not wait)
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and "no space left" in meta["error"]["message"]
    assert meta["last_flushed_step"] == 2  # steps 3-4 are not on disk
    with pytest.raises(
        RecorderError, match=r"stopped after a failed write \(the flush of steps 3-4\)"
    ):
        train_steps(model, opt, 1, rec, start=5)
    with pytest.raises(RecorderError, match="no space left") as info:
        rec.log_step(loss=1.0)  # every later call too: never lost
    assert info.value.errno == errno.ENOSPC
    rec.close()
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["last_flushed_step"] == 2
    assert read(tmp_path / "r", "steps")["step"].tolist() == [1, 2]


def test_the_writer_thread_ends_with_close(tmp_path):
    model, opt, rec = _recorder(tmp_path)
    train_steps(model, opt, 2, rec)
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith("recorder-writer:") and str(tmp_path) in n for n in names)
    rec.close()
    rec.close()  # idempotent
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith("recorder-writer:") and str(tmp_path) in n for n in names)


def test_background_writer_runs_jobs_in_order_and_stops_at_the_first_failure():
    done: list[int] = []
    writer = BackgroundWriter("test-writer", max_queue=2)

    def job(k: int):
        def run():
            if k == 3:
                raise OSError(errno.EIO, "store refused")
            done.append(k)

        return run

    for k in range(6):
        writer.submit(job(k), f"job {k}")
    writer.wait()
    assert done == [0, 1, 2]  # nothing after the failed job: the record stays a prefix
    assert isinstance(writer.error, OSError) and writer.failed == "job 3"
    writer.close()
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(job(9), "late")
    with pytest.raises(ValueError, match="max_queue"):
        BackgroundWriter("bad", max_queue=0)
    with pytest.raises(ValueError, match="max_queued_flushes"):
        Recorder(
            "unused",
            optimizer=torch.optim.SGD(tiny_model().parameters(), 0.1),
            max_queued_flushes=0,
        )

"""Flushing: buffered rows leave the training thread and become chunks, in order, off it.

On the training thread `Flusher.flush` only detaches the rows (no host sync, no conversion) and
queues one job on the background writer (`recorder.background`). On the writer's thread the
job turns the rows into columns (`recorder.columns`), writes one chunk per table
(`recorder.writer.ChunkWriter`), feeds the sinks, then rewrites run.json naming the last step
now on disk. run.json is written after the chunks, so a process killed at any moment leaves
every step up to run.json's `last_flushed_step` readable: the crash-safety contract of a
synchronous flush. `wait` (a checkpoint's `state_dict()`, `flush()`, `close()`) returns once
everything queued is on disk; a failed write is kept, marked in run.json at once, and raised
on the training thread by `check` (the next `log_step`).
"""

from __future__ import annotations

import contextlib
import errno
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from recorder import columns, lifecycle, run_meta
from recorder.background import BackgroundWriter
from recorder.buffer import RecordBuffer
from recorder.layers import RecordedLayers
from recorder.options import RecorderOptions
from recorder.records import PendingRows
from recorder.sinks import SinkFanout
from recorder.writer import ChunkWriter, RecorderError
from runformat import schema
from runformat.storage import Where

RunJson = dict[str, Any]  # run.json as a dict (docs/run-format.md)


@dataclass
class RunFiles:
    """The run's identity on storage: where it lives, its run.json and the segment written."""

    run_dir: Where
    meta: RunJson  # `last_flushed_step`: the last step on disk (set by the writer thread)
    segment: int  # this process's segment (0 for a new run, one more per resume)
    writes: bool  # False on the ranks of a sharded run other than 0: no file at all


@dataclass
class FlushPolicy:
    """When buffered rows are written: every `every_steps` steps, every `every_seconds` (also
    run.json's heartbeat), or when `max_buffer_rows` table rows wait (0: no row bound)."""

    every_steps: int
    every_seconds: float
    max_buffer_rows: int
    last_flush: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, options: RecorderOptions) -> FlushPolicy:
        return cls(options.flush_every_steps, options.flush_every_seconds, options.max_buffer_rows)

    def due(self, buffer: RecordBuffer) -> bool:
        """`log_step`'s rule."""
        return (
            len(buffer.rows) >= self.every_steps
            or time.monotonic() - self.last_flush >= self.every_seconds
            or bool(self.max_buffer_rows and buffer.pending_rows >= self.max_buffer_rows)
        )

    def overdue(self, buffer: RecordBuffer) -> bool:
        """The hooks' bound when `log_step` is not called: twice `due`'s sizes."""
        return len(buffer.rows) > 2 * self.every_steps or bool(
            self.max_buffer_rows and buffer.pending_rows > 2 * self.max_buffer_rows
        )


class Flusher:
    """Hands the buffer's rows to the background writer, one job per flush."""

    def __init__(
        self,
        files: RunFiles,
        buffer: RecordBuffer,
        layers: RecordedLayers,
        sinks: SinkFanout,
        options: RecorderOptions,
    ) -> None:
        self.files = files
        self.buffer = buffer
        self.policy = FlushPolicy.of(options)
        self.sinks = sinks
        self._names = list(layers.names)
        self._numel = [p.numel() for p in layers.params]
        self._device = layers.device
        self.taken_step: int = files.meta.get("last_flushed_step") or 0  # rows <= this left
        self.waited_s = 0.0  # seconds the training thread waited for a full queue, in all
        self.writer: ChunkWriter | None = None
        self.background: BackgroundWriter | None = None
        if files.writes:
            self.writer = ChunkWriter(files.run_dir, files.segment)
            self.background = BackgroundWriter(
                f"recorder-writer:{files.run_dir}", options.max_queued_flushes
            )

    # ------------------------------------------------------------------ training thread
    def flush(self, upto: int | None, step: int, *, then_wait: bool = False) -> None:
        """Queue the rows with step <= upto (all when None; `step`: the recorder's step).
        A full queue makes this wait, with a warning unless the caller waits anyway
        (`then_wait`: `flush()`, a checkpoint, `close()`)."""
        self.check()
        pending = self.buffer.detach(upto)
        self.taken_step = self._flushed_step(upto, pending.steps, step)
        self.policy.last_flush = time.monotonic()
        if self.background is None:  # a sharded run's rank != 0: the same bookkeeping, no file
            return
        # A shallow copy for the writer thread: run.json's nested objects do not change after
        # the start, and its top-level keys are replaced, never mutated in place.
        meta = dict(self.files.meta)
        meta["last_flushed_step"] = self.taken_step
        ready = self._ready_event()
        what = "a run.json heartbeat"
        if pending.steps:
            what = f"the flush of steps {pending.steps[0]}-{pending.steps[-1]}"
        job = partial(self._write, pending, meta, ready)
        done = self.background.submit(job, what, on_full=None if then_wait else self._say_full)
        if done.waited > 0 and not then_wait:
            self.waited_s += done.waited
            warnings.warn(
                f"recorder for {self.files.run_dir}: training waited {done.waited:.2f} s for the "
                f"background writer (its queue of {self.background.max_queue} flushes was full)",
                stacklevel=3,
            )

    def wait(self) -> None:
        """Until everything queued is on disk; a failed write is raised here."""
        if self.background is not None:
            self.background.wait()
        self.check()

    def flush_and_wait(self, step: int) -> None:
        """Queue every row, then wait until it is on disk."""
        self.flush(None, step, then_wait=True)
        self.wait()

    @property
    def error(self) -> BaseException | None:
        """The failure that stopped the writer (None while it writes)."""
        return self.background.error if self.background is not None else None

    def check(self) -> None:
        """Raise the writer's failure as a `RecorderError` naming it (None: nothing failed)."""
        exc = self.error
        if exc is None:
            return
        assert self.background is not None
        code = getattr(exc, "errno", None) or errno.EIO
        raise RecorderError(
            code,
            f"recorder for {self.files.run_dir} stopped after a failed write "
            f"({self.background.failed}): {exc}",
            getattr(exc, "filename", None) or str(self.files.run_dir),
        ) from exc

    def close(self) -> None:
        """Write what is queued and stop the writer thread (idempotent)."""
        if self.background is not None:
            self.background.close()

    def _flushed_step(self, upto: int | None, steps: list[int], step: int) -> int:
        last = self.taken_step
        if upto is None:
            return max([step, *steps, last])
        return max(upto, last) if steps else last

    def _ready_event(self) -> torch.cuda.Event | None:
        """On a CUDA run, a point on the training stream after every buffered tensor: the
        writer thread waits for it before reading them (its own stream may be another)."""
        if self._device is None or self._device.type != "cuda":
            return None
        return torch.cuda.current_stream(self._device).record_event()

    def _say_full(self) -> None:
        assert self.background is not None
        warnings.warn(
            f"recorder for {self.files.run_dir}: the background writer is behind (its queue of "
            f"{self.background.max_queue} flushes is full: a slow or stalled store); training "
            "waits for it",
            stacklevel=5,  # _say_full, submit, flush, log_step: the training loop
        )

    # ------------------------------------------------------------------ writer thread
    def _write(self, pending: PendingRows, meta: RunJson, ready: torch.cuda.Event | None) -> None:
        assert self.writer is not None
        try:
            if ready is not None:
                ready.synchronize()
            tables = columns.tables(pending, self._names, self._numel)
            for table, cols in tables.items():
                # A failure part-way leaves some tables with this chunk and others without;
                # run.json still names the last complete step and a resume drops the rest.
                self.writer.write(table, cols)
            if self.sinks:
                self.sinks.log(columns.sink_scalars(tables["steps"], pending.rows))
            run_meta.write_run_json(self.files.run_dir, meta)
        except BaseException as exc:
            self._mark_failed(exc)
            raise
        self.files.meta["last_flushed_step"] = meta["last_flushed_step"]

    def _mark_failed(self, exc: BaseException) -> None:
        """run.json says at once that recording failed (best effort: the store may be down)."""
        failed = dict(self.files.meta)
        lifecycle.finish(failed, schema.STATUS_FAILED, exc)
        with contextlib.suppress(Exception):
            run_meta.write_run_json(self.files.run_dir, failed)

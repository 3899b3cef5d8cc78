"""A background writer: a bounded queue of jobs and one thread that runs them in order.

TensorBoard's event writer is the model: the training thread puts work on a bounded queue and
returns; one thread does the conversion and the I/O; `flush` waits until the queue is empty;
`close` is idempotent. A full queue makes the training thread wait (the store is slower than
the training), which the caller says (`Submitted.waited`).

What differs: the first job that fails stops the writer. Its exception is kept (`error`) and
every later job is dropped, because the record must stay a prefix of the training (chunks after
a missing chunk would be read as a gap); the caller raises it on the training thread. The
thread is not a daemon, so jobs queued when the interpreter exits are still written; it leaves
once the main thread has ended and the queue is empty.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

Job = Callable[[], None]

_POLL_S = 0.5  # how often an idle thread looks whether the main thread has ended


class Submitted(NamedTuple):
    queued: int  # jobs waiting when this one was put, itself included
    waited: float  # seconds the caller waited for room (0.0 unless the queue was full)


class BackgroundWriter:
    """Runs jobs on one thread, in submission order, behind a queue of `max_queue` jobs."""

    def __init__(self, name: str, max_queue: int) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        self.max_queue = max_queue
        self._queue: queue.Queue[tuple[Job, str] | None] = queue.Queue(max_queue)
        self.error: BaseException | None = None  # the first job's failure: the writer stopped
        self.failed: str | None = None  # what that job was doing
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._thread.start()

    def submit(self, job: Job, what: str, on_full: Callable[[], None] | None = None) -> Submitted:
        """Queue `job` (`what`: words for an error message). When the queue is full,
        `on_full()` is called, then this waits for room."""
        if self._closed:
            raise RuntimeError("background writer is closed")
        try:
            self._queue.put_nowait((job, what))
            return Submitted(self._queue.qsize(), 0.0)
        except queue.Full:
            pass
        if on_full is not None:
            on_full()
        started = time.monotonic()
        self._queue.put((job, what))
        return Submitted(self._queue.qsize(), time.monotonic() - started)

    def wait(self) -> None:
        """Until every job submitted so far has run (or been dropped after a failure)."""
        self._queue.join()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._queue.unfinished_tasks

    def close(self) -> None:
        """Run what is queued, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        main = threading.main_thread()
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not main.is_alive():
                    return  # the interpreter is exiting and nothing is left to write
                continue
            try:
                if item is None:
                    return
                job, what = item
                if self.error is None:
                    job()
            except BaseException as exc:  # kept and raised on the training thread
                self.error, self.failed = exc, what
            finally:
                self._queue.task_done()

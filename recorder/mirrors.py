"""Mirror the recorder's per-step scalars to TensorBoard, a W&B run or MLflow (`recorder.sinks`).

    from recorder import Recorder
    from recorder.mirrors import TensorBoardSink, WandbSink, MLflowSink

    writer = SummaryWriter("tb/sgg")                 # the writer your team already watches
    with Recorder("runs/sgg", optimizer=opt, model=model,
                  sinks=[TensorBoardSink(writer)]) as rec:
        ...

Each sink implements `recorder.sinks.ScalarSink`: the recorder calls `log_scalars(step,
scalars)` for every step row it flushes (loss, lr, gradient / update / parameter norms, the
optimizer's time, tokens, the mean SGG factor, and `reclustered` = 1.0 on a re-cluster step)
and `close()` once. Names are prefixed (`sgg/loss`, `sgg/grad_norm`, ...) so that they never
collide with what the training loop logs itself. Opt-in: without `sinks=` none of this module
(nor TensorBoard, wandb or MLflow) is imported. A sink given a writer / run that the caller
owns flushes it at `close()` and leaves it open; a sink that made its own closes it.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["MLflowSink", "TensorBoardSink", "WandbSink"]


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a str, got {prefix!r}")
    return prefix


class TensorBoardSink:
    """Scalars to a `torch.utils.tensorboard.SummaryWriter` (extra `tensorboard`).

    Args:
        writer: a `SummaryWriter` (left open at close) or a log directory (a writer is made
            there and closed at close).
        prefix: put in front of every scalar name.
    """

    def __init__(self, writer: Any, *, prefix: str = "sgg/") -> None:
        self.prefix = _check_prefix(prefix)
        if isinstance(writer, str | os.PathLike):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.fspath(writer))
            self._owns = True
        elif callable(getattr(writer, "add_scalar", None)):
            self.writer = writer
            self._owns = False
        else:
            raise ValueError(f"writer must be a SummaryWriter or a directory, got {writer!r}")
        self.closed = False

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(self.prefix + name, value, step)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        (self.writer.close if self._owns else self.writer.flush)()


class WandbSink:
    """Scalars to a W&B run (extra `wandb`), charted against their own step metric.

    The recorder's step is logged as `<prefix>step` and declared the step metric of
    `<prefix>*` (`define_metric`), so the mirrored charts use the optimizer step whatever
    `wandb.log` calls the training loop makes itself.

    Args:
        run: a `wandb` run (default: the active `wandb.run`).
        prefix: put in front of every scalar name.
        finish: call `run.finish()` at close (default False: the run is the caller's).
    """

    def __init__(self, run: Any = None, *, prefix: str = "sgg/", finish: bool = False) -> None:
        self.prefix = _check_prefix(prefix)
        if run is None:
            import wandb

            run = wandb.run
        if run is None or not callable(getattr(run, "log", None)):
            raise ValueError(f"run must be a wandb run (call wandb.init() first), got {run!r}")
        self.run = run
        self.finish = bool(finish)
        self.step_metric = self.prefix + "step"
        run.define_metric(self.step_metric)
        run.define_metric(self.prefix + "*", step_metric=self.step_metric)
        self.closed = False

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        row = {self.prefix + name: value for name, value in scalars.items()}
        row[self.step_metric] = int(step)
        self.run.log(row)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.finish:
            self.run.finish()


class MLflowSink:
    """Scalars to an MLflow run (extra `mlflow`), sent in batches of `log_batch`.

    Args:
        run_id: the run to log to (default: the active run, `mlflow.active_run()`).
        client: an `MlflowClient` (default: one for the current tracking URI).
        prefix: put in front of every scalar name.
        flush_every_seconds: send what is buffered at least this often (and at close; also
            whenever a batch is full).
    """

    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call

    def __init__(
        self,
        run_id: str | None = None,
        *,
        client: Any = None,
        prefix: str = "sgg/",
        flush_every_seconds: float = 10.0,
    ) -> None:
        self.prefix = _check_prefix(prefix)
        if not flush_every_seconds > 0:
            raise ValueError(f"flush_every_seconds must be > 0, got {flush_every_seconds!r}")
        if run_id is None:
            import mlflow

            active = mlflow.active_run()
            if active is None:
                raise ValueError("run_id: no run given and no active MLflow run")
            run_id = active.info.run_id
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient()
        self.run_id = run_id
        self.client = client
        self.flush_every_seconds = float(flush_every_seconds)
        self._buffer: list[Any] = []
        self._last_send = time.monotonic()
        self.closed = False

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ms = int(time.time() * 1000)
        self._buffer += [
            Metric(self.prefix + name, float(value), ms, int(step))
            for name, value in scalars.items()
        ]
        if (
            len(self._buffer) >= self.MAX_BATCH
            or time.monotonic() - self._last_send >= self.flush_every_seconds
        ):
            self._send()

    def _send(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[: self.MAX_BATCH], self._buffer[self.MAX_BATCH :]
            self.client.log_batch(self.run_id, metrics=batch)
        self._last_send = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._send()

"""`Recorder`: the public API. Attach to an optimizer (SGG or any torch optimizer) and a model,
then `log_step` after each `optimizer.step()`; the run directory is written as you train.

    with Recorder("runs/sgg", optimizer=opt, model=model, config=cfg) as rec:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(loss=loss, tokens=x.numel())   # the step is the optimizer's count
            if rec.step % 1000 == 0:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)

This file only wires the parts together, each holding its own state: `lifecycle` opens,
resumes and finishes the run directory; `layers` names and orders the parameters;
`state.OptimizerView` holds the optimizer's introspection handles and `state.StepState` where
the recording stands; `hooks.StepHooks` runs inside the optimizer and `probes` read it as named
columns on the device; `buffer` keeps the rows until a flush; `flushing` hands them to a
background writer thread that converts them (`columns`) and writes chunks (`writer`), so that
neither the conversion nor the I/O runs on the training thread. A checkpoint's `state_dict()`,
`flush()` and `close()` wait for that thread; a failed write is raised by the next `log_step`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recorder import lifecycle, run_meta
from recorder.buffer import RecordBuffer
from recorder.flushing import Flusher, RunFiles, RunJson
from recorder.hooks import StepHooks
from recorder.layers import RecordedLayers
from recorder.lifecycle import MODES, RunStart, optimizer_step_count, unwrap_optimizer
from recorder.options import RecorderOptions
from recorder.records import EvalRow
from recorder.sinks import ScalarSink, SinkFanout
from recorder.state import OptimizerView, StepState
from recorder.writer import ChunkWriter, RecorderError, compact
from runformat import schema, storage

RECORDING_SOURCES = ("recorded", "hf", "lightning")  # who records: run.json's description.source

__all__ = ["MODES", "Recorder", "RecorderOptions", "optimizer_step_count", "unwrap_optimizer"]


def _check_loss(loss: object) -> Tensor | float | None:
    """The loss as a detached 0-d tensor or a float; a ValueError at once (nothing buffered)
    for anything that is not one real number."""
    if loss is None:
        return None
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise ValueError(
                f"loss must be a scalar (one element), got a tensor of shape {tuple(loss.shape)}"
            )
        if loss.dtype == torch.bool or loss.is_complex():
            raise ValueError(f"loss must be a real number, got a tensor of dtype {loss.dtype}")
        return loss.detach().reshape(())
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.integer, np.floating)):
        raise ValueError(f"loss must be a number or a scalar tensor, got {type(loss).__name__}")
    return float(loss)


def _check_arguments(
    *,
    mode: str,
    source: str,
    settings: object,
    shadow: object,
    optimizer: torch.optim.Optimizer | None,
    resume_step: object,
) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if source not in RECORDING_SOURCES:
        raise ValueError(f"source must be one of {RECORDING_SOURCES}, got {source!r}")
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(f"settings must be a mapping, got {type(settings).__name__}")
    if shadow is not None and optimizer is not None and lifecycle.is_sgg(optimizer):
        raise ValueError("shadow clustering is for non-SGG optimizers; got an SGG optimizer")
    if shadow is not None and optimizer is None:
        raise ValueError("shadow clustering needs an optimizer")
    if resume_step is not None and (
        isinstance(resume_step, bool) or not isinstance(resume_step, int) or resume_step < 0
    ):
        raise ValueError(f"resume_step must be a non-negative int, got {resume_step!r}")


def _optimizer_view(
    optimizer: torch.optim.Optimizer | None, shadow: Mapping[str, Any] | None
) -> OptimizerView:
    view = OptimizerView(optimizer, has_step_hooks=hasattr(optimizer, "register_step_post_hook"))
    if optimizer is not None and lifecycle.is_sgg(optimizer):
        view.sgg = optimizer  # type: ignore[assignment]  # SGG's introspection (duck-typed)
    if shadow is not None:
        from sgg import SGG  # only a shadow run needs sgg at all

        view.shadow = SGG(optimizer, observe_only=True, **dict(shadow))
    return view


def recording_meta(options: RecorderOptions) -> dict[str, Any]:
    """run.json's `recording`: the options and how each measure is taken."""
    recording = dataclasses.asdict(options)
    recording["quantiles"] = list(schema.QUANTILES)
    recording["quantile_method"] = (
        "torch.quantile (linear) over a fixed random subsample of quantile_sample positions "
        "per layer (all positions, repeated, for smaller layers)"
    )
    recording["histogram_edges"] = (
        "exact layer min..max; momentum linear, adaptive_lr log10; the bin of a value is "
        "computed in float32 (a value within rounding of an inner edge may count in its "
        "neighbour)"
    )
    recording["histogram_layers"] = "clustered layers (tensors with >= 2 dims without SGG)"
    recording["step"] = "optimizer steps taken (SGG's sgg_step or the base's step state)"
    recording["update_norm_method"] = {
        "state": "layer-statistics steps: from the post-step Adam state (no parameter copy)",
        "snapshot": "every step: parameter copy before the step",
        "off": "not recorded",
    }[options.update_norm]
    return recording


class Recorder:
    """Writes one run directory (see docs/run-format.md) for one training run.

    Args:
        run_dir: the run directory: a local path, or a URI on an object store
            (`s3://bucket/prefix/run`, `gs://...`; credentials and endpoint from the
            environment: `runformat.storage`).
        optimizer: any torch optimizer; an `sgg.SGG` is recognised and its clustering recorded.
            A wrapper such as accelerate's `AcceleratedOptimizer` is unwrapped.
        model: the module whose `named_parameters()` name the layers (optional; a
            `torch.compile`d model's `_orig_mod.` is stripped from the names).
        config: free-form JSON-able configuration saved in run.json (a dataclass is fine).
        mode: "new" (the directory must not hold a run), "resume" (continue the run in it at the
            optimizer's step, dropping later rows) or "overwrite" (delete the run in it).
        resume_step: only to check: must equal the optimizer's step count (without an optimizer:
            the step to resume at, default the last flushed step).
        shadow: SGG options for an observe-only clustering of a non-SGG optimizer, e.g.
            `dict(n_clusters=3, recluster_interval=100)`; training is unchanged.
        seed: the run's seed (saved; also seeds the recorder's fixed position samples).
        options / **kwargs: `RecorderOptions` (keyword arguments override its fields).
        sinks: objects with `log_scalars(step, scalars)` and `close()` (`recorder.sinks`) that
            receive each step's scalars when its rows are written (on the writer thread).
        source: what records the run, saved in run.json's `description`: "recorded" (this
            Recorder in your loop), "hf" or "lightning" (their callbacks pass it).
        settings: training settings the config may not hold, in any tool's names (the HF
            callback passes the TrainingArguments), read into run.json's `description`.

    The step is the optimizer's step count (`optimizer_step_count`: SGG's `sgg_step` or the
    base's `step` state), restored with the optimizer's checkpoint.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        optimizer: torch.optim.Optimizer | None = None,
        model: torch.nn.Module | None = None,
        config: object = None,
        *,
        mode: str = "new",
        name: str | None = None,
        seed: int | None = None,
        resume_step: int | None = None,
        shadow: Mapping[str, Any] | None = None,
        options: RecorderOptions | None = None,
        sinks: Sequence[ScalarSink] = (),
        source: str = "recorded",
        settings: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        optimizer = unwrap_optimizer(optimizer) if optimizer is not None else None
        _check_arguments(
            mode=mode,
            source=source,
            settings=settings,
            shadow=shadow,
            optimizer=optimizer,
            resume_step=resume_step,
        )
        fanout = SinkFanout(sinks)
        self.sinks: tuple[ScalarSink, ...] = fanout.sinks
        self.options = dataclasses.replace(options or RecorderOptions(), **kwargs)
        self.run_dir = storage.locate(run_dir)  # a Path, or an ObjectPath for s3:// and gs://
        self.model = model
        self.seed = seed
        self.source = source
        self.settings = settings
        self.closed = False
        self._view = _optimizer_view(optimizer, shadow)
        self.layers = RecordedLayers.build(
            optimizer,
            model,
            self._view.clusterer,
            quantile_sample=self.options.quantile_sample,
            membership_sample=self.options.membership_sample,
            seed=seed,
        )
        # Sharded (FSDP2) parameters: every rank records (the statistics are collectives), only
        # global rank 0 writes. Without DTensors nothing changes and no collective runs.
        writes = not self.layers.sharding.active or lifecycle.global_rank() == 0
        created: list[storage.Where] = []
        start = self._open(mode, name, config, resume_step, writes, created)
        self._state = StepState(step=start.step, tokens=start.tokens, time_offset=start.time_offset)
        self._files = RunFiles(self.run_dir, start.meta, start.segment, writes)
        self.buffer = RecordBuffer(len(self.layers))
        self._flusher = Flusher(self._files, self.buffer, self.layers, fanout, self.options)
        self._hooks = StepHooks(
            layers=self.layers,
            options=self.options,
            view=self._view,
            state=self._state,
            buffer=self.buffer,
            flusher=self._flusher,
        )
        try:
            self._hooks.attach()
        except BaseException:
            self._view.detach()
            self._flusher.close()
            lifecycle.undo_start(created)
            raise
        if self._view.shadow is not None:  # the shadow's clock is the optimizer's
            self._view.shadow.sgg_step = start.step

    # ------------------------------------------------------------------ public API
    def log_step(
        self,
        step: int | None = None,
        *,
        loss: Tensor | float | None = None,
        tokens: int | None = None,
    ) -> None:
        """Log the loss (and tokens) of the optimizer step just taken.

        The step is the optimizer's step count (1 after the first `optimizer.step()`); `step`,
        when given, must equal it: a 0-based counter or a count of micro-batches is a
        ValueError naming both numbers, never a silently shifted record. `loss` must be one
        number (a 0-d or one-element tensor stays on its device until the writer thread reads
        it); anything else is a ValueError here, before anything is buffered. `tokens` is the
        number of tokens this step processed (the recorder keeps the cumulative count).
        Call it before saving a checkpoint: `optimizer.state_dict()` writes the step. A write
        that failed on the writer thread since the last call is raised here (`RecorderError`).
        """
        self._check_open()
        self._flusher.check()
        checked = _check_loss(loss)
        current = self._advance(step)
        if tokens is not None:
            self._state.tokens = (self._state.tokens or 0) + int(tokens)
        row = self.buffer.row(current)
        if row.wall is None:
            row.wall = self._state.wall()
        if checked is not None:
            row.loss = checked
        row.tokens = self._state.tokens
        if self._flusher.policy.due(self.buffer):
            self._flusher.flush(current, current)

    def _advance(self, step: object) -> int:
        """The step `log_step` logs: the optimizer's count (measured here for an optimizer
        without torch's step hooks), checked against `step`."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
            raise ValueError(f"step must be an int or None, got {step!r}")
        state = self._state
        # No torch step hooks (a duck-typed optimizer): each new step is measured here, and
        # the snapshot for the next update norm is taken now (log_step to log_step).
        new_step = step is None or int(step) == state.step + 1
        if self._view.optimizer is not None and not self._view.has_step_hooks and new_step:
            self._hooks.after_step()
            self._hooks.pre_step()
        if self._view.optimizer is None:
            state.step = state.step + 1 if step is None else max(state.step, int(step))
        current = state.step
        if step is not None and int(step) != current:
            hint = " (a 0-based loop: log after opt.step() with step + 1, or leave step out)"
            raise ValueError(
                f"log_step(step={int(step)}) disagrees with the optimizer, which has taken "
                f"{current} steps{hint if int(step) == current - 1 else ''}; the recorded step "
                "is the optimizer's step count: pass that or leave step out"
            )
        if current == 0:
            raise ValueError("log_step() before the first optimizer.step(): nothing to log yet")
        if current <= self._flusher.taken_step and current not in self.buffer.rows:
            raise ValueError(
                f"log_step for step {current} arrived after that step was written (a flush or "
                "a checkpoint's optimizer.state_dict() since the step): call log_step right "
                "after optimizer.step(), before saving a checkpoint"
            )
        return current

    def log_eval(
        self,
        *,
        loss: Tensor | float | None = None,
        step: int | None = None,
        split: str = "val",
        tokens: int | None = None,
        batch_losses: Sequence[float] | None = None,
    ) -> None:
        """Log an evaluation: `log_eval(loss=..., step=None, split="val", batch_losses=None)`.

        `step` defaults to the optimizer's step count. With `batch_losses` (the per-batch eval
        losses) the row also holds their sample standard deviation (`loss_std`, ddof=1) and
        count (`n_batches`), and `loss` defaults to their mean: a single run's eval loss then
        carries an interval.
        """
        self._check_open()
        losses: list[float] | None = None
        if batch_losses is not None:
            losses = [float(x) for x in batch_losses]  # rare: a sync is fine
            if not losses:
                raise ValueError("batch_losses must hold at least one loss")
            if loss is None:
                loss = float(np.mean(losses))
        if loss is None:
            raise ValueError("log_eval needs loss or batch_losses")
        value = _check_loss(loss)
        self.buffer.add_eval(
            EvalRow(
                step=self._state.step if step is None else int(step),
                tokens=self._state.tokens if tokens is None else int(tokens),
                wall_time=self._state.wall(),
                split=str(split),
                loss=float(value),  # type: ignore[arg-type]  # checked: not None
                loss_std=float(np.std(losses, ddof=1)) if losses and len(losses) > 1 else None,
                n_batches=len(losses) if losses is not None else None,
            )
        )

    def flush(self) -> None:
        """Write every buffered row now and wait until it is on disk (a checkpoint's
        `optimizer.state_dict()` does this)."""
        self._check_open()
        self._flusher.flush_and_wait(self._state.step)

    def close(
        self, status: str = schema.STATUS_FINISHED, error: BaseException | None = None
    ) -> None:
        """Flush, wait for the writer, detach the hooks, close the sinks and mark the run
        `status`. Idempotent."""
        if self.closed:
            return
        self._view.detach()
        broken = self._flusher.error
        if broken is not None and status == schema.STATUS_FINISHED:
            status, error = schema.STATUS_FAILED, error or broken
        try:
            if broken is None:
                self._flusher.flush_and_wait(self._state.step)
            if self.options.compact_on_close and status == schema.STATUS_FINISHED:
                self.compact()
        except BaseException as exc:
            if status == schema.STATUS_FINISHED:
                status, error = schema.STATUS_FAILED, exc
            raise
        finally:
            self.closed = True
            self._flusher.close()
            self._flusher.sinks.close()
            lifecycle.finish(self.meta, status, error)
            if self._files.writes:
                run_meta.write_run_json(self.run_dir, self.meta)

    def compact(self) -> list[str]:
        """Merge each table's chunks into one file (see docs/run-format.md), once everything
        queued is written."""
        if not self._files.writes:
            return []
        self._flusher.wait()
        done = [t for t in schema.TABLES if compact(self.run_dir, t, self.segment)]
        self.meta["compacted"] = sorted(set(self.meta.get("compacted") or []) | set(done))
        return done

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (including those before a resume)."""
        return self._state.step

    @property
    def meta(self) -> RunJson:
        """run.json as this process knows it (`last_flushed_step`: the last step on disk)."""
        return self._files.meta

    @property
    def segment(self) -> int:
        return self._files.segment

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self._view.optimizer

    @property
    def writer(self) -> ChunkWriter | None:
        """The chunk writer (used on the writer thread; None where this rank writes no file)."""
        return self._flusher.writer

    @property
    def write_wait_seconds(self) -> float:
        """Seconds training waited for the background writer, in all (its queue was full)."""
        return self._flusher.waited_s

    @property
    def peak_buffer_bytes(self) -> int:
        """Most device memory the recorder held at once (buffered statistics + snapshot)."""
        return self.buffer.peak_tensor_bytes + self.snapshot_bytes

    @property
    def snapshot_bytes(self) -> int:
        """The parameter copy of `update_norm="snapshot"` (0 at the default settings)."""
        return self._state.snapshot_bytes

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close(schema.STATUS_FAILED, exc)
        except Exception as close_exc:  # never hide the training error
            warnings.warn(
                f"recorder could not mark {self.run_dir} failed: {close_exc}", stacklevel=2
            )

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"recorder for {self.run_dir} is closed")

    # ------------------------------------------------------------------ start
    def _open(
        self,
        mode: str,
        name: str | None,
        config: object,
        resume_step: int | None,
        writes: bool,
        created: list[storage.Where],
    ) -> RunStart:
        """Start (or resume) the run; a failed start removes what it created. Sharded runs
        agree on the outcome first: every rank fails together, or starts at one step."""
        error: BaseException | None = None
        start: RunStart | None = None
        try:
            start = self._start(mode, name, config, resume_step, writes, created)
        except BaseException as exc:
            error = exc
            lifecycle.undo_start(created)
        if self.layers.sharding.active:
            self._agree_on_start(error, start, writes, created)
        if error is not None:
            raise error
        assert start is not None
        return start

    def _start(
        self,
        mode: str,
        name: str | None,
        config: object,
        resume_step: int | None,
        writes: bool,
        created: list[storage.Where],
    ) -> RunStart:
        opt, view = self._view.optimizer, self._view
        taken = optimizer_step_count(opt) if opt is not None else None
        device = self.layers.device
        optimizer = lifecycle.optimizer_meta(opt, view.sgg, view.shadow)

        def new_meta() -> RunJson:
            clustered = self.layers.clustered if view.clusterer is not None else set()
            return run_meta.new_run_json(
                name=name or self.run_dir.resolve().name,
                config=config,
                optimizer=optimizer,
                model=run_meta.model_summary(self.model, clustered),
                seed=self.seed,
                recording=recording_meta(self.options),
                device=device,
                source=self.source,
                settings=self.settings,
            )

        if not writes:  # a sharded run's rank != 0: run.json in memory; the ranks agree on the step
            return lifecycle.new_start(new_meta(), taken)
        start = lifecycle.open_run(
            self.run_dir,
            mode,
            new_meta=new_meta,
            refresh={
                "optimizer": optimizer,
                "recording": recording_meta(self.options),
                "host": run_meta.host_info(device),
            },
            optimizer_steps=taken,
            resume_step=resume_step,
            created=created,
        )
        if start.segment > 0:  # a resume: describe the refreshed optimizer
            start.meta["description"] = run_meta.describe(
                start.meta, source=self.source, settings=self.settings
            )
        return start

    def _agree_on_start(
        self,
        error: BaseException | None,
        start: RunStart | None,
        writes: bool,
        created: list[storage.Where],
    ) -> None:
        """Sharded runs: every rank learns whether any rank failed to start, and the step rank 0
        starts from (a resume), with one all-reduce over the world."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return
        step = start.step if start is not None and error is None and writes else 0
        flags = torch.tensor([int(error is not None), step], device=self.layers.sharding.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        failed, step = (int(x) for x in flags.tolist())
        if failed and error is None:
            lifecycle.undo_start(created)
            raise RecorderError(
                5, f"recorder for {self.run_dir} failed to start on another rank", str(self.run_dir)
            )
        if not writes and start is not None and error is None:
            start.step = step
            start.meta["last_flushed_step"] = step or None

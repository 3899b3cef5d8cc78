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

This file only wires the parts together: `lifecycle` opens/resumes/finishes the run directory,
`layers` names and orders the parameters, `hooks` runs inside the optimizer, `probes` read the
optimizer and the parameters as named columns on the device, `buffer` keeps rows until a flush
and builds the columns, `writer` writes chunks. Hooks: the optimizer's step pre-/post-hooks
(timing, norms, layer statistics), SGG's re-cluster hook (clusters, histograms) and its
`state_dict` pre-hook (a checkpoint flushes the record, so a resume from it finds every step it
restores).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recorder import lifecycle, run_meta
from recorder.buffer import RecordBuffer
from recorder.hooks import StepHooks
from recorder.layers import RecordedLayers
from recorder.lifecycle import MODES, optimizer_step_count, unwrap_optimizer
from recorder.options import RecorderOptions
from recorder.sinks import ScalarSink
from recorder.writer import ChunkWriter, RecorderError, compact
from runformat import schema, storage

RECORDING_SOURCES = ("recorded", "hf", "lightning")  # who records: run.json's description.source

__all__ = ["MODES", "Recorder", "RecorderOptions", "optimizer_step_count", "unwrap_optimizer"]


def _check_loss(loss: Any) -> Tensor | float | None:
    """The loss as a detached 0-d tensor or a float; a ValueError at once (nothing buffered)
    for anything that is not one real number."""
    if loss is None:
        return None
    if torch.is_tensor(loss):
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


class Recorder(StepHooks):
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
            receive each step's scalars when its rows are flushed.
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
        config: Any = None,
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
        for sink in sinks:
            if not isinstance(sink, ScalarSink):
                raise ValueError(f"sinks: {sink!r} lacks log_scalars(step, scalars) / close()")
        self.sinks: tuple[ScalarSink, ...] = tuple(sinks)
        self.options = dataclasses.replace(options or RecorderOptions(), **kwargs)
        self.run_dir = storage.locate(run_dir)  # a Path, or an ObjectPath for s3:// and gs://
        self.optimizer = optimizer
        self.model = model
        self.seed = seed
        self.source = source
        self.settings = settings
        self.closed = False
        self._handles: list[Any] = []
        self._sgg = optimizer if optimizer is not None and lifecycle.is_sgg(optimizer) else None
        self._shadow = None
        if shadow is not None:
            from sgg import SGG  # only a shadow run needs sgg at all

            self._shadow = SGG(optimizer, observe_only=True, **dict(shadow))
        self._clusterer = self._sgg or self._shadow
        self.layers = RecordedLayers.build(
            optimizer,
            model,
            self._clusterer,
            quantile_sample=self.options.quantile_sample,
            membership_sample=self.options.membership_sample,
            seed=seed,
        )
        self._sharding = self.layers.sharding
        # Sharded (FSDP2) parameters: every rank records (the statistics are collectives), only
        # global rank 0 writes. Without DTensors nothing changes and no collective runs.
        self._writes = not self._sharding.active or lifecycle.global_rank() == 0
        self._created: list[storage.Where] = []
        error: BaseException | None = None
        try:
            # Hooks first: an optimizer that cannot be hooked fails before anything is on disk.
            self._attach()
            self._start(mode, name, config, resume_step)
        except BaseException as exc:
            error = exc
            self._undo_start()
        if self._sharding.active:
            self._agree_on_start(error)  # every rank fails together, or starts at one step
        if error is not None:
            raise error

    # ------------------------------------------------------------------ public API
    def log_step(
        self,
        step: int | None = None,
        loss: Tensor | float | None = None,
        tokens: int | None = None,
    ) -> None:
        """Log the loss (and tokens) of the optimizer step just taken.

        The step is the optimizer's step count (1 after the first `optimizer.step()`); `step`,
        when given, must equal it: a 0-based counter or a count of micro-batches is a
        ValueError naming both numbers, never a silently shifted record. `loss` must be one
        number (a 0-d or one-element tensor stays on its device until the next flush);
        anything else is a ValueError here, before anything is buffered. `tokens` is the
        number of tokens this step processed (the recorder keeps the cumulative count).
        Call it before saving a checkpoint: `optimizer.state_dict()` writes the step.
        """
        self._check_open()
        loss = _check_loss(loss)
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
            raise ValueError(f"step must be an int or None, got {step!r}")
        # No torch step hooks (a duck-typed optimizer): each new step is measured here, and
        # the snapshot for the next update norm is taken now (log_step to log_step).
        new_step = step is None or int(step) == self._step + 1
        if self.optimizer is not None and not self._hooks and new_step:
            self._after_step()
            self._pre_step()
        if self.optimizer is None:
            self._step = self._step + 1 if step is None else max(self._step, int(step))
        current = self._step
        if step is not None and int(step) != current:
            hint = " (a 0-based loop: log after opt.step() with step + 1, or leave step out)"
            raise ValueError(
                f"log_step(step={int(step)}) disagrees with the optimizer, which has taken "
                f"{current} steps{hint if int(step) == current - 1 else ''}; the recorded step "
                "is the optimizer's step count: pass that or leave step out"
            )
        if current == 0:
            raise ValueError("log_step() before the first optimizer.step(): nothing to log yet")
        if current <= (self.meta.get("last_flushed_step") or 0) and current not in self.buffer.rows:
            raise ValueError(
                f"log_step for step {current} arrived after that step was written (a flush or "
                "a checkpoint's optimizer.state_dict() since the step): call log_step right "
                "after optimizer.step(), before saving a checkpoint"
            )
        if tokens is not None:
            self._tokens = (self._tokens or 0) + int(tokens)
        row = self.buffer.row(current)
        row.setdefault("wall", self._wall())
        if loss is not None:
            row["loss"] = loss
        row["tokens"] = self._tokens
        if (
            len(self.buffer.rows) >= self.options.flush_every_steps
            or time.monotonic() - self._last_flush_time >= self.options.flush_every_seconds
            or (
                self.options.max_buffer_rows
                and self.buffer.pending_rows >= self.options.max_buffer_rows
            )
        ):
            self._flush(upto=current)

    def log_eval(
        self,
        *args: Any,
        loss: Tensor | float | None = None,
        step: int | None = None,
        split: str = "val",
        tokens: int | None = None,
        batch_losses: Sequence[float] | None = None,
    ) -> None:
        """Log an evaluation: `log_eval(loss, *, step=None, split="val", batch_losses=None)`.

        `step` defaults to the optimizer's step count. With `batch_losses` (the per-batch eval
        losses) the row also holds their sample standard deviation (`loss_std`, ddof=1) and
        count (`n_batches`), and `loss` defaults to their mean: a single run's eval loss then
        carries an interval. The older form `log_eval(step, loss)` is accepted too.
        """
        self._check_open()
        if len(args) > 2:
            raise TypeError(f"log_eval takes at most 2 positional arguments, got {len(args)}")
        if len(args) == 2 or (len(args) == 1 and loss is not None):  # log_eval(step, loss)
            step = args[0] if step is None else step
            loss = args[1] if len(args) == 2 else loss
        elif len(args) == 1:
            loss = args[0]
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
        self.buffer.evals.append(
            {
                "step": self._step if step is None else int(step),
                "tokens": self._tokens if tokens is None else int(tokens),
                "wall_time": self._wall(),
                "split": str(split),
                "loss": float(value),
                "loss_std": float(np.std(losses, ddof=1)) if losses and len(losses) > 1 else None,
                "n_batches": len(losses) if losses is not None else None,
            }
        )

    def flush(self) -> None:
        """Write every buffered row now (a checkpoint's `optimizer.state_dict()` does this)."""
        self._check_open()
        self._flush(upto=None)

    def close(
        self, status: str = schema.STATUS_FINISHED, error: BaseException | None = None
    ) -> None:
        """Flush, detach the hooks, close the sinks and mark the run `status`. Idempotent."""
        if self.closed:
            return
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._broken is not None and status == schema.STATUS_FINISHED:
            status, error = schema.STATUS_FAILED, error or self._broken
        try:
            if self._broken is None:
                self._flush(upto=None)
            if self.options.compact_on_close and status == schema.STATUS_FINISHED:
                self.compact()
        except BaseException as exc:
            if status == schema.STATUS_FINISHED:
                status, error = schema.STATUS_FAILED, exc
            raise
        finally:
            self.closed = True
            for sink in self.sinks:
                self._call_sink(sink, "close")
            lifecycle.finish(self.meta, status, error)
            if self._writes:
                run_meta.write_run_json(self.run_dir, self.meta)

    def compact(self) -> list[str]:
        """Merge each table's chunks into one file (see docs/run-format.md)."""
        if not self._writes:
            return []
        done = [t for t in schema.TABLES if compact(self.run_dir, t, self.segment)]
        self.meta["compacted"] = sorted(set(self.meta.get("compacted") or []) | set(done))
        return done

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (including those before a resume)."""
        return self._step

    @property
    def peak_buffer_bytes(self) -> int:
        """Most device memory the recorder held at once (buffered statistics + snapshot)."""
        return self.buffer.peak_tensor_bytes + self.snapshot_bytes

    @property
    def snapshot_bytes(self) -> int:
        """The parameter copy of `update_norm="snapshot"` (0 at the default settings)."""
        return sum(t.nbytes for t in self._snapshot) if self._snapshot is not None else 0

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close(schema.STATUS_FAILED, exc)
        except Exception as close_exc:  # never hide the training error
            warnings.warn(
                f"recorder could not mark {self.run_dir} failed: {close_exc}", stacklevel=2
            )

    # ------------------------------------------------------------------ start
    def _start(self, mode: str, name: str | None, config: Any, resume_step: int | None) -> None:
        taken = optimizer_step_count(self.optimizer) if self.optimizer is not None else None
        device = self.layers.device

        def new_meta() -> dict[str, Any]:
            clustered = self.layers.clustered if self._clusterer is not None else set()
            return run_meta.new_run_json(
                name=name or self.run_dir.resolve().name,
                config=config,
                optimizer=lifecycle.optimizer_meta(self.optimizer, self._sgg, self._shadow),
                model=run_meta.model_summary(self.model, clustered),
                seed=self.seed,
                recording=self._recording_meta(),
                device=device,
                source=self.source,
                settings=self.settings,
            )

        if self._writes:
            start = lifecycle.open_run(
                self.run_dir,
                mode,
                new_meta=new_meta,
                refresh={
                    "optimizer": lifecycle.optimizer_meta(self.optimizer, self._sgg, self._shadow),
                    "recording": self._recording_meta(),
                    "host": run_meta.host_info(device),
                },
                optimizer_steps=taken,
                resume_step=resume_step,
                created=self._created,
            )
        else:  # a sharded run's rank != 0: run.json in memory; `_agree_on_start` sets the step
            start = lifecycle.new_start(new_meta(), taken)
        self.meta = start.meta
        if start.segment > 0 and self._writes:  # a resume: describe the refreshed optimizer
            self.meta["description"] = run_meta.describe(
                self.meta, source=self.source, settings=self.settings
            )
        self.segment = start.segment
        self._step = start.step
        self._time_offset = start.time_offset
        self._tokens = start.tokens
        self.writer = ChunkWriter(self.run_dir, self.segment)
        self.buffer = RecordBuffer(self.layers.names, [p.numel() for p in self.layers.params])
        self._t0 = time.monotonic()
        self._last_flush_time = self._t0
        self._broken: OSError | None = None  # a failed write stops all further writes
        self._recluster_steps: set[int] = set()
        self._snapshot: list[Tensor] | None = None
        self._in_step = False
        self._step_started: Any = None  # perf_counter() or a CUDA event, set by the pre-hook
        self._factor_mean: Tensor | None = None  # latest model-wide mean SGG factor
        self._failed_sinks: set[int] = set()
        if self._shadow is not None:  # the shadow's clock is the optimizer's
            self._shadow.sgg_step = self._step

    def _recording_meta(self) -> dict[str, Any]:
        recording = dataclasses.asdict(self.options)
        recording["quantiles"] = list(schema.QUANTILES)
        recording["quantile_method"] = (
            "torch.quantile (linear) over a fixed random subsample of quantile_sample positions "
            "per layer (all positions, repeated, for smaller layers)"
        )
        recording["histogram_edges"] = "exact layer min..max; momentum linear, adaptive_lr log10"
        recording["histogram_layers"] = "clustered layers (tensors with >= 2 dims without SGG)"
        recording["step"] = "optimizer steps taken (SGG's sgg_step or the base's step state)"
        recording["update_norm_method"] = {
            "state": "layer-statistics steps: from the post-step Adam state (no parameter copy)",
            "snapshot": "every step: parameter copy before the step",
            "off": "not recorded",
        }[self.options.update_norm]
        return recording

    def _undo_start(self) -> None:
        """A failed start: detach the hooks and remove what this start created on disk."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.closed = True
        lifecycle.undo_start(self._created)

    def _agree_on_start(self, error: BaseException | None) -> None:
        """Sharded runs: every rank learns whether any rank failed to start, and the step rank 0
        starts from (a resume), with one all-reduce over the world."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return
        step = self._step if error is None and self._writes else 0
        flags = torch.tensor([int(error is not None), step], device=self._sharding.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        failed, step = (int(x) for x in flags.tolist())
        if failed and error is None:
            self._undo_start()
            raise RecorderError(
                5, f"recorder for {self.run_dir} failed to start on another rank", str(self.run_dir)
            )
        if not self._writes and error is None:
            self._step = step
            self.meta["last_flushed_step"] = step or None

    def _attach(self) -> None:
        opt = self.optimizer
        self._hooks = opt is not None and hasattr(opt, "register_step_post_hook")
        if opt is None:
            return
        if self._hooks:
            self._handles.append(opt.register_step_pre_hook(self._pre_step))
            self._handles.append(opt.register_step_post_hook(self._post_step))
        if hasattr(opt, "register_state_dict_pre_hook"):  # a checkpoint flushes the record
            self._handles.append(opt.register_state_dict_pre_hook(self._on_state_dict))
        if self._sgg is not None:
            self._handles.append(self._sgg.register_recluster_hook(self._on_recluster))
        if self._shadow is not None:
            self._handles.append(self._shadow.register_recluster_hook(self._on_shadow_recluster))

    # ------------------------------------------------------------------ flushing
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"recorder for {self.run_dir} is closed")

    def _flush(self, upto: int | None) -> None:
        """Write rows with step <= upto (all when None) as one chunk per table, then run.json."""
        rows = [self.buffer.rows[s] for s in sorted(self.buffer.rows) if upto is None or s <= upto]
        n_evals = len(self.buffer.evals)
        if not self._writes:  # a sharded run's rank != 0: the same bookkeeping, no file
            steps = sorted(s for s in self.buffer.rows if upto is None or s <= upto)
            self._forget(steps, upto, n_evals)
            return
        tables, steps = self.buffer.take(upto)
        if self._broken is not None:
            raise RecorderError(
                self._broken.errno or 5,
                f"recorder for {self.run_dir} stopped after a failed write: {self._broken}",
                str(self.run_dir),
            ) from self._broken
        try:
            for table, columns in tables.items():
                self.writer.write(table, columns)
        except OSError as exc:
            # Some tables may hold this chunk and others not; run.json still names the last
            # complete step, and a resume drops everything after it.
            self._broken = exc
            raise
        if self.sinks:
            for step, scalars in RecordBuffer.sink_scalars(tables["steps"], rows):
                for sink in self.sinks:
                    self._call_sink(sink, "log_scalars", step, scalars)
        # Everything up to `flushed` is on disk: forget it, then say so in run.json.
        self._forget(steps, upto, n_evals)
        run_meta.write_run_json(self.run_dir, self.meta)

    def _forget(self, steps: list[int], upto: int | None, n_evals: int) -> None:
        self.buffer.forget(steps, upto, n_evals)
        last = self.meta.get("last_flushed_step")
        flushed = upto if upto is not None else max([self._step, *steps], default=0)
        if upto is None and not steps and last is not None:
            flushed = max(flushed, last)
        if steps or upto is None:
            self.meta["last_flushed_step"] = max(flushed, last or 0)
        self._last_flush_time = time.monotonic()

    def _call_sink(self, sink: Any, method: str, *args: Any) -> None:
        if id(sink) in self._failed_sinks:
            return
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # mirroring never stops a training
            self._failed_sinks.add(id(sink))
            warnings.warn(
                f"recorder sink {sink!r} failed ({exc}); it is skipped from now on", stacklevel=4
            )

"""The recorder's hooks: what it does inside `optimizer.step()`, at a re-cluster, at a checkpoint.

`StepHooks` is the half of `Recorder` that the optimizer calls (the pre-/post-step hooks, SGG's
re-cluster hook, the `state_dict` pre-hook): it counts the step, runs the probes
(`recorder.probes`) and hands their named columns to the buffer. Nothing here reaches the host:
the flush does (`Recorder._flush`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from recorder import probes


class StepHooks:
    """Hook methods of `Recorder` (a mixin: the state they use is set by `Recorder`)."""

    # set by Recorder
    layers: Any
    options: Any
    buffer: Any
    optimizer: Any
    closed: bool

    def _wall(self) -> float:
        return self._time_offset + (time.monotonic() - self._t0)

    def _clock(self) -> Any:
        """A point in time: a recorded CUDA event on a CUDA run (read at flush: no sync now),
        else `time.perf_counter()`."""
        device = self.layers.device
        if device is not None and device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _pre_step(self, *_: Any) -> None:
        if self.options.update_norm == "snapshot":
            with torch.no_grad():
                params = self.layers.local_params()
                if self._snapshot is None:
                    self._snapshot = [p.clone() for p in params]
                else:
                    torch._foreach_copy_(self._snapshot, params)
        self._in_step = True
        self._step_started = self._clock()

    def _post_step(self, *_: Any) -> None:
        started, self._step_started = self._step_started, None
        self._after_step(None if started is None else (started, self._clock()))

    def _on_state_dict(self, *_: Any) -> None:
        """The optimizer is being checkpointed: write everything up to its step now, so that a
        resume from this checkpoint finds every step it restores."""
        if not self.closed and self._broken is None:
            self._flush(upto=None)

    @torch.no_grad()
    def _after_step(self, timing: tuple[Any, Any] | None = None) -> None:
        if self.closed:
            return
        if self._shadow is not None:
            self._shadow.observe_step()  # after the base step: same clock as an SGG run
        self._step += 1
        step = self._step
        if not self.layers.params:
            return
        layer_step = step % self.options.layer_stride == 0
        norms = probes.gradient_norms(self.layers)
        mode = self.options.update_norm
        if mode == "snapshot" and self._snapshot is not None and self._in_step:
            norms |= probes.snapshot_update_norms(self.layers, self._snapshot)
        elif mode == "state" and layer_step:
            norms |= probes.state_update_norms(self.layers, self.optimizer, step, self._sgg)
        if mode == "snapshot" or layer_step:
            norms |= probes.parameter_norms(self.layers)
        self._in_step = False
        reclustered = step in self._recluster_steps
        if self._clusterer is not None:
            reclustered = reclustered or bool(self._clusterer.reclustered_last_step)
        self._recluster_steps.discard(step)
        row = self.buffer.row(step)
        row.update(
            norms=norms,
            lrs=[float(group["lr"]) for group in self.optimizer.param_groups],
            reclustered=reclustered,
            wall=self._wall(),
            timing=timing,
            factor=self._factor_mean,
        )
        self.buffer.add_tensors(list(norms.values()), rows=len(self.optimizer.param_groups))
        if layer_step:
            self._record_layers(step, norms)
        every = self.options.histogram_every
        if self._clusterer is None and every and step % every == 0:
            self._record_histograms(step, shadow=False, states=None)
        if len(self.buffer.rows) > 2 * self.options.flush_every_steps or (
            self.options.max_buffer_rows
            and self.buffer.pending_rows > 2 * self.options.max_buffer_rows
        ):
            self._flush(upto=step - 1)  # log_step(step) may still bring this step's loss

    def _record_layers(self, step: int, norms: dict[str, Tensor]) -> None:
        n = len(self.layers)
        nan = torch.full((n,), float("nan"), device=self.layers.device)
        columns = {c: norms.get(c, nan) for c in ("grad_norm", "param_norm", "update_norm")}
        columns["update_to_weight"] = columns["update_norm"] / columns["param_norm"]
        columns |= probes.moment_columns(
            self.layers, self.optimizer, step, self.options.quantile_sample
        )
        columns |= probes.factor_columns(self.layers, self._sgg)
        self.buffer.add_layers(step, columns)

    def _record_histograms(self, step: int, shadow: bool, states: dict[int, Any] | None) -> None:
        items = probes.histograms(
            self.layers, self.optimizer, step, self.options.histogram_bins, states
        )
        self.buffer.add_histograms(step, shadow, items)

    def _on_shadow_recluster(self, opt: Any, step: int) -> None:
        self._on_recluster(opt, step, shadow=True)

    @torch.no_grad()
    def _on_recluster(self, opt: Any, step: int, shadow: bool = False) -> None:
        if self.closed:
            return
        # Inside optimizer.step(): this is step `self._step + 1` by the recorder's count (the
        # optimizer's own, restored with it), so cluster rows and step rows always agree.
        step = self._step + 1
        self._recluster_steps.add(step)
        states, records = probes.cluster_record(self.layers, opt)
        factor = probes.model_factor_mean(records)
        if factor is not None:
            self._factor_mean = factor
        global_mda = opt.global_mda
        rows = sum(
            r["sizes"].numel() * (1 + r["sizes"].numel()) + r["members"].numel() for r in records
        )
        self.buffer.add_clusters(
            {
                "step": step,
                "shadow": shadow,
                "global_mda": None if global_mda is None else global_mda.detach().clone(),
                "layers": records,
            },
            rows,
        )
        self._record_histograms(step, shadow, states)

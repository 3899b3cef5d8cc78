"""The recorder's hooks: what it does inside `optimizer.step()`, at a re-cluster, at a checkpoint.

`StepHooks` receives everything it touches explicitly (the layers, the options, the optimizer
view, the step state, the buffer and the flusher) and registers its methods on the optimizer:
the step pre-/post-hooks (timing, norms, layer statistics), SGG's re-cluster hook (clusters,
histograms) and the `state_dict` pre-hook (a checkpoint waits until the record reaches it).
It counts the step, runs the probes (`recorder.probes`) and buffers their tensors. Nothing
here reaches the host: the background writer does (`recorder.flushing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from recorder import probes
from recorder.buffer import RecordBuffer
from recorder.flushing import Flusher
from recorder.layers import RecordedLayers
from recorder.options import RecorderOptions
from recorder.records import ClusterRecord
from recorder.state import Clusterer, HistogramSchedule, OptimizerView, StepState, Timing, clock

if TYPE_CHECKING:
    from sgg import ClusterState

_NORM_COLUMNS = ("grad_norm", "param_norm", "update_norm")


class StepHooks:
    """The optimizer's view of the recorder (registered by `attach`, removed by
    `OptimizerView.detach`)."""

    def __init__(
        self,
        *,
        layers: RecordedLayers,
        options: RecorderOptions,
        view: OptimizerView,
        state: StepState,
        buffer: RecordBuffer,
        flusher: Flusher,
    ) -> None:
        self.layers = layers
        self.options = options
        self.view = view
        self.state = state
        self.buffer = buffer
        self.flusher = flusher
        self.histograms = HistogramSchedule(options.histogram_every, options.histogram_bins)

    def attach(self) -> None:
        """Register on the optimizer (and on SGG or the shadow); the handles go to the view."""
        view, opt = self.view, self.view.optimizer
        if opt is None:
            return
        if view.has_step_hooks:
            view.handles.append(opt.register_step_pre_hook(self.pre_step))
            view.handles.append(opt.register_step_post_hook(self.post_step))
        if hasattr(opt, "register_state_dict_pre_hook"):  # a checkpoint flushes the record
            view.handles.append(opt.register_state_dict_pre_hook(self.on_state_dict))
        if view.sgg is not None:
            view.handles.append(view.sgg.register_recluster_hook(self.on_recluster))
        if view.shadow is not None:
            view.handles.append(view.shadow.register_recluster_hook(self.on_shadow_recluster))

    # ------------------------------------------------------------------ optimizer step
    def pre_step(self, *_: object) -> None:
        state = self.state
        if self.options.update_norm == "snapshot":
            with torch.no_grad():
                params = self.layers.local_params()
                if state.snapshot is None:
                    state.snapshot = [p.clone() for p in params]
                else:
                    torch._foreach_copy_(state.snapshot, params)
        state.in_step = True
        state.started = clock(self.layers.device)

    def post_step(self, *_: object) -> None:
        started, self.state.started = self.state.started, None
        self.after_step(None if started is None else (started, clock(self.layers.device)))

    def on_state_dict(self, *_: object) -> None:
        """The optimizer is being checkpointed: everything up to its step is written before
        the checkpoint is, so that a resume from it finds every step it restores."""
        if self.flusher.error is None:
            self.flusher.flush_and_wait(self.state.step)

    @torch.no_grad()
    def after_step(self, timing: Timing | None = None) -> None:
        """The step just taken: count it, measure it, buffer it."""
        view, state = self.view, self.state
        if view.shadow is not None:
            view.shadow.observe_step()  # after the base step: same clock as an SGG run
        state.step += 1
        step = state.step
        if not self.layers.params:
            return
        layer_step = step % self.options.layer_stride == 0
        norms = self._norms(step, layer_step)
        state.in_step = False
        reclustered = step in state.recluster_steps
        if view.clusterer is not None:
            reclustered = reclustered or bool(view.clusterer.reclustered_last_step)
        state.recluster_steps.discard(step)
        row = self.buffer.row(step)
        row.norms = norms
        row.lrs = [float(group["lr"]) for group in view.param_groups]
        row.reclustered = reclustered
        row.wall = state.wall()
        row.timing = timing
        row.factor = state.factor_mean
        self.buffer.add_tensors(norms.values(), rows=len(view.param_groups))
        if layer_step:
            self._record_layers(step, norms)
        if view.clusterer is None and self.histograms.due_without_clusters(step):
            self._record_histograms(step, shadow=False, states=None)
        if self.flusher.policy.overdue(self.buffer):
            self.flusher.flush(step - 1, step)  # log_step(step) may still bring this step's loss

    def _norms(self, step: int, layer_step: bool) -> dict[str, Tensor]:
        """{column: (L,)}: gradient norms every step; update and parameter norms per
        `update_norm` (every step from the snapshot, or on layer steps from the state)."""
        state, mode = self.state, self.options.update_norm
        norms = probes.gradient_norms(self.layers)
        if mode == "snapshot" and state.snapshot is not None and state.in_step:
            norms |= probes.snapshot_update_norms(self.layers, state.snapshot)
        elif mode == "state" and layer_step:
            norms |= probes.state_update_norms(
                self.layers, self.view.optimizer, step, self.view.sgg
            )
        if mode == "snapshot" or layer_step:
            norms |= probes.parameter_norms(self.layers)
        return norms

    def _record_layers(self, step: int, norms: dict[str, Tensor]) -> None:
        n = len(self.layers)
        nan = torch.full((n,), float("nan"), device=self.layers.device)
        columns = {c: norms.get(c, nan) for c in _NORM_COLUMNS}
        columns["update_to_weight"] = columns["update_norm"] / columns["param_norm"]
        columns |= probes.moment_columns(
            self.layers, self.view.optimizer, step, self.options.quantile_sample
        )
        columns |= probes.factor_columns(self.layers, self.view.sgg)
        self.buffer.add_layers(step, columns)

    def _record_histograms(
        self, step: int, shadow: bool, states: dict[int, ClusterState] | None
    ) -> None:
        items = probes.histograms(
            self.layers, self.view.optimizer, step, self.histograms.bins, states
        )
        self.buffer.add_histograms(step, shadow, items)

    # ------------------------------------------------------------------ re-cluster
    def on_shadow_recluster(self, opt: Clusterer, step: int) -> None:
        self.on_recluster(opt, step, shadow=True)

    @torch.no_grad()
    def on_recluster(self, opt: Clusterer, step: int, shadow: bool = False) -> None:
        # Inside optimizer.step(): this is step `state.step + 1` by the recorder's count (the
        # optimizer's own, restored with it), so cluster rows and step rows always agree.
        step = self.state.step + 1
        self.state.recluster_steps.add(step)
        states, records = probes.cluster_record(self.layers, opt)
        factor = probes.model_factor_mean(records)
        if factor is not None:
            self.state.factor_mean = factor
        global_mda = opt.global_mda
        self.buffer.add_clusters(
            ClusterRecord(
                step=step,
                shadow=shadow,
                global_mda=None if global_mda is None else global_mda.detach().clone(),
                layers=records,
            )
        )
        self._record_histograms(step, shadow, states)

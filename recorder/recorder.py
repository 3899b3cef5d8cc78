"""`Recorder`: attach to an optimizer (SGG or any torch optimizer) and a model, write a run.

Usage from a plain training loop::

    with Recorder("runs/sgg", optimizer=opt, model=model, config=cfg) as rec:
        for step in range(1, n_steps + 1):
            loss = model(x, labels=y).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=x.numel())

The recorder hooks `optimizer.step()` (pre-hook: snapshot the parameters for the update norm;
post-hook: norms, moment statistics, shadow clustering) and SGG's re-cluster hook. Everything is
computed on the parameters' device and kept there as small tensors; the host sees them once per
flush (the only host-device sync points are in `_flush`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recorder import run_meta, stats
from recorder.sharding import Sharding, local
from recorder.sinks import ScalarSink
from recorder.writer import (
    ChunkWriter,
    RecorderError,
    RunExistsError,
    compact,
    make_dirs,
    read_table,
    truncate_after,
)
from runformat import schema

MODES = ("new", "resume", "overwrite")


@dataclasses.dataclass(frozen=True)
class RecorderOptions:
    layer_stride: int = 10  # per-layer statistics every this many steps (1: every step)
    flush_every_steps: int = 100  # write a chunk at least every this many steps ...
    flush_every_seconds: float = 30.0  # ... and at least this often (also the heartbeat)
    max_buffer_rows: int = 100_000  # flush early when this many table rows are waiting
    quantile_sample: int = 4096  # fixed random positions per layer for the quantiles
    membership_sample: int = 256  # fixed random positions per layer for `membership`
    histogram_bins: int = 64
    histogram_every: int = 500  # whole-layer histograms for runs without clustering (0: never)
    track_update_norm: bool = True  # keep one parameter snapshot to measure the update each step
    compact_on_close: bool = False  # merge each table's chunks into one file at close()

    def __post_init__(self) -> None:
        for name in ("layer_stride", "flush_every_steps", "quantile_sample", "histogram_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("membership_sample", "histogram_every", "max_buffer_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not self.flush_every_seconds > 0:
            raise ValueError(f"flush_every_seconds must be > 0, got {self.flush_every_seconds!r}")


def _is_sgg(opt: Any) -> bool:
    return hasattr(opt, "register_recluster_hook") and hasattr(opt, "cluster_state")


def unwrap_optimizer(optimizer: Any) -> Any:
    """The optimizer under `accelerate`'s `AcceleratedOptimizer` (and similar `.optimizer`
    wrappers): the one whose step hooks fire and that SGG is."""
    seen = 0
    while (
        not hasattr(optimizer, "register_recluster_hook")
        and isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer)
        and seen < 8
    ):
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


def _base(opt: Any) -> Any:
    return getattr(opt, "base_optimizer", opt)


def optimizer_step_count(opt: Any) -> int:
    """Optimizer steps taken so far, as the optimizer's state says (restored with a
    checkpoint): SGG's `sgg_step`, else the largest `step` in the base optimizer's state
    (0 for a fresh optimizer). The recorder's one source of truth for the step."""
    if opt is None:
        return 0
    if hasattr(opt, "sgg_step"):
        return int(opt.sgg_step)
    steps = [
        st["step"] for st in _base(opt).state.values() if isinstance(st, dict) and "step" in st
    ]
    if not steps:
        return 0
    return int(max(float(local(t)) if torch.is_tensor(t) else float(t) for t in steps))


def _check_loss(loss: Any) -> Tensor | float | None:
    """The loss as a detached 0-d tensor or a float; a ValueError at once (nothing buffered)
    for anything that is not one number."""
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


def _hyperparameters(opt: Any) -> dict[str, Any]:
    groups = opt.param_groups
    if not groups:
        return {}
    return {k: run_meta.jsonable(v) for k, v in groups[0].items() if k != "params"}


def _sgg_options(opt: Any) -> dict[str, Any] | None:
    cfg = getattr(opt, "config", None)
    if cfg is None:
        return None
    if dataclasses.is_dataclass(cfg):
        return run_meta.jsonable(dataclasses.asdict(cfg))
    return run_meta.jsonable(cfg)


def _global_rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class Recorder:
    """Writes one run directory (see docs/run-format.md) for one training run.

    Args:
        run_dir: the run directory.
        optimizer: any torch optimizer; an `sgg.SGG` is recognised and its clustering recorded.
            A wrapper such as accelerate's `AcceleratedOptimizer` is unwrapped.
        model: the module whose `named_parameters()` name the layers (optional).
        config: free-form JSON-able configuration saved in run.json (a dataclass is fine).
        mode: "new" (the directory must not hold a run), "resume" (continue the run in it, from
            `resume_step` or its `last_flushed_step`) or "overwrite" (delete the run in it).
        shadow: SGG options for an observe-only clustering of a non-SGG optimizer, e.g.
            `dict(n_clusters=3, recluster_interval=100)`; training is unchanged.
        seed: the run's seed (saved; also seeds the recorder's fixed position samples).
        options / **kwargs: `RecorderOptions` (keyword arguments override its fields).
        sinks: objects with `log_scalars(step, scalars)` and `close()` (`recorder.sinks`) that
            receive each step's scalars when its rows are flushed.

    The step is the optimizer's step count (`optimizer_step_count`), restored with the
    optimizer's checkpoint; `optimizer.state_dict()` flushes the record, so a checkpoint saved
    after `log_step` always has the record it needs to resume (docs/recorder.md).
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
        **kwargs: Any,
    ) -> None:
        optimizer = unwrap_optimizer(optimizer) if optimizer is not None else None
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if shadow is not None and optimizer is not None and _is_sgg(optimizer):
            raise ValueError("shadow clustering is for non-SGG optimizers; got an SGG optimizer")
        if shadow is not None and optimizer is None:
            raise ValueError("shadow clustering needs an optimizer")
        if resume_step is not None and (not isinstance(resume_step, int) or resume_step < 0):
            raise ValueError(f"resume_step must be a non-negative int, got {resume_step!r}")
        for sink in sinks:
            if not isinstance(sink, ScalarSink):
                raise ValueError(f"sinks: {sink!r} lacks log_scalars(step, scalars) / close()")
        self.sinks: tuple[ScalarSink, ...] = tuple(sinks)
        self.options = dataclasses.replace(options or RecorderOptions(), **kwargs)
        self.run_dir = Path(run_dir)
        self.optimizer = optimizer
        self.model = model
        self.seed = seed
        self.closed = False
        self._handles: list[Any] = []
        self._sgg = optimizer if optimizer is not None and _is_sgg(optimizer) else None
        self._shadow = None
        if shadow is not None:
            from sgg import SGG  # only a shadow run needs sgg at all

            self._shadow = SGG(optimizer, observe_only=True, **dict(shadow))
        self._clusterer = self._sgg or self._shadow
        self._start_step = optimizer_step_count(optimizer)

        self._init_params()
        # Sharded (FSDP2) parameters: every rank records (the statistics are collectives), only
        # global rank 0 writes. Without DTensors nothing changes and no collective runs.
        self._writes = not self._sharding.active or _global_rank() == 0
        self._created: list[Path] = []
        error: BaseException | None = None
        try:
            # Hooks first: an optimizer that cannot be hooked fails before anything is on disk.
            self._attach()
            if self._writes:
                self._open(mode, name, config, resume_step)
            else:
                self._open_mirror(name, config)
            self._init_buffers()
            if self._shadow is not None:  # the shadow's clock is the optimizer's
                self._shadow.sgg_step = self._step
        except BaseException as exc:
            error = exc
            self._undo_start()
        if self._sharding.active:
            self._agree_on_start(error)  # every rank fails together, or starts at one step
        if error is not None:
            raise error

    # ------------------------------------------------------------------ set-up
    def _init_params(self) -> None:
        names: dict[int, str] = {}
        if self.model is not None:
            for n, p in self.model.named_parameters():
                names.setdefault(id(p), n)
        params: list[Tensor] = []
        group_of: list[int] = []
        seen: set[int] = set()
        if self.optimizer is not None:
            for gi, group in enumerate(self.optimizer.param_groups):
                for pi, p in enumerate(group["params"]):
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                    params.append(p)
                    group_of.append(gi)
                    names.setdefault(id(p), f"group{gi}.param{pi}")
        elif self.model is not None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            group_of = [0] * len(params)
        if self.model is not None:  # model order for the tables
            order = {id(p): i for i, (_, p) in enumerate(self.model.named_parameters())}
            idx = sorted(range(len(params)), key=lambda i: order.get(id(params[i]), 1 << 30))
            params = [params[i] for i in idx]
            group_of = [group_of[i] for i in idx]
        self._params = params
        self._group_of = group_of
        self._names = [names[id(p)] for p in params]
        self._index = {id(p): i for i, p in enumerate(params)}
        if self._clusterer is not None:
            clustered = {id(p) for p in self._clusterer.clustered_params()}
        else:  # what SGG would cluster: tensors with two or more dimensions
            clustered = {id(p) for p in params if p.dim() >= 2}
        self._clustered = clustered
        gen = torch.Generator().manual_seed(self.seed if self.seed is not None else 0)
        self._sharding = Sharding(params)
        self._q_pos: list[Tensor] = []
        self._m_pos: list[Tensor] = []
        # sharded layers: (slots, local flat indices) of the positions in this rank's block
        self._q_local: dict[int, tuple[Tensor, Tensor]] = {}
        self._m_local: dict[int, tuple[Tensor, Tensor]] = {}
        for i, p in enumerate(params):
            dev = local(p).device
            q = stats.quantile_positions(p.numel(), self.options.quantile_sample, gen)
            m = stats.sample_positions(p.numel(), self.options.membership_sample, gen)
            self._q_pos.append(q.to(dev))
            self._m_pos.append(m.to(dev))
            if self._sharding.is_sharded(i):
                self._q_local[i] = self._sharding.local_positions(i, p.shape, q)
                self._m_local[i] = self._sharding.local_positions(i, p.shape, m)

    def _recording_meta(self) -> dict[str, Any]:
        rec = dataclasses.asdict(self.options)
        rec["quantiles"] = list(schema.QUANTILES)
        rec["quantile_method"] = (
            "torch.quantile (linear) over a fixed random subsample of quantile_sample positions "
            "per layer (all positions, repeated, for smaller layers)"
        )
        rec["histogram_edges"] = "exact layer min..max; momentum linear, adaptive_lr log10"
        rec["histogram_layers"] = "clustered layers (tensors with >= 2 dims without clustering)"
        rec["update_norm"] = "every step" if self.options.track_update_norm else "not recorded"
        return rec

    def _optimizer_meta(self) -> dict[str, Any] | None:
        opt = self.optimizer
        if opt is None:
            return None
        base = _base(opt)
        return {
            "name": "sgg" if self._sgg is not None else type(base).__name__.lower(),
            "base": type(base).__name__,
            "hyperparameters": _hyperparameters(opt),
            "param_groups": len(opt.param_groups),
            "sgg": _sgg_options(self._sgg) if self._sgg is not None else None,
            "shadow": _sgg_options(self._shadow) if self._shadow is not None else None,
        }

    def _open(self, mode: str, name: str | None, config: Any, resume_step: int | None) -> None:
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise RecorderError(
                20, f"run directory {run_dir} exists and is not a directory", str(run_dir)
            )
        has_run = (run_dir / schema.RUN_JSON).is_file()
        if mode == "resume":
            if not has_run:
                raise RecorderError(
                    2, f"cannot resume: no run in {run_dir} (no run.json)", str(run_dir)
                )
            self._resume(resume_step)
            return
        if has_run and mode == "new":
            raise RunExistsError(
                17,
                f"run directory {run_dir} already holds a run; pass mode='resume' or "
                "mode='overwrite' (--resume / --overwrite)",
                str(run_dir),
            )
        if has_run and mode == "overwrite":
            try:
                shutil.rmtree(run_dir)
            except OSError as exc:
                raise RecorderError(
                    exc.errno or 5, f"cannot overwrite {run_dir}: {exc}", str(run_dir)
                ) from exc
        elif run_dir.is_dir() and any(not p.name.startswith(".") for p in run_dir.iterdir()):
            raise RunExistsError(
                17,
                f"run directory {run_dir} exists, is not empty and holds no run; refusing to "
                "write into it",
                str(run_dir),
            )
        for path in (run_dir, run_dir / schema.TABLES_DIR, run_dir / schema.RUN_JSON):
            if not path.exists():
                self._created.append(path)  # removed again if the start fails
        make_dirs(run_dir / schema.TABLES_DIR)
        self._new_meta(name, config)
        run_meta.write_run_json(run_dir, self.meta)

    def _new_meta(self, name: str | None, config: Any) -> None:
        clustered = self._clustered if self._clusterer is not None else set()
        self.meta = run_meta.new_run_json(
            name=name or self.run_dir.resolve().name,
            config=config,
            optimizer=self._optimizer_meta(),
            model=run_meta.model_summary(self.model, clustered),
            seed=self.seed,
            recording=self._recording_meta(),
            device=self._params[0].device if self._params else None,
        )
        self.segment = 0
        self._step = self._start_step
        if self._start_step:
            self.meta["segments"][0]["resume_step"] = self._start_step
        self._time_offset = 0.0
        self._tokens: int | None = None

    def _open_mirror(self, name: str | None, config: Any) -> None:
        """A rank that records but does not write (sharded runs, rank != 0): run.json in memory
        only; `_agree_on_start` sets the step rank 0 starts from."""
        self._new_meta(name, config)

    def _undo_start(self) -> None:
        """A failed start: detach the hooks and remove what this start created on disk (a new or
        overwritten run; a resumed run is left as it was)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.closed = True
        for path in reversed(self._created):
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        self._created.clear()

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

    def _resume(self, resume_step: int | None) -> None:
        meta = run_meta.read_run_json(self.run_dir)
        last = meta.get("last_flushed_step") or 0
        step = last if resume_step is None else resume_step
        if self.optimizer is not None:
            taken = self._start_step
            if resume_step is not None and resume_step != taken:
                raise ValueError(
                    f"resume_step={resume_step} disagrees with the optimizer, which has taken "
                    f"{taken} steps: load the checkpoint's optimizer state_dict first (the "
                    "record resumes at the optimizer's step; resume_step may be left out)"
                )
            if taken == 0 and last > 0 and resume_step is None:
                raise ValueError(
                    f"cannot resume {self.run_dir}: the optimizer has taken 0 steps but the run "
                    f"holds steps up to {last}; load the checkpoint's optimizer state_dict "
                    "before resuming, or pass resume_step=0 to restart the record"
                )
            step = taken
        if step > last:
            raise RecorderError(
                22,
                f"cannot resume {self.run_dir} at step {step}: only steps up to {last} are on disk",
                str(self.run_dir),
            )
        truncate_after(self.run_dir, step)
        steps = read_table(self.run_dir, "steps").to_pandas()
        done = steps[steps["step"] <= step]
        self._time_offset = float(done["wall_time"].max()) if len(done) else 0.0
        tok = done["tokens"].dropna()
        self._tokens = int(tok.iloc[done["step"][tok.index].argmax()]) if len(tok) else None
        self.segment = len(meta.get("segments") or [])
        meta["segments"] = [
            *(meta.get("segments") or []),
            {"segment": self.segment, "resume_step": step, "started_at": run_meta.utc_now()},
        ]
        meta.update(
            status=schema.STATUS_RUNNING,
            error=None,
            finished_at=None,
            pid=os.getpid(),
            host=run_meta.host_info(self._params[0].device if self._params else None),
            last_flushed_step=step,
            compacted=[],
        )
        meta["optimizer"] = self._optimizer_meta() or meta.get("optimizer")
        meta["recording"] = self._recording_meta()
        meta.setdefault("versions", run_meta.package_versions())
        self.meta = meta
        self._step = step
        run_meta.write_run_json(self.run_dir, meta)

    def _init_buffers(self) -> None:
        self.writer = ChunkWriter(self.run_dir, self.segment)
        self._t0 = time.monotonic()
        self._last_flush_time = self._t0
        self._rows: dict[int, dict[str, Any]] = {}  # step -> pending `steps` row
        self._layer_buf: list[tuple[int, Tensor]] = []
        self._cluster_buf: list[dict[str, Any]] = []
        self._hist_buf: list[tuple[int, bool, list[tuple[int, tuple[Tensor, ...]]]]] = []
        self._evals: list[dict[str, Any]] = []
        self._pending_rows = 0
        self._broken: OSError | None = None  # a failed write stops all further writes
        self._recluster_steps: set[int] = set()
        self._snap: list[Tensor] | None = None
        self._in_step = False
        self._step_started: Any = None  # perf_counter() or a CUDA event, set by the pre-hook
        self._factor_mean: float | Tensor | None = None  # latest model-wide mean SGG factor
        self._warned: set[str] = set()
        self._failed_sinks: set[int] = set()
        self.peak_buffer_bytes = 0
        self._buffer_bytes = 0

    def _attach(self) -> None:
        opt = self.optimizer
        if opt is None:
            return
        self._hooks = hasattr(opt, "register_step_post_hook")
        if self._hooks:
            self._handles.append(opt.register_step_pre_hook(self._pre_step))
            self._handles.append(opt.register_step_post_hook(self._post_step))
        if hasattr(opt, "register_state_dict_pre_hook"):  # a checkpoint flushes the record
            self._handles.append(opt.register_state_dict_pre_hook(self._on_state_dict))
        if self._sgg is not None:
            self._handles.append(self._sgg.register_recluster_hook(self._on_recluster))
        if self._shadow is not None:
            self._handles.append(self._shadow.register_recluster_hook(self._on_shadow_recluster))

    # ------------------------------------------------------------------ hooks
    def _wall(self) -> float:
        return self._time_offset + (time.monotonic() - self._t0)

    def _local_params(self) -> list[Tensor]:
        """The parameters, or for sharded ones the rank's local shard."""
        if self._sharding.active:
            return [local(p.detach()) for p in self._params]
        return [p.detach() for p in self._params]

    def _pre_step(self, *_: Any) -> None:
        if self.options.track_update_norm:
            with torch.no_grad():
                params = self._local_params()
                if self._snap is None:
                    self._snap = [p.clone() for p in params]
                else:
                    torch._foreach_copy_(self._snap, params)
        self._in_step = True
        self._step_started = self._clock()

    def _clock(self) -> Any:
        """A point in time: a recorded CUDA event on a CUDA run (read at flush: no sync now),
        else `time.perf_counter()`."""
        dev = self._params[0].device if self._params else None
        if dev is not None and dev.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _post_step(self, *_: Any) -> None:
        started, self._step_started = self._step_started, None
        timing = None if started is None else (started, self._clock())
        self._after_step(timing)

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
        params = self._local_params()
        if not params:
            return
        grads = [
            local(p.grad.detach()) if p.grad is not None else q.new_zeros(())
            for p, q in zip(self._params, params, strict=True)
        ]
        g = stats.foreach_norms(grads)
        pn = stats.foreach_norms(params)
        if self._snap is not None and self._in_step:
            torch._foreach_sub_(self._snap, params)  # old - new: the same norm as the update
            u = stats.foreach_norms(self._snap)
        else:
            u = torch.full_like(g, float("nan"))
        if self._sharding.active:  # shard norms -> layer norms: root of the summed squares
            sq = torch.stack([g, pn, u], dim=1).square()
            sq = self._sharding.reduce_rows(sq, list(range(len(params))))
            g, pn, u = sq.sqrt().unbind(1)
        self._in_step = False
        norms = torch.stack([g, pn, u])  # (3, L) on the device; to host at flush
        reclustered = step in self._recluster_steps
        if self._clusterer is not None:
            reclustered = reclustered or bool(self._clusterer.reclustered_last_step)
        self._recluster_steps.discard(step)
        row = self._rows.setdefault(step, {})
        row.update(
            norms=norms,
            lrs=[float(gr["lr"]) for gr in self.optimizer.param_groups],
            reclustered=reclustered,
            wall=self._wall(),
            timing=timing,
            factor=self._factor_mean,
        )
        self._pending_rows += 1 + len(self.optimizer.param_groups)
        self._add_bytes(norms.nbytes)
        if step % self.options.layer_stride == 0:
            self._record_layers(step, g, pn, u)
        every = self.options.histogram_every
        if self._clusterer is None and every and step % every == 0:
            self._record_histograms(step, shadow=False, states=None)
        if len(self._rows) > 2 * self.options.flush_every_steps or (
            self.options.max_buffer_rows and self._pending_rows > 2 * self.options.max_buffer_rows
        ):
            self._flush(upto=step - 1)  # log_step(step) may still bring this step's loss

    def _add_bytes(self, n: int) -> None:
        self._buffer_bytes += n
        self.peak_buffer_bytes = max(
            self.peak_buffer_bytes, self._buffer_bytes + self.snapshot_bytes
        )

    @property
    def snapshot_bytes(self) -> int:
        return sum(t.nbytes for t in self._snap) if self._snap is not None else 0

    def _moments(self, i: int) -> tuple[Tensor, Tensor, float, float, float] | None:
        p = self._params[i]
        state = _base(self.optimizer).state.get(p)
        if not state or "exp_avg" not in state or "exp_avg_sq" not in state:
            return None
        group = self.optimizer.param_groups[self._group_of[i]]
        betas = group.get("betas", (0.9, 0.999))
        t = local(state.get("step", self._step))
        if torch.is_tensor(t):
            t = float(t) if t.device.type == "cpu" else float(self._step)
        bc2 = 1.0 - float(betas[1]) ** max(float(t), 1.0)
        return (
            local(state["exp_avg"]),
            local(state["exp_avg_sq"]),
            float(group["lr"]),
            float(group.get("eps", 1e-8)),
            bc2,
        )

    def _record_layers(self, step: int, g: Tensor, pn: Tensor, u: Tensor) -> None:
        n = len(self._params)
        dev = g.device
        moment_cols = torch.full((n, 15), float("nan"), device=dev)
        mom = [self._moments(i) for i in range(n)]
        have = [i for i in range(n) if mom[i] is not None]
        if have:
            ms = [mom[i][0] for i in have]
            vs = [mom[i][1] for i in have]
            mdev = ms[0].device
            lr = torch.tensor([mom[i][2] for i in have], device=mdev)
            eps = torch.tensor([mom[i][3] for i in have], device=mdev)
            bc2 = torch.tensor([mom[i][4] for i in have], device=mdev)
            if self._sharding.active:
                vals = self._sharded_moment_stats(have, ms, vs, lr, eps, bc2).to(dev)
            else:
                pos = [self._q_pos[i] for i in have]
                vals = stats.moment_stats(ms, vs, pos, lr, eps, bc2).to(dev)
            moment_cols[torch.tensor(have, device=dev)] = vals
        factor = torch.ones(n, device=dev)
        if self._sgg is not None:
            for i, p in enumerate(self._params):
                st = self._sgg.cluster_state(p) if id(p) in self._clustered else None
                if st is not None:
                    f = (st.sizes.to(torch.float32) * st.factors).sum() / max(p.numel(), 1)
                    factor[i] = f.to(dev)
        u2w = u / pn
        block = torch.cat(
            [g[:, None], pn[:, None], u[:, None], u2w[:, None], moment_cols, factor[:, None]], 1
        )
        self._layer_buf.append((step, block))
        self._pending_rows += n
        self._add_bytes(block.nbytes)

    def _sample(self, i: int, t: Tensor) -> Tensor:
        """(quantile_sample,) float32 values of `t` (layer i's local tensor) at the quantile
        positions; for a sharded layer only the positions in this rank's block (zeros elsewhere:
        summed over the ranks, the whole sample)."""
        if i in self._q_local:
            slots, lidx = self._q_local[i]
            return self._sharding.gather_sample(
                i, t, slots, lidx, self.options.quantile_sample
            ).float()
        return t.reshape(-1)[self._q_pos[i]].float()

    def _sharded_moment_stats(
        self,
        have: list[int],
        ms: list[Tensor],
        vs: list[Tensor],
        lr: Tensor,
        eps: Tensor,
        bc2: Tensor,
    ) -> Tensor:
        """`stats.moment_stats` of whole layers from local shards: sums and the quantile samples
        are combined across ranks (one all-reduce)."""
        n = len(have)
        sums = stats.moment_sums(ms, vs)
        sums = torch.cat([sums[:, :2], sums[:, 2:3].square(), sums[:, 3:]], dim=1)
        parts = [*sums.unbind(0)]
        parts += [self._sample(i, m) for i, m in zip(have, ms, strict=True)]
        parts += [self._sample(i, v) for i, v in zip(have, vs, strict=True)]
        parts = self._sharding.reduce(parts, have * 3)
        sums = torch.stack(parts[:n])
        sums = torch.cat([sums[:, :2], sums[:, 2:3].sqrt(), sums[:, 3:]], dim=1)
        ms_s = torch.stack(parts[n : 2 * n])
        vs_s = torch.stack(parts[2 * n :])
        numel = torch.tensor(
            [self._params[i].numel() for i in have], dtype=torch.float32, device=sums.device
        )
        return stats.moment_summary(sums, numel, ms_s, vs_s, lr, eps, bc2)

    def _sharded_histograms(
        self, todo: list[tuple[int, Tensor, Tensor, float, float, float, Any, int]]
    ) -> list[tuple[int, tuple[Tensor, ...]]]:
        """Whole-layer histograms from local shards: extremes (MAX) and counts (SUM) are
        all-reduced, one collective each for all layers."""
        bins = self.options.histogram_bins
        layers = [x[0] for x in todo]
        flat, alrs, ext = [], [], []
        for _i, m, v, lr, eps, bc2, _assign, _k in todo:
            m = m.reshape(-1)
            alr = stats.adaptive_lr(v.reshape(-1).float(), lr, eps, bc2)
            flat.append(m)
            alrs.append(alr)
            ext.append(stats.histogram_extremes(m, alr))
        ext = self._sharding.reduce(ext, layers, op="max")
        hists = [
            stats.shard_histograms(m, alr, e, bins, x[6], x[7])
            for m, alr, e, x in zip(flat, alrs, ext, todo, strict=True)
        ]
        counts = self._sharding.reduce(
            [t for h in hists for t in (h[1], h[3])], [i for i in layers for _ in (0, 1)]
        )
        return [
            (i, (h[0], counts[2 * j], h[2], counts[2 * j + 1]))
            for j, (i, h) in enumerate(zip(layers, hists, strict=True))
        ]

    def _record_histograms(self, step: int, shadow: bool, states: dict[int, Any] | None) -> None:
        bins = self.options.histogram_bins
        out = []
        todo = []
        for i, p in enumerate(self._params):
            if id(p) not in self._clustered:
                continue
            mom = self._moments(i)
            if mom is None:
                continue
            st = states.get(i) if states is not None else None
            if states is not None and st is None:
                continue
            m, v, lr, eps, bc2 = mom
            k = int(st.sizes.numel()) if st is not None else 0
            assign = st.assignments if st is not None else None
            self._pending_rows += 2 * (k + 1) * bins
            if self._sharding.active:
                todo.append((i, m, v, lr, eps, bc2, assign, k))
                continue
            h = stats.layer_histograms(m, v, lr, eps, bc2, bins, assign, k)
            out.append((i, h))
            self._add_bytes(sum(t.nbytes for t in h))
        if todo:
            out = self._sharded_histograms(todo)
            self._add_bytes(sum(t.nbytes for _, h in out for t in h))
        self._hist_buf.append((step, shadow, out))

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
        states: dict[int, Any] = {}
        layers = []
        for p in opt.clustered_params():
            i = self._index.get(id(p))
            st = opt.cluster_state(p)
            if i is None or st is None:
                continue
            states[i] = st
            pos = self._m_pos[i].to(st.assignments.device)
            if i in self._m_local:  # sharded: this rank's positions, summed over ranks below
                slots, lidx = self._m_local[i]
                members = self._sharding.gather_sample(
                    i, st.assignments, slots, lidx, pos.numel()
                ).to(torch.int32)
            else:
                members = st.assignments.reshape(-1)[pos].clone()
            layers.append(
                {
                    "i": i,
                    "sizes": st.sizes.clone(),
                    "centers": st.centers.clone(),
                    "mda": st.mda.clone(),
                    "raw": st.raw_factors.clone(),
                    "factors": st.factors.clone(),
                    "transitions": None if st.transitions is None else st.transitions.clone(),
                    "members": members,
                }
            )
            k = int(st.sizes.numel())
            self._pending_rows += k + k * k + pos.numel()
        if self._sharding.active:
            merged = self._sharding.reduce(
                [lay["members"] for lay in layers], [lay["i"] for lay in layers]
            )
            for lay, members in zip(layers, merged, strict=True):
                lay["members"] = members
        if layers:
            sizes = torch.cat([lay["sizes"].to(torch.float64) for lay in layers])
            factors = torch.cat([lay["factors"].to(sizes.device, torch.float64) for lay in layers])
            self._factor_mean = (sizes * factors).sum() / sizes.sum().clamp_min(1)
        gm = opt.global_mda
        self._cluster_buf.append(
            {
                "step": step,
                "shadow": shadow,
                "global_mda": None if gm is None else gm.detach().clone(),
                "layers": layers,
            }
        )
        self._record_histograms(step, shadow, states)

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
        if self.optimizer is None and step is None:
            step = self._step + 1
        if self.optimizer is None:
            self._step = max(self._step, int(step))
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
        if current <= (self.meta.get("last_flushed_step") or 0) and current not in self._rows:
            raise ValueError(
                f"log_step for step {current} arrived after that step was written (a flush or "
                "a checkpoint's optimizer.state_dict() since the step): call log_step right "
                "after optimizer.step(), before saving a checkpoint"
            )
        if tokens is not None:
            self._tokens = (self._tokens or 0) + int(tokens)
        row = self._rows.setdefault(current, {})
        if "wall" not in row:
            row["wall"] = self._wall()
            self._pending_rows += 1
        if loss is not None:
            row["loss"] = loss
        row["tokens"] = self._tokens
        now = time.monotonic()
        if (
            len(self._rows) >= self.options.flush_every_steps
            or now - self._last_flush_time >= self.options.flush_every_seconds
            or (self.options.max_buffer_rows and self._pending_rows >= self.options.max_buffer_rows)
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
        value = float(value) if torch.is_tensor(value) else value
        self._evals.append(
            {
                "step": self._step if step is None else int(step),
                "tokens": self._tokens if tokens is None else int(tokens),
                "wall_time": self._wall(),
                "split": str(split),
                "loss": value,
                "loss_std": float(np.std(losses, ddof=1)) if losses and len(losses) > 1 else None,
                "n_batches": len(losses) if losses is not None else None,
            }
        )

    def flush(self) -> None:
        """Write every buffered row now."""
        self._check_open()
        self._flush(upto=None)

    def close(
        self, status: str = schema.STATUS_FINISHED, error: BaseException | None = None
    ) -> None:
        """Flush, detach the hooks and mark the run `status`. Idempotent."""
        if self.closed:
            return
        for h in self._handles:
            h.remove()
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
            self._close_sinks()
            self.meta["status"] = status
            self.meta["finished_at"] = run_meta.utc_now()
            if error is not None:
                self.meta["error"] = {
                    "type": type(error).__name__,
                    "message": str(error),
                    "traceback": "".join(
                        traceback.format_exception(type(error), error, error.__traceback__)
                    ),
                }
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
        """Optimizer steps seen so far (including those before a resume)."""
        return self._step

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

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"recorder for {self.run_dir} is closed")

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(msg, stacklevel=3)

    def _flush(self, upto: int | None) -> None:
        """Write rows with step <= upto (all when None) as one chunk per table, then run.json.

        This is where device tensors become numbers: one stack and one `.cpu()` per table.
        """
        steps = sorted(s for s in self._rows if upto is None or s <= upto)
        layer_items = [x for x in self._layer_buf if upto is None or x[0] <= upto]
        clusters = [x for x in self._cluster_buf if upto is None or x["step"] <= upto]
        hists = [x for x in self._hist_buf if upto is None or x[0] <= upto]
        evals = list(self._evals)
        rows = [self._rows[s] for s in steps]
        if not self._writes:  # a sharded run's rank != 0: the same bookkeeping, no file
            self._forget_flushed(steps, upto, evals)
            return
        tables = {
            "steps": self._steps_columns(steps, rows),
            "lrs": self._lrs_columns(steps, rows),
            "evals": _columns(evals, schema.EVALS.names),
            "layers": self._layer_columns(layer_items),
            **self._cluster_columns(clusters),
            "histograms": self._hist_columns(hists),
        }
        if self._broken is not None:
            raise RecorderError(
                self._broken.errno or 5,
                f"recorder for {self.run_dir} stopped after a failed write: {self._broken}",
                str(self.run_dir),
            ) from self._broken
        try:
            for table, cols in tables.items():
                self.writer.write(table, cols)
        except OSError as exc:
            # Some tables may hold this chunk and others not; run.json still names the last
            # complete step, and a resume drops everything after it.
            self._broken = exc
            raise
        # Everything up to `flushed` is on disk: forget it, then say so in run.json.
        self._forget_flushed(steps, upto, evals)
        run_meta.write_run_json(self.run_dir, self.meta)

    def _forget_flushed(self, steps: list[int], upto: int | None, evals: list[Any]) -> None:
        for s in steps:
            del self._rows[s]
        if upto is not None:
            self._layer_buf = [x for x in self._layer_buf if x[0] > upto]
            self._cluster_buf = [x for x in self._cluster_buf if x["step"] > upto]
            self._hist_buf = [x for x in self._hist_buf if x[0] > upto]
        else:
            self._layer_buf, self._cluster_buf, self._hist_buf = [], [], []
        self._evals = self._evals[len(evals) :]
        self._pending_rows = sum(1 for _ in self._rows)
        self._buffer_bytes = sum(x[1].nbytes for x in self._layer_buf)
        flushed = upto if upto is not None else max([self._step, *steps], default=0)
        if upto is None and not steps and self.meta.get("last_flushed_step") is not None:
            flushed = max(flushed, self.meta["last_flushed_step"])
        if steps or upto is None:
            self.meta["last_flushed_step"] = max(flushed, self.meta.get("last_flushed_step") or 0)
        self._last_flush_time = time.monotonic()

    def _steps_columns(self, steps: list[int], rows: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(steps)
        grad = np.full(n, np.nan)
        upd = np.full(n, np.nan)
        par = np.full(n, np.nan)
        have = [k for k, r in enumerate(rows) if "norms" in r]
        if have:
            stacked = torch.stack([rows[k]["norms"] for k in have])  # (n, 3, L)
            glob = stats.global_norm(stacked).cpu().numpy()  # host sync: once per flush
            grad[have], par[have], upd[have] = glob[:, 0], glob[:, 1], glob[:, 2]
        losses: list[float | None] = [None] * n
        tensor_idx = [k for k, r in enumerate(rows) if torch.is_tensor(r.get("loss"))]
        if tensor_idx:
            vals = torch.stack([rows[k]["loss"].float().reshape(()) for k in tensor_idx]).cpu()
            for k, v in zip(tensor_idx, vals.tolist(), strict=True):
                losses[k] = v
        for k, r in enumerate(rows):
            if isinstance(r.get("loss"), float):
                losses[k] = r["loss"]
        cols = {
            "step": steps,
            "wall_time": [r.get("wall") for r in rows],
            "loss": losses,
            "tokens": [r.get("tokens") for r in rows],
            "grad_norm": _nan_to_none(grad),
            "update_norm": _nan_to_none(upd),
            "param_norm": _nan_to_none(par),
            "lr": [r["lrs"][0] if r.get("lrs") else None for r in rows],
            "reclustered": [bool(r.get("reclustered", False)) for r in rows],
            "optimizer_time": [_seconds(r.get("timing")) for r in rows],
        }
        if self.sinks:
            self._to_sinks(cols, rows)
        return cols

    def _to_sinks(self, cols: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        factors = [r.get("factor") for r in rows]
        if any(torch.is_tensor(f) for f in factors):
            factors = [float(f) if torch.is_tensor(f) else f for f in factors]  # flush: host
        names = ("loss", "lr", "grad_norm", "update_norm", "param_norm", "optimizer_time")
        for k, step in enumerate(cols["step"]):
            scalars = {n: float(cols[n][k]) for n in names if cols[n][k] is not None}
            if cols["tokens"][k] is not None:
                scalars["tokens"] = float(cols["tokens"][k])
            if factors[k] is not None:
                scalars["sgg_factor_mean"] = float(factors[k])
            scalars["reclustered"] = float(cols["reclustered"][k])
            for sink in self.sinks:
                self._call_sink(sink, "log_scalars", int(step), scalars)

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

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            self._call_sink(sink, "close")

    def _lrs_columns(self, steps: list[int], rows: list[dict[str, Any]]) -> dict[str, Any]:
        cols: dict[str, list[Any]] = {"step": [], "group": [], "lr": []}
        for s, r in zip(steps, rows, strict=True):
            for gi, lr in enumerate(r.get("lrs") or []):
                cols["step"].append(s)
                cols["group"].append(gi)
                cols["lr"].append(lr)
        return cols

    def _layer_columns(self, items: list[tuple[int, Tensor]]) -> dict[str, Any]:
        if not items:
            return {}
        n = len(self._params)
        block = torch.stack([b for _, b in items]).cpu().numpy()  # host sync: once per flush
        block = block.reshape(len(items) * n, -1).astype(np.float32)
        cols: dict[str, Any] = {
            "step": np.repeat([s for s, _ in items], n),
            "layer": self._names * len(items),
            "numel": np.tile([p.numel() for p in self._params], len(items)),
        }
        for j, name in enumerate(schema.LAYER_STAT_COLUMNS):
            cols[name] = _nan_to_none(block[:, j])
        return cols

    def _cluster_columns(self, recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        cl: dict[str, list[Any]] = {k: [] for k in schema.CLUSTERS.names}
        tr: dict[str, list[Any]] = {k: [] for k in schema.TRANSITIONS.names}
        mb: dict[str, list[Any]] = {k: [] for k in schema.MEMBERSHIP.names}
        for rec in recs:
            step, shadow = rec["step"], rec["shadow"]
            gm = None if rec["global_mda"] is None else float(rec["global_mda"].cpu())
            for lay in rec["layers"]:
                name = self._names[lay["i"]]
                sizes = lay["sizes"].cpu().tolist()
                k = len(sizes)
                vals = {
                    key: lay[key].float().cpu().tolist()
                    for key in ("centers", "mda", "raw", "factors")
                }
                cl["step"] += [step] * k
                cl["layer"] += [name] * k
                cl["cluster"] += list(range(k))
                cl["size"] += sizes
                cl["center"] += vals["centers"]
                cl["mda"] += vals["mda"]
                cl["global_mda"] += [gm] * k
                cl["raw_factor"] += vals["raw"]
                cl["factor"] += vals["factors"]
                cl["shadow"] += [shadow] * k
                if lay["transitions"] is not None:
                    t = lay["transitions"].cpu()
                    kk = t.shape[0]
                    tr["step"] += [step] * (kk * kk)
                    tr["layer"] += [name] * (kk * kk)
                    tr["from_cluster"] += np.repeat(np.arange(kk), kk).tolist()
                    tr["to_cluster"] += np.tile(np.arange(kk), kk).tolist()
                    tr["count"] += t.reshape(-1).tolist()
                    tr["shadow"] += [shadow] * (kk * kk)
                members = lay["members"].cpu().tolist()
                mb["step"] += [step] * len(members)
                mb["layer"] += [name] * len(members)
                mb["position"] += self._m_pos[lay["i"]].cpu().tolist()
                mb["cluster"] += members
                mb["shadow"] += [shadow] * len(members)
        return {"clusters": cl, "transitions": tr, "membership": mb}

    def _hist_columns(self, items: list[tuple[int, bool, list[Any]]]) -> dict[str, Any]:
        parts: dict[str, list[Any]] = {k: [] for k in schema.HISTOGRAMS.names}
        for step, shadow, layers in items:
            for i, (m_edges, m_counts, a_edges, a_counts) in layers:
                name = self._names[i]
                for quantity, edges, counts in (
                    (schema.HIST_MOMENTUM, m_edges, m_counts),
                    (schema.HIST_ADAPTIVE_LR, a_edges, a_counts),
                ):
                    e = edges.cpu().numpy()
                    c = counts.cpu().numpy()
                    k1, bins = c.shape
                    cluster_ids = np.repeat(np.arange(-1, k1 - 1), bins)
                    rows = k1 * bins
                    parts["step"].append(np.full(rows, step))
                    parts["layer"].append(np.full(rows, name, dtype=object))
                    parts["quantity"].append(np.full(rows, quantity, dtype=object))
                    parts["cluster"].append(cluster_ids)
                    parts["bin"].append(np.tile(np.arange(bins), k1))
                    parts["bin_left"].append(np.tile(e[:-1], k1))
                    parts["bin_right"].append(np.tile(e[1:], k1))
                    parts["count"].append(c.reshape(-1))
                    parts["shadow"].append(np.full(rows, shadow))
        if not parts["step"]:
            return {}
        return {k: np.concatenate(v) for k, v in parts.items()}


def _seconds(timing: tuple[Any, Any] | None) -> float | None:
    """Seconds between the two points of `Recorder._clock` (CUDA events: read now, at flush)."""
    if timing is None:
        return None
    start, end = timing
    if isinstance(start, float):
        return end - start
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def _columns(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    return {n: [r.get(n) for r in rows] for n in names} if rows else {}


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if x != x else float(x) for x in a.tolist()]

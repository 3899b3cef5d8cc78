"""Run lifecycle: open a run directory (new, overwrite or resume), undo a failed start, finish.

The step a run starts from is the optimizer's step count (`optimizer_step_count`), restored
with the optimizer's checkpoint: a resume continues at that step and drops every row after it,
so the record always matches the training it describes. A run directory is a local folder or
a prefix on an object store (`runformat.storage`): every check and removal here goes through
`storage`, which is the os call it always was for a local path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import traceback
from collections.abc import Callable
from typing import Any

import torch

from recorder import run_meta
from recorder.sharding import local
from recorder.writer import RecorderError, RunExistsError, make_dirs, read_table, truncate_after
from runformat import schema, storage
from runformat.storage import Where

MODES = ("new", "resume", "overwrite")


def is_sgg(optimizer: Any) -> bool:
    """Whether `optimizer` offers SGG's introspection (clusters to record)."""
    return hasattr(optimizer, "register_recluster_hook") and hasattr(optimizer, "cluster_state")


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


def optimizer_step_count(optimizer: Any) -> int:
    """Optimizer steps taken so far, as the optimizer's state says (restored with a
    checkpoint): SGG's `sgg_step`, else the largest `step` in the base optimizer's state
    (0 for a fresh optimizer). The recorder's one source of truth for the step."""
    if optimizer is None:
        return 0
    if hasattr(optimizer, "sgg_step"):
        return int(optimizer.sgg_step)
    base = getattr(optimizer, "base_optimizer", optimizer)
    steps = [s["step"] for s in base.state.values() if isinstance(s, dict) and "step" in s]
    if not steps:
        return 0
    return int(max(float(local(t)) if torch.is_tensor(t) else float(t) for t in steps))


def global_rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def optimizer_meta(optimizer: Any, sgg: Any, shadow: Any) -> dict[str, Any] | None:
    """run.json's `optimizer` object: name, base class, hyperparameters, SGG options."""
    if optimizer is None:
        return None
    base = getattr(optimizer, "base_optimizer", optimizer)
    groups = optimizer.param_groups
    hyper = (
        {k: run_meta.jsonable(v) for k, v in groups[0].items() if k != "params"} if groups else {}
    )
    return {
        "name": "sgg" if sgg is not None else type(base).__name__.lower(),
        "base": type(base).__name__,
        "hyperparameters": hyper,
        "param_groups": len(groups),
        "sgg": _sgg_options(sgg),
        "shadow": _sgg_options(shadow),
    }


def _sgg_options(sgg: Any) -> dict[str, Any] | None:
    config = getattr(sgg, "config", None) if sgg is not None else None
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        return run_meta.jsonable(dataclasses.asdict(config))
    return run_meta.jsonable(config)


@dataclasses.dataclass
class RunStart:
    """Where a started run stands: its run.json, segment, step and carried-over counters."""

    meta: dict[str, Any]
    segment: int = 0
    step: int = 0
    time_offset: float = 0.0  # wall_time of the last kept row (a resume continues the clock)
    tokens: int | None = None  # cumulative tokens of the last kept row


def open_run(
    run_dir: Where,
    mode: str,
    *,
    new_meta: Callable[[], dict[str, Any]],
    refresh: dict[str, Any],
    optimizer_steps: int | None,
    resume_step: int | None,
    created: list[Where],
) -> RunStart:
    """Start writing `run_dir`: a new run at step `optimizer_steps or 0`, or a resumed one at
    the optimizer's step (`refresh`: run.json keys a resume replaces). `optimizer_steps` is
    None when the recorder has no optimizer (then `resume_step` or the last flushed step).
    Paths this start creates are appended to `created` at once (`undo_start` removes them)."""
    try:
        return _open_run(
            run_dir,
            mode,
            new_meta=new_meta,
            refresh=refresh,
            optimizer_steps=optimizer_steps,
            resume_step=resume_step,
            created=created,
        )
    except RecorderError:
        raise
    except storage.StorageError as exc:  # a store that refuses: named, endpoint scrubbed
        raise RecorderError(
            exc.errno or 5, f"cannot open run {run_dir}: {exc}", str(run_dir)
        ) from exc


def _open_run(
    run_dir: Where,
    mode: str,
    *,
    new_meta: Callable[[], dict[str, Any]],
    refresh: dict[str, Any],
    optimizer_steps: int | None,
    resume_step: int | None,
    created: list[Where],
) -> RunStart:
    if storage.is_store(run_dir):
        not_a_folder = storage.is_file(run_dir)  # an object where the run's prefix would be
    else:
        not_a_folder = run_dir.exists() and not run_dir.is_dir()
    if not_a_folder:
        raise RecorderError(
            20, f"run directory {run_dir} exists and is not a directory", str(run_dir)
        )
    has_run = storage.is_file(run_dir / schema.RUN_JSON)
    if mode == "resume":
        if not has_run:
            raise RecorderError(
                2, f"cannot resume: no run in {run_dir} (no run.json)", str(run_dir)
            )
        return _resume(run_dir, refresh, optimizer_steps, resume_step)
    if has_run and mode == "new":
        raise RunExistsError(
            17,
            f"run directory {run_dir} already holds a run; pass mode='resume' or "
            "mode='overwrite' (--resume / --overwrite)",
            str(run_dir),
        )
    if has_run and mode == "overwrite":
        try:
            storage.delete_tree(run_dir)
        except OSError as exc:
            raise RecorderError(
                exc.errno or 5, f"cannot overwrite {run_dir}: {exc}", str(run_dir)
            ) from exc
    elif any(not name.startswith(".") for name in storage.list_names(run_dir)):
        raise RunExistsError(
            17,
            f"run directory {run_dir} exists, is not empty and holds no run; refusing to write "
            "into it",
            str(run_dir),
        )
    if storage.is_store(run_dir):  # a prefix: nothing is under it (checked above)
        created.append(run_dir)
    else:
        paths = (run_dir, run_dir / schema.TABLES_DIR, run_dir / schema.RUN_JSON)
        created += [p for p in paths if not p.exists()]
    start = new_start(new_meta(), optimizer_steps)
    # run.json before tables/: a start killed in between leaves a run (resumable, overwritable)
    # or an empty folder, never a folder that holds "no run" but is not empty
    make_dirs(run_dir)
    run_meta.write_run_json(run_dir, start.meta)
    make_dirs(run_dir / schema.TABLES_DIR)
    return start


def new_start(meta: dict[str, Any], optimizer_steps: int | None) -> RunStart:
    """A fresh run at the optimizer's step (an optimizer restored at step N records from N+1)."""
    step = optimizer_steps or 0
    if step:
        meta["segments"][0]["resume_step"] = step
    return RunStart(meta=meta, step=step)


def _resume(
    run_dir: Where, refresh: dict[str, Any], optimizer_steps: int | None, resume_step: int | None
) -> RunStart:
    meta = run_meta.read_run_json(run_dir)
    _check_resumable(run_dir, meta)
    last = meta.get("last_flushed_step") or 0
    step = last if resume_step is None else resume_step
    if optimizer_steps is not None:
        if resume_step is not None and resume_step != optimizer_steps:
            raise ValueError(
                f"resume_step={resume_step} disagrees with the optimizer, which has taken "
                f"{optimizer_steps} steps: load the checkpoint's optimizer state_dict first (the "
                "record resumes at the optimizer's step; resume_step may be left out)"
            )
        if optimizer_steps == 0 and last > 0 and resume_step is None:
            raise ValueError(
                f"cannot resume {run_dir}: the optimizer has taken 0 steps but the run holds "
                f"steps up to {last}; load the checkpoint's optimizer state_dict before "
                "resuming, or pass resume_step=0 to restart the record"
            )
        step = optimizer_steps
    if step > last:
        raise RecorderError(
            22,
            f"cannot resume {run_dir} at step {step}: only steps up to {last} are on disk",
            str(run_dir),
        )
    truncate_after(run_dir, step)
    steps = read_table(run_dir, "steps").to_pandas()
    done = steps[steps["step"] <= step]
    time_offset = float(done["wall_time"].max()) if len(done) else 0.0
    tokens = done["tokens"].dropna()
    tokens = int(tokens.iloc[done["step"][tokens.index].argmax()]) if len(tokens) else None
    segment = len(meta.get("segments") or [])
    meta["segments"] = [
        *(meta.get("segments") or []),
        {"segment": segment, "resume_step": step, "started_at": run_meta.utc_now()},
    ]
    meta.update(
        status=schema.STATUS_RUNNING,
        error=None,
        finished_at=None,
        pid=os.getpid(),
        last_flushed_step=step,
        compacted=[],
        format_version=schema.FORMAT_VERSION,
    )
    meta.update({k: v for k, v in refresh.items() if v is not None})
    meta.setdefault("versions", run_meta.package_versions())
    run_meta.write_run_json(run_dir, meta)
    return RunStart(meta=meta, segment=segment, step=step, time_offset=time_offset, tokens=tokens)


def _check_resumable(run_dir: Where, meta: dict[str, Any]) -> None:
    """The run.json fields a resume continues from, of the right type, or a `RecorderError`
    naming the field (an edited run.json is not resumed from a guess)."""
    last = meta.get("last_flushed_step")
    if last is not None and (not isinstance(last, int) or isinstance(last, bool) or last < 0):
        raise RecorderError(
            22,
            f"cannot resume {run_dir}: run.json's last_flushed_step is {last!r}, not a "
            "non-negative whole number",
            str(run_dir / schema.RUN_JSON),
        )
    segments = meta.get("segments")
    if segments is not None and not isinstance(segments, list):
        raise RecorderError(
            22,
            f"cannot resume {run_dir}: run.json's segments is {segments!r}, not a list",
            str(run_dir / schema.RUN_JSON),
        )


def undo_start(created: list[Where]) -> None:
    """Remove what a failed start created (a new or overwritten run; a resumed run is left)."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            storage.delete_tree(path)
    created.clear()


def finish(meta: dict[str, Any], status: str, error: BaseException | None) -> None:
    """Mark run.json's `status` (and the error, with its traceback) in place."""
    meta["status"] = status
    meta["finished_at"] = run_meta.utc_now()
    if error is not None:
        meta["error"] = {
            "type": type(error).__name__,
            "message": str(error),
            "traceback": "".join(
                traceback.format_exception(type(error), error, error.__traceback__)
            ),
        }

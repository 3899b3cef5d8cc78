"""Is a run alive, and is its data whole? Status from the pid (same host) or the heartbeat.

A run whose run.json says "running" is shown as stopped as soon as we can know: on the same
host, when its process no longer exists; elsewhere, when its heartbeat (`updated_at`) is older
than a few flush intervals.

A loss that was not logged at a step (null) is not a diverged one (`metrics.logged`).
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import pandas as pd

from dashboard import verdicts
from dashboard.metrics.logged import NONFINITE_LOSS, nonfinite_loss, note_nonfinite_loss
from dashboard.metrics.settings import info_of
from runformat.run_json import parse_time

__all__ = ["NONFINITE_LOSS", "data_problems", "live_status", "note_nonfinite_loss"]

HEARTBEAT_FLUSHES = 3  # missed flush intervals before a silent run counts as stopped
MIN_SILENCE_S = 60.0
RUNNING, STOPPED, FINISHED, FAILED = "running", "stopped (killed or crashed)", "finished", "failed"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def allowed_silence(meta: dict) -> float:
    rec = meta.get("recording") if isinstance(meta.get("recording"), dict) else {}
    every = rec.get("flush_every_seconds")
    every = float(every) if isinstance(every, int | float) and every > 0 else 30.0
    return max(MIN_SILENCE_S, HEARTBEAT_FLUSHES * every)


def live_status(meta: dict, now: dt.datetime | None = None, hostname: str | None = None) -> str:
    """finished / failed / running / stopped (killed or crashed)."""
    status = meta.get("status")
    if status in (FINISHED, FAILED):
        return status
    if status != RUNNING:
        return str(status or "unknown")
    host = hostname or socket.gethostname()
    pid = meta.get("pid")
    same_host = meta.get("hostname") == host
    if same_host and isinstance(pid, int) and not isinstance(pid, bool) and not pid_alive(pid):
        return STOPPED
    now = now or dt.datetime.now(dt.timezone.utc)
    beat = parse_time(meta.get("updated_at"))
    if beat is None or (now - beat).total_seconds() > allowed_silence(meta):
        return STOPPED
    return RUNNING


def planned_steps(meta: dict) -> int | None:
    """The planned optimizer steps (the typed description's `steps`: config.steps, the HF
    Trainer's max_steps, ...), None when the run does not say."""
    return info_of(meta).steps


def data_problems(meta: dict, status: str, steps: pd.DataFrame | None) -> list[str]:
    """Plain sentences about what is missing or unfinished in one run (empty when whole)."""
    out = []
    last = None
    if steps is not None and not steps.empty and "step" in steps:
        last = int(steps["step"].iloc[-1])
    flushed = meta.get("last_flushed_step")
    planned = planned_steps(meta)
    if status == RUNNING:
        out.append(f"still training (step {last:,} so far)" if last else "still training")
    elif status == STOPPED:
        out.append(
            "stopped writing without finishing: it stalled or was probably killed"
            + (f" (last step {last:,})" if last else "")
        )
    elif status == FAILED:
        err = meta.get("error") if isinstance(meta.get("error"), dict) else {}
        out.append(f"failed ({err.get('type', 'error')})" + (f" at step {last:,}" if last else ""))
    if last is None:
        out.append("no training steps could be read")
    elif isinstance(flushed, int) and last < flushed:
        out.append(f"truncated: its steps end at {last:,}, but it recorded {flushed:,}")
    if planned and last is not None and last < planned and status != RUNNING:
        out.append(f"incomplete: {last:,} of {planned:,} planned steps")
    first = nonfinite_loss(steps)[1]
    if first is not None:
        out.append(verdicts.diverged_text(first))
    out += [p.rstrip(".") for p in info_of(meta).problems]  # a field of the wrong type
    return out

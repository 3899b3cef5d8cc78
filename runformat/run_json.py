"""`run.json`: reading and validating a run's metadata, the same checks for writer and reader.

`validate` never raises: it returns what is fatal (the run cannot be read by this code) and
what is merely worth saying. The recorder turns a fatal problem into an error; the dashboard
shows it beside the runs that did load.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from typing import Any

from runformat import storage
from runformat.schema import FORMAT_NAME, FORMAT_VERSION, RUN_JSON, STATUS_FAILED, STATUSES

MAX_BYTES = 20_000_000  # a run.json larger than this is not real


@dataclass(frozen=True)
class Validation:
    """The outcome of `validate`: `fatal` is None when the run can be read."""

    fatal: str | None
    problems: tuple[str, ...]
    version: int  # the format version the run is read as (1 when run.json does not say)


def validate(meta: Any, *, reader: str = "this reader") -> Validation:
    """Check a parsed run.json. Sentences name the problem, without the run's name."""
    if not isinstance(meta, dict):
        return Validation("run.json is not a JSON object.", (), 1)
    problems: list[str] = []
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append("run.json has no valid format_version; assuming version 1.")
        version = 1
    elif version > FORMAT_VERSION:
        return Validation(
            f"written in run format version {version}, but {reader} reads up to version "
            f"{FORMAT_VERSION}. Update {reader} to open it.",
            (),
            version,
        )
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        problems.append(f"run.json format is {meta.get('format')!r}, not {FORMAT_NAME!r}.")
    status = meta.get("status")
    if status not in STATUSES:
        problems.append(f"unknown status {status!r}.")
    if status == STATUS_FAILED:
        err = meta.get("error") if isinstance(meta.get("error"), dict) else {}
        msg = err.get("message") or "no message"
        problems.append(f"the run failed ({err.get('type', 'error')}: {msg}).")
    return Validation(None, tuple(problems), version)


def read(run_dir: str | os.PathLike[str] | storage.ObjectPath) -> dict[str, Any]:
    """The parsed run.json of `run_dir` (a folder or a store prefix): FileNotFoundError when
    there is none, ValueError when it is too large, not JSON or not an object. (Validation is
    `validate`'s job.)"""
    path = storage.locate(run_dir) / RUN_JSON
    try:
        data = storage.read_bytes(path, max_bytes=MAX_BYTES)
    except ValueError:
        raise ValueError(f"{path} is too large to be a run.json") from None
    meta = json.loads(data.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a JSON object")
    return meta


def parse_time(value: Any) -> dt.datetime | None:
    """A run.json timestamp (`created_at`, `updated_at`: ISO 8601) as an aware datetime, or None
    when it is missing or malformed; naive times are taken as UTC, as the recorder writes them."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)

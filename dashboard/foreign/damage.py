"""What a damaged foreign log cost, in one sentence: "incomplete: N of M records read: ...".

The readers find the damage (tensorboard.py: the event file's length/CRC framing; wandb_run.py:
the transaction log's checksummed blocks; discovery: a store that is not a database) and
describe it with a `Damage`; `message` words it with the steps as the dashboard shows them
(the reader knows the step offset only after reading). A torn last record of a file still
being written is a live run, not damage: the readers do not report it.
"""

from __future__ import annotations

from dataclasses import dataclass

STOPPED = "stopped (killed or crashed)"  # dashboard.metrics.health.STOPPED: a log with no end


@dataclass(frozen=True)
class Damage:
    """One damaged file of a foreign run. Steps are as logged (before the step offset)."""

    file: str  # the damaged file's name, as the user sees it in the folder
    unit: str  # what `read` and `total` count: "records", "history rows"
    read: int  # how many were read
    total: int | None  # how many the file held, when it can tell (None: cannot tell)
    cause: str  # plain words: "is cut off in the middle of record 302 (byte 9,800 of 9,812)"
    last_step: int | None = None  # the last step read before the damage
    resumed_step: int | None = None  # the first step read after it (the log went on)
    torn_tail: bool = False  # the log ends inside a record: its writer never finished it


def message(d: Damage, offset: int = 0) -> str:
    """ "incomplete: 136 of 200 history rows read: `run-x.wandb` is damaged (...)" (no final
    period: the page adds one after the run's name)."""
    count = f"{d.read:,} of {d.total:,}" if d.total is not None else f"{d.read:,}"
    text = f"incomplete: {count} {d.unit} read: `{d.file}` {d.cause}"
    if d.last_step is not None and d.resumed_step is not None:
        a, b = d.last_step + offset, d.resumed_step + offset
        text += f"; nothing was read between step {a:,} and step {b:,}"
    elif d.last_step is not None:
        text += f"; what was written after the record of step {d.last_step + offset:,} is lost"
    return text

"""What a run logged: a null loss was not logged at that step; a NaN or infinite one was logged
and is not a number.

The HF Trainer logs its loss every `logging_steps`, so a run recorded through its callback has
a loss at every tenth step and null at the others; only a logged NaN or infinite loss means the
run diverged. pandas reads both null and NaN as NaN, so the loader notes on the steps DataFrame,
from the Arrow table it read, how many steps logged a non-finite loss and the first of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NONFINITE_LOSS = "nonfinite_loss"  # DataFrame.attrs key: (count, first step) of logged NaN/inf


def note_nonfinite_loss(df: pd.DataFrame, table: pa.Table) -> None:
    """Note on a steps DataFrame read from `table` how many steps logged a NaN or infinite
    loss and the first of them: a null loss (not logged) is not counted, although pandas
    reads it as NaN. (Two small numbers: DataFrame.attrs are copied along with the frame.)"""
    if "loss" not in table.column_names or "step" not in table.column_names:
        return
    loss = table.column("loss")
    if not pa.types.is_floating(loss.type):
        return
    bad = pc.and_(pc.is_valid(loss), pc.invert(pc.is_finite(loss)))
    steps = table.column("step").filter(bad)
    first = pc.min(steps).as_py() if len(steps) else None
    df.attrs[NONFINITE_LOSS] = (len(steps), None if first is None else int(first))


def nonfinite_loss(steps: pd.DataFrame | None) -> tuple[int, int | None]:
    """(how many steps logged a NaN or infinite loss, the first of them): the loader's note
    when it read the table (`note_nonfinite_loss`), else every non-finite value counts."""
    if steps is None or steps.empty or "loss" not in steps or "step" not in steps:
        return 0, None
    note = steps.attrs.get(NONFINITE_LOSS)
    if isinstance(note, tuple) and len(note) == 2:
        return note
    loss = steps["loss"].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(loss)
    return int(bad.sum()), (int(steps["step"].iloc[int(np.argmax(bad))]) if bad.any() else None)

"""Read a Lightning `CSVLogger` run: `lightning_logs/version_N/metrics.csv` + `hparams.yaml`.

`metrics.csv` has one row per `log_metrics` call: a `step` column (the trainer's
`global_step`, counted from 0, as all of Lightning's loggers count), usually `epoch`, and one
column per metric, empty where that call did not log it. pandas reads it; `hparams.yaml` (what
`save_hyperparameters()` saved) is the config, read with PyYAML (a Lightning dependency): when
PyYAML is missing, or the file holds Python objects it cannot build, the metrics are still
read and the page says what was left out. Lightning's CSV has no wall-clock times, so the
run's time axis is empty ("not recorded in this run"); its status comes from the file's age, as
for TensorBoard. Fabric's `CSVLogger` writes the same CSV without `hparams.yaml`, with the
steps the user passed (kept as they are: see reader.written_by).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.foreign import mapping

METRICS_CSV = "metrics.csv"
HPARAMS_YAML = "hparams.yaml"
STEP_COLUMN = "step"
NOT_METRICS = frozenset({STEP_COLUMN})  # `epoch` is kept as a series, as MLflow's is


def header(path: Path) -> list[str] | None:
    """The CSV's column names (None: unreadable or empty)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def is_run_dir(d: Path) -> bool:
    """A CSVLogger folder: `metrics.csv` whose header has Lightning's `step` column."""
    cols = header(d / METRICS_CSV)
    return cols is not None and STEP_COLUMN in cols


def not_read_reason(d: Path, filenames: list[str]) -> str | None:
    """Why a folder (holding `filenames`) that looks like a Lightning log folder is not read
    (None: it is read, or it is not such a folder)."""
    if METRICS_CSV in filenames:
        cols = header(d / METRICS_CSV)
        if cols is None:
            return "its `metrics.csv` is empty or cannot be read as text"
        if STEP_COLUMN not in cols:
            return (
                f"its `metrics.csv` has no `{STEP_COLUMN}` column (columns: {', '.join(cols[:6])})"
            )
        return None
    if HPARAMS_YAML in filenames and d.name.startswith("version_"):
        return (
            "it holds Lightning's `hparams.yaml` but no metrics (no `metrics.csv`, no TensorBoard "
            "events): the logger wrote nothing else, or its files were moved"
        )
    return None


def run_name(run_dir: Path) -> str:
    """The name Lightning gave the run: the logger's `name` (the folder above `version_N`),
    with the version when it is not the first ("lightning-s0", "lightning-s0-v1"); the folder
    alone when the logger kept its default name (`lightning_logs`), which names no run."""
    parent = run_dir.parent.name
    if not run_dir.name.startswith("version_") or not parent or parent == "lightning_logs":
        return run_dir.name
    version = run_dir.name.removeprefix("version_")
    return parent if version == "0" else f"{parent}-v{version}"


def read(run_dir: Path) -> dict[str, Any]:
    """{"scalars": long-form DataFrame, "config": dict, "messages": [...]} of one folder."""
    # only an empty cell is "not logged"; a logged NaN ("nan") is kept: it diverged
    wide = pd.read_csv(run_dir / METRICS_CSV, on_bad_lines="skip", dtype=str, keep_default_na=False)
    messages: list[str] = []
    if STEP_COLUMN not in wide:
        raise ValueError(f"{METRICS_CSV} has no `{STEP_COLUMN}` column")
    step = pd.to_numeric(wide[STEP_COLUMN], errors="coerce")
    keep = step.notna().to_numpy()
    frames = []
    for col in wide.columns:
        if col in NOT_METRICS:
            continue
        values = pd.to_numeric(wide[col], errors="coerce")
        ok = keep & values.notna().to_numpy()
        ok |= keep & (wide[col].str.strip().str.lower() == "nan").to_numpy()
        n = int(ok.sum())
        if not n:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "tag": np.full(n, str(col), dtype=object),
                    "step": step[ok].to_numpy(np.int64),
                    "wall_time": np.full(n, np.nan),  # CSVLogger records no times
                    "value": values[ok].to_numpy(np.float64),
                }
            )
        )
    scalars = pd.concat(frames, ignore_index=True) if frames else mapping.empty_scalars()
    config, note = hparams(run_dir / HPARAMS_YAML)
    if note:
        messages.append(note)
    return {"scalars": scalars, "config": config, "messages": messages}


def hparams(path: Path) -> tuple[dict[str, Any], str | None]:
    """(the hyperparameters in Lightning's `hparams.yaml`, a note when they were not read)."""
    if not path.is_file():
        return {}, None
    if importlib.util.find_spec("yaml") is None:
        return {}, f"`{path.name}` is not read: PyYAML is not installed (`pip install pyyaml`)"
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads a Python object Lightning saved as its tag's name."""

    def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.SequenceNode):  # python/tuple: betas (0.9, 0.95)
            return loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.ScalarNode) and node.value:
            return loader.construct_scalar(node)
        return suffix.split(":", 1)[-1] or "object"  # an object: its class's name

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", _tagged)
    Loader.add_multi_constructor("!", _tagged)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return {}, f"`{path.name}` is not read: {type(e).__name__}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, f"`{path.name}` is not read: it is not a mapping of names to values"
    return data, None

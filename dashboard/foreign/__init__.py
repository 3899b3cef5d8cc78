"""Foreign runs as baselines: TensorBoard, W&B and MLflow runs read as run-format tables.

    from dashboard import foreign
    found = foreign.discover(root)                   # runs with run.json-shaped `meta`
    df, messages, sig = foreign.read_table(found.runs[0].meta, "steps")

Lightning's CSVLogger (`metrics.csv` + `hparams.yaml`) is read with pandas. Each other kind is
read by its own library (an optional extra: `pip install '.[tensorboard]'`,
`'.[wandb]'`, `'.[mlflow]'`), imported only when a folder holds such runs. The logged metric
names that fill the `steps` and `evals` columns are configurable (`MetricNames`, or a
`foreign-metrics.json` in the runs folder: see docs/integrations.md, "Foreign runs").
"""

from dashboard.foreign.discover import ForeignRun, Found, discover
from dashboard.foreign.names import DEFAULT_NAMES, MetricNames
from dashboard.foreign.reader import (
    KINDS,
    available,
    clear_cache,
    has_loss,
    load,
    read_table,
)

__all__ = [
    "DEFAULT_NAMES",
    "KINDS",
    "ForeignRun",
    "Found",
    "MetricNames",
    "available",
    "clear_cache",
    "discover",
    "has_loss",
    "load",
    "read_table",
]

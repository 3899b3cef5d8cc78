"""The numbers the dashboard shows, one module per idea (this file only gathers their names).

- `statistics`: smoothing, moving averages, variation, when a loss is reached, run summaries;
- `spikes`: the one spike detector;
- `sweep`: settings, sweeps and how widely a setting can vary;
- `clusters`: SGG's groups (shares, factors, moves, histograms);
- `intervals`: the one rule for claims (a difference with its 95% interval);
- `groups`: seed groups and like-for-like settings;
- `compare`: a group against the baseline group, like for like;
- `sweep_groups`: a sweep as seed groups, SGG against AdamW per value;
- `health`: is a run alive, is its data whole.
"""

from dashboard.metrics.clusters import (
    histogram_density,
    moved_share,
    size_weighted_factor,
)
from dashboard.metrics.spikes import (
    GRAD_SPIKE_FACTOR,
    LOSS_SPIKE_FACTOR,
    SPIKE_WINDOW,
    spike_mask,
    typical_level,
)
from dashboard.metrics.statistics import (
    FINAL_WINDOW,
    SUMMARY_COLUMNS,
    WARMUP_FRACTION,
    RunSummary,
    add_speedups,
    coefficient_of_variation,
    ema,
    eval_series,
    first_reach,
    moving_average,
    summarize,
    summary_table,
)
from dashboard.metrics.sweep import (
    PLAIN_NAMES,
    config_table,
    flatten,
    hyperparameter_value,
    plain_name,
    sweep_members,
    sweepable_settings,
    tolerance,
    varying_hyperparameters,
)

__all__ = [
    "FINAL_WINDOW",
    "GRAD_SPIKE_FACTOR",
    "LOSS_SPIKE_FACTOR",
    "PLAIN_NAMES",
    "SPIKE_WINDOW",
    "SUMMARY_COLUMNS",
    "WARMUP_FRACTION",
    "RunSummary",
    "add_speedups",
    "coefficient_of_variation",
    "config_table",
    "ema",
    "eval_series",
    "first_reach",
    "flatten",
    "histogram_density",
    "hyperparameter_value",
    "moved_share",
    "moving_average",
    "plain_name",
    "size_weighted_factor",
    "spike_mask",
    "summarize",
    "summary_table",
    "sweep_members",
    "sweepable_settings",
    "tolerance",
    "typical_level",
    "varying_hyperparameters",
]

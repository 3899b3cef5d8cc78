"""How the charts draw what is selected: one typed, frozen record the sidebar fills in.

A dict of options let a typo ("smooth" for "smoothing") read as a missing key deep inside a view;
a frozen dataclass fails where it is made, and a view cannot change the options another reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from dashboard.prepare import BANDS, X_AXES

# the charts that answer a question (the Summary's loss, the training-loss difference): at least
# this smooth, whatever the sidebar says (a headline, not a trace)
HEADLINE_SMOOTHING = 0.9


@dataclass(frozen=True)
class ChartOptions:
    """The sidebar's chart options."""

    x: str = "step"  # horizontal axis: a key of `prepare.X_AXES` (step, tokens, wall_time)
    smoothing: float = 0.9  # TensorBoard-style moving average of the loss, 0 = raw, below 1
    log_y: bool = False  # logarithmic loss axis
    pool: bool = True  # seeds of one setting drawn and compared as one group
    band: str = "minmax"  # the band around a group's mean: a key of `prepare.BANDS`

    def __post_init__(self) -> None:
        if self.x not in X_AXES:
            raise ValueError(f"x must be one of {sorted(X_AXES)}, not {self.x!r}")
        if self.band not in BANDS:
            raise ValueError(f"band must be one of {sorted(BANDS)}, not {self.band!r}")
        if not (isinstance(self.smoothing, int | float) and 0.0 <= self.smoothing < 1.0):
            raise ValueError(f"smoothing must be in [0, 1), not {self.smoothing!r}")
        if math.isnan(float(self.smoothing)):
            raise ValueError("smoothing must be in [0, 1), not nan")

    @classmethod
    def of(cls, options: ChartOptions | Mapping | None) -> ChartOptions:
        """The options themselves, or a mapping of some of them (the rest: defaults)."""
        if isinstance(options, ChartOptions):
            return options
        known = {f.name for f in fields(cls)}
        given = dict(options or {})
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"unknown chart options {unknown}; known: {sorted(known)}")
        return cls(**given)

    @property
    def x_column(self) -> str:
        """The column a figure draws on the horizontal axis."""
        return X_AXES[self.x][0]

    @property
    def x_title(self) -> str:
        return X_AXES[self.x][1]

    @property
    def band_words(self) -> str:
        """What the band around a group's mean is, in words."""
        return BANDS[self.band]

    @property
    def headline_smoothing(self) -> float:
        """The sidebar's smoothing, at least HEADLINE_SMOOTHING."""
        return max(self.smoothing, HEADLINE_SMOOTHING)

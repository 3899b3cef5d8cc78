"""`RecorderOptions`: what the recorder measures and how often, validated, saved in run.json."""

from __future__ import annotations

import dataclasses

UPDATE_NORMS = ("state", "snapshot", "off")


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
    # How the update norm (and the parameter norm) is measured:
    #   "state": on layer-statistics steps, from the post-step Adam/AdamW (and SGG) state; no
    #            copy of the parameters (memory grows with layers, not parameters). Default.
    #   "snapshot": every step, from a copy of the parameters taken before the step (any
    #            optimizer; costs one parameter-sized buffer and two passes per step).
    #   "off": not recorded.
    update_norm: str = "state"
    compact_on_close: bool = False  # merge each table's chunks into one file at close()
    # Flushes waiting for the background writer before training waits for it (a slow store).
    max_queued_flushes: int = 4

    def __post_init__(self) -> None:
        positive = ("layer_stride", "flush_every_steps", "quantile_sample", "histogram_bins")
        for name in (*positive, "max_queued_flushes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("membership_sample", "histogram_every", "max_buffer_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if isinstance(self.flush_every_seconds, bool) or not self.flush_every_seconds > 0:
            raise ValueError(f"flush_every_seconds must be > 0, got {self.flush_every_seconds!r}")
        if self.update_norm not in UPDATE_NORMS:
            raise ValueError(f"update_norm must be one of {UPDATE_NORMS}, got {self.update_norm!r}")

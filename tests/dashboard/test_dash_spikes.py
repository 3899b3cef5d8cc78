"""The spike detector (issue 16, item 4): distinct spikes are counted separately, each marked at
its peak; a spike's own steps do not hide the next one; warm-up and NaN gaps; a real sample run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import prepare
from dashboard.metrics import spikes
from runformat.chunks import live_chunks, table_dir

SAMPLE_RUN = Path(__file__).resolve().parents[2] / "sample_runs" / "adamw-lr4e-3-s0"


def _calm(n: int = 300, seed: int = 0) -> np.ndarray:
    """A steady gradient norm around 1 (a few % noise): nothing in it is a spike."""
    return np.exp(np.random.default_rng(seed).normal(0.0, 0.05, n))


def _peaks(x, factor: float = spikes.GRAD_SPIKE_FACTOR) -> list[int]:
    return np.flatnonzero(spikes.spike_mask(x, factor)).tolist()


def test_two_spikes_18_steps_apart_are_two_spikes():
    x = _calm()
    x[10], x[28] = 8.0, 18.5  # the shape of adamw-lr4e-3-s0: the second, larger one was lost
    assert _peaks(x) == [10, 28]


def test_a_plateau_of_three_steps_is_one_spike_at_its_highest_step():
    x = _calm()
    x[100:103] = [5.0, 9.0, 6.0]
    assert _peaks(x) == [101]
    ev = spikes.spike_events(x, spikes.GRAD_SPIKE_FACTOR)
    assert ev[["start", "peak", "end"]].values.tolist() == [[100, 101, 102]]
    assert ev["peak_value"].tolist() == [9.0]
    assert ev["typical"].iloc[0] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    ("gap", "count"), [(0, 1), (spikes.MERGE_GAP, 1), (spikes.MERGE_GAP + 1, 2), (10, 2)]
)
def test_exceeding_steps_merge_only_across_a_gap_of_at_most_merge_gap(gap, count):
    x = _calm()
    x[100] = 6.0
    x[101 + gap] = 7.0
    assert len(_peaks(x)) == count
    assert _peaks(x)[-1] == 101 + gap  # the higher one is always marked


def test_a_long_spike_does_not_hide_the_next_one_in_warm_up():
    """In warm-up the look-back is short (i/4 steps): a six-step spike at step 40 fills half of
    step 49's look-back, and a plain median there would sit halfway up the spike."""
    x = _calm(200)
    x[40:46] = 10.0
    x[49] = 8.0
    plain = spikes.typical_level(x)
    assert spikes.GRAD_SPIKE_FACTOR * plain[49] > 8.0  # the plain median would miss it
    assert _peaks(x) == [40, 49]
    ev = spikes.spike_events(x, spikes.GRAD_SPIKE_FACTOR)
    assert ev["typical"].iloc[1] == pytest.approx(1.0, abs=0.1)


def test_a_level_shift_is_one_spike_however_long_it_takes_the_median_to_follow():
    x = np.r_[np.ones(1000), np.full(1000, 2.0)]
    ev = spikes.spike_events(x, spikes.LOSS_SPIKE_FACTOR)
    assert len(ev) == 1 and ev["start"].iloc[0] == 1000
    assert not spikes.spike_mask(x[1500:], spikes.LOSS_SPIKE_FACTOR).any()


def test_warm_up_spikes_count_from_the_first_judgeable_step():
    x = np.array([5.0, 4.0, 3.5, 3.2, 20.0, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4])
    assert _peaks(x) == [spikes.MIN_HISTORY]
    x[1] = 100.0  # too little history before it to call it a spike
    assert _peaks(x) == [spikes.MIN_HISTORY]


def test_nan_steps_never_spike_and_a_nan_does_not_split_a_spike():
    x = _calm()
    x[50:60] = np.nan  # a gap in the record
    x[61] = 9.0  # just after the gap: still judged against the steps before the gap
    x[150], x[151], x[152] = 6.0, np.nan, 7.0  # a NaN inside one spike
    assert _peaks(x) == [61, 152]
    assert not spikes.spike_mask(np.full(100, np.nan), 3.0).any()


def test_events_and_mask_agree_and_carry_step_labels():
    x = _calm()
    x[[30, 31, 120, 250]] = [6.0, 12.0, 5.0, 40.0]
    steps = np.arange(x.size) * 10 + 10
    ev = spikes.spike_events(x, spikes.GRAD_SPIKE_FACTOR, steps=steps)
    mask = spikes.spike_mask(x, spikes.GRAD_SPIKE_FACTOR)
    assert ev["peak"].tolist() == steps[mask].tolist() == [320, 1210, 2510]
    assert ev["start"].tolist() == [310, 1210, 2510]
    assert (ev["peak_value"] > spikes.GRAD_SPIKE_FACTOR * ev["typical"]).all()
    empty = spikes.spike_events(np.array([]), 3.0)
    assert empty.empty and list(empty.columns) == list(ev.columns)
    with pytest.raises(ValueError, match="steps"):
        spikes.spike_events(x, 3.0, steps=steps[:-1])


def _sample_steps() -> pd.DataFrame:
    folder = table_dir(SAMPLE_RUN, "steps")
    names = live_chunks([p.name for p in folder.iterdir()])
    parts = [pd.read_parquet(folder / n) for n in names]
    return pd.concat(parts, ignore_index=True).sort_values("step", ignore_index=True)


@pytest.mark.skipif(not SAMPLE_RUN.is_dir(), reason="sample_runs/adamw-lr4e-3-s0 not present")
def test_real_run_counts_the_26x_spike_at_step_29():
    steps = _sample_steps()
    g = steps["grad_norm"].to_numpy(dtype=np.float64)
    ev = spikes.spike_events(g, spikes.GRAD_SPIKE_FACTOR, steps=steps["step"].to_numpy())
    assert ev["peak"].tolist() == [11, 29]
    assert ev["peak_value"].round(1).tolist() == [7.9, 18.5]
    assert ev["peak_value"].iloc[1] / ev["typical"].iloc[1] > 20
    # the Gradient stability chart's crosses follow: one at each peak
    _, _, crosses = prepare.grad_lines({"a": steps}, "step")
    assert crosses["step"].tolist() == [11, 29]

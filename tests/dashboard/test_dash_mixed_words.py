"""Wording and labels from the mixed-folder review (issue 17, findings 13-16)."""

from __future__ import annotations

from pathlib import Path

from dashboard.foreign import csv_logger
from dashboard.foreign.discover import discover


def _lightning(root: Path, name: str, version: int) -> Path:
    d = root / "lightning_logs" / name / f"version_{version}"
    d.mkdir(parents=True)
    (d / "metrics.csv").write_text("step,train_loss\n0,2.5\n1,2.4\n2,2.3\n")
    return d


def test_a_lightning_run_is_named_by_its_logger_name_and_version(tmp_path):
    first = _lightning(tmp_path, "lightning-s0", 0)
    second = _lightning(tmp_path, "lightning-s0", 1)
    assert csv_logger.run_name(first) == "lightning-s0"
    assert csv_logger.run_name(second) == "lightning-s0-v1"
    default = tmp_path / "lightning_logs" / "version_3"
    assert csv_logger.run_name(default) == "version_3"  # the default name names no run
    names = {r.rel: r.meta["name"] for r in discover(tmp_path).runs}
    assert names == {
        "lightning_logs/lightning-s0/version_0": "lightning-s0",
        "lightning_logs/lightning-s0/version_1": "lightning-s0-v1",
    }


def test_a_large_share_reads_as_a_ratio_and_a_tiny_difference_as_the_same_digits():
    from dashboard.metrics.intervals import Difference
    from dashboard.verdicts import claim, share_text

    assert share_text(29.79) == "30x the baseline's value"
    assert share_text(2.5) == "2.5x the baseline's value"
    assert share_text(0.57) == "57% of the baseline's value"
    assert share_text(0.041) == "4.1% of the baseline's value"
    tiny = Difference(2.384e-08, n=1, n_max=1, mean=1.4 + 2.384e-08, base_mean=1.4)
    text = claim(tiny, "lower", "higher")
    assert "the same to the shown digits" in text and "e-08" not in text
    real = Difference(0.0123, n=1, n_max=1, mean=1.4123, base_mean=1.4)
    assert "difference +0.01230" in claim(real, "lower", "higher")


def test_a_repeated_seed_is_one_note_over_the_whole_curve():
    from dashboard.difference import merged_notes

    note = "{} runs with seed 2 (compared run): repeats of one seed, counted once"
    base = "2 runs with seed 2 (baseline): repeats of one seed, counted once"
    got = merged_notes([note.format(3), base, note.format(2), note.format(3)])
    assert got == [
        "2 to 3 runs with seed 2 (compared run): repeats of one seed, counted once",
        base,
    ]


def test_a_run_without_the_axis_quantity_is_said_and_has_no_empty_legend_entry():
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    from dashboard import figures, prepare

    ours = pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.9], "tokens": [512.0, 1024.0]})
    theirs = pd.DataFrame({"step": [1, 2], "loss": [2.1, 2.0], "tokens": [np.nan, np.nan]})
    tables = {"ours": [ours], "tb-s0": [theirs], "group": [ours, theirs]}
    assert prepare.not_on_axis(tables, "tokens") == {
        "tb-s0": "tokens not recorded in this run",
        "group": "1 of 2 runs did not record tokens",
    }
    assert prepare.not_on_axis(tables, "step") == {}
    fig = go.Figure(
        [
            go.Scatter(x=[512.0, 1024.0], y=[2.0, 1.9], name="ours"),
            go.Scatter(x=[np.nan, np.nan], y=[2.1, 2.0], name="tb-s0"),
        ]
    )
    assert [t.name for t in figures.stacked([fig]).data] == ["ours"]


def test_the_runs_table_derives_tokens_per_step_and_sees_a_logged_gradient_norm(tmp_path):
    from dashboard import settings_table
    from runformat import run_info

    ours = {"name": "ours", "config": {"optimizer": "adamw", "batch_size": 16, "seq_len": 128}}
    assert run_info.derive(ours).tokens_per_step == 2048
    said = {"config": {"batch_size": 16, "seq_len": 128, "tokens_per_step": 4096}}
    assert run_info.derive(said).tokens_per_step == 4096
    assert run_info.derive({"config": {"batch_size": 16}}).tokens_per_step is None
    tb = {
        "name": "tb-s0",
        "config": {},
        "source": {"kind": "tensorboard", "columns": {"grad_norm": "train/grad_norm"}},
    }
    quiet = {"name": "mlflow-s0", "config": {}, "source": {"kind": "mlflow", "columns": {}}}
    t = settings_table.settings_frame({"ours": ours, "tb-s0": tb, "mlflow-s0": quiet}, {})
    row = t.loc["run: gradient norm recorded"]
    assert row["tb-s0"] == settings_table.GRAD_NORM_LOGGED
    assert row["mlflow-s0"] == "not recorded"
    assert not row["differs"]  # an unknown kind of norm is no difference
    assert str(t.loc["run: tokens per step", "ours"]) == "2048"


def test_repeats_that_differ_show_enough_digits_to_differ():
    from dashboard.metrics import intervals

    _, notes = intervals.seed_values([(2, 2.133121), (2, 2.133149)], "compared run")
    assert "(2.13312 to 2.13315)" in notes[0]


def test_a_cards_delta_carries_its_interval_or_says_cannot_tell():
    from dashboard import cards
    from dashboard.metrics.intervals import Difference

    unsure = Difference(-0.02, n=3, n_max=3, low=-0.05, high=0.01, mean=2.0, base_mean=2.02)
    shown = cards.delta(unsure, "better", "worse", "2.020")["delta"]
    assert shown.startswith("-0.020 ± 0.030: ") and "no detectable difference" in shown
    sure = Difference(-0.3, n=3, n_max=3, low=-0.5, high=-0.1, mean=1.7, base_mean=2.0)
    assert cards.delta(sure, "better", "worse", "2.000")["delta"].startswith("-0.30 ± 0.20")
    one = Difference(-0.3, n=1, n_max=1, mean=1.7, base_mean=2.0)
    assert "±" not in cards.delta(one, "better", "worse", "2.000")["delta"]


def test_in_short_quotes_the_numbers_behind_its_words():
    from dashboard import narrative
    from dashboard.metrics.intervals import Difference

    d = Difference(-0.6575, n=3, n_max=3, low=-1.0163, high=-0.2987, mean=1.4, base_mean=2.06)
    assert narrative._numbers(d, narrative.num) == " (-0.66 ± 0.36)"
    one = Difference(0.0123, n=1, n_max=1, mean=1.4123, base_mean=1.4)
    assert narrative._numbers(one, narrative.num) == " (difference +0.01230)"

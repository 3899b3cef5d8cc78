"""Loss tab, second review (items 5 and 9): the colour words say what the charts draw, and the
paired difference's pinch before SGG's first re-cluster is explained from the data."""

from __future__ import annotations

import pandas as pd
from dash_fixtures import SAMPLE_RUNS
from test_dash_app import render, texts

from dashboard import prepare, styles


def test_two_series_each_have_their_own_colour_and_the_words_say_so(monkeypatch):
    at = render(SAMPLE_RUNS / "main-600", monkeypatch, view="Loss")
    words = texts(at)
    assert "Colour = setting" not in words  # AdamW and SGG at one lr never shared a colour
    assert "Each series has its own colour; line style = optimizer" in words


def test_seeds_of_one_setting_share_a_colour_and_the_words_say_so():
    s = styles.Styles(
        colors={"a-s0": "#1", "a-s1": "#1", "b-s0": "#2"},
        dashes={"a-s0": "solid", "a-s1": "solid", "b-s0": "dash"},
    )
    assert styles.legend_words(s).startswith("Runs that differ only in their seed share a colour")
    mixed = styles.Styles(colors={"a": "#1", "b": "#1"}, dashes={"a": "solid", "b": "dash"})
    assert "apart from the seed and the optimizer" in styles.legend_words(mixed)


def test_main_600_difference_before_the_first_recluster_is_explained(monkeypatch):
    at = render(SAMPLE_RUNS / "main-600", monkeypatch, view="Loss")
    words = texts(at)
    assert "before SGG's first re-cluster (step 50, its recorded re-cluster interval)" in words
    assert "the paired difference at steps 25 and 50 is 0 up to floating-point rounding" in words
    assert "(at most 0.0002)" in words


def test_no_words_where_the_early_difference_is_not_near_zero():
    diff = pd.DataFrame(
        {
            "step": [25, 50, 75],
            "diff": [0.01, 0.0, 0.02],
            "lo": [float("nan")] * 3,
            "hi": [float("nan")] * 3,
        }
    )
    assert prepare.near_zero_before(diff, 50)[0] == []
    diff["diff"] = [1e-7, 1e-5, 0.02]
    steps, top = prepare.near_zero_before(diff, 50)
    assert steps == [25, 50] and top == 1e-5
    assert prepare.near_zero_before(diff, 75)[0] == []  # nothing after to compare with

"""What a foreign run did not log is said in the views: the Gradient stability page names each
selected run without a gradient norm ("<run>: gradient norm not recorded in this run") instead
of leaving it out silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from foreign_writers import record_sgg, write_tensorboard_hf

from dashboard.views.gradients import not_recorded_note, runs_without

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")


def test_runs_without_a_quantity():
    tables = {
        "recorded": pd.DataFrame({"step": [1, 2], "grad_norm": [1.0, 0.9]}),
        "foreign": pd.DataFrame({"step": [1, 2], "grad_norm": [np.nan, np.nan]}),
        "no column": pd.DataFrame({"step": [1, 2]}),
        "no table": None,
        "empty": pd.DataFrame({"step": [], "grad_norm": []}),
    }
    assert runs_without(tables, "grad_norm") == ["foreign", "no column", "no table", "empty"]
    assert runs_without(tables) == ["no table", "empty"]
    assert not_recorded_note(["a", "b"], "gradient norm") == (
        "a: gradient norm not recorded in this run.\n\nb: gradient norm not recorded in this run."
    )


def test_gradient_stability_names_a_foreign_run_without_gradient_norm(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    record_sgg(tmp_path / "sgg-lr1e-3", steps=30)
    write_tensorboard_hf(tmp_path / "tensorboard" / "adamw-baseline")  # logs no grad norm
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["view"] = "Gradient stability"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "could not be drawn" in e.value]
    notes = [i.value for i in at.info if "not recorded in this run" in i.value]
    assert "adamw-baseline: gradient norm not recorded in this run." in notes
    assert "adamw-baseline: per-layer gradient norm not recorded in this run." in notes
    assert not [n for n in notes if "sgg-lr1e-3: gradient norm" in n]  # it recorded one

"""Spikes per run do not mix gradient norms: a run whose gradient norm is before clipping and a
run whose norm is after clipping have their gradient spikes refused ("cannot tell: one run's
gradient norm is before clipping, the other's after", the gradient-variation rule); their loss
spikes are still compared. Pure functions first, then the page with the real writers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import narrative
from dashboard.metrics import compare
from runformat.run_info import POST_CLIP, PRE_CLIP, RunInfo

APART = "cannot tell: one run's gradient norm is before clipping, the other's after"
N = 300


def _meta(grad_norm: str, optimizer: str) -> dict:
    info = RunInfo(optimizer=optimizer, lr=1e-3, grad_clip=1.0, grad_norm=grad_norm, seed=0)
    return {"optimizer": {"name": optimizer}, "config": {"lr": 1e-3}, "description": info.to_json()}


def _steps(loss_spikes: tuple[int, ...], grad_spikes: tuple[int, ...], grad: float) -> pd.DataFrame:
    """A calm run with a loss spike (2x) at each of `loss_spikes` and a gradient spike (10x) at
    each of `grad_spikes`."""
    step = np.arange(1, N + 1)
    loss = 3.0 + 0.01 * np.sin(step)
    g = grad * (1.0 + 0.05 * np.cos(step))
    for s in loss_spikes:
        loss[s - 1] *= 2.0
    for s in grad_spikes:
        g[s - 1] *= 10.0
    return pd.DataFrame({"step": step, "loss": loss, "grad_norm": g})


def _facts(name: str, meta: dict, steps: pd.DataFrame) -> compare.RunFacts:
    return compare.run_facts(name, meta, "finished", steps, None)


@pytest.fixture
def mixed():
    """sgg: after clipping, 1 loss spike and 2 gradient spikes; adamw: before clipping, calm."""
    a = _facts("sgg", _meta(POST_CLIP, "sgg"), _steps((150,), (100, 220), 1.0))
    b = _facts("adamw", _meta(PRE_CLIP, "adamw"), _steps((), (), 2.0))
    return a, b


def test_the_facts_count_what_was_planted(mixed):
    a, b = mixed
    assert (a.loss_spikes, a.grad_spikes) == (1, 2) and (b.loss_spikes, b.grad_spikes) == (0, 0)


def test_spikes_per_run_count_loss_spikes_alone_when_norms_differ(mixed):
    a, b = mixed
    c = compare.compare([a], [b], "sgg", "adamw")
    assert c.grad_mismatch.startswith("one run's gradient norm is before clipping")
    assert (c.spikes, c.base_spikes) == (1.0, 0.0)  # sgg's 2 gradient spikes are not counted
    text = narrative.stability_sentence(c)
    assert "Loss spikes per run (mean over seeds): 1 vs 0" in text
    assert "Gradient spikes and gradient-size variation (" in text and APART in text
    assert "Spikes per run (loss and gradient" not in text
    table = narrative.detail_table([c], c)
    assert table.iloc[0][narrative.SPIKES_LABEL] == "0 (loss only)"
    cell = table.iloc[1][narrative.SPIKES_LABEL]
    assert cell.startswith("1 vs 0 (loss only; gradient: ") and APART in cell


def test_alike_norms_still_count_loss_and_gradient_spikes(mixed):
    a, _ = mixed
    b = _facts("adamw", _meta(POST_CLIP, "adamw"), _steps((), (), 2.0))
    c = compare.compare([a], [b], "sgg", "adamw")
    assert c.grad_mismatch == "" and (c.spikes, c.base_spikes) == (3.0, 0.0)
    text = narrative.stability_sentence(c)
    assert "Spikes per run (loss and gradient, mean over seeds): 3 vs 0" in text
    assert "clipping" not in text
    assert "loss only" not in narrative.detail_table([c], c).to_csv()


def test_a_chart_of_both_norms_says_it_cannot_tell():
    post, pre = _meta(POST_CLIP, "sgg"), _meta(PRE_CLIP, "adamw")
    note = narrative.grad_norms_apart([("adamw", [pre]), ("sgg", [post, post])])
    assert APART in note and "adamw's is before clipping" in note and "sgg's after" in note
    assert narrative.grad_norms_apart([("a", [post]), ("b", [post])]) == ""
    no_clip = {**pre, "description": {**pre["description"], "grad_clip": 0.0}}
    assert narrative.grad_norms_apart([("a", [post]), ("b", [no_clip])]) == ""  # same norm


# ------------------------------------------------------------------ the page, real writers


def _page_text(at) -> str:
    parts = [
        str(e.value)
        for kind in ("warning", "info", "error", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    parts += [t.value.to_csv() for t in at.table]
    return "\n".join(parts)


def test_page_refuses_gradient_spikes_of_a_trainer_and_a_recorded_run(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    from streamlit.testing.v1 import AppTest

    from dashboard import foreign
    from dashboard.app import ENV_ROOT

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foreign"))
    from like_for_like_writers import hf_args, write_recorded_hf, write_tensorboard_hf

    monkeypatch.setenv("SGG_FOREIGN_CACHE", str(tmp_path / ".foreign-cache"))
    foreign.clear_cache()
    args = hf_args()
    root = tmp_path / "runs"
    write_recorded_hf(root / "sgg-hf", args)  # the recorder: after clipping
    write_tensorboard_hf(root / "adamw-tb", args)  # the Trainer's train/grad_norm: before
    monkeypatch.setenv(ENV_ROOT, str(root))
    app = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.session_state["baseline"] = "adamw-tb"
    at.session_state["compare"] = ["sgg-hf"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert "Loss spikes per run" in labels and "Spikes per run" not in labels
    text = _page_text(at)
    assert "Loss spikes per run (mean over seeds)" in text and APART in text
    assert "Spikes per run (loss and gradient" not in text
    at.session_state["view"] = "Gradient stability"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning if APART in w.value]
    assert len(warnings) == 1 and "sgg-hf's after clipping" in warnings[0]
    foreign.clear_cache()

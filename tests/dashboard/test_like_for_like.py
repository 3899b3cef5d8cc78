"""Like for like across sources: the typed run description (runformat.run_info) compares an HF
run recorded through the callback (nested training_arguments) with the same setup logged to
TensorBoard (flat arguments) setting by setting; a setting one run does not record is "not
recorded", apart; gradient norms before and after clipping are not compared; odd run.json
values are named, and the Runs view renders them."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dashboard import loader, narrative
from dashboard.app import ENV_ROOT
from dashboard.metrics import compare, groups, health, statistics, sweep
from dashboard.views import runs as runs_view
from tests.dashboard.dash_fixtures import SAMPLE_RUNS, copy_run, edit_meta

pytest.importorskip("transformers")
pytest.importorskip("tensorboard")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foreign"))
from like_for_like_writers import (
    LOG_EVERY,
    STEPS,
    hf_args,
    write_recorded_hf,
    write_tensorboard_hf,
)

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture(autouse=True)
def _foreign_cache(tmp_path, monkeypatch):
    from dashboard import foreign

    monkeypatch.setenv("SGG_FOREIGN_CACHE", str(tmp_path / ".foreign-cache"))
    foreign.clear_cache()
    yield
    foreign.clear_cache()


@pytest.fixture(scope="module")
def args() -> dict:
    return hf_args()


def _runs(root: Path) -> dict[str, loader.Run]:
    found = loader.discover_runs(root)
    return {r.rel: r for r in found.runs}


def _facts(run: loader.Run, root: Path) -> compare.RunFacts:
    steps = loader.read_table(run, "steps", root).df
    evals = loader.read_table(run, "evals", root).df
    return compare.run_facts(run.name, run.meta, "finished", steps, evals)


@pytest.fixture
def pair(tmp_path, args) -> tuple[Path, dict]:
    root = tmp_path / "runs"
    logged = write_recorded_hf(root / "sgg-hf", args)
    write_tensorboard_hf(root / "adamw-tb", args)
    return root, logged


def test_the_same_trainer_recorded_and_logged_to_tensorboard_is_like_for_like(pair):
    root, _ = pair
    runs = _runs(root)
    rec, tb = runs["sgg-hf"].meta, runs["adamw-tb"].meta
    assert (groups.optimizer_name(rec), groups.optimizer_name(tb)) == ("sgg", "adamw")
    # nested config.training_arguments.learning_rate and flat learning_rate: one setting
    assert groups.settings(rec)["config.lr"] == groups.settings(tb)["config.lr"] == 1e-2
    assert groups.differing_settings(rec, tb) == []
    assert groups.unrecorded_settings(rec, tb) == []
    c = compare.compare(
        [_facts(runs["sgg-hf"], root)], [_facts(runs["adamw-tb"], root)], "sgg-hf", "adamw-tb"
    )
    assert c.not_like_for_like == [] and c.not_recorded == ()
    assert narrative.like_for_like(c) == ""


def test_a_real_difference_is_still_named(tmp_path, args):
    root = tmp_path / "runs"
    write_recorded_hf(root / "sgg-hf", args)
    write_tensorboard_hf(root / "adamw-tb", {**args, "learning_rate": 2e-2, "max_grad_norm": 0.5})
    runs = _runs(root)
    diff = groups.differing_settings(runs["sgg-hf"].meta, runs["adamw-tb"].meta)
    assert ("learning rate", "1e-2", "2e-2") in diff
    assert ("gradient clipping (max norm)", "1", "0.5") in diff
    assert len(diff) == 2, diff


def test_a_setting_one_run_does_not_record_is_said_apart(tmp_path, args):
    root = tmp_path / "runs"
    write_recorded_hf(root / "sgg-hf", args)
    lean = {k: v for k, v in args.items() if k not in ("max_grad_norm", "bf16", "fp16")}
    write_tensorboard_hf(root / "adamw-tb", lean)
    runs = _runs(root)
    rec, tb = runs["sgg-hf"].meta, runs["adamw-tb"].meta
    assert groups.differing_settings(rec, tb) == []
    missing = groups.unrecorded_settings(rec, tb)
    assert sorted(missing) == [("gradient clipping (max norm)", "b"), ("precision", "b")]
    c = compare.compare(
        [_facts(runs["sgg-hf"], root)], [_facts(runs["adamw-tb"], root)], "sgg-hf", "adamw-tb"
    )
    text = narrative.like_for_like(c)
    assert "Not like for like" not in text
    assert "not recorded in adamw-tb: gradient clipping (max norm), precision" in text
    assert groups.group_id(rec) != groups.group_id(tb)  # not claimed to be the same settings


def test_gradient_norms_before_and_after_clipping_are_not_compared(pair):
    root, _ = pair
    runs = _runs(root)
    assert runs["adamw-tb"].meta["description"]["grad_norm"] == "pre_clip"
    assert runs["sgg-hf"].meta["description"]["grad_norm"] == "post_clip"
    a, b = _facts(runs["sgg-hf"], root), _facts(runs["adamw-tb"], root)
    assert math.isfinite(a.grad_cv) and math.isfinite(b.grad_cv)  # both have a variation
    c = compare.compare([a], [b], "sgg-hf", "adamw-tb")
    assert not c.cv_diff.has_interval and not c.cv_diff.detected
    text = narrative.stability_sentence(c)
    assert "cannot tell: one run's gradient norm is before clipping, the other's after" in text
    assert "sgg-hf's is after clipping" in text and "adamw-tb's before clipping" in text
    assert "grad_norm" in text  # the field it comes from
    # the same comparison between two runs recorded alike keeps its verdict rule
    same = compare.compare([a], [a], "sgg-hf", "sgg-hf")
    assert "clipping" not in same.cv_diff.reason


def test_a_loss_logged_every_ten_steps_is_not_a_divergence(pair):
    root, logged = pair
    run = _runs(root)["sgg-hf"]
    table = loader.read_table(run, "steps", root)
    steps = table.df
    assert len(steps) == STEPS and steps["loss"].isna().sum() == STEPS - STEPS // LOG_EVERY
    for step, value in logged.items():  # what was logged, at the step it was logged
        assert steps.loc[steps["step"] == step, "loss"].item() == pytest.approx(value, rel=1e-12)
    assert health.nonfinite_loss(steps) == (0, None)
    problems = health.data_problems(run.meta, "finished", steps)
    assert not any("diverged" in p or "not-a-number" in p for p in problems), problems
    assert _facts(run, root).first_nan_step is None
    s = statistics.summarize("r", "sgg", "finished", steps, None)
    assert s.nan_steps == 0 and s.first_nan_step is None and np.isfinite(s.final_train_loss)


def test_a_logged_nan_loss_still_reads_diverged(tmp_path):
    from recorder import Recorder

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "r", optimizer=opt, model=model) as rec:
        for step in range(1, 7):
            model(torch.ones(1, 2)).sum().backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(loss=float("nan") if step >= 4 else (2.0 if step % 2 else None))
    run = _runs(tmp_path)["r"]
    steps = loader.read_table(run, "steps", tmp_path).df
    assert health.nonfinite_loss(steps) == (3, 4)  # steps 4-6; the null at step 2 is not
    assert any("not-a-number at step 4" in p for p in health.data_problems(run.meta, "x", steps))


# --------------------------------------------------------------------------- odd run.json


@pytest.fixture
def odd_root(tmp_path) -> Path:
    """Two sample runs, one with seed "zero", one whose optimizer is a bare name, and one HF
    run whose config says the learning rate twice (config.lr and training_arguments)."""
    root = tmp_path / "runs"
    root.mkdir()
    base = copy_run(SAMPLE_RUNS / "adamw-lr4e-3-s0", root, "base")
    meta = json.loads((base / "run.json").read_text())
    meta.pop("description", None)
    (base / "run.json").write_text(json.dumps(meta))
    zero = copy_run(SAMPLE_RUNS / "sgg-lr4e-3-T25-s0", root, "zero")
    cfg = json.loads((zero / "run.json").read_text())["config"]
    edit_meta(zero, seed="zero", config={k: v for k, v in cfg.items() if k != "seed"})
    text = copy_run(SAMPLE_RUNS / "sgg-lr4e-3-T25-s1", root, "text-optimizer")
    edit_meta(text, optimizer="adamw")
    twice = copy_run(SAMPLE_RUNS / "sgg-lr4e-3-T25-s2", root, "lr-twice")
    cfg = json.loads((twice / "run.json").read_text())["config"]
    edit_meta(twice, config={**cfg, "training_arguments": {"learning_rate": 5e-5}})
    return root


def test_seed_zero_is_named_and_read_as_not_recorded(odd_root):
    run = _runs(odd_root)["zero"]
    assert groups.seed_of(run.meta) is None
    problems = health.data_problems(run.meta, "finished", None)
    assert "run.json: seed is 'zero', not an integer; treated as not recorded" in problems
    rows = sweep.typed_rows(run.meta)
    assert rows["run.seed"] == sweep.NOT_RECORDED


def test_two_keys_that_read_alike_get_two_labels():
    metas = {
        "a": {
            "optimizer": {"name": "adamw"},
            "config": {"lr": 1e-3, "training_arguments": {"learning_rate": 5e-5}},
        },
        "b": {"optimizer": {"name": "adamw"}, "config": {"lr": 2e-3}},
    }
    cfg = runs_view.settings_frame(metas, {"a": None, "b": None})
    assert cfg.index.is_unique, list(cfg.index)
    assert "training: learning rate" in cfg.index
    assert "training: learning rate (training arguments)" in cfg.index
    typed = [str(k).startswith("run: ") for k in cfg.index]
    differs = cfg["differs"].tolist()
    assert differs == sorted(differs, reverse=True)  # the rows where the runs differ first
    for part in (True, False):  # within each, the typed description first, then run.json
        rows = [t for t, d in zip(typed, differs, strict=True) if d == part]
        assert rows == sorted(rows, reverse=True)
    assert cfg.index[0] == "run: learning rate (peak)"
    assert cfg.loc["run: learning rate (peak)", "a"] == 1e-3  # the config's own words


def _app(root: Path, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in state.items():
        at.session_state[k] = v
    return at


def test_the_runs_view_renders_odd_runs_without_error(odd_root, monkeypatch):
    at = _app(
        odd_root,
        monkeypatch,
        view="Runs",
        baseline="base",
        compare=["zero", "text-optimizer", "lr-twice"],
    )
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = next(d.value for d in at.dataframe if "run: seed" in d.value.index)
    assert cfg.loc["run: seed", "zero"] == "not recorded"
    assert cfg.loc["run: optimizer", "text-optimizer"] == "adamw"
    assert cfg.index.is_unique and "training: learning rate (training arguments)" in cfg.index
    assert cfg.loc["run: learning rate (peak)", "lr-twice"] == "0.004"  # config.lr, not 5e-5


def test_the_runs_view_lists_a_foreign_runs_tables(pair, monkeypatch):
    root, _ = pair
    at = _app(root, monkeypatch, view="Runs", baseline="adamw-tb", compare=["sgg-hf"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="csv_run").set_value("adamw-tb").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("no readable tables" in str(i.value) for i in at.info)
    assert "steps" in at.selectbox(key="csv_table").options
    cfg = next(d.value for d in at.dataframe if "run: written by" in d.value.index)
    assert cfg.loc["run: gradient norm recorded", "adamw-tb"] == "before clipping"
    assert cfg.loc["run: gradient norm recorded", "sgg-hf"] == "after clipping"

"""The Sweep tab after a fresh-eyes review: its two tables and chart count a repeat of a seed
once and name it; 'cannot tell' only where the interval holds gaps both under and over 5%, with
the numbers and the reason; a norm after clipping that is off reads as the gradient's own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dashboard import loader, narrative, sweep_report
from dashboard.metrics import compare, sweep, sweep_groups
from tests.dashboard.dash_fixtures import SAMPLE_RUNS

HP = "config.lr"
COPY = "sgg-lr4e-3-T25-s2-restored-from-backup"
LR_SWEEP = [
    f"{opt}-lr{lr}-{tail}s{s}"
    for opt, tail in (("adamw", ""), ("sgg", "T25-"))
    for lr in ("1e-3", "4e-3", "1.6e-2")
    for s in range(3)
]


def _facts(root: Path) -> dict[str, compare.RunFacts]:
    out = {}
    for run in loader.discover_runs(root).runs:
        steps = loader.read_table(run, "steps", root).df
        evals = loader.read_table(run, "evals", root).df
        out[run.rel] = compare.run_facts(run.name, run.meta, "finished", steps, evals)
    return out


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    """(the learning-rate sweep of the sample runs, the same plus a copy of one SGG run under
    another name with the same seed: a repeat of that seed)."""
    plain = tmp_path_factory.mktemp("plain")
    for name in LR_SWEEP:
        shutil.copytree(SAMPLE_RUNS / name, plain / name)
    twice = tmp_path_factory.mktemp("twice")
    shutil.copytree(plain, twice, dirs_exist_ok=True)
    shutil.copytree(SAMPLE_RUNS / "sgg-lr4e-3-T25-s2", twice / COPY)
    meta = json.loads((twice / COPY / "run.json").read_text())
    (twice / COPY / "run.json").write_text(json.dumps({**meta, "name": COPY}))
    return plain, twice


def test_both_tables_and_the_chart_give_one_mean_and_name_the_repeat(roots):
    facts = _facts(roots[1])
    frame = sweep_report.sweep_frame(facts, HP)
    pairs = sweep_groups.head_to_head(facts, HP)
    table = sweep_report.head_to_head_table(pairs, HP, sweep_report.head_to_head_notes(facts, HP))
    points = sweep_report.points_table(frame, HP)
    for v, c in pairs:  # the chart draws `frame`, the bottom table lists it
        at = frame[frame["value"] == v].set_index("optimizer")["final_loss"]
        assert narrative.num(at["sgg"]) == narrative.num(c.loss)
        assert narrative.num(at["adamw"]) == narrative.num(c.base_loss)
    sgg4 = points[(points["optimizer"] == "sgg") & (points["learning rate"] == 4e-3)].iloc[0]
    assert sgg4["seeds"] == 3 and COPY in sgg4["runs"]
    assert sgg4["runs not counted as seeds"].startswith(f"{COPY} repeats seed 2 of ")
    row = table[table["setting"] == "4e-3"].iloc[0]
    assert row["seeds (SGG / AdamW)"] == "3 / 3" and COPY in row["runs not counted as seeds"]
    assert COPY not in " ".join(table[table["setting"] != "4e-3"]["runs not counted as seeds"])
    assert COPY in " ".join(sweep_report.tolerance_lines(facts, HP))
    for t in (table, points):  # no column says nothing
        assert all((t[c].astype(str) != "").any() for c in t.columns), list(t.columns)


def test_without_repeats_the_points_are_the_old_ones(roots):
    facts = _facts(roots[0])
    old = sweep_groups.sweep_frame(facts, HP)
    new = sweep_report.sweep_frame(facts, HP)
    for col in ("final_loss", "lo", "hi", "n", "diverged", "name"):
        assert list(new[col]) == list(old[col]), col
    assert set(new["note"]) == {sweep_report.NO_REPEATS}


def test_cannot_tell_only_when_the_interval_holds_both_and_says_why(roots):
    facts = _facts(roots[0])
    losses = sweep_report.point_losses(facts, HP)
    lines = sweep_report.tolerance_lines(facts, HP)
    for t in sweep_groups.tolerance_claims(facts, HP, within=sweep_report.WITHIN):
        limit = sweep_report.WITHIN * t.best_loss
        for v in t.within + t.unsure + t.outside:
            if v == t.best_value:
                continue
            d = compare.diff_by_seed(
                *losses[(t.optimizer, v)], *losses[(t.optimizer, t.best_value)]
            )
            # the words follow the interval alone: the same interval gets the same words
            words = "within" if d.high <= limit else "outside" if d.low > limit else "unsure"
            assert v in getattr(t, words), (t.optimizer, v, d)
    adamw, sgg = (next(x for x in lines if x.startswith(f"**{o}**")) for o in ("adamw", "sgg"))
    assert (
        "at 1.6e-2 +18% ± 18%: cannot tell whether within 5% (its interval, -0.026% to +36%"
        in adamw
    )
    assert "the seeds' own gaps, each against the same seed at 1e-3: +9.6%, +22%, +22%" in adamw
    assert "too few seeds to confirm either way" not in adamw
    assert "at 1.6e-2 +23% ± 14%: more than 5% worse (at least +8.8%)" in sgg


def test_a_norm_after_clipping_that_is_off_reads_as_the_gradients():
    meta = json.loads((SAMPLE_RUNS / "adamw-lr4e-3-s0" / "run.json").read_text())
    rows = sweep.typed_rows(meta)
    assert rows["run.grad_clip"] == "off" and rows["run.grad_norm"] == sweep.UNCLIPPED_NORM
    assert sweep.typed_rows(meta, shown=False)["run.grad_norm"] == "after clipping"
    clipped = {**meta, "config": {**meta["config"], "grad_clip": 1.0}}
    assert sweep.typed_rows(clipped)["run.grad_norm"] == "after clipping"
    cfg = sweep.config_table({"off": meta, "on": clipped})
    assert cfg.loc["run.grad_clip", "differs"]
    assert not cfg.loc["run.grad_norm", "differs"]  # compared as before: both after clipping
    assert np.isfinite(float(cfg.loc["run.grad_clip", "on"]))

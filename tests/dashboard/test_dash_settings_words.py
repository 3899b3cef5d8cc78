"""The Runs tab's settings table never says "not recorded" beside what the run recorded: a run
that records its warm-up and floor but not the schedule's name reads "not named"."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from dashboard import settings_table as S
from dashboard.metrics import sweep

REPO = Path(__file__).resolve().parents[2]
ROW, WARM = "run: learning-rate schedule", "run: warm-up steps"


def meta(name: str) -> dict:
    return json.loads((REPO / "sample_runs" / name / "run.json").read_text())


def test_a_recorded_warm_up_beside_an_unnamed_schedule_reads_not_named():
    old = meta("sgg-lr4e-3-T25-s0")  # written before sgg-train named its schedule
    named = copy.deepcopy(old)
    named["name"] = "named"
    named["config"]["lr_schedule"] = "cosine"
    bare = copy.deepcopy(old)
    bare["name"] = "bare"
    for key in ("warmup_steps", "min_lr_ratio"):
        bare["config"].pop(key)
    table = S.settings_frame({"old": old, "named": named, "bare": bare}, {})
    assert table.loc[ROW, "old"] == S.SCHEDULE_UNNAMED and table.loc[WARM, "old"] == 20
    assert table.loc[ROW, "named"] == "cosine"
    assert table.loc[ROW, "bare"] == sweep.NOT_RECORDED
    assert not table.loc[ROW, "differs"]  # what one run does not name is compared with nothing


def test_a_run_that_does_not_apply_sgg_says_so_under_the_optimizer_underneath_sgg():
    table = S.settings_frame(
        {"sgg": meta("sgg-lr4e-3-T25-s0"), "adamw": meta("adamw-lr4e-3-s0")}, {}
    )
    row = "run: optimizer underneath SGG"
    assert table.loc[row, "adamw"] == S.NO_BASE and table.loc[row, "sgg"] == "adamw"

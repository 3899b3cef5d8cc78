"""Each example of issue 10 ("verdicts a stakeholder can trust"), rendered by AppTest on
synthetic runs, now reads consistently."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pyarrow.parquet as pq
from dash_fixtures import edit_meta, small_run
from test_dash_app import render, texts

from dashboard import narrative, report

CLAIM_WORDS = re.compile(r"\b(better|worse|faster|slower|steadier|less steady)\b")


def bullets(at) -> list[str]:
    return [str(m.value) for m in at.markdown if str(m.value).startswith("- ")]


def comparison_frame(at):
    for df in [*at.table, *at.dataframe]:
        if "Verdict" in df.value.columns:
            return df.value
    raise AssertionError("no comparison table")


def chart_specs(at) -> str:
    return " ".join(c.proto.spec for c in at.get("plotly_chart"))


def test_two_seeds_of_one_setting_are_not_sold_as_a_result(tmp_path, monkeypatch):
    small_run(tmp_path, "adamw-s0", optimizer="adamw", lr=4e-3, seed=0)
    small_run(tmp_path, "adamw-s1", optimizer="adamw", lr=4e-3, seed=1)
    at = render(tmp_path, monkeypatch, baseline="adamw-s0", compare=["adamw-s1"])
    text = texts(at)
    assert "differ only in the seed" in text
    in_short = next(b for b in bullets(at) if "In short" in b)
    assert not CLAIM_WORDS.search(in_short)
    for b in bullets(at):  # every other sentence: no verdict without an interval
        if CLAIM_WORDS.search(b.split(":", 1)[-1]):
            assert "95% interval" in b, b


def test_first_screen_never_says_never_and_times_honestly(synthetic_root, monkeypatch):
    at = render(synthetic_root, monkeypatch, baseline="adamw-base", compare=["sgg-k3"])
    text = texts(at)
    assert "never" not in text.lower()
    assert "shadow clustering" in text  # the baseline's extra work is named
    assert "same kind of model" not in text
    time_line = next(b for b in bullets(at) if "Wall time" in b or "Wall times" in b)
    words = ("95% interval", "not compared", "no detectable", "cannot tell")
    assert any(w in time_line for w in words), time_line


def test_unequal_runs_are_compared_at_equal_steps(tmp_path, monkeypatch):
    small_run(tmp_path, "adamw-4e-3", optimizer="adamw", lr=4e-3, seed=0)
    small_run(
        tmp_path,
        "sgg-3e-3",
        optimizer="sgg",
        lr=3e-3,
        seed=0,
        steps=400,
        status="running",
        heartbeat_age_s=3 * 3600,
    )
    at = render(tmp_path, monkeypatch, baseline="adamw-4e-3", compare=["sgg-3e-3"])
    text = texts(at)
    assert any(
        w.value.startswith("Not like for like: learning rate 3e-3 vs 4e-3") for w in at.warning
    )
    assert "400 vs 600 steps" in text and "at step 400" in text
    assert "never" not in text.lower()
    top = [str(w.value) for w in at.warning]
    assert any(w.startswith("**sgg-3e-3**") and "probably killed" in w for w in top)
    at.session_state["view"] = "Loss"
    at.run()
    assert '"text":["stopped"]' in chart_specs(at)  # the end of its curve is marked


def test_a_finished_run_stops_the_live_refresh(tmp_path, monkeypatch):
    small_run(tmp_path, "base", optimizer="adamw", seed=0)
    run = small_run(tmp_path, "live", optimizer="sgg", seed=0, status="running")
    at = render(tmp_path, monkeypatch, baseline="base", compare=["live"])
    assert "Live:" in texts(at) and "still training" in texts(at)
    edit_meta(run, status="finished")
    at.run()
    assert "Live:" not in texts(at) and "still training" not in texts(at)


def test_early_spikes_count_and_truncation_is_named_at_the_top(tmp_path, monkeypatch):
    small_run(tmp_path, "base", optimizer="adamw", seed=0)
    run = small_run(tmp_path, "spiky", optimizer="sgg", seed=0)
    first = sorted((run / "tables" / "steps").glob("*.parquet"))[0]
    t = pq.read_table(first).to_pandas()
    t.loc[t["step"] == 32, "grad_norm"] *= 68
    t.loc[t["step"] == 37, "loss"] *= 1.5
    t.to_parquet(first, index=False)
    trunc = small_run(tmp_path, "trunc", optimizer="sgg", seed=1)
    sorted((trunc / "tables" / "steps").glob("*.parquet"))[-1].unlink()
    at = render(tmp_path, monkeypatch, baseline="base", compare=["spiky", "trunc"], pool=False)
    per_run = next(df.value for df in at.dataframe if "Loss spikes" in df.value.columns)
    row = per_run[per_run["Run"] == "spiky"].iloc[0]
    assert row["Loss spikes"] >= 1 and row["Gradient spikes"] >= 1
    top = [str(w.value) for w in at.warning]
    assert any(w.startswith("**trunc**") and "truncated" in w for w in top), top


def test_many_runs_read_as_one_table(tmp_path, monkeypatch):
    for opt in ("adamw", "sgg"):
        for lr in (1e-3, 4e-3, 1.6e-2):
            small_run(tmp_path, f"{opt}-{lr:g}", optimizer=opt, lr=lr, seed=0)
    others = [f"{o}-{lr:g}" for o in ("adamw", "sgg") for lr in (1e-3, 4e-3, 1.6e-2)]
    others.remove("adamw-0.004")
    at = render(tmp_path, monkeypatch, baseline="adamw-0.004", compare=others)
    assert len(bullets(at)) <= 2, bullets(at)
    table = comparison_frame(at)
    assert len(table) == 6 and list(table.columns[:5]) == [
        "Group",
        "Loss",
        "Baseline's loss at that step",
        "vs baseline",
        "Verdict",
    ]
    at.session_state["view"] = "Loss"
    at.run()
    spec = chart_specs(at)
    assert '"dash":"dash"' in spec and '"dash":"solid"' in spec  # line style by optimizer
    assert '"hoverformat":".4g"' in spec


def test_seed_groups_are_drawn_with_a_band_and_n(tmp_path, monkeypatch):
    for opt in ("adamw", "sgg"):
        for seed in (0, 1, 2):
            small_run(tmp_path, f"{opt}-s{seed}", optimizer=opt, lr=4e-3, seed=seed)
    at = render(tmp_path, monkeypatch, baseline="adamw-s0", compare=["sgg-s0"], view="Loss")
    spec = chart_specs(at)
    assert (
        "adamw, lr 4e-3 (3 seeds)" in spec
        and "sgg, lr 4e-3 (3 seeds)" in spec
        and '"fill":"tonexty"' in spec
    )
    for view in ("Gradient stability", "Clusters", "Sweep", "Runs"):
        at.session_state["view"] = view
        at.run()
        assert not at.exception and not at.error, (view, [e.value for e in at.error])
    at = render(tmp_path, monkeypatch, baseline="adamw-s0", compare=["sgg-s0"])
    table = comparison_frame(at)
    assert table["Seeds"].tolist() == [3, 3]
    assert "paired by seed" in texts(at)
    run_list = next(df.value for df in at.dataframe if "Seed group" in df.value.columns)
    assert set(run_list["Seed group"]) == {"adamw, lr 4e-3 (3 seeds)", "sgg, lr 4e-3 (3 seeds)"}
    # the card, the table and the sentence say the same about the loss
    verdict = table["Verdict"].iloc[1]
    card = next(m for m in at.metric if m.label.startswith("Loss at step"))
    assert card.proto.delta.endswith(verdict)
    loss_line = next(b for b in bullets(at) if "loss at step" in b)
    word = {"no detectable difference": "no detectable difference", "better": "lower (better)"}
    assert word.get(verdict, "higher (worse)") in loss_line


def test_a_killed_run_on_this_host_is_stopped_at_once(tmp_path, monkeypatch):
    small_run(tmp_path, "base", optimizer="adamw", seed=0)
    run = small_run(tmp_path, "killed", optimizer="sgg", seed=0, status="running")
    proc = subprocess.Popen(["true"])
    proc.wait()
    edit_meta(run, hostname=socket.gethostname(), pid=proc.pid)
    at = render(tmp_path, monkeypatch, baseline="base", compare=["killed"])
    text = texts(at)
    assert "Live:" not in text
    assert any(str(w.value).startswith("**killed**: stopped") for w in at.warning)


def test_summary_and_sweep_agree(tmp_path, monkeypatch):
    for opt in ("adamw", "sgg"):
        for lr in (1e-3, 1e-2):
            for seed in (0, 1):
                small_run(tmp_path, f"{opt}-{lr:g}-s{seed}", optimizer=opt, lr=lr, seed=seed)
    at = render(tmp_path, monkeypatch, baseline="adamw-0.001-s0", compare=["sgg-0.001-s0"])
    summary = comparison_frame(at).iloc[1]
    at.session_state["view"] = "Sweep"
    at.run()
    h2h = next(df.value for df in at.table if "result for SGG" in df.value.columns)
    row = h2h[h2h["setting"] == "1e-3"].iloc[0]
    # the same words and the same numbers for the same two groups
    assert row["result for SGG"] == summary["Verdict"], (summary["Verdict"], row)
    assert row["SGG - AdamW (± 95% interval)"] == summary["vs baseline"]
    assert row["seeds (SGG / AdamW)"] == f"{summary['Seeds']} / 2"
    assert narrative.SWEEP_RESULT_NOTE in texts(at)


def test_no_programmer_notes_on_the_page_or_in_the_report(synthetic_root, monkeypatch):
    at = render(synthetic_root, monkeypatch)
    html = report.build_report(
        "t", comparison_frame(at), ["a"], [], [f"{k}: {v}" for k, v in narrative.DEFINITIONS]
    )
    for note in ("FINAL_WINDOW", "Every function takes", "DataFrame", "SPIKE_WINDOW"):
        assert note not in texts(at) and note not in html
    assert json.dumps(narrative.DEFINITIONS)  # plain strings only


def test_definitions_match_what_the_page_shows(synthetic_root, monkeypatch):
    at = render(synthetic_root, monkeypatch)
    assert any(str(m.value) == narrative.definitions_markdown() for m in at.markdown)

"""What the manager-eye reviews of issue 10 found: optimizer time, default selection, one
vocabulary, plain labels (pure functions; the AppTest cases are at the end)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from test_dash_app import render, texts
from test_dash_issue10 import bullets, comparison_frame

from dashboard import narrative
from dashboard.metrics import compare
from dashboard.metrics.compare import RunFacts, step_cost


def test_step_cost_keeps_the_first_step_and_reclusters_apart():
    t = np.full(200, 0.011)
    t[0] = 45.0  # compilation
    rc = np.zeros(200, bool)
    rc[24::25] = True
    t[rc] = 0.8
    c = step_cost(t, rc)
    assert c.typical == 0.011
    assert c.first == 45.0
    assert c.n_recluster == 8 and abs(c.recluster - 0.8) < 1e-12
    assert c.ordinary.size == 200 - 1 - 8
    # the mean that the reviews saw is dominated by the one-off steps
    assert t.mean() > 20 * c.typical


def _facts(name, seed, times, rc=None, shadow=False, opt="sgg"):
    meta = {
        "optimizer": {"name": opt, "shadow": {} if shadow else None},
        "config": {"seed": seed, "lr": 4e-3, "optimizer": opt},
        "host": {"hostname": "h", "cpu": "c", "device": "cpu", "cpu_count": 2},
    }
    steps = np.arange(1, len(times) + 1, dtype=float)
    f = RunFacts(name, seed, meta, "finished", last_step=len(times), shadow=shadow)
    f.train_step, f.train_avg = steps, np.linspace(3, 2, len(times))
    f.optimizer_time = np.asarray(times, float)
    f.step_time = np.full(len(times) - 1, 1.0)
    f.reclustered = np.zeros(len(times), bool) if rc is None else rc
    return f


def _group(
    opt, typical, first, seeds=(0, 1, 2), shadow=False, offsets=(0.0, 0.0, 0.0), recluster=0.7
):
    out = []
    rng = np.random.default_rng(len(opt))
    for s in seeds:
        t = typical + offsets[s] + rng.normal(0, 0.0005, 100)
        t[0] = first
        rc = np.zeros(100, bool)
        rc[24::25] = opt == "sgg" or shadow
        if opt == "sgg":
            t[rc] = recluster
        out.append(_facts(f"{opt}-s{s}", s, t, rc, shadow=shadow, opt=opt))
    return out


def test_a_compile_stall_does_not_make_the_optimizer_look_slower():
    # seed-to-seed spread larger than the gap: no detectable difference
    # re-cluster steps as cheap as ordinary ones: only the 45 s first step differs
    sgg = _group("sgg", 0.011, 45.0, offsets=(-0.001, 0.002, 0.0), recluster=0.012)
    adamw = _group("adamw", 0.011, 0.015, shadow=True, offsets=(0.001, -0.001, 0.0005))
    c = compare.compare(sgg, adamw, "sgg", "adamw")
    assert abs(c.optimizer_time - 0.011) < 0.001 and abs(c.base_optimizer_time - 0.0112) < 0.001
    assert c.first_step_time == 45.0 and abs(c.recluster_time - 0.012) < 1e-9
    text = narrative.time_sentence(c)
    assert "re-cluster steps' time spread over all steps" in text
    assert "first step 45 s" in text and "compil" in text
    assert "re-cluster step 12 ms" in text
    # the baseline's shadow clustering runs after its timed step: named as outside it
    assert "not in its optimizer time" in text
    assert "times the baseline's" not in text  # no ratio beside an undetected difference
    row = narrative.cost_table([c], c).iloc[1]
    assert row[narrative.OPTIMIZER_TIME].startswith("11")
    assert row["Optimizer time vs baseline"] == narrative.NO_DIFFERENCE


def test_a_real_optimizer_cost_is_detected_with_its_ratio_in_table_and_text():
    sgg = _group("sgg", 0.30, 45.0)
    adamw = _group("adamw", 0.012, 0.015)
    c = compare.compare(sgg, adamw, "sgg", "adamw")
    assert c.optimizer_time_diff.detected
    text = narrative.time_sentence(c)
    assert "more time by" in text and "times the baseline's" in text
    assert narrative.NO_DIFFERENCE not in text.split("Reported apart")[0]
    cell = narrative.cost_table([c], c).iloc[1]["Optimizer time vs baseline"]
    # 0.30 s ordinary steps plus 3 re-clusters of 0.7 s in 99 steps, against 12 ms: ~26x
    assert cell.startswith("more time, 26")


def test_the_table_and_the_sentences_use_one_vocabulary():
    sgg = _group("sgg", 0.011, 45.0, offsets=(-0.001, 0.002, 0.0), recluster=0.012)
    adamw = _group("adamw", 0.011, 0.015, offsets=(0.001, -0.001, 0.0005))
    c = compare.compare(sgg, adamw, "sgg", "adamw")
    tables = [f([c], c) for f in (narrative.comparison_table, narrative.cost_table)]
    cells = " ".join(" ".join(t.astype(str).to_numpy().ravel()) for t in tables)
    assert "none detected" not in cells and "tie" not in cells
    assert tables[1].iloc[1]["Optimizer time vs baseline"] == narrative.NO_DIFFERENCE


# --------------------------------------------------------------------------- AppTest, samples

SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"


def test_default_screen_compares_standard_sgg_with_adamw_groups(monkeypatch):
    """The default answers "does SGG help?" with the pair that has the most seeds: the
    600-step main comparison of sample_runs/ (10 paired seeds each)."""
    at = render(SAMPLES, monkeypatch)
    assert at.session_state["baseline"] == "main-600/adamw-lr4e-3-s0"
    assert at.session_state["compare"] == ["main-600/sgg-lr4e-3-T50-s0"]
    picker = at.multiselect(key="compare")
    # one entry per seed group (9 groups, the baseline's left out), shown by the group's label
    assert len(picker.options) == 8
    assert "sgg, decay 0.9, lr 4e-3 (3 seeds)" in picker.options
    heading = next(str(h.value) for h in at.subheader)
    assert heading == "How do the runs compare with adamw, lr 4e-3 (10 seeds)?"
    assert any(str(m.value) == "#### sgg, lr 4e-3 (10 seeds)" for m in at.markdown)
    text = texts(at)
    assert "scale decay" not in text.split("####")[0]  # no SGG-only setting for AdamW
    time_line = next(b for b in bullets(at) if "Time inside the optimizer step" in b)
    # no percentage claims: a % only where it says what these seeds could detect
    assert "re-cluster steps' time spread over all steps" in time_line
    plain = re.sub(r"\([\d.]+% of the baseline's value\)|95% interval|80% power", "", time_line)
    assert "%" not in plain
    assert "first step" in time_line and "re-cluster step" in time_line
    table = comparison_frame(at)
    assert table["Seeds"].tolist() == [10, 10]
    # the sample runs were made so that this page can answer: <= 3% of the final loss
    detectable = float(table.iloc[1]["Smallest detectable difference (80% power)"])
    assert detectable <= 0.03 * float(table.iloc[0]["Loss"])


def test_speed_and_spikes_table_has_no_self_comparison_and_one_spike_unit():
    sgg = _group("sgg", 0.011, 45.0)
    adamw = _group("adamw", 0.011, 0.015)
    for f in sgg + adamw:  # every run recorded its gradient norm (no spikes unless set)
        f.grad_spikes = 0.0
    sgg[0].grad_spikes, sgg[1].loss_spikes = 2, 2  # 4 spikes in 3 runs
    c = compare.compare(sgg, adamw, "sgg", "adamw")
    t = narrative.detail_table([c], c)
    assert t.iloc[0]["Steps to the baseline's loss"] == "" and t.iloc[0]["Speed"] == ""
    assert (
        t.iloc[1][narrative.spikes_label([c])] == "1.33 vs 0"
    )  # the baseline's over the same steps
    assert narrative.verdict_word(c.spikes_diff, "fewer", "more") == t.iloc[1]["Spikes"]
    assert "Spikes per run" in narrative.stability_sentence(c)


def test_gradient_chart_counts_spikes_per_run_like_the_summary():
    import pandas as pd

    from dashboard import figures

    lines = pd.DataFrame({"run": ["g"] * 3, "step": [1, 2, 3], "grad_norm": [1.0, 9.0, 1.0]})
    spikes = pd.DataFrame({"run": ["g"] * 4, "step": [2, 2, 3, 3], "grad_norm": [9.0] * 4})
    fig = figures.grad_norm_figure(
        lines, lines.iloc[:0], spikes, "step", {"g": "#000"}, runs_per_line={"g": 3}
    )
    assert any(t.name == "g: gradient spikes, 1.33 per run (4 in 3 runs)" for t in fig.data)


def test_settings_have_plain_labels_and_recording_options_are_hidden():
    from dashboard.metrics import sweep

    assert sweep.setting_label("config.lr") == "training: learning rate"
    assert sweep.setting_label("clustering.median_sample") == (
        "grouping: values sampled to estimate medians"
    )
    assert sweep.recording_only("config.out") and sweep.recording_only("config.flush_every")
    assert not sweep.recording_only("config.lr")


def test_runs_view_shows_no_raw_keys(monkeypatch):
    at = render(SAMPLES, monkeypatch, view="Runs")
    text = texts(at)
    for raw in ("config.lr", "config.out", "clustering.median_sample", "`"):
        assert raw not in text, raw
    cfg = next(df.value for df in at.dataframe if "main-600/adamw-lr4e-3-s0" in df.value.columns)
    assert "training: learning rate" in cfg.index
    assert not any("." in str(k).split(":")[0] for k in cfg.index)


def test_a_pile_at_the_adaptive_lr_edge_is_explained_not_hidden():
    import pandas as pd

    from dashboard.metrics import clusters

    h = pd.DataFrame({"bin_right": [1.0, 10.0, 4e4], "count": [30, 10, 60]})
    share = clusters.top_bin_share(h)
    assert share == 0.6
    assert "learning rate / eps" in narrative.pileup_note(share)
    assert narrative.pileup_note(clusters.top_bin_share(h.assign(count=[80, 15, 5]))) == ""


def test_every_runs_numbers_show_the_variation_in_percent_and_no_duplicate_best():
    from dashboard.metrics import statistics

    s = statistics.RunSummary("r", "sgg", "finished", grad_norm_cv=0.74)
    s.final_train_loss = s.best_train_loss = 2.0
    t = statistics.summary_table([s])
    assert t["Gradient-size variation (CV, %)"].iloc[0] == 74.0
    assert "Best train loss" not in t.columns


def test_loss_view_difference_is_on_the_summarys_measure(monkeypatch):
    """The difference panel uses the validation loss, as the Summary's verdict does (the note
    on training against validation is only for runs without evaluations)."""
    at = render(SAMPLES, monkeypatch, view="Loss")
    text = texts(at)
    assert "Validation loss (held-out data) of each run minus the baseline's" in text
    assert narrative.TRAIN_VS_VALIDATION not in text


def test_gradient_view_shares_one_step_axis_with_the_layer_map(monkeypatch):
    import json

    at = render(SAMPLES, monkeypatch, view="Gradient stability")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    combined = next(s for s in specs if any(t["type"] == "heatmap" for t in s["data"]))
    assert any(t["type"] == "scatter" for t in combined["data"])  # the gradient norm
    assert (
        combined["layout"]["xaxis"].get("matches") == "x2"
        or combined["layout"].get("xaxis2", {}).get("matches") == "x"
    )

"""What a view is drawn from (issue 19): the selection, the table reader, the styles and the typed
chart options, apart; and the pure pieces the views were emptied into (cards, the sweep's
answer). Real runs: synthetic ones written by the run format's own writer, and sample_runs/."""

from __future__ import annotations

import dataclasses

import pytest
from dash_fixtures import SAMPLE_RUNS, small_run

from dashboard import cards, loader, narrative, palette, sidebar, sweep_report
from dashboard.chart_options import ChartOptions
from dashboard.context import Ctx
from dashboard.metrics import compare, groups
from dashboard.selection import Selection
from dashboard.styles import series_styles
from dashboard.tables import TableReader


@pytest.fixture(scope="module")
def seeds_root(tmp_path_factory):
    """Two seeds of AdamW and two of SGG at one setting, and one SGG run at another lr."""
    root = tmp_path_factory.mktemp("seeds")
    for seed in (1, 2):
        small_run(root, f"adamw-s{seed}", optimizer="adamw", seed=seed)
        small_run(root, f"sgg-s{seed}", optimizer="sgg", seed=seed)
    small_run(root, "sgg-fast", optimizer="sgg", seed=1, lr=3e-3)
    return root


def _runs(root):
    disc = loader.discover_runs(root)
    runs = [r for r in disc.runs if r.readable]
    return disc.root, runs, sidebar.run_labels(runs)


# ----------------------------------------------------------------------------- chart options


def test_chart_options_are_typed_and_frozen():
    o = ChartOptions.of({"pool": False, "x": "tokens"})
    assert (o.x, o.pool, o.smoothing, o.band) == ("tokens", False, 0.9, "minmax")
    assert (o.x_column, o.x_title) == ("tokens", "Tokens seen")
    assert ChartOptions.of(o) is o and ChartOptions.of(None) == ChartOptions()
    assert ChartOptions(smoothing=0.5).headline_smoothing == 0.9
    assert ChartOptions(smoothing=0.99).headline_smoothing == 0.99
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.x = "step"


@pytest.mark.parametrize(
    "given, named",
    [
        ({"x": "epoch"}, "x"),
        ({"band": "iqr"}, "band"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"smoothing": -0.1}, "smoothing"),
        ({"smoothing": float("nan")}, "smoothing"),
        ({"smooth": 0.5}, "smooth"),  # a misspelt option is named, not ignored
    ],
)
def test_bad_chart_options_name_the_option(given, named):
    with pytest.raises(ValueError, match=named):
        ChartOptions.of(given)


# ----------------------------------------------------------------------------------- selection


def test_selection_pools_seeds_and_is_never_edited(seeds_root):
    root, runs, labels = _runs(seeds_root)
    sel = Selection(root, tuple(runs), labels, "adamw-s1", ("sgg-s1",), pool=True)
    assert [m for _, m in sel.series] == [["adamw-s1", "adamw-s2"], ["sgg-s1", "sgg-s2"]]
    assert sel.series_rels() == ["adamw-s1", "adamw-s2", "sgg-s1", "sgg-s2"]
    apart = dataclasses.replace(sel, pool=False)
    assert [m for _, m in apart.series] == [["adamw-s1"], ["sgg-s1"]]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sel.baseline = "sgg-s1"
    with pytest.raises(ValueError, match="no-such-run"):
        Selection(root, tuple(runs), labels, "no-such-run")


def test_a_refresh_makes_a_new_selection_with_newer_metadata(seeds_root):
    root, runs, labels = _runs(seeds_root)
    sel = Selection(root, tuple(runs), labels, "adamw-s1", ("sgg-s1",))
    newer = dataclasses.replace(sel.by_rel["sgg-s1"], meta={**sel.meta("sgg-s1"), "note": 1})
    fresh = sel.with_runs([newer])
    assert fresh.meta("sgg-s1")["note"] == 1 and "note" not in sel.meta("sgg-s1")
    assert fresh.series == sel.series


# -------------------------------------------------------------------------------------- styles


def test_24_settings_get_24_colours_and_an_optimizer_its_dash():
    def meta(opt: str, lr: float) -> dict:
        return {"optimizer": {"name": opt, "hyperparameters": {"lr": lr}}}

    firsts = [
        (f"{opt} {i}", meta(opt, 1e-4 * (i + 1))) for i in range(24) for opt in ("adamw", "sgg")
    ]
    colors, dashes = series_styles(firsts)
    assert len(set(colors.values())) == 24 == len(palette.SERIES_COLORS)
    assert colors["adamw 0"] == palette.SERIES_COLORS[0]  # the baseline's setting first
    assert colors["adamw 5"] == colors["sgg 5"]  # one setting, one colour
    assert (dashes["adamw 5"], dashes["sgg 5"]) == ("solid", "dash")
    other, _ = series_styles([("a", meta("adamw", 1e-3)), ("b", meta("sgg", 1e-3))])
    assert other["a"] != other["b"]  # two lines on show: one colour each


def test_every_chart_of_a_page_uses_the_pages_styles(seeds_root):
    root, runs, labels = _runs(seeds_root)
    ctx = Ctx(root, runs, labels, "adamw-s1", ["sgg-s1", "sgg-fast"], {"pool": True})
    from dashboard.charts import eval_figure, train_figure

    for fig in (train_figure(ctx), eval_figure(ctx)):
        drawn = {t.name: t.line.color for t in fig.data if t.showlegend is not False}
        assert drawn and drawn == {n: ctx.styles.colors[n] for n in drawn}


# ------------------------------------------------------------------------------- table reader


def test_the_reader_reads_a_table_once_per_page_run(seeds_root):
    root, runs, labels = _runs(seeds_root)
    reader = TableReader(Selection(root, tuple(runs), labels, "adamw-s1", ("sgg-s1",)))
    first = reader.table("sgg-s1", "steps")
    assert reader.table("sgg-s1", "steps") is first and first.df is not None
    assert set(reader.tables("steps")) == {"adamw-s1", "sgg-s1"}
    key = reader.key("steps", ["sgg-s1"])
    reader.refresh(reader.selection)
    assert reader.table("sgg-s1", "steps") is not first
    assert reader.key("steps", ["sgg-s1"]) == key  # the same chunks: the same fingerprint


# ------------------------------------------------------------------ cards and the sweep answer


@pytest.fixture(scope="module")
def sample_ctx():
    if not any(SAMPLE_RUNS.rglob("run.json")):
        pytest.skip("no sample_runs/")
    root, runs, labels = _runs(SAMPLE_RUNS)
    return Ctx(root, runs, labels, "adamw-lr4e-3-s0", ["sgg-lr4e-3-T25-s0"], {})


def test_cards_show_the_comparisons_numbers(sample_ctx):
    sel, read = sample_ctx.selection, sample_ctx.reader
    (name, members), (base_name, base) = sel.series[1], sel.series[0]
    c = compare.compare(
        [read.facts(r) for r in members], [read.facts(r) for r in base], name, base_name
    )
    loss, steps, spikes, variation = cards.comparison_cards(c)
    assert loss.label.startswith(f"Loss at step {c.at_step:,}") and loss.value == narrative.num(
        c.loss
    )
    assert loss.delta["delta_description"] == f"vs {narrative.num(c.base_loss)}"
    assert spikes.value == narrative.counts(c.spikes, c.base_spikes)[
        0
    ] and variation.value == narrative.pct(c.cv)
    for card, d in ((loss, c.loss_diff), (spikes, c.spikes_diff), (variation, c.cv_diff)):
        assert (card.delta["delta_color"] == "inverse") == bool(d.detected)
    assert steps.label.startswith("Steps to match" + cards._on_seeds(c))  # the seeds it comes from


def test_the_reports_sweep_is_the_sweep_tabs(sample_ctx):
    sel, read = sample_ctx.selection, sample_ctx.reader
    head, table, lines = sweep_report.answer(sel, read)
    assert head == "Sweep: SGG against AdamW at each learning rate"
    rels, _, _ = sweep_report.sweep_runs(sel, [r.rel for r in sel.runs], "config.lr")
    assert {groups.optimizer_name(sel.meta(r)) for r in rels} == {"adamw", "sgg"}
    assert list(table["setting"]) == ["1e-3", "4e-3", "1.6e-2"] and lines

"""The Streamlit page, rendered by AppTest: every view, every bad input, the summary's numbers
against numbers computed straight from the Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dash_fixtures import BAD_CASES, REPO
from streamlit.testing.v1 import AppTest

from dashboard.app import ENV_ROOT, VIEWS
from dashboard.loader import superseded

APP = str(REPO / "dashboard" / "app.py")


def render(root: Path | str, monkeypatch, view: str | None = None, **state) -> AppTest:
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    if view:
        at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("warning", "info", "error", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def summary_frame(at: AppTest):
    for df in at.dataframe:
        if "Final train loss" in df.value.columns:
            return df.value
    raise AssertionError("no summary table")


def test_every_view_renders(demo_root, monkeypatch):
    at = render(demo_root, monkeypatch)
    assert not at.error and charts(at) >= 1
    for view in VIEWS[1:]:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
        assert not at.error, (view, [e.value for e in at.error])
        if view != "Runs":
            assert charts(at) >= 1 or at.info, view


def table_files(table_dir: Path) -> list[Path]:
    """The live chunk files of one table, by the contract's rule (docs/run-format.md)."""
    names = [p.name for p in table_dir.glob("*.parquet") if not p.name.startswith(".")]
    return [table_dir / n for n in sorted(set(names) - superseded(names))]


def test_summary_numbers_match_the_parquet_files(demo_root, monkeypatch):
    at = render(demo_root, monkeypatch)
    table = summary_frame(at)
    assert len(table) >= min(2, sum(1 for _ in Path(demo_root).rglob("run.json")))
    names = {}
    for rj in Path(demo_root).rglob("run.json"):
        meta = json.loads(rj.read_text())
        names[meta.get("name") or rj.parent.name] = rj.parent
    for rj in Path(demo_root).rglob("run.json"):  # colliding names are shown by their folder
        names[rj.parent.relative_to(demo_root).as_posix()] = rj.parent
    for row in table.itertuples(index=False):
        run = names[row[0]]
        steps = pa.concat_tables(
            [pq.read_table(p) for p in table_files(run / "tables" / "steps")]
        ).to_pandas()
        loss = steps["loss"].to_numpy(dtype=float)
        finite = loss[np.isfinite(loss)]
        assert row[table.columns.get_loc("Steps")] == steps["step"].max()
        assert row[table.columns.get_loc("Final train loss")] == pytest.approx(
            finite[-100:].mean(), rel=1e-9
        )
        ev_files = table_files(run / "tables" / "evals")
        if ev_files:
            ev = pa.concat_tables([pq.read_table(p) for p in ev_files]).to_pandas()
            ev = ev[ev["split"] == "val"] if (ev["split"] == "val").any() else ev
            e = ev["loss"].to_numpy(dtype=float)
            e = e[np.isfinite(e)]
            got = row[table.columns.get_loc("Final eval loss")]
            assert got == pytest.approx(e[-1], rel=1e-9)
            assert row[table.columns.get_loc("Final eval perplexity")] == pytest.approx(
                np.exp(e[-1]), rel=1e-9
            )


def test_selection_comes_from_the_url(synthetic_root, monkeypatch):
    monkeypatch.setenv(ENV_ROOT, str(synthetic_root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["baseline"] = "adamw-plain"
    at.query_params["compare"] = ["sgg-k3", "adamw-base"]
    at.run()
    assert not at.exception
    shown = list(summary_frame(at)["Run"])
    # adamw-base differs from adamw-plain only in the seed: it joins the baseline's group
    assert shown[0] == "adamw-plain" and sorted(shown) == ["adamw-base", "adamw-plain", "sgg-k3"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_show_a_message_and_the_rest(bad_root, monkeypatch, case):
    root, bad = bad_root(case)
    compare = ["intact"] if case in ("newer_version", "invalid_json") else ["intact", bad]
    at = render(root, monkeypatch, baseline="baseline", compare=compare)
    shown = list(summary_frame(at)["Run"])
    assert "baseline" in shown and "intact" in shown
    text = texts(at)
    expected = {
        "corrupt_chunk": "corrupt or half-written",
        "newer_version": "format version 99",
        "invalid_json": "not valid JSON",
        "nan_losses": "diverged",
        "stalled": "stalled or was probably killed",
        "symlink_escape": "points outside; refused",
    }.get(case)
    if expected:
        assert expected in text, text
    views = {
        "adamw_no_clusters": ["Clusters"],
        "nan_losses": VIEWS[1:],
        "different_lengths": ["Loss", "Sweep"],
    }.get(case, [])
    for view in views:
        at.session_state["view"] = view
        at.run()
        assert not at.exception and not at.error, view
    if case == "adamw_no_clusters":
        assert "without shadow clustering" in texts(at)


@pytest.mark.parametrize("make", ["missing", "empty", "no_runs"])
def test_empty_roots(tmp_path, monkeypatch, make):
    root = tmp_path / "r"
    if make != "missing":
        root.mkdir()
    if make == "no_runs":
        (root / "sub").mkdir()
    at = render(root, monkeypatch)
    assert "does not exist" in texts(at) or "No runs found" in texts(at)


def test_live_run_refreshes(tmp_path, monkeypatch):
    from dash_fixtures import small_run

    small_run(tmp_path, "base", optimizer="adamw")
    small_run(tmp_path, "live", optimizer="sgg", status="running")
    at = render(tmp_path, monkeypatch, baseline="base", compare=["live"])
    assert "Live: a run on show is still training" in texts(at)


def test_sweep_leaves_out_runs_still_training(tmp_path, monkeypatch):
    from dash_fixtures import small_run

    for opt, lr, status in (
        ("adamw", 1e-3, "finished"),
        ("adamw", 1e-2, "finished"),
        ("sgg", 1e-3, "finished"),
        ("sgg", 1e-2, "running"),
    ):
        small_run(tmp_path, f"{opt}-{lr:g}", optimizer=opt, lr=lr, status=status, seed=3)
    at = render(tmp_path, monkeypatch, view="Sweep")
    assert not at.error
    assert "Still training" in texts(at) and "sgg-0.01 (running)" in texts(at)
    assert charts(at) == 1

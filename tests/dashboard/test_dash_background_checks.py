"""The damage check of the runs on show: what the Summary reads (steps, evals) is checked before
a number is drawn; the tables no view on the page reads are checked in the background, never
while a page is being drawn, and damage found there is named by the next page run. A cold page
lists the runs folder once."""

from __future__ import annotations

import random
import re
import shutil
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import loader
from dashboard.app import ENV_ROOT
from runformat import chunks

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
SGG, ADAMW = "sgg-lr4e-3-T25-s0", "adamw-lr4e-3-s0"


def flip_column(chunk: Path, column: str, seed: int = 3) -> None:
    """Flip bits inside the data of `column` in the chunk's first row group (a page checksum
    mismatch, as a bad disk or a bad copy makes)."""
    meta = pq.read_metadata(chunk)
    index = meta.schema.to_arrow_schema().get_field_index(column)
    col = meta.row_group(0).column(index)
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    end = start + col.total_compressed_size
    data = bytearray(chunk.read_bytes())
    rng = random.Random(seed)
    for _ in range(8):
        data[rng.randrange(end - 16, end)] ^= 1 << rng.randrange(8)
    chunk.write_bytes(bytes(data))


def runs_with_damaged_layers(tmp_path: Path) -> tuple[Path, Path]:
    """An AdamW and an SGG sample run; a `layers` chunk of the SGG run (a table the Summary
    does not read) has flipped bits. Returns (root, the damaged chunk)."""
    root = tmp_path / "runs"
    for name in (SGG, ADAMW):
        shutil.copytree(REPO / "sample_runs" / name, root / name)
    chunk = sorted(chunks.table_dir(root / SGG, "layers").glob("*.parquet"))[0]
    flip_column(chunk, "grad_norm")
    return root, chunk


def test_tables_no_view_reads_are_checked_in_the_background_not_while_drawing(tmp_path):
    root, chunk = runs_with_damaged_layers(tmp_path)
    loader.clear_caches()
    runs = loader.discover_runs(root).runs
    read_now = sum(
        len(loader.listed_chunks(r, t, root)) for r in runs for t in loader.KEEP_VERIFIED
    )
    with loader.drawing():
        checked, total = loader.verify_runs(runs, root)
        assert read_now <= checked < total  # steps and evals now, the rest queued
        time.sleep(0.3)
        assert loader.checks_pending() == total - checked  # nothing checked while drawing
    assert loader.wait_for_checks(60)
    assert loader.verify_runs(runs, root) == (total, total)
    sgg = next(r for r in loader.discover_runs(root).runs if r.rel == SGG)
    named = [d for d in sgg.damage if chunk.name in d]
    assert named and "layers chunk" in named[0] and "is damaged" in named[0]


def page(root: Path, monkeypatch) -> AppTest:
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py", "--runs", str(root)])
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    kinds = ("warning", "info", "error", "markdown", "caption")
    return "\n".join(str(e.value) for k in kinds for e in getattr(at, k))


def test_the_open_page_names_damage_found_in_the_background(tmp_path, monkeypatch):
    root, chunk = runs_with_damaged_layers(tmp_path)
    loader.clear_caches()
    listings = []
    real = loader.discover_runs

    def counting(where):
        listings.append(str(where))
        return real(where)

    monkeypatch.setattr(loader, "discover_runs", counting)
    at = page(root, monkeypatch)
    assert len(listings) == 1  # one listing per cold page run (the watch waits its turn)
    assert loader.wait_for_checks(60)
    at.run()
    text = shown(at)
    assert f"layers chunk {chunk.name} is damaged" in text
    assert "Checked for damage so far" not in text
    assert re.search(
        r"All [\d,]+ data files of the 2 run\(s\) on show checked for damage: 1 damaged", text
    )


def test_the_damage_check_counts_files_and_says_what_it_found():
    from dashboard.views.summary import damage_check_text

    going = damage_check_text(40, 160, 20, 0)
    assert going.startswith("Checked for damage so far: 40 of the 160 data files of the 20 run(s)")
    assert "none of them damaged so far" in going and "redraws" in going
    assert damage_check_text(160, 160, 20, 0) == (
        "All 160 data files of the 20 run(s) on show checked for damage: none of them damaged."
    )
    assert "2 damaged files, named at the top" in damage_check_text(160, 160, 20, 2)


def test_a_damaged_table_is_not_called_not_recorded(tmp_path, monkeypatch):
    """The Gradient stability tab: a run whose only `layers` file is damaged recorded its
    per-layer norms; the page says they could not be read, not that they were not recorded."""
    root, _ = runs_with_damaged_layers(tmp_path)
    loader.clear_caches()
    at = page(root, monkeypatch)
    at.session_state["view"] = "Gradient stability"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    said = shown(at)
    assert "per-layer gradient norms were recorded but could not be read" in said
    assert "per-layer gradient norm not recorded" not in said


def test_runs_read_from_other_tools_logs_are_not_counted_as_checked_files(tmp_path, monkeypatch):
    """A recorded run beside a TensorBoard run: the note counts the recorded run's files and
    says the other is checked as its logs are read."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "runs"
    shutil.copytree(REPO / "sample_runs" / SGG, root / SGG)
    w = SummaryWriter(str(root / "tb-adamw"))
    for s in range(1, 201):
        w.add_scalar("train/loss", 4.0 / s**0.5, s)
    w.close()
    loader.clear_caches()
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py", "--runs", str(root)])
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["baseline"] = "tb-adamw"
    at.session_state["compare"] = [SGG]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [str(e.value) for e in at.caption]
    note = next(n for n in notes if n.startswith(("Checked for damage so far", "All ")))
    assert "of the 1 run(s) on show" in note
    assert "1 other run(s) on show: read from another tool's logs" in note

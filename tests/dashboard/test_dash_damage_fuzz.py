"""Damaged copies of a real recorded run, opened together (issue 17): nothing a damaged chunk
held is ever shown as a number, and no damaged run is shown without a word.

The run is `sample_runs/sgg-lr4e-3-T25-s0` (an AdamW sample as the baseline), copied and
re-chunked by steps (50 per chunk, through `runformat`: page checksums, as the recorder writes
today). Seeded cases: a truncation and a few flipped bits in the data pages of one chunk of
every table, flipped bits in footers, and run.json edited into nonsense types. The loader must
leave every damaged chunk out and name it; the page (Streamlit AppTest, every view) must draw
without a traceback and name every damaged run it shows.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dash_fixtures import SAMPLE_RUNS
from test_dash_app import render

from dashboard import loader
from dashboard.app import VIEWS
from runformat import atomic, chunks, integrity, schema

SOURCE, BASELINE = "sgg-lr4e-3-T25-s0", "adamw-lr4e-3-s0"
CHUNK_STEPS = 50
SEED = 17
N_EXTRA = 14  # cases beyond one truncation and one bit flip per table

pytestmark = pytest.mark.skipif(
    not all((SAMPLE_RUNS / r / "run.json").exists() for r in (SOURCE, BASELINE)),
    reason="no sample runs",
)

# run.json edited into nonsense: (field, value); the message must name the field
META_EDITS = [
    ("status", 5),
    ("last_flushed_step", "x"),
    ("segments", "not a list"),
    ("segments", [1, 2]),
    ("optimizer", 7),
    ("optimizer.hyperparameters", "lr"),
    ("optimizer.name", ["sgg"]),
    ("config", []),
    ("updated_at", "yesterday"),
    ("created_at", 12),
    ("pid", -3),
    ("name", {"a": 1}),
    ("host", "x"),
    ("model", "big"),
    ("format_version", "two"),
    ("error", "boom"),
]


# --------------------------------------------------------------------------- the runs


def rechunk(src: Path, dst: Path) -> None:
    """`src` copied into `dst` with each table in chunks of CHUNK_STEPS steps, written through
    the format (page checksums) like the recorder's flushes."""
    dst.mkdir(parents=True)
    shutil.copy(src / schema.RUN_JSON, dst / schema.RUN_JSON)
    for table in schema.TABLES:
        d = chunks.table_dir(src, table)
        if not d.is_dir():
            continue
        names = chunks.live_chunks([p.name for p in d.iterdir()])
        t = pa.concat_tables([integrity.read_chunk(d / n, table, whole_schema=True) for n in names])
        out = chunks.table_dir(dst, table)
        out.mkdir(parents=True)
        step = t.column("step")
        last = pc.max(step).as_py() or 0
        for seq, lo in enumerate(range(0, last + 1, CHUNK_STEPS)):
            part = t.filter(
                pc.and_(pc.greater(step, lo - 1), pc.less(step, lo + CHUNK_STEPS))
            ).sort_by("step")
            if part.num_rows:
                atomic.write_parquet(out / chunks.chunk_name(0, seq), part)


def set_field(meta: dict, dotted: str, value: object) -> None:
    *path, last = dotted.split(".")
    for key in path:
        meta = meta[key]
    meta[last] = value


def page_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of every column chunk's pages (headers and data), from the footer."""
    meta = pq.read_metadata(path)
    out = []
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page else None
            start = start if start is not None else col.data_page_offset
            out.append((start, start + col.total_compressed_size))
    return out


def flip_bits(path: Path, ranges: list[tuple[int, int]], rng: random.Random, n: int) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        at = rng.randrange(lo, hi)
        data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


@dataclass(frozen=True)
class Case:
    run: str  # folder name
    kind: str  # "truncate", "flip" (data pages), "footer" (flipped footer bytes), "meta"
    table: str = ""
    chunk: str = ""
    field: str = ""


def damage(run: Path, kind: str, rng: random.Random, what: str = "") -> Case:
    """Damage one chunk of table `what` of the copy `run` as `kind` says, or (kind "meta")
    edit run.json's field `what` into nonsense."""
    if kind == "meta":
        field, value = what, rng.choice([v for f, v in META_EDITS if f == what])
        meta = json.loads((run / schema.RUN_JSON).read_text())
        set_field(meta, field, value)
        (run / schema.RUN_JSON).write_text(json.dumps(meta))
        return Case(run.name, kind, field=field)
    table = what
    files = sorted(chunks.table_dir(run, table).glob("part-*.parquet"))
    path = rng.choice(files)
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * rng.uniform(0.05, 0.95))])
    elif kind == "flip":
        flip_bits(path, page_ranges(path), rng, rng.randint(1, 8))
    else:  # the footer: its Thrift bytes, before the length and the magic
        size = path.stat().st_size
        footer = int.from_bytes(path.read_bytes()[-8:-4], "little")
        flip_bits(path, [(size - 8 - footer, size - 8)], rng, rng.randint(1, 3))
    return Case(run.name, kind, table, path.name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, list[Case]]:
    """The baseline, an intact copy and ~30 damaged copies of the SGG run, in one folder."""
    root = tmp_path_factory.mktemp("damaged")
    try:
        rechunk(SAMPLE_RUNS / BASELINE, root / "adamw")
        rechunk(SAMPLE_RUNS / SOURCE, root / "intact")
    except (OSError, pa.ArrowException):
        pytest.skip("sample_runs/ changed while it was being copied")
    rng = random.Random(SEED)
    tables = [t for t in schema.TABLES if chunks.table_dir(root / "intact", t).is_dir()]
    kinds = [(k, t) for t in tables for k in ("truncate", "flip")]
    kinds += [("footer", rng.choice(tables)) for _ in range(4)]
    fields = list(dict.fromkeys(f for f, _ in META_EDITS))
    kinds += [("meta", f) for f in rng.sample(fields, N_EXTRA - 4)]
    cases = []
    for i, (kind, table) in enumerate(kinds):
        run = root / f"case-{i:02d}-{kind}-{table}".replace(".", "-")
        shutil.copytree(root / "intact", run)
        meta = json.loads((run / schema.RUN_JSON).read_text())
        meta["name"] = run.name
        (run / schema.RUN_JSON).write_text(json.dumps(meta))
        cases.append(damage(run, kind, rng, table))
    meta = json.loads((root / "intact" / schema.RUN_JSON).read_text())
    (root / "intact" / schema.RUN_JSON).write_text(json.dumps({**meta, "name": "intact"}))
    return root, cases


def named(case: Case, text: str) -> bool:
    """Whether `text` names the case's damage: the chunk and the word, or run.json's field."""
    if case.kind == "meta":
        return case.field in text
    return f"{case.table} chunk {case.chunk} is damaged" in text


def left_out(intact: pd.DataFrame, chunk: str) -> pd.DataFrame:
    """`intact` without the rows of one chunk (chunk k holds steps [k*50, k*50 + 50))."""
    lo = chunks.parse_chunk_name(chunk)[1] * CHUNK_STEPS
    keep = ~intact["step"].between(lo, lo + CHUNK_STEPS - 1)
    return intact[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- the loader


def test_the_checks_cover_every_table_and_run_json(folder):
    _, cases = folder
    assert len(cases) >= 30
    assert {c.table for c in cases if c.kind == "truncate"} == set(schema.TABLES)
    assert {c.table for c in cases if c.kind == "flip"} == set(schema.TABLES)
    assert sum(c.kind == "meta" for c in cases) >= 8


def test_the_loader_leaves_out_and_names_every_damaged_chunk(folder):
    """Per case: a truncated chunk is named when the run is listed, before any read; every
    table reads as the intact one without the damaged chunk's rows (or, for a flip that changed
    nothing read, as the intact one), and what was left out is named; once read, the damage
    is among the run's problems wherever it is listed, whatever table it hit."""
    root, cases = folder
    loader.clear_caches()
    disc = loader.discover_runs(root)
    by = {r.rel: r for r in disc.runs}
    intact = {t: loader.read_table(by["intact"], t, disc.root) for t in schema.TABLES}
    assert all(not r.messages for r in intact.values())
    problems, found = [], []
    for case in cases:
        run = by[case.run]
        listed = " ".join(run.problems)
        if case.kind in ("truncate", "meta") and not named(case, listed):
            problems.append(f"{case}: not named when listed: {run.problems}")
        said = []
        for table in schema.TABLES:
            res = loader.read_table(run, table, disc.root)
            said += res.messages
            want = intact[table].df
            if table == case.table and named(case, " ".join(res.messages)):
                want = left_out(want, case.chunk)
            if want is not None and not (res.df is not None and res.df.equals(want)):
                problems.append(f"{case}: {table} is not the intact table less what was named")
        if named(case, " ".join(said)):
            found.append(case)
        elif case.kind in ("truncate", "flip"):  # a footer flip may hit unused bytes
            problems.append(f"{case}: not named when read: {said}")
    assert not problems, "\n".join(problems)
    again = {r.rel: r for r in loader.discover_runs(root).runs}
    for case in found:
        if not named(case, " ".join(again[case.run].problems)):
            problems.append(f"{case}: read damaged, but not among its problems when listed")
    assert not problems, "\n".join(problems)


def test_a_steps_chunk_with_flipped_bits_is_named_and_its_steps_left_out(folder, tmp_path):
    """The issue's case: bits flipped in the gradient norms of a steps chunk. No gradient norm
    from it is shown; the sentence names the chunk and the steps left out."""
    root, _ = folder
    run = tmp_path / "run"
    shutil.copytree(root / "intact", run)
    path = chunks.table_dir(run, "steps") / chunks.chunk_name(0, 1)  # steps 50-99
    meta = pq.read_metadata(path)
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("grad_norm"))
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    end = start + col.total_compressed_size
    flip_bits(path, [(end - 16, end)], random.Random(8), 8)
    loader.clear_caches()
    disc = loader.discover_runs(tmp_path)
    res = loader.read_table(disc.runs[0], "steps", disc.root)
    assert res.messages == [
        "`run`: steps chunk part-000-000001.parquet is damaged (page checksum mismatch); its "
        "50 steps (50 to 99) are left out"
    ]
    assert not res.df["step"].between(50, 99).any() and len(res.df) == 150
    listed = loader.discover_runs(tmp_path).runs[0]
    assert listed.problems == tuple(res.messages) == listed.damage


@pytest.mark.parametrize(("field", "value"), META_EDITS)
def test_run_json_of_nonsense_types_is_named_never_a_traceback(tmp_path, field, value):
    run = tmp_path / "r"
    rechunk_meta = json.loads((SAMPLE_RUNS / SOURCE / schema.RUN_JSON).read_text())
    set_field(rechunk_meta, field, value)
    run.mkdir()
    (run / schema.RUN_JSON).write_text(json.dumps(rechunk_meta))
    loader.clear_caches()
    found = loader.discover_runs(tmp_path).runs[0]
    assert found.readable and any(field in p for p in found.problems), found.problems
    for prop in ("name", "optimizer", "hyperparameters", "learning_rate", "status", "last_step"):
        getattr(found, prop)
    assert loader.display_status(found) in ("finished", "unknown", "failed")


# --------------------------------------------------------------------------- the page


def page_text(at) -> str:
    kinds = ("warning", "info", "error", "markdown", "caption", "exception")
    return "\n".join(str(e.value) for k in kinds for e in getattr(at, k))


def test_every_view_draws_and_names_every_damaged_run_it_shows(folder, monkeypatch):
    """All damaged copies on show at once (seeds not pooled): the Summary checks them whole
    (what it reads at once, the rest in the background, saying so meanwhile), every view draws
    without a traceback, the page names the damage of each, and so does the list of runs with
    problems."""
    root, cases = folder
    loader.clear_caches()
    names = [c.run for c in cases]  # a run whose name is nonsense is shown by its folder
    at = render(root, monkeypatch, pool=False, baseline="intact", compare=names)
    seen = page_text(at)
    # ~1,300 chunks on show: what the Summary reads is checked first, the rest in the
    # background (said so meanwhile); the next page run names what it found
    assert "Checked for damage so far" in seen
    assert loader.wait_for_checks(240)
    at.run()
    seen += page_text(at)
    assert "Checked for damage so far" not in page_text(at)
    for view in VIEWS[1:]:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
        drawn_not = [e.value for e in at.error if "could not be drawn" in str(e.value)]
        assert not drawn_not, (view, drawn_not)
        seen += page_text(at)
    at.session_state["view"] = VIEWS[0]
    at.run()
    listed = page_text(at)
    problems = []
    for case in cases:
        if case.kind == "footer":
            continue
        if not named(case, seen):
            problems.append(f"{case}: not named on the page")
        if not named(case, listed):
            problems.append(f"{case}: not named where the run is listed")
    assert not problems, "\n".join(problems)

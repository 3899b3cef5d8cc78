"""Helpers shared by the dashboard tests (a uniquely named module, so that it never clashes
with another room's conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.fixtures.synthetic_run import SyntheticRun, write_run

REPO = Path(__file__).resolve().parents[2]

SAMPLE_RUNS = REPO / "sample_runs"
SMALL = dict(
    steps=600,
    n_layers=4,
    recluster_interval=100,
    flush_every_steps=100,
    eval_every=50,
    layer_stride=10,
    histogram_every=100,
)
BAD_CASES = [
    "corrupt_chunk",
    "newer_version",
    "invalid_json",
    "nan_losses",
    "different_lengths",
    "adamw_no_clusters",
    "stalled",
    "symlink_escape",
    "half_written_tmp",
]


def small_run(root: Path, name: str, **kw) -> Path:
    return write_run(root, SyntheticRun(name=name, **{**SMALL, **kw}))


def copy_run(template: Path, root: Path, name: str) -> Path:
    dst = root / name
    shutil.copytree(template, dst)
    edit_meta(dst, name=name)
    return dst


def edit_meta(run: Path, **changes) -> None:
    meta = json.loads((run / "run.json").read_text())
    meta.update(changes)
    (run / "run.json").write_text(json.dumps(meta))


def make_bad_root(tmp_path: Path, template: Path, case: str) -> tuple[Path, str]:
    """A root holding an AdamW baseline, an intact SGG run and one bad thing; returns the root
    and the bad run's folder name."""
    root = tmp_path / case
    root.mkdir()
    small_run(root, "baseline", optimizer="adamw", shadow=True, seed=1)
    copy_run(template, root, "intact")
    bad = "bad"
    if case == "corrupt_chunk":
        run = copy_run(template, root, bad)
        (run / "tables" / "steps" / "part-000-000003.parquet").write_bytes(b"PAR1 garbage")
    elif case == "newer_version":
        edit_meta(copy_run(template, root, bad), format_version=99)
    elif case == "invalid_json":
        run = copy_run(template, root, bad)
        (run / "run.json").write_text('{"format": "sgg-run", "format_version": 1,')
    elif case == "nan_losses":
        small_run(root, bad, optimizer="sgg", lr=0.1, seed=6)  # diverges: NaN losses
    elif case == "different_lengths":
        small_run(root, bad, optimizer="sgg", seed=7, steps=250)
    elif case == "adamw_no_clusters":
        small_run(root, bad, optimizer="adamw", seed=8)
    elif case == "stalled":
        small_run(root, bad, optimizer="sgg", seed=9, status="running", heartbeat_age_s=3 * 3600)
    elif case == "symlink_escape":
        outside = tmp_path / f"outside-{case}"
        outside.mkdir()
        run = copy_run(template, root, bad)
        target = run / "tables" / "steps" / "part-000-000002.parquet"
        shutil.move(target, outside / target.name)
        target.symlink_to(outside / target.name)
    elif case == "half_written_tmp":
        run = copy_run(template, root, bad)
        (run / "tables" / "steps" / ".part-000-000099.parquet.tmp").write_bytes(b"half")
    else:  # pragma: no cover
        raise ValueError(f"unknown case {case!r}")
    return root, bad

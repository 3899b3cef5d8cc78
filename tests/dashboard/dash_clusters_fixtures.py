"""Runs with pinned cluster factors for the Clusters tab's tests (written through `runformat`).

`pinned_run` writes a small synthetic run (tests.fixtures.synthetic_run) and replaces its
`clusters` table with groups whose sizes and factors the test chooses, so that the shares the
page must report are known exactly. Layers of the small run (`dash_fixtures.SMALL`):
blocks.0.attn.qkv.weight (196,608), blocks.0.attn.proj.weight (65,536),
blocks.0.mlp.fc.weight (262,144) and the 1-D blocks.0.ln.weight (256): 524,544 weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from dash_fixtures import small_run

from runformat import atomic, chunks, schema

QKV, PROJ, FC, LN = (
    "blocks.0.attn.qkv.weight",
    "blocks.0.attn.proj.weight",
    "blocks.0.mlp.fc.weight",
    "blocks.0.ln.weight",
)
SIZES = {QKV: 196_608, PROJ: 65_536, FC: 262_144, LN: 256}
TOTAL = sum(SIZES.values())
# at the last re-cluster: qkv 2/3 bigger steps x1.5, proj half smaller steps x0.5, fc x1
PINNED = {
    QKV: [(65_536, 1.5), (65_536, 1.5), (65_536, 1.0)],
    PROJ: [(16_384, 0.5), (32_768, 1.0), (16_384, 0.5)],
    FC: [(87_382, 1.0), (87_381, 1.0), (87_381, 1.0)],
}
Groups = dict[str, list[tuple[int, float]]]


def unchanged(groups: Groups) -> Groups:
    """The same group sizes with every factor 1."""
    return {k: [(s, 1.0) for s, _ in v] for k, v in groups.items()}


def write_clusters(run: Path, pin: Callable[[int], Groups], steps: list[int], shadow: bool):
    """Replace the run's `clusters` table: at each step, `pin(step)` gives each clustered
    layer's (size, factor) per group; the target is the factor (a fixed point of the EMA) and
    the spreads follow from it (model spread 1e-3, group spread = 1e-3 / target)."""
    cols: dict[str, list] = {c: [] for c in schema.CLUSTERS.names}
    for step in steps:
        for layer, groups in pin(step).items():
            for c, (size, factor) in enumerate(groups):
                for k, v in (("step", step), ("layer", layer), ("cluster", c), ("size", size),
                             ("center", (c - 1) * 1e-3), ("mda", 1e-3 / factor),
                             ("global_mda", 1e-3), ("raw_factor", factor), ("factor", factor),
                             ("shadow", shadow)):  # fmt: skip
                    cols[k].append(v)
    data = {k: np.asarray(v, dtype=object if k == "layer" else None) for k, v in cols.items()}
    d = chunks.table_dir(run, "clusters")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    atomic.write_parquet(d / chunks.chunk_name(0, 0), schema.build_table("clusters", data))


def pinned_run(
    root: Path,
    name: str,
    *,
    last: Groups | None = None,
    optimizer: str = "sgg",
    seed: int = 0,
    first_unchanged: bool = True,
    pin: Callable[[int], Groups] | None = None,
) -> Path:
    """A run whose re-clusters (steps 100..600) have every factor 1 at step 100 (when
    `first_unchanged`) and the `last` groups (default PINNED) from step 200 on; or, with
    `pin`, the groups `pin(step)` gives at each step."""
    shadow = optimizer != "sgg"
    run = small_run(root, name, optimizer=optimizer, shadow=shadow, seed=seed)
    groups = last or PINNED
    write_clusters(
        run,
        pin or (lambda s: unchanged(groups) if first_unchanged and s == 100 else groups),
        list(range(100, 601, 100)),
        shadow,
    )
    meta = json.loads((run / "run.json").read_text())
    assert {x["name"]: x["numel"] for x in meta["model"]["layers"]} == SIZES
    return run


def expected_shares(groups: Groups) -> dict[str, float]:
    """The shares of the whole model, computed by hand (1-D weights at AdamW's step)."""
    up = sum(s for v in groups.values() for s, f in v if f > 1.1)
    down = sum(s for v in groups.values() for s, f in v if f < 1 / 1.1)
    return {"bigger steps": up / TOTAL, "smaller steps": down / TOTAL,
            "about AdamW's step": 1 - (up + down) / TOTAL}  # fmt: skip

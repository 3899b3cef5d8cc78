"""The run directory format: the one place that defines table names, columns and types.

`docs/run-format.md` is the prose version of this module; `FORMAT_VERSION` is its version.
This module imports pyarrow only (no torch), so a reader can share it.
"""

from __future__ import annotations

import pyarrow as pa

FORMAT_NAME = "sgg-run"
FORMAT_VERSION = 1

RUN_JSON = "run.json"
TABLES_DIR = "tables"
CHECKPOINT = "checkpoint.pt"

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"

QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
_Q_NAMES = ("q05", "q25", "q50", "q75", "q95")

HIST_MOMENTUM = "momentum"
HIST_ADAPTIVE_LR = "adaptive_lr"
WHOLE_LAYER = -1  # `cluster` value of a whole-layer histogram


def _f32(*names: str) -> list[pa.Field]:
    return [pa.field(n, pa.float32()) for n in names]


STEPS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("wall_time", pa.float64()),
        pa.field("loss", pa.float64()),
        pa.field("tokens", pa.int64()),
        pa.field("grad_norm", pa.float64()),
        pa.field("update_norm", pa.float64()),
        pa.field("param_norm", pa.float64()),
        pa.field("lr", pa.float64()),
        pa.field("reclustered", pa.bool_()),
    ]
)

LRS = pa.schema(
    [pa.field("step", pa.int64()), pa.field("group", pa.int32()), pa.field("lr", pa.float64())]
)

EVALS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("tokens", pa.int64()),
        pa.field("wall_time", pa.float64()),
        pa.field("split", pa.string()),
        pa.field("loss", pa.float64()),
    ]
)

# Per-layer statistics, in the order `recorder.stats.layer_stats` returns them.
LAYER_STAT_COLUMNS: tuple[str, ...] = (
    "grad_norm",
    "param_norm",
    "update_norm",
    "update_to_weight",
    "m_mean",
    "m_std",
    "m_abs_mean",
    *(f"m_{q}" for q in _Q_NAMES),
    "v_mean",
    "v_q50",
    *(f"alr_{q}" for q in _Q_NAMES),
    "factor_mean",
)

LAYERS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("numel", pa.int64()),
        *_f32(*LAYER_STAT_COLUMNS),
    ]
)

CLUSTERS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("size", pa.int64()),
        *_f32("center", "mda", "global_mda", "raw_factor", "factor"),
        pa.field("shadow", pa.bool_()),
    ]
)

TRANSITIONS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("from_cluster", pa.int32()),
        pa.field("to_cluster", pa.int32()),
        pa.field("count", pa.int64()),
        pa.field("shadow", pa.bool_()),
    ]
)

MEMBERSHIP = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("cluster", pa.int32()),
        pa.field("shadow", pa.bool_()),
    ]
)

HISTOGRAMS = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("layer", pa.string()),
        pa.field("quantity", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("bin", pa.int32()),
        pa.field("bin_left", pa.float64()),
        pa.field("bin_right", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("shadow", pa.bool_()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "steps": STEPS,
    "lrs": LRS,
    "evals": EVALS,
    "layers": LAYERS,
    "clusters": CLUSTERS,
    "transitions": TRANSITIONS,
    "membership": MEMBERSHIP,
    "histograms": HISTOGRAMS,
}

PARQUET_COMPRESSION = "zstd"


def chunk_name(segment: int, seq: int) -> str:
    """File name of one chunk: sorting names sorts chunks in write order."""
    if not (0 <= segment <= 999):
        raise ValueError(f"segment must be in [0, 999], got {segment!r}")
    if not (0 <= seq <= 999_999):
        raise ValueError(f"seq must be in [0, 999999], got {seq!r}")
    return f"part-{segment:03d}-{seq:06d}.parquet"


def parse_chunk_name(name: str) -> tuple[int, int] | None:
    """(segment, seq) of a chunk file name, or None for anything else (temp files included)."""
    if name.startswith(".") or not name.startswith("part-") or not name.endswith(".parquet"):
        return None
    parts = name[len("part-") : -len(".parquet")].split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def compact_name(segment: int, seq: int) -> str:
    """File name of a compacted chunk that supersedes every `part-<seg>-<seq>` with
    (seg, seq) <= (segment, seq), and every older compacted chunk."""
    return "compact" + chunk_name(segment, seq)[len("part") :]


def parse_compact_name(name: str) -> tuple[int, int] | None:
    """(segment, seq) of a compacted chunk's file name, or None for anything else."""
    if name.startswith(".") or not name.startswith("compact-"):
        return None
    return parse_chunk_name("part" + name[len("compact") :])


def live_chunks(names: list[str]) -> list[str]:
    """The chunk files a reader uses, in write order: with a `compact-S-Q` file present, the
    latest one plus the `part-*` files after (S, Q); superseded files (a crash between writing
    a compacted file and removing what it replaces) are ignored. Other names are not chunks."""
    keyed = []
    for n in names:
        part, comp = parse_chunk_name(n), parse_compact_name(n)
        if part is not None:
            keyed.append(((*part, 0), n))
        elif comp is not None:
            keyed.append(((*comp, 1), n))
    keyed.sort()
    cut = max((k for k, _ in keyed if k[2] == 1), default=None)
    if cut is None:
        return [n for _, n in keyed]
    return [n for k, n in keyed if k[:2] > cut[:2] or k == cut]

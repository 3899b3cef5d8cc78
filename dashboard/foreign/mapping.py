"""Map a foreign run's logged scalars and hyperparameters onto our `steps`, `evals` and run.json.

Every reader (TensorBoard, W&B, MLflow) produces the same long-form scalar table — one row per
(tag, step) with `wall_time` in seconds since the epoch — and a flat or nested config dict. This
module is the single place that maps those onto the run format (`runformat.schema`): column names
and Arrow types exactly as a recorded run's, nulls where the run did not log a quantity (the
dashboard says "not recorded in this run"), and a run.json-shaped `meta` so that foreign runs are
listed, grouped by seed and swept like our own.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dashboard.foreign.names import DEFAULT_NAMES, MetricNames
from runformat import run_info, schema

SCALAR_COLUMNS = ("tag", "step", "wall_time", "value")
LIVE_SECONDS = 120.0  # files written this recently: the run is probably still running
# settings that name the run or its folders rather than configure training: kept out of
# `config` so that runs differing only in them still group and sweep together
RUN_SPECIFIC_KEYS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "run_name",
        "hub_model_id",
        "hub_token",
        "push_to_hub_model_id",
        "_wandb",
        "wandb_version",
    }
)


# other tools' names for settings our runs' configs hold under another name: renamed (when ours
# is absent) so that a foreign baseline compares like for like and enters the same sweeps
CANONICAL_KEYS = {"learning_rate": "lr", "optim": "optimizer"}


def empty_scalars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tag": pd.Series([], dtype=object),
            "step": pd.Series([], dtype=np.int64),
            "wall_time": pd.Series([], dtype=np.float64),
            "value": pd.Series([], dtype=np.float64),
        }
    )


def _series(scalars: pd.DataFrame, tag: str) -> pd.DataFrame:
    """One tag's (step, wall_time, value), one row per step (the last logged value wins, as in a
    resumed run that logged a step twice)."""
    part = scalars.loc[scalars["tag"].to_numpy() == tag, ["step", "wall_time", "value"]]
    steps = part["step"].to_numpy()
    if len(steps) > 1 and not bool(np.all(np.diff(steps) > 0)):
        part = part.sort_values("step", kind="stable").drop_duplicates("step", keep="last")
    return part


def steps_table(
    scalars: pd.DataFrame, names: MetricNames = DEFAULT_NAMES, t0: float | None = None
) -> tuple[pa.Table | None, dict[str, str]]:
    """The `steps` table and {column: the logged name it came from}; None when the run logged
    none of loss, lr, grad norm and tokens."""
    tags = scalars["tag"].unique().tolist() if len(scalars) else []
    chosen = {c: names.pick(c, tags) for c in ("loss", "lr", "grad_norm", "tokens")}
    chosen = {c: t for c, t in chosen.items() if t is not None}
    if not chosen:
        return None, {}
    t0 = first_time(scalars) if t0 is None else t0
    parts = {c: _series(scalars, t).set_index("step") for c, t in chosen.items()}
    index = pd.Index(np.unique(np.concatenate([p.index.to_numpy() for p in parts.values()])))
    wall = pd.concat([p["wall_time"] for p in parts.values()], axis=1).reindex(index).min(axis=1)
    cols: dict[str, Any] = {
        "step": index.to_numpy(np.int64),
        "wall_time": (wall.to_numpy(np.float64) - t0),
        "reclustered": np.zeros(len(index), dtype=bool),  # no SGG clustering in a foreign run
    }
    for c in chosen:
        # a step at which this metric was not logged (lr every step, loss every 10th; an
        # evaluation-only step) is null, "not logged"; a logged NaN stays NaN: it diverged
        not_logged = ~index.isin(parts[c].index)
        values = parts[c]["value"].reindex(index).to_numpy(np.float64)
        if c == "tokens":
            cols[c] = pd.array(np.round(values), dtype="Int64")
        else:
            cols[c] = pd.arrays.FloatingArray(values, not_logged)
    return _build("steps", cols), chosen


def evals_table(
    scalars: pd.DataFrame, names: MetricNames = DEFAULT_NAMES, t0: float | None = None
) -> tuple[pa.Table | None, dict[str, str]]:
    """The `evals` table (one row per evaluation step and split) and {split: logged name}."""
    tags = scalars["tag"].unique().tolist() if len(scalars) else []
    chosen = names.eval_tags(tags)
    if not chosen:
        return None, {}
    t0 = first_time(scalars) if t0 is None else t0
    tokens_tag = names.pick("tokens", tags)
    tokens = _series(scalars, tokens_tag).set_index("step")["value"] if tokens_tag else None
    frames = []
    for split, tag in chosen.items():
        s = _series(scalars, tag)
        tok = None
        if tokens is not None and len(tokens):
            # tokens seen by the evaluation step: the last count logged at or before it
            tok = tokens.reindex(s["step"].to_numpy(), method="ffill").to_numpy(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "step": s["step"].to_numpy(np.int64),
                    "tokens": pd.array(
                        np.round(tok) if tok is not None else np.full(len(s), np.nan),
                        dtype="Int64",
                    ),
                    "wall_time": s["wall_time"].to_numpy(np.float64) - t0,
                    "split": split,
                    "loss": s["value"].to_numpy(np.float64),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True).sort_values(["step", "split"], kind="stable")
    cols = {c: df[c].array if c == "tokens" else df[c].to_numpy() for c in df.columns}
    return _build("evals", cols), chosen


def first_time(scalars: pd.DataFrame) -> float:
    """The run's first event time (epoch seconds): wall_time 0."""
    w = scalars["wall_time"].to_numpy(np.float64) if len(scalars) else np.array([])
    w = w[np.isfinite(w)]
    return float(w.min()) if len(w) else 0.0


def _build(table: str, cols: Mapping[str, Any]) -> pa.Table:
    arrays = {}
    for name, values in cols.items():
        if isinstance(values, pd.api.extensions.ExtensionArray):
            arrays[name] = pa.array(values, type=schema.TABLES[table].field(name).type)
        else:
            arrays[name] = values
    return schema.build_table(table, arrays)


# --------------------------------------------------------------------------- run.json


def scalar_value(v: Any) -> Any:
    """Hyperparameters logged as strings ("0.001", "True", "[0.9, 0.95]") back to numbers."""
    if not isinstance(v, str):
        return v
    s = v.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    try:
        f = float(s)
    except ValueError:
        return v
    return f if math.isfinite(f) else v


_OPTIMIZER_KEYS = ("optimizer", "optim", "optimizer_name", "optimizer_type", "opt")
_KNOWN_OPTIMIZERS = ("sgg", "adamw", "adam", "sgd", "adafactor", "lion", "muon", "rmsprop")


def infer_optimizer(config: Mapping[str, Any], logged: list[str]) -> str:
    """The optimizer's name, lower case, from the config ("optim": "adamw_torch" -> "adamw") or
    from Lightning's `lr-<OptimizerClass>` metric; "?" when the run does not say."""
    candidates = []
    for key in _OPTIMIZER_KEYS:
        v = config.get(key)
        if isinstance(v, Mapping):
            v = v.get("name") or v.get("class_path") or v.get("type")
        if isinstance(v, str):
            candidates.append(v)
    candidates += [t[len("lr-") :].split("/")[0] for t in logged if t.startswith("lr-")]
    for text in candidates:
        low = text.lower().rsplit(".", 1)[-1]
        for name in _KNOWN_OPTIMIZERS:  # "sgg" before "adamw" before "adam"
            if low.startswith(name) or low == name:
                return name
    return "?"


def _lookup(config: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in config and config[key] is not None:
            return config[key]
    for v in config.values():  # one level down: {"optimizer": {"lr": ...}}
        if isinstance(v, Mapping):
            for key in keys:
                if key in v and v[key] is not None:
                    return v[key]
    return None


def build_meta(
    *,
    kind: str,
    name: str,
    config: Mapping[str, Any],
    steps: pa.Table | None,
    evals: pa.Table | None,
    chosen: Mapping[str, str],
    logged: list[str],
    source: Mapping[str, Any],
    status: str | None = None,
    created: float | None = None,
    updated: float | None = None,
) -> dict[str, Any]:
    """A run.json-shaped dict (docs/run-format.md) for a foreign run, with `source` saying where
    it came from and which logged names filled which columns."""
    config = {str(k): scalar_value(v) for k, v in config.items()}
    run_specific = {k: config.pop(k) for k in list(config) if k in RUN_SPECIFIC_KEYS}
    for theirs, ours in CANONICAL_KEYS.items():
        if theirs in config and ours not in config:
            config[ours] = config.pop(theirs)
    hp: dict[str, Any] = {}
    lr = _lookup(config, "learning_rate", "lr")
    if isinstance(lr, int | float) and not isinstance(lr, bool):
        hp["lr"] = hp["initial_lr"] = float(lr)
    wd = _lookup(config, "weight_decay")
    if isinstance(wd, int | float) and not isinstance(wd, bool):
        hp["weight_decay"] = float(wd)
    seed = _lookup(config, "seed")
    last = None
    if steps is not None and steps.num_rows:
        last = int(pc.max(steps.column("step")).as_py())
    if evals is not None and evals.num_rows:
        e = int(pc.max(evals.column("step")).as_py())
        last = e if last is None else max(last, e)
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    if status is None:
        status = "running" if updated is not None and now - updated < LIVE_SECONDS else "finished"
    missing = [c for c in ("loss", "lr", "grad_norm", "tokens") if c not in chosen]
    meta = {
        "format": schema.FORMAT_NAME,
        "format_version": schema.FORMAT_VERSION,
        "name": name,
        "status": status,
        "error": None,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "finished_at": _iso(updated) if status != "running" else None,
        "last_flushed_step": last,
        "segments": [],
        "optimizer": {
            "name": infer_optimizer(config, logged),
            "base": None,
            "hyperparameters": hp,
            "param_groups": None,
            "sgg": None,
            "shadow": None,
        },
        "config": config,
        "model": {},
        "seed": int(seed) if isinstance(seed, int | float) and not isinstance(seed, bool) else None,
        "recording": {},
        "source": {
            "kind": kind,
            **source,
            "columns": dict(chosen),
            "not_recorded": missing,
            "run_specific": run_specific,
        },
    }
    meta["description"] = _description(meta, kind, config, chosen, logged)
    return meta


def _description(
    meta: dict[str, Any],
    kind: str,
    config: Mapping[str, Any],
    chosen: Mapping[str, str],
    logged: list[str],
) -> dict[str, Any]:
    """run.json's typed `description` (runformat.run_info) of a foreign run. Its gradient norm:
    the HF Trainer logs what clip_grad_norm_ returns, the norm BEFORE clipping (transformers'
    `_clip_grad_norm`); the recorder's own mirror (`sgg/grad_norm`) the norm after; another
    tool's own metric is not known."""
    logged_norm = str(chosen.get("grad_norm") or "")
    grad_norm = None
    if logged_norm.startswith("sgg/"):
        grad_norm = run_info.POST_CLIP
    elif logged_norm and hf_trainer(config, logged):
        grad_norm = run_info.PRE_CLIP
    return run_info.derive(meta, source=kind, grad_norm=grad_norm).to_json()


def hf_trainer(config: Mapping[str, Any], logged: list[str]) -> bool:
    """Whether the HF Trainer wrote the run: its TrainingArguments in the config, or its
    `train/global_step` / `train/epoch` metrics."""
    return "logging_steps" in config or bool({"train/epoch", "train/global_step"} & set(logged))


def _iso(t: float | None) -> str | None:
    if t is None or not math.isfinite(t):
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")

"""Sweeps and settings: which runs differ in what, and how widely a setting can vary.

Everything here reads `run.json` metadata (plain dicts) or small frames; no Streamlit, no Plotly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def flatten(d, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their JSON-ish repr."""
    out: dict[str, object] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = str(v) if isinstance(v, list) else v
    return out


def config_table(metas: dict[str, dict]) -> pd.DataFrame:
    """Settings (rows) x runs (columns) with a `differs` column, from run.json."""
    cols = {}
    for name, meta in metas.items():
        sel = {k: meta.get(k) for k in ("optimizer", "config", "seed", "recording", "model")}
        opt = sel["optimizer"]
        if isinstance(opt, dict):  # SGG's options and a shadow clustering's side by side
            clus = opt.get("sgg") or opt.get("shadow")
            applied = (
                "yes (SGG)"
                if opt.get("sgg")
                else "no: observe-only shadow clustering"
                if opt.get("shadow")
                else "none"
            )
            sel["optimizer"] = {k: v for k, v in opt.items() if k not in ("sgg", "shadow")}
            sel["clustering"] = {"applied": applied, **(clus if isinstance(clus, dict) else {})}
        flat = flatten(sel)
        flat = {k: v for k, v in flat.items() if not k.startswith("model.layers")}
        cols[name] = flat
    df = pd.DataFrame(cols)
    if df.empty:
        return df
    df = df.astype(object).where(df.notna(), None)
    as_text = df.map(lambda v: "" if v is None else repr(v))
    df["differs"] = as_text.nunique(axis=1) > 1
    return df.sort_index()


def _num(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float) and np.isfinite(v):
        return float(v)
    return None


def sweepable_settings(meta: dict) -> dict[str, object]:
    """The settings a sweep can vary: the run's config (config.*); the optimizer's
    hyperparameters (hyperparameters.*) only when there is no config. The optimizer's `lr` is
    the scheduled value at the last flush, so its `initial_lr` stands in for it."""
    opt = meta.get("optimizer") if isinstance(meta.get("optimizer"), dict) else {}
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    if cfg:
        return flatten({"config": cfg})
    hp = dict(opt.get("hyperparameters") or {})
    if "initial_lr" in hp:
        hp["lr"] = hp.pop("initial_lr")
    return flatten({"hyperparameters": hp})


def varying_hyperparameters(metas: dict[str, dict]) -> list[str]:
    """Numeric settings that differ between runs (learning rate first)."""
    values: dict[str, set] = {}
    for meta in metas.values():
        flat = sweepable_settings(meta)
        for k, v in flat.items():
            if _num(v) is not None:
                values.setdefault(k, set()).add(_num(v))
    # a seed is not a setting to tune, and recording options do not change the training
    skip = SEED_KEYS | RECORDING_KEYS | IGNORED_FOR_SWEEP
    keys = [k for k, v in values.items() if len(v) >= 2 and k not in skip]
    pref = ["hyperparameters.lr", "config.lr", "config.batch_size"]
    return sorted(keys, key=lambda k: (pref.index(k) if k in pref else len(pref), k))


def hyperparameter_value(meta: dict, key: str) -> float | None:
    return _num(sweepable_settings(meta).get(key))


_TWINS = {"hyperparameters.lr": "config.lr", "config.lr": "hyperparameters.lr"}
# settings that differ between the runs of one sweep without making them incomparable
SEED_KEYS = {"config.seed", "config.data_seed", "hyperparameters.seed"}
# options that change what is recorded, not how the model trains
RECORDING_KEYS = {
    "config.eval_every",
    "config.eval_batches",
    "config.layer_stride",
    "config.flush_every",
    "config.flush_seconds",
    "config.histogram_every",
    "config.histogram_bins",
    "config.membership_sample",
    "config.compact",
    "config.resume",
    "config.jobs",
}
IGNORED_FOR_SWEEP = {
    "config.optimizer",
    "config.name",
    "config.run_name",
    "config.out",
    "config.out_dir",
    "config.output_dir",
    "config.shadow",
    "config.progress",
    "config.threads",
    "config.overwrite",
    "config.checkpoint_every",
}
PLAIN_NAMES = {
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "batch_size": "batch size",
    "seq_len": "sequence length",
    "steps": "training steps",
    "recluster_interval": "re-cluster interval T",
    "n_clusters": "groups K",
    "scale_decay": "scale decay (beta3)",
}


SECTIONS = {
    "config": "training",
    "optimizer": "optimizer",
    "clustering": "grouping",
    "model": "model",
    "recording": "recording",
}
SETTING_WORDS = {
    "optimizer.name": "optimizer",
    "optimizer.base": "optimizer underneath",
    "optimizer.hyperparameters.lr": "optimizer: learning rate at the last step",
    "optimizer.hyperparameters.initial_lr": "optimizer: learning rate at the start",
    "clustering.applied": "grouping applied to the weights",
    "clustering.mda_eps": "grouping: small number that avoids dividing by zero",
    "clustering.median_sample": "grouping: values sampled to estimate medians",
    "clustering.scale_bounds": "grouping: lowest and highest scale factor",
    "seed": "seed",
}


def recording_only(key: str) -> bool:
    """Settings about where and how often a run was written, not about the training itself."""
    return key in RECORDING_KEYS or key in IGNORED_FOR_SWEEP or key.startswith("recording.")


def setting_label(key: str) -> str:
    """A plain label for a run.json key: 'config.lr' -> 'training: learning rate'."""
    if key in SETTING_WORDS:
        return SETTING_WORDS[key]
    section = SECTIONS.get(key.split(".", 1)[0], "")
    return f"{section}: {plain_name(key)}" if section and "." in key else plain_name(key)


def plain_name(key: str) -> str:
    """ "hyperparameters.lr" -> "learning rate"."""
    last = key.rsplit(".", 1)[-1]
    return PLAIN_NAMES.get(last, last.replace("_", " "))


def sweep_members(metas: dict[str, dict], key: str) -> list[str]:
    """The runs that differ from each other only in `key` (and in the optimizer): the largest
    group of runs whose other settings are equal, so that a sweep compares like with like."""
    groups: dict[tuple, list[str]] = {}
    for rid, meta in metas.items():
        if hyperparameter_value(meta, key) is None:
            continue
        flat = sweepable_settings(meta)
        skip = {key, _TWINS.get(key, ""), *IGNORED_FOR_SWEEP, *SEED_KEYS, *RECORDING_KEYS}
        sig = tuple(sorted((k, repr(v)) for k, v in flat.items() if k not in skip))
        groups.setdefault(sig, []).append(rid)
    if not groups:
        return []

    def score(members: list[str]) -> tuple[int, int]:
        values = {hyperparameter_value(metas[m], key) for m in members}
        return (len(values), len(members))

    return max(groups.values(), key=score)


def tolerance(sweep: pd.DataFrame, within: float = 0.05) -> pd.DataFrame:
    """Per optimizer: the range of the swept value whose final loss is within `within` (relative)
    of that optimizer's best. `sweep` has columns optimizer, value, final_loss."""
    rows = []
    for opt, g in sweep.groupby("optimizer", sort=True):
        ok = g[np.isfinite(g["final_loss"])]
        if ok.empty:
            rows.append(
                {
                    "optimizer": opt,
                    "best": np.nan,
                    "best_value": np.nan,
                    "low": np.nan,
                    "high": np.nan,
                    "width": np.nan,
                    "n": len(g),
                }
            )
            continue
        best = ok["final_loss"].min()
        good = ok[ok["final_loss"] <= best * (1 + within)]
        lo, hi = float(good["value"].min()), float(good["value"].max())
        rows.append(
            {
                "optimizer": opt,
                "best": float(best),
                "best_value": float(ok.loc[ok["final_loss"].idxmin(), "value"]),
                "low": lo,
                "high": hi,
                "width": hi / lo if lo > 0 else np.nan,
                "n": len(g),
            }
        )
    return pd.DataFrame(rows)


def wants_log_axis(values, key: str = "") -> bool:
    """A log axis for learning rates, or when every value is positive and they span at least a
    factor of 20."""
    v = np.asarray(values, dtype=float)
    if not v.size or not (v > 0).all():
        return False
    return key.rsplit(".", 1)[-1] in ("lr", "learning_rate") or bool(v.max() / v.min() >= 20)


def edge_warnings(tol: pd.DataFrame, values) -> list[tuple[str, float]]:
    """(optimizer, best value) for every optimizer whose best value is the smallest or largest
    value tried: a better one may lie outside the range."""
    v = sorted({float(x) for x in values if np.isfinite(x)})
    if len(v) < 3:
        return [(r.optimizer, r.best_value) for r in tol.itertuples() if np.isfinite(r.best_value)]
    return [
        (r.optimizer, r.best_value)
        for r in tol.itertuples()
        if np.isfinite(r.best_value) and r.best_value in (v[0], v[-1])
    ]

"""Sweeps and settings: which runs differ in what, and how widely a setting can vary.

Everything here reads `run.json` metadata (plain dicts) or small frames; no Streamlit, no Plotly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from dashboard.metrics.settings import (
    IGNORED_FOR_SWEEP,
    RECORDING_KEYS,
    SEED_KEYS,
    applies_sgg,
    canonical,
    flatten,
    info_of,
    sgg_only,
    tool_option,
    typed_settings,
    untyped_settings,
)

__all__ = [
    "IGNORED_FOR_SWEEP",
    "RECORDING_KEYS",
    "SEED_KEYS",
    "config_table",
    "flatten",
    "hyperparameter_value",
    "plain_name",
    "recording_only",
    "setting_label",
    "sweep_members",
    "sweepable_settings",
    "tolerance",
    "unique_labels",
    "varying_hyperparameters",
]


def config_table(metas: dict[str, dict]) -> pd.DataFrame:
    """Settings (rows) x runs (columns) with a `differs` column: the typed description first
    (`run.*` rows, in a fixed order; a value one run does not record is no difference), then
    run.json's raw objects (sorted)."""
    typed = pd.DataFrame({name: typed_rows(meta) for name, meta in metas.items()})
    # compared as recorded: a norm after clipping that is off reads as the gradient's own
    compared = pd.DataFrame({name: typed_rows(meta, shown=False) for name, meta in metas.items()})
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
    raw = pd.DataFrame(cols)
    if raw.empty and typed.empty:
        return raw
    raw = raw.astype(object).where(raw.notna(), None)
    as_text = raw.map(lambda v: "" if v is None else repr(v))
    raw["differs"] = as_text.nunique(axis=1) > 1
    if not typed.empty:
        typed = typed.astype(object).where(typed.notna(), None)
        compared = compared.astype(object).where(compared.notna(), None)
        recorded = compared.map(lambda v: None if v in (None, NOT_RECORDED) else v)
        typed["differs"] = recorded.nunique(axis=1, dropna=True) > 1
    out = pd.concat([typed, raw.sort_index()]) if not typed.empty else raw.sort_index()
    out["differs"] = out["differs"].astype(bool)
    return out


NOT_RECORDED = "not recorded"
GRAD_NORM_WORDS = {"pre_clip": "before clipping", "post_clip": "after clipping"}
UNCLIPPED_NORM = "the gradient's (clipping off)"  # after clipping that is off: nothing clipped
SOURCE_WORDS = {
    "recorded": "the recorder",
    "hf": "the recorder's HF Trainer callback",
    "lightning": "the recorder's Lightning callback",
    "tensorboard": "TensorBoard logs (read)",
    "wandb": "W&B logs (read)",
    "mlflow": "MLflow (read)",
    "csv": "CSV logs (read)",
}
TYPED_LABELS = {
    "run.source": "run: written by",
    "run.optimizer": "run: optimizer",
    "run.base": "run: optimizer underneath SGG",
    "run.lr": "run: learning rate (peak)",
    "run.lr_schedule": "run: learning-rate schedule",
    "run.warmup_steps": "run: warm-up steps",
    "run.min_lr_ratio": "run: lowest learning rate (share of the peak)",
    "run.betas": "run: betas",
    "run.eps": "run: epsilon",
    "run.weight_decay": "run: weight decay",
    "run.grad_clip": "run: gradient clipping (max norm)",
    "run.grad_norm": "run: gradient norm recorded",
    "run.batch_size": "run: batch size (examples per step)",
    "run.tokens_per_step": "run: tokens per step",
    "run.precision": "run: precision",
    "run.seed": "run: seed",
    "run.steps": "run: planned steps",
    "run.sgg": "run: SGG's grouping",
}


def typed_rows(meta: dict, shown: bool = True) -> dict[str, object]:
    """{run.<field>: value as shown} of a run's typed description, every field ("not
    recorded" where the run does not say); SGG's options only when it has any. `shown`: a
    norm recorded after clipping that is off reads as the gradient's own (False: as compared)."""
    info = info_of(meta)
    s = info.lr_schedule

    def show(v: object) -> object:
        if v is None:
            return NOT_RECORDED
        if isinstance(v, tuple):
            return ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        return v

    clip = info.grad_clip
    rows: dict[str, object] = {
        "run.source": SOURCE_WORDS.get(info.source, info.source),
        "run.optimizer": info.optimizer,
        "run.base": info.base if applies_sgg(meta) else "",
        "run.lr": info.lr,
        "run.lr_schedule": s.kind,
        "run.warmup_steps": s.warmup_steps,
        "run.min_lr_ratio": s.min_ratio,
        "run.betas": info.betas,
        "run.eps": info.eps,
        "run.weight_decay": info.weight_decay,
        "run.grad_clip": "off" if clip == 0 else clip,
        "run.grad_norm": UNCLIPPED_NORM
        if shown and clip == 0 and info.grad_norm == "post_clip"
        else GRAD_NORM_WORDS.get(info.grad_norm or ""),
        "run.batch_size": info.batch_size,
        "run.tokens_per_step": info.tokens_per_step,
        "run.precision": info.precision,
        "run.seed": info.seed,
        "run.steps": info.steps,
        "run.sgg": "none"
        if info.sgg is None
        else "applied"
        if info.sgg.applied
        else "observe-only shadow (not applied)",
    }
    rows = {k: show(v) for k, v in rows.items()}
    if info.sgg is not None:
        for k, v in dataclasses.asdict(info.sgg).items():
            if k != "applied":
                rows[f"run.sgg.{k}"] = show(tuple(v) if isinstance(v, list) else v)
    return rows


def _num(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float) and np.isfinite(v):
        return float(v)
    return None


def sweepable_settings(meta: dict) -> dict[str, object]:
    """The settings a sweep can vary, config.<name>: the typed description's fields first (the
    peak learning rate, whatever the tool called it), then the rest of the config by leaf name
    (`metrics.settings`)."""
    return {**typed_settings(meta), **untyped_settings(meta)}


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
    pref = ["config.lr", "config.batch_size"]
    return sorted(keys, key=lambda k: (pref.index(k) if k in pref else len(pref), k))


def setting_key(key: str) -> str:
    """'hyperparameters.lr' (an older name of a sweep's setting) -> 'config.lr'."""
    return "config." + key.split(".", 1)[1] if key.startswith("hyperparameters.") else key


def hyperparameter_value(meta: dict, key: str) -> float | None:
    return _num(sweepable_settings(meta).get(setting_key(key)))


PLAIN_NAMES = {
    "lr": "learning rate",
    "learning_rate": "learning rate",
    "weight_decay": "weight decay",
    "batch_size": "batch size",
    "seq_len": "sequence length",
    "steps": "training steps",
    "recluster_interval": "re-cluster interval T",
    "n_clusters": "groups K",
    "scale_decay": "scale decay (beta3)",
    "lr_schedule": "learning-rate schedule",
    "min_lr_ratio": "lowest learning rate (share of the peak)",
    "eps": "epsilon",
    "grad_clip": "gradient clipping (max norm)",
    "tokens_per_step": "tokens per step",
    "scale_bounds": "lowest and highest scale factor",
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
    **TYPED_LABELS,
}


def recording_only(key: str) -> bool:
    """Settings about where and how often a run was written, not about the training itself
    (another tool's logging and saving options included)."""
    return (
        key in RECORDING_KEYS
        or key in IGNORED_FOR_SWEEP
        or key.startswith("recording.")
        or (key.startswith("config.") and tool_option(key))
    )


def setting_label(key: str) -> str:
    """A plain label for a run.json key: 'config.lr' -> 'training: learning rate'."""
    if key in SETTING_WORDS:
        return SETTING_WORDS[key]
    if key.startswith("run.sgg."):
        return f"run: SGG's {plain_name(key)}"
    section = SECTIONS.get(key.split(".", 1)[0], "")
    return f"{section}: {plain_name(key)}" if section and "." in key else plain_name(key)


def unique_labels(keys: list[str]) -> list[str]:
    """`setting_label` of each key, a label that several keys share followed by the part of
    the key that tells them apart in words ('training: learning rate (training arguments)')."""
    labels = [setting_label(k) for k in keys]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    out = []
    for k, lab in zip(keys, labels, strict=True):
        if seen[lab] > 1:
            middle = k.split(".")[1:-1]
            lab += f" ({' '.join(middle).replace('_', ' ')})" if middle else ""
        out.append(lab)
    counts: dict[str, int] = {}
    final = []
    for lab in out:  # still shared (the same path twice): numbered
        counts[lab] = counts.get(lab, 0) + 1
        final.append(lab if counts[lab] == 1 else f"{lab} ({counts[lab]})")
    return final


def plain_name(key: str) -> str:
    """ "hyperparameters.lr" -> "learning rate"."""
    last = key.rsplit(".", 1)[-1]
    return PLAIN_NAMES.get(last, last.replace("_", " "))


def sweep_members(metas: dict[str, dict], key: str) -> list[str]:
    """The runs that differ from each other only in `key` (and in the optimizer): the largest
    group of runs whose other settings are equal, so that a sweep compares like with like. SGG's
    own options are part of "the optimizer" against AdamW; among the SGG runs only the most
    common variant stays (an ablation of beta3 is another sweep)."""
    key = setting_key(key)
    skip = {key, *IGNORED_FOR_SWEEP, *SEED_KEYS, *RECORDING_KEYS}
    groups: dict[tuple, list[tuple[str, tuple | None]]] = {}
    for rid, meta in metas.items():
        if hyperparameter_value(meta, key) is None:
            continue
        flat = {k: canonical(v) for k, v in sweepable_settings(meta).items() if k not in skip}
        sig = tuple(sorted((k, v) for k, v in flat.items() if not sgg_only(k)))
        variant = tuple(sorted((k, v) for k, v in flat.items() if sgg_only(k)))
        is_sgg = applies_sgg(meta)
        groups.setdefault(sig, []).append((rid, variant if is_sgg else None))
    if not groups:
        return []

    def keep(members: list[tuple[str, tuple | None]]) -> list[str]:
        counts: dict[tuple, int] = {}
        for _, v in members:
            if v is not None:  # an SGG run
                counts[v] = counts.get(v, 0) + 1
        common = max(counts, key=lambda v: (counts[v], v)) if counts else None
        return [rid for rid, v in members if v is None or v == common]

    def score(members: list[str]) -> tuple[int, int]:
        values = {hyperparameter_value(metas[m], key) for m in members}
        return (len(values), len(members))

    return max((keep(m) for m in groups.values()), key=score)


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

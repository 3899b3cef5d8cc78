"""The Runs tab's settings table: every run's settings side by side, differences marked.

Pure: run.json objects (and each run's learning rate at its last recorded step) in, a
DataFrame out (rows: settings by plain label; a column per run; `differs`).
"""

from __future__ import annotations

import pandas as pd

from dashboard.metrics import sweep

# run.json's optimizer `lr` is the optimizer's learning rate when the recorder opened the run
# (under a warm-up schedule, the step-1 value, never updated); the `lrs` table has each step's.
LR_KEY = "optimizer.hyperparameters.lr"
LAST_LR_KEY = "optimizer.hyperparameters.lr@last"
ROW_LABELS = {
    LAST_LR_KEY: "optimizer: learning rate at the last recorded step",
    LR_KEY: "optimizer: learning rate when the recorder opened the run",
}


def last_lr(lrs: pd.DataFrame | None) -> str | None:
    """'0.0004 (step 200)': every param group's learning rate at the last step of an `lrs`
    table (one value when the groups agree); None without one."""
    if lrs is None or lrs.empty or not {"step", "lr"} <= set(lrs.columns):
        return None
    step = int(lrs["step"].max())
    rows = lrs[lrs["step"] == step]
    if "group" in rows.columns:
        rows = rows.sort_values("group")
    values = [f"{v:.4g}" for v in rows["lr"]]
    if len(set(values)) == 1:
        return f"{values[0]} (step {step:,})"
    groups = rows["group"] if "group" in rows.columns else range(len(values))
    return "; ".join(f"group {g}: {v}" for g, v in zip(groups, values, strict=True)) + (
        f" (step {step:,})"
    )


def with_last_lr(cfg: pd.DataFrame, last: dict[str, str | None]) -> pd.DataFrame:
    """The settings table with each run's learning rate at its last recorded step (`last`:
    {column: value}) where run.json's `lr` was; run.json's value stays, under its honest name,
    only for runs without an lrs table."""
    if cfg.empty or not any(last.values()):
        return cfg
    runs = [c for c in cfg.columns if c != "differs"]
    row = pd.Series({c: last.get(c) for c in runs}, dtype=object)
    row["differs"] = row[runs].map(lambda v: "" if v is None else v).nunique() > 1
    keep_start = LR_KEY in cfg.index and any(last.get(c) is None for c in runs)
    out = cfg.drop(index=[LR_KEY], errors="ignore")
    where = list(cfg.index).index(LR_KEY) if LR_KEY in cfg.index else len(out)
    parts = [out.iloc[:where], row.to_frame(LAST_LR_KEY).T, out.iloc[where:]]
    if keep_start:
        parts.insert(2, cfg.loc[[LR_KEY]])
    out = pd.concat(parts)
    out["differs"] = out["differs"].astype(bool)
    return out


GRAD_NORM_KEY = "run.grad_norm"
GRAD_NORM_LOGGED = "recorded (before or after clipping: not known)"


def with_logged_grad_norm(cfg: pd.DataFrame, metas: dict[str, dict]) -> pd.DataFrame:
    """A foreign run that logged a gradient norm under its own name is "recorded", not "not
    recorded": only which norm (before or after clipping) is unknown."""
    if GRAD_NORM_KEY not in cfg.index:
        return cfg
    runs = [c for c in cfg.columns if c != "differs"]
    row = cfg.loc[GRAD_NORM_KEY, runs].copy()
    for c in runs:
        src = (metas.get(c) or {}).get("source")
        columns = src.get("columns") if isinstance(src, dict) else None
        if row[c] == sweep.NOT_RECORDED and isinstance(columns, dict) and columns.get("grad_norm"):
            row[c] = GRAD_NORM_LOGGED
    if row.equals(cfg.loc[GRAD_NORM_KEY, runs]):
        return cfg
    out = cfg.copy()
    out.loc[GRAD_NORM_KEY, runs] = row
    known = [v for v in row if v not in (sweep.NOT_RECORDED, GRAD_NORM_LOGGED)]
    out.loc[GRAD_NORM_KEY, "differs"] = len(set(known)) > 1
    return out


SCHEDULE_KEY = "run.lr_schedule"
SCHEDULE_PARTS = ("run.warmup_steps", "run.min_lr_ratio")
SCHEDULE_UNNAMED = "shape not recorded (its warm-up and lowest rate: below)"


def with_unnamed_schedule(cfg: pd.DataFrame) -> pd.DataFrame:
    """A run that records its warm-up or its floor but not the schedule's name reads "not
    named", not "not recorded" beside a recorded warm-up; still compared with nothing."""
    if SCHEDULE_KEY not in cfg.index or not any(k in cfg.index for k in SCHEDULE_PARTS):
        return cfg
    runs = [c for c in cfg.columns if c != "differs"]
    parts = cfg.loc[[k for k in SCHEDULE_PARTS if k in cfg.index], runs]
    partly = (parts != sweep.NOT_RECORDED).any(axis=0)
    row = cfg.loc[SCHEDULE_KEY, runs]
    unnamed = (row == sweep.NOT_RECORDED) & partly
    if not unnamed.any():
        return cfg
    out = cfg.copy()
    out.loc[SCHEDULE_KEY, list(unnamed[unnamed].index)] = SCHEDULE_UNNAMED
    return out


BASE_KEY = "run.base"
NO_BASE = "none (SGG not applied)"


def with_base_said(cfg: pd.DataFrame) -> pd.DataFrame:
    """'none (SGG not applied)', not a blank, for the optimizer underneath SGG of a run that
    does not apply SGG (an AdamW run's run.json may still name the base of its shadow)."""
    if BASE_KEY not in cfg.index:
        return cfg
    runs = [c for c in cfg.columns if c != "differs"]
    blank = [c for c in runs if cfg.loc[BASE_KEY, c] in ("", None)]
    if not blank:
        return cfg
    out = cfg.copy()
    out.loc[BASE_KEY, blank] = NO_BASE
    return out


def settings_frame(metas: dict[str, dict], last: dict[str, str | None]) -> pd.DataFrame:
    """The settings table as shown: the typed description's rows first (the same fields for
    every run, whatever wrote it), then run.json's raw objects; recording options left out,
    plain labels, each label once (two keys that read alike are told apart). The rows where runs
    differ come first (typed, then raw), so that they are in view at the top of the table."""
    cfg = with_last_lr(sweep.config_table(metas), last)
    if cfg.empty:
        return cfg
    cfg = with_base_said(with_unnamed_schedule(with_logged_grad_norm(cfg, metas)))
    keys = [str(k) for k in cfg.index]
    cfg = cfg[[not sweep.recording_only(k) for k in keys]]
    keys = [str(k) for k in cfg.index]
    typed = pd.Series([k.startswith("run.") for k in keys], index=cfg.index)
    labels = sweep.unique_labels(keys)
    cfg.index = [ROW_LABELS.get(k) or label for k, label in zip(keys, labels, strict=True)]
    order = sorted(range(len(cfg)), key=lambda i: (not cfg["differs"].iloc[i], not typed.iloc[i]))
    return cfg.iloc[order]


DIFFERS_SHOWN = 20  # settings named in "They differ in:" before "..."
HIGHLIGHT = "background-color: #FFF3CD"


def differing(cfg: pd.DataFrame) -> list[str]:
    """The labels of the settings in which the runs differ."""
    return [str(k) for k in cfg.index[cfg["differs"].to_numpy(dtype=bool)]]


def differs_line(cfg: pd.DataFrame) -> str:
    """'**They differ in:** a, b, ...' (the first DIFFERS_SHOWN), or '' when they do not."""
    names = differing(cfg)
    if not names:
        return ""
    more = " ..." if len(names) > DIFFERS_SHOWN else ""
    return "**They differ in:** " + ", ".join(names[:DIFFERS_SHOWN]) + more


def shown(cfg: pd.DataFrame, only_differences: bool) -> tuple[pd.DataFrame, list[str]]:
    """(the table as text, without `differs`; each row's CSS: highlighted where runs differ)."""
    view = cfg[cfg["differs"].to_numpy(dtype=bool)] if only_differences else cfg
    text = view.drop(columns="differs").map(lambda v: "" if v is None else str(v))
    return text, [HIGHLIGHT if m else "" for m in view["differs"].to_numpy(dtype=bool)]

"""The Runs page: the selected runs' settings side by side, and any recorded table as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import loader
from dashboard.context import Ctx
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


def settings_frame(metas: dict[str, dict], last: dict[str, str | None]) -> pd.DataFrame:
    """The settings table as shown: the typed description's rows first (the same fields for
    every run, whatever wrote it), then run.json's raw objects; recording options left out,
    plain labels, each label once (two keys that read alike are told apart), differences first
    within each part."""
    cfg = with_last_lr(sweep.config_table(metas), last)
    if cfg.empty:
        return cfg
    keys = [str(k) for k in cfg.index]
    cfg = cfg[[not sweep.recording_only(k) for k in keys]]
    keys = [str(k) for k in cfg.index]
    typed = pd.Series([k.startswith("run.") for k in keys], index=cfg.index)
    labels = sweep.unique_labels(keys)
    cfg.index = [ROW_LABELS.get(k) or label for k, label in zip(keys, labels, strict=True)]
    order = sorted(range(len(cfg)), key=lambda i: (not typed.iloc[i], not cfg["differs"].iloc[i]))
    return cfg.iloc[order]


def page(ctx: Ctx) -> None:
    st.caption(
        "Settings of the selected runs side by side; rows where they differ are highlighted. "
        "The first rows (run: ...) are read the same way whatever wrote the run; run.json's "
        "own entries follow. Recording options (where and how often a run was written) are "
        "left out."
    )
    metas = {ctx.labels[r]: ctx.by_rel[r].meta for r in ctx.selected}
    cfg = settings_frame(metas, {ctx.labels[r]: last_lr(ctx.df(r, "lrs")) for r in ctx.selected})
    if cfg.empty:
        st.info("No settings recorded.")
    else:
        differing = [str(k) for k in cfg.index[cfg["differs"].to_numpy(dtype=bool)]]
        if differing and len(ctx.selected) > 1:
            st.markdown(
                "**They differ in:** "
                + ", ".join(differing[:20])
                + (" ..." if len(differing) > 20 else "")
            )
        only = st.toggle("Only show differences", value=False, key="cfg_diff_only")
        view = cfg[cfg["differs"].to_numpy(dtype=bool)] if only else cfg
        shown = view.drop(columns="differs").map(lambda v: "" if v is None else str(v))
        marks = view["differs"].to_numpy(dtype=bool)
        colour = ["background-color: #FFF3CD" if m else "" for m in marks]
        styled = shown.style.apply(lambda col: colour, axis=0)
        st.dataframe(styled, key="cfg_table", height=420)
    st.markdown("**Download a recorded table as CSV**")
    a, b = st.columns(2)
    rel = a.selectbox("Run", ctx.selected, format_func=lambda r: ctx.labels[r], key="csv_run")
    present = [t for t in loader.TABLES if _has_table(ctx, rel, t)]
    if not present:
        st.info("This run has no readable tables.")
        return
    table = b.selectbox("Table", present, key="csv_table")
    run, root = ctx.by_rel[rel], ctx.root

    def csv() -> bytes:  # runs only when the button is clicked (a whole table can be large)
        df = loader.read_table(run, table, root).df
        return b"" if df is None else df.to_csv(index=False).encode()

    st.download_button(
        f"Download {table} of {ctx.labels[rel]} (CSV)",
        csv,
        file_name=f"{ctx.labels[rel]}-{table}.csv".replace("/", "_"),
        mime="text/csv",
        key="csv_download",
        on_click="ignore",
    )


def _has_table(ctx: Ctx, rel: str, table: str) -> bool:
    """A recorded run: the table has chunks on disk; a foreign run (read from another tool's
    logs, no chunks): the reader produced the table."""
    res = ctx.table(rel, table)
    if res.n_chunks:
        return True
    return bool(ctx.by_rel[rel].meta.get("source")) and res.df is not None and not res.df.empty

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


def page(ctx: Ctx) -> None:
    st.caption(
        "Settings of the selected runs side by side; rows where they differ are highlighted. "
        "Recording options (where and how often a run was written) are left out."
    )
    metas = {ctx.labels[r]: ctx.by_rel[r].meta for r in ctx.selected}
    cfg = sweep.config_table(metas)
    cfg = with_last_lr(cfg, {ctx.labels[r]: last_lr(ctx.df(r, "lrs")) for r in ctx.selected})
    if not cfg.empty:  # plain labels; where and how often a run was written is left out
        cfg = cfg[[not sweep.recording_only(str(k)) for k in cfg.index]]
        cfg.index = [ROW_LABELS.get(str(k)) or sweep.setting_label(str(k)) for k in cfg.index]
    if cfg.empty:
        st.info("No settings recorded.")
    else:
        differing = [str(k) for k in cfg.index[cfg["differs"]]]
        if differing and len(ctx.selected) > 1:
            st.markdown(
                "**They differ in:** "
                + ", ".join(differing[:20])
                + (" ..." if len(differing) > 20 else "")
            )
        only = st.toggle("Only show differences", value=False, key="cfg_diff_only")
        cfg = cfg.sort_values("differs", ascending=False, kind="stable")  # differences first
        view = cfg[cfg["differs"]] if only else cfg
        shown = view.drop(columns="differs").map(lambda v: "" if v is None else str(v))
        diff = view["differs"]
        styled = shown.style.apply(
            lambda row: ["background-color: #FFF3CD" if diff[row.name] else "" for _ in row], axis=1
        )
        st.dataframe(styled, key="cfg_table", height=420)
    st.markdown("**Download a recorded table as CSV**")
    a, b = st.columns(2)
    rel = a.selectbox("Run", ctx.selected, format_func=lambda r: ctx.labels[r], key="csv_run")
    present = [t for t in loader.TABLES if ctx.table(rel, t).n_chunks]
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

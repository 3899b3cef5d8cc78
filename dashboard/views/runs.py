"""The Runs page: the selected runs' settings side by side, and any recorded table as CSV."""

from __future__ import annotations

import streamlit as st

from dashboard import loader
from dashboard.context import Ctx
from dashboard.metrics import sweep


def page(ctx: Ctx) -> None:
    st.caption(
        "Settings of the selected runs side by side; rows where they differ are highlighted. "
        "Recording options (where and how often a run was written) are left out."
    )
    metas = {ctx.labels[r]: ctx.by_rel[r].meta for r in ctx.selected}
    cfg = sweep.config_table(metas)
    if not cfg.empty:  # plain labels; where and how often a run was written is left out
        cfg = cfg[[not sweep.recording_only(str(k)) for k in cfg.index]]
        cfg.index = [sweep.setting_label(str(k)) for k in cfg.index]
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

"""The Runs page: the selected runs' settings side by side, and any recorded table as CSV."""

from __future__ import annotations

import streamlit as st

from dashboard import loader, settings_table
from dashboard.context import Ctx
from dashboard.settings_table import (
    LAST_LR_KEY,
    LR_KEY,
    ROW_LABELS,
    last_lr,
    settings_frame,
    with_last_lr,
)

# the settings table's pieces, where the Runs tab's tests have always found them
__all__ = [
    "LAST_LR_KEY",
    "LR_KEY",
    "ROW_LABELS",
    "last_lr",
    "page",
    "settings_frame",
    "with_last_lr",
]


def page(ctx: Ctx) -> None:
    _settings(ctx)
    _download(ctx)


def _settings(ctx: Ctx) -> None:
    """The settings table, differences highlighted (and, on request, alone)."""
    sel, read = ctx.selection, ctx.reader
    st.caption(
        "Settings of the selected runs side by side; rows where they differ come first, "
        "highlighted. "
        "The first rows (run: ...) are read the same way whatever wrote the run; run.json's "
        "own entries follow. Recording options (where and how often a run was written) are "
        "left out."
    )
    metas = {sel.labels[r]: sel.meta(r) for r in sel.selected}
    last = {sel.labels[r]: last_lr(read.df(r, "lrs")) for r in sel.selected}
    cfg = settings_frame(metas, last)
    if cfg.empty:
        st.info("No settings recorded.")
        return
    line = settings_table.differs_line(cfg)
    if line and len(sel.selected) > 1:
        st.markdown(line)
    only = st.toggle("Only show differences", value=False, key="cfg_diff_only")
    text, colour = settings_table.shown(cfg, only)
    st.dataframe(text.style.apply(lambda col: colour, axis=0), key="cfg_table", height=420)


def _download(ctx: Ctx) -> None:
    """Any recorded table of a selected run, as CSV (read whole when the button is clicked)."""
    sel = ctx.selection
    st.markdown("**Download a recorded table as CSV**")
    a, b = st.columns(2)
    rel = a.selectbox("Run", sel.selected, format_func=lambda r: sel.labels[r], key="csv_run")
    present = [t for t in loader.TABLES if _has_table(ctx, rel, t)]
    if not present:
        st.info("This run has no readable tables.")
        return
    table = b.selectbox("Table", present, key="csv_table")
    run, root = sel.by_rel[rel], sel.root

    def csv() -> bytes:  # runs only when the button is clicked (a whole table can be large)
        df = loader.read_table(run, table, root).df
        return b"" if df is None else df.to_csv(index=False).encode()

    st.download_button(
        f"Download {table} of {sel.labels[rel]} (CSV)",
        csv,
        file_name=f"{sel.labels[rel]}-{table}.csv".replace("/", "_"),
        mime="text/csv",
        key="csv_download",
        on_click="ignore",
    )


def _has_table(ctx: Ctx, rel: str, table: str) -> bool:
    """A recorded run: the table has chunks on disk; a foreign run (read from another tool's
    logs, no chunks): the reader produced the table."""
    res = ctx.reader.table(rel, table)
    if res.n_chunks:
        return True
    meta = ctx.selection.meta(rel)
    return bool(meta.get("source")) and res.df is not None and not res.df.empty

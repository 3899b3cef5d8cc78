"""Compare SGG and AdamW training runs: `streamlit run dashboard/app.py [-- --runs DIR]`.

Layout only: the sidebar comes from `sidebar`, each tab from one module in `views/`; every
number comes from `metrics`, every sentence from `narrative`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import loader, narrative, sidebar
from dashboard.context import VIEW_COLUMNS, Ctx
from dashboard.sidebar import ENV_ROOT
from dashboard.views import PAGES, VIEWS

LIVE_REFRESH_SECONDS = 5

__all__ = ["ENV_ROOT", "VIEWS", "VIEW_COLUMNS", "main"]


def views_ui(ctx: Ctx) -> None:
    tabs = st.tabs(VIEWS, key="view", bind="query-params")
    for name, tab in zip(VIEWS, tabs, strict=True):
        if tab.open:
            with tab:
                try:
                    PAGES[name](ctx)
                except Exception as e:  # a bug in one view must not take the page down
                    st.error(
                        f"This view could not be drawn ({type(e).__name__}: {e}). The "
                        "other views still work."
                    )


def problems_ui(box, ctx: Ctx) -> None:
    """Data problems of the runs on show, at the top of the page, each next to its run."""
    for text, rels in ctx.problems().items():
        box.warning(f"**{', '.join(ctx.labels[r] for r in rels)}**: {text}.")


def main() -> None:
    st.set_page_config(page_title="SGG vs AdamW: training runs", layout="wide")
    st.title("Training runs: SGG compared with AdamW")
    root = sidebar.root_ui()
    disc = loader.discover_runs(root)
    for m in disc.messages:
        st.info(m)
    if disc.root is None or not disc.runs:
        st.info(
            "Point the sidebar's *Folder with runs* at a folder that contains training runs "
            "(each run is a folder with a run.json file)."
        )
        return
    bad = [r for r in disc.runs if r.problems]
    if bad:
        with st.expander(
            f"{len(bad)} run(s) with problems", expanded=any(not r.readable for r in bad)
        ):
            for r in bad:
                for p in r.problems:
                    (st.warning if not r.readable else st.info)(p)
    runs = [r for r in disc.runs if r.readable]
    labels = sidebar.run_labels(runs)
    with st.expander(f"{len(disc.runs)} run(s) found in `{disc.root}`", expanded=False):
        st.dataframe(
            sidebar.run_list_frame(disc.runs, {**labels, **sidebar.run_labels(disc.runs)}),
            hide_index=True,
            key="run_list",
        )
    if not runs:
        st.warning("None of the runs in this folder can be read.")
        return
    baseline, compare = sidebar.selection_ui(runs, labels)
    opts = sidebar.chart_options_ui()
    with st.sidebar.expander("Words used on this page"):
        st.markdown(narrative.definitions_markdown())
    ctx = Ctx(disc.root, runs, labels, baseline, compare, opts)
    live = ctx.live
    if live:
        st.caption(
            f"Live: a run on show is still training; refreshing every "
            f"{LIVE_REFRESH_SECONDS} s (only new chunks are read)."
        )
    st.fragment(run_every=LIVE_REFRESH_SECONDS if live else None)(live_views)(ctx)


def live_views(ctx: Ctx) -> None:
    """Problems first, then the views; while a run is live, re-read run.json and new chunks at
    every refresh, and redraw the whole page when a run's status changes."""
    before = ctx.statuses()
    fresh = loader.discover_runs(ctx.root).runs if ctx.live else None  # newest heartbeat
    ctx.refresh(fresh)
    if fresh is not None and ctx.statuses() != before:
        st.rerun(scope="app")  # a run finished or stopped: redraw, stop refreshing if none live
    top = st.container()
    views_ui(ctx)
    problems_ui(top, ctx)


if __name__ == "__main__":
    main()

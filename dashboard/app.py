"""Compare SGG and AdamW training runs: `streamlit run dashboard/app.py [-- --runs DIR]`, where
DIR is a folder or an object store prefix such as `s3://bucket/prefix` (docs/dashboard.md).

Layout only: the sidebar comes from `sidebar`, each tab from one module in `views/`; every
number comes from `metrics`, every sentence from `narrative`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import loader, narrative, sidebar, warmup
from dashboard.context import VIEW_COLUMNS, Ctx, page_state
from dashboard.sidebar import ENV_ROOT
from dashboard.views import PAGES, VIEWS

LIVE_REFRESH_SECONDS = 5
WATCH_SECONDS = 5  # how often an open page looks for new runs

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
    labels = ctx.selection.labels
    for text, rels in ctx.reader.problems().items():
        box.warning(f"**{', '.join(labels[r] for r in rels)}**: {text}.")


def main() -> None:
    with loader.drawing():  # checks of files no view reads wait until the page is drawn
        page()


def page() -> None:
    st.set_page_config(page_title="SGG vs AdamW: training runs", layout="wide")
    st.title("Training runs: SGG compared with AdamW")
    notice = st.container()  # a link naming runs that are not here says so, first
    root = sidebar.root_ui()
    warmup.start()  # first-use costs of the Summary's code, paid while the runs are listed
    disc = loader.discover_runs(root)
    for m in disc.messages:
        st.info(m)
    if disc.root is None or not disc.runs:
        st.info(
            "Point the sidebar's *Folder with runs* at a folder that contains training runs "
            "(each run is a folder with a run.json file)."
        )
        if disc.root is not None:  # an empty folder: show runs as soon as one is written
            watch(disc.root, page_state(disc.runs, []))
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
    all_labels = {**labels, **sidebar.run_labels(disc.runs)}
    with st.expander(f"{len(disc.runs)} run(s) found in `{disc.root}`", expanded=False):
        st.caption(
            "Each run's data files are checked for damage when the run is on show (picked in "
            "the sidebar); damage found is listed above, under the runs with problems."
        )
        st.dataframe(
            sidebar.run_list_frame(disc.runs, all_labels),
            hide_index=True,
            key="run_list",
        )
    if not runs:
        st.warning("None of the runs in this folder can be read.")
        watch(disc.root, page_state(disc.runs, []))
        return
    pool = sidebar.pool_ui()
    unreadable = {all_labels[r.rel] for r in disc.runs if not r.readable}
    sel = sidebar.selection_ui(runs, labels, pool, unreadable)
    on_show = st.sidebar.container()
    opts = sidebar.chart_options_ui(pool)
    with st.sidebar.expander("Words used on this page"):
        st.markdown(narrative.definitions_markdown())
    ctx = Ctx(disc.root, runs, labels, sel.baseline, sel.compare, opts)
    words = sidebar.series_words(ctx.selection.series, sidebar.full_labels(runs, labels), labels)
    on_show.caption(sidebar.selection_markdown(words))
    if sel.url_missing or sel.url_unreadable:
        notice.warning(sidebar.missing_notice(sel.url_missing, sel.url_unreadable, words))
    drawn = page_state(disc.runs, ctx.series_rels())
    live = ctx.selection.live
    st.fragment(run_every=LIVE_REFRESH_SECONDS if live else None)(live_views)(ctx, drawn, [True])
    watch(disc.root, drawn, tuple(ctx.series_rels()))


def watch(root: Path, drawn: tuple, shown: tuple[str, ...] = ()) -> None:
    """Every few seconds, list the runs folder (run.json files, cached; milliseconds for
    hundreds of runs on disk, one listing on a store) and redraw the whole page when a run
    appeared or went, or a run on show changed status, or the background check of its files
    finished: an open page shows a new run, or damage found, without a reload. Not on the
    fragment's first run, inline in the page run that has just listed the folder (a second
    listing of a store prefix costs its requests again)."""
    first = [True]
    checking = loader.checks_pending() > 0  # files on show still being checked for damage

    def check() -> None:
        if first[0]:
            first[0] = False
            return
        if checking and not loader.checks_pending():
            st.rerun(scope="app")  # checked: drop the "checked so far" note, name damage
        if page_state(loader.discover_runs(root).runs, list(shown)) != drawn:
            st.rerun(scope="app")

    st.fragment(run_every=WATCH_SECONDS)(check)()


def live_banner(ctx: Ctx) -> str:
    """The live notice, from the same statuses the views show (drawn inside the refreshed
    fragment, so it goes as soon as the page shows the run stopped)."""
    live = ctx.selection.live_runs()
    if not live:
        return ""
    return (
        f"Live: a run on show is still training ({', '.join(live)}); refreshing every "
        f"{LIVE_REFRESH_SECONDS} s (only new chunks are read)."
    )


def live_views(ctx: Ctx, drawn: tuple, first: list[bool]) -> None:
    """The live notice, problems, then the views; while a run is live, re-read run.json and
    new chunks at every refresh (not on the first run, inline in the page run that has just
    listed the folder), and redraw the whole page when the runs folder or a run's status
    changed since the page was drawn (to stop refreshing, or to list a new run)."""
    if ctx.selection.live and not first[0]:
        fresh = loader.discover_runs(ctx.selection.root).runs  # newest heartbeat
        ctx.refresh(fresh)
        if page_state(fresh, ctx.series_rels()) != drawn:
            st.rerun(scope="app")
    first[0] = False
    banner = live_banner(ctx)
    if banner:
        st.caption(banner)
    top = st.container()
    views_ui(ctx)
    problems_ui(top, ctx)


if __name__ == "__main__":
    main()

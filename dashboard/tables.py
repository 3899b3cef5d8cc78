"""The tables of a selection's runs, read through the loader at most once per page run.

The loader caches chunks across page runs; this reader keeps each (run, table) result for the
page run, collects the problems met while reading (shown at the top of the page, beside their
run), and gives the fingerprints that key every derived, cached result. `refresh` forgets the
reads so that a live refresh lists the chunk folders again.
"""

from __future__ import annotations

import pandas as pd

from dashboard import loader
from dashboard.cache import cached
from dashboard.metrics import compare, health
from dashboard.selection import Selection

# The columns the views read (reading fewer columns of many chunks is much faster); the CSV
# download reads whole tables.
VIEW_COLUMNS = {
    "steps": ("step", "wall_time", "loss", "tokens", "grad_norm", "optimizer_time", "reclustered"),
    "layers": ("step", "layer", "grad_norm"),
}


class TableReader:
    """Reads the tables of `selection`'s runs; problems met while reading go to `messages`."""

    def __init__(self, selection: Selection):
        self.selection = selection
        self.messages: list[str] = []
        self._results: dict[tuple[str, str, bool], loader.TableResult] = {}

    def refresh(self, selection: Selection) -> None:
        """Read for `selection` (newer metadata) from now on, every table afresh."""
        self.selection = selection
        self._results.clear()
        self.messages.clear()

    def table(self, rel: str, table: str, full: bool = False) -> loader.TableResult:
        """The table (only the columns the views use unless `full`), read at most once per
        page run."""
        if (rel, table, full) in self._results:
            return self._results[(rel, table, full)]
        cols = None if full else VIEW_COLUMNS.get(table)
        res = loader.read_table(self.selection.by_rel[rel], table, self.selection.root, cols)
        self._results[(rel, table, full)] = res
        for m in res.messages:
            if m not in self.messages:
                self.messages.append(m)
        return res

    def df(self, rel: str, table: str) -> pd.DataFrame | None:
        return self.table(rel, table).df

    def tables(self, table: str, rels: list[str] | None = None) -> dict[str, pd.DataFrame]:
        """{display name: DataFrame} of `table` for `rels` (default: the selected runs), the
        runs without one left out."""
        out = {}
        for rel in rels or self.selection.selected:
            res = self.table(rel, table)
            if res.df is not None and not res.df.empty:
                out[self.selection.labels[rel]] = res.df
        return out

    def series_tables(self, table: str) -> dict[str, list[pd.DataFrame]]:
        """{series name: the table of each of its runs that has one}."""
        return {
            name: [df for r in members if (df := self.df(r, table)) is not None]
            for name, members in self.selection.series
        }

    def key(self, tables: str | tuple[str, ...], rels: list[str] | None = None) -> tuple:
        """A hashable fingerprint of `tables` for `rels` (default: the selected runs): the cache
        key of data derived from them."""
        names = (tables,) if isinstance(tables, str) else tables
        sel = self.selection
        return tuple(
            (rel, sel.labels[rel], sel.status(rel), *(self.table(rel, t).signature for t in names))
            for rel in rels or sel.selected
        )

    def series_key(self, tables: str | tuple[str, ...], *extra: object) -> tuple:
        """The fingerprint of `tables` for every run on show, with the series they form and
        `extra` (chart options): the cache key of a chart of the series."""
        series = tuple(map(str, self.selection.series))
        return (self.key(tables, self.selection.series_rels()), series, *extra)

    def prefetch(self, tables: tuple[str, ...], rels: list[str] | None = None) -> None:
        """Read many runs' chunks in one multi-threaded scan before the views ask for them."""
        sel = self.selection
        loader.prefetch(
            [(sel.by_rel[r], t, VIEW_COLUMNS.get(t)) for r in rels or sel.selected for t in tables],
            sel.root,
        )

    def facts(self, rel: str) -> compare.RunFacts:
        """What the comparisons need from one run (cached on its tables' signatures)."""
        sel = self.selection
        return cached(
            compare.run_facts,
            self.key(("steps", "evals"), [rel]),
            sel.labels[rel],
            sel.meta(rel),
            sel.status(rel),
            self.df(rel, "steps"),
            self.df(rel, "evals"),
            self.unread(rel),
        )

    def unread(self, rel: str) -> str:
        """Why the run's steps could not be read ('' when they could): a damaged steps chunk
        and no step left; such a run takes part in no group statistic or comparison."""
        res = self.table(rel, "steps")
        if res.df is not None and not res.df.empty:
            return ""
        found = (*res.messages, *(m for m in self.selection.by_rel[rel].damage if "steps" in m))
        damaged = [m for m in found if "damaged" in m]
        return "its steps are damaged" if damaged else ""

    def problems(self) -> dict[str, list[str]]:
        """{what is wrong: the run ids it concerns} for the runs on show: unfinished, stopped,
        truncated, diverged, and every unreadable chunk met while reading."""
        sel = self.selection
        out: dict[str, list[str]] = {}
        for rel in sel.series_rels():
            lines = health.data_problems(sel.meta(rel), sel.status(rel), self.df(rel, "steps"))
            prefix = f"`{rel or sel.by_rel[rel].name}`: "
            lines += [m.removeprefix(prefix) for m in self.messages if m.startswith(prefix)]
            if lines:
                out.setdefault("; ".join(dict.fromkeys(lines)), []).append(rel)
        return out

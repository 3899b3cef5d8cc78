"""What every view shares: the chosen runs, their display names and colours, and their tables.

A `Ctx` reads each table at most once per page run (the loader caches the chunks across runs);
`refresh()` forgets those reads so that a live refresh lists the chunk folders again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dashboard import figures, loader

# The columns the views read (reading fewer columns of many chunks is much faster); the CSV
# download reads whole tables.
VIEW_COLUMNS = {
    "steps": ("step", "wall_time", "loss", "tokens", "grad_norm"),
    "layers": ("step", "layer", "grad_norm"),
}


class Ctx:
    """The root, all readable runs, the baseline and compared runs, chart options."""

    def __init__(
        self,
        root: Path,
        runs: list[loader.Run],
        labels: dict[str, str],
        baseline: str,
        compare: list[str],
        opts: dict,
    ):
        self.root = root
        self.by_rel = {r.rel: r for r in runs}
        self.all_runs = runs
        self.labels = labels
        self.baseline = baseline
        self.selected = [baseline, *compare]
        self.opts = opts
        names = [labels[r] for r in self.selected]
        self.colors = figures.run_colors(names, labels[baseline])
        self.messages: list[str] = []
        self._tables: dict[tuple[str, str, bool], loader.TableResult] = {}

    @property
    def base_name(self) -> str:
        return self.labels[self.baseline]

    def refresh(self, runs: list[loader.Run] | None = None) -> None:
        """Forget this page run's reads (and take newer run.json metadata for known runs)."""
        self._tables.clear()
        self.messages.clear()
        for r in runs or []:
            if r.rel in self.by_rel and r.readable:
                self.by_rel[r.rel] = r

    def status(self, rel: str) -> str:
        return loader.display_status(self.by_rel[rel])

    def table(self, rel: str, table: str, full: bool = False) -> loader.TableResult:
        """The table (only the columns the views use unless `full`), read at most once per page
        run; problems met while reading are collected in `messages`."""
        if (rel, table, full) in self._tables:
            return self._tables[(rel, table, full)]
        cols = None if full else VIEW_COLUMNS.get(table)
        res = loader.read_table(self.by_rel[rel], table, self.root, cols)
        self._tables[(rel, table, full)] = res
        for m in res.messages:
            if m not in self.messages:
                self.messages.append(m)
        return res

    def df(self, rel: str, table: str) -> pd.DataFrame | None:
        return self.table(rel, table).df

    def tables(self, table: str, rels: list[str] | None = None) -> dict[str, pd.DataFrame]:
        """{display name: DataFrame} of `table` for `rels` (default: the selected runs)."""
        out = {}
        for rel in rels or self.selected:
            res = self.table(rel, table)
            if res.df is not None and not res.df.empty:
                out[self.labels[rel]] = res.df
        return out

    def key(self, tables: str | tuple[str, ...], rels: list[str] | None = None) -> tuple:
        """A hashable fingerprint of `tables` for `rels` (the cache key for derived data)."""
        names = (tables,) if isinstance(tables, str) else tables
        return tuple(
            (
                rel,
                self.labels[rel],
                self.status(rel),
                *(self.table(rel, t).signature for t in names),
            )
            for rel in rels or self.selected
        )

    def prefetch(self, tables: tuple[str, ...], rels: list[str] | None = None) -> None:
        """Read many runs' chunks in one multi-threaded scan before the views ask for them."""
        loader.prefetch(
            [
                (self.by_rel[r], t, VIEW_COLUMNS.get(t))
                for r in rels or self.selected
                for t in tables
            ],
            self.root,
        )

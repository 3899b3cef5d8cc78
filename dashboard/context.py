"""What every view shares: the chosen runs, their display names and colours, and their tables.

A `Ctx` reads each table at most once per page run (the loader caches the chunks across runs);
`refresh()` forgets those reads so that a live refresh lists the chunk folders again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dashboard import figures, loader
from dashboard.cache import cached
from dashboard.metrics import compare, groups, health

# The columns the views read (reading fewer columns of many chunks is much faster); the CSV
# download reads whole tables.
VIEW_COLUMNS = {
    "steps": ("step", "wall_time", "loss", "tokens", "grad_norm", "optimizer_time", "reclustered"),
    "layers": ("step", "layer", "grad_norm"),
}


def page_state(runs: list[loader.Run], shown: list[str]) -> tuple:
    """What a page is drawn from: every run folder, and the status of each run on show (the
    live rule: pid on this host, else heartbeat). When it changes, the page is redrawn."""
    by_rel = {r.rel: r for r in runs}
    return (
        tuple(sorted(by_rel)),
        tuple((r, loader.display_status(by_rel[r]) if r in by_rel else "gone") for r in shown),
    )


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
        self.group_of = {r.rel: groups.group_id(r.meta) for r in runs}
        self.groups = groups.seed_groups({r.rel: r.meta for r in runs})
        self.series = self._series(bool(opts.get("pool", True)))
        self.colors, self.dashes = self._styles()
        self.messages: list[str] = []
        self._tables: dict[tuple[str, str, bool], loader.TableResult] = {}

    def _series(self, pool: bool) -> list[tuple[str, list[str]]]:
        """What the charts and the Summary compare: (name, run ids), the baseline's first. With
        `pool`, each selected run stands for its seed group, unless only seeds of the baseline's
        own setting are chosen (then the runs are shown one by one)."""
        base_gid = self.group_of[self.baseline]
        # only seeds of the baseline's own setting chosen: show them one by one
        seed_only = bool(self.selected[1:]) and all(
            self.group_of[r] == base_gid for r in self.selected[1:]
        )
        varying = groups.varying_settings([self.by_rel[r].meta for r in self.selected])
        out: list[tuple[str, list[str]]] = []
        seen: set[str] = set()
        for rel in self.selected:
            gid = self.group_of[rel]
            if pool and not (seed_only and gid == base_gid):
                if gid in seen:
                    continue
                members = [m for m in self.groups[gid] if m in self.by_rel]
                members.sort(key=lambda m: m != rel)  # the selected run first
            else:
                members = [rel]
            seen.add(gid)
            name = (
                self.labels[rel]
                if len(members) == 1
                else groups.group_label(
                    self.by_rel[rel].meta,
                    varying,
                    [groups.seed_of(self.by_rel[m].meta) for m in members],
                )
            )
            if any(name == n for n, _ in out):  # same visible settings: tell them apart
                name = f"{name} [{self.labels[rel]}]"
            out.append((name, members))
        return out

    def _styles(self) -> tuple[dict[str, str], dict[str, str]]:
        """Colour by setting (the baseline's setting blue), line style by optimizer."""
        colors, dashes, by_setting = {}, {}, {}
        palette = [figures.BASELINE_COLOR, *figures.PALETTE]
        for name, members in self.series:
            meta = self.by_rel[members[0]].meta
            setting = repr(
                sorted((k, repr(v)) for k, v in groups.settings(meta).items() if k != "optimizer")
            )
            if len(self.series) <= 2:  # two lines: one colour each, whatever their settings
                setting = name
            by_setting.setdefault(setting, palette[len(by_setting) % len(palette)])
            colors[name] = by_setting[setting]
            opt = groups.optimizer_name(meta).lower()
            dashes[name] = figures.OPTIMIZER_DASHES.get(opt, "dot")
        return colors, dashes

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
        """finished, failed, running or stopped (pid check on this host, heartbeat otherwise)."""
        return health.live_status(self.by_rel[rel].meta)

    def statuses(self) -> dict[str, str]:
        return {r: self.status(r) for r in self.series_rels()}

    @property
    def live(self) -> bool:
        """A run on show is still training."""
        return health.RUNNING in self.statuses().values()

    def live_runs(self) -> list[str]:
        """The display names of the runs on show that are still training."""
        return [self.labels[r] for r, s in self.statuses().items() if s == health.RUNNING]

    def facts(self, rel: str) -> compare.RunFacts:
        """What the comparisons need from one run (cached on its tables' signatures)."""
        run = self.by_rel[rel]
        return cached(
            compare.run_facts,
            self.key(("steps", "evals"), [rel]),
            self.labels[rel],
            run.meta,
            self.status(rel),
            self.df(rel, "steps"),
            self.df(rel, "evals"),
        )

    def series_tables(self, table: str) -> dict[str, list[pd.DataFrame]]:
        """{series name: the table of each of its runs}."""
        return {
            name: [df for r in members if (df := self.df(r, table)) is not None]
            for name, members in self.series
        }

    def problems(self) -> dict[str, list[str]]:
        """{what is wrong: the run ids it concerns} for the runs on show: unfinished, stopped,
        truncated, diverged, and every unreadable chunk met while reading."""
        out: dict[str, list[str]] = {}
        for rel in self.series_rels():
            meta, steps = self.by_rel[rel].meta, self.df(rel, "steps")
            lines = health.data_problems(meta, self.status(rel), steps)
            prefix = f"`{rel or self.by_rel[rel].name}`: "
            lines += [m.removeprefix(prefix) for m in self.messages if m.startswith(prefix)]
            if lines:
                out.setdefault("; ".join(dict.fromkeys(lines)), []).append(rel)
        return out

    def series_rels(self) -> list[str]:
        return [r for _, members in self.series for r in members]

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

"""What every view is drawn from (`Ctx`), and what the page was drawn from (`page_state`).

A `Ctx` holds four parts, each with one job: `selection` (which runs, the baseline, the seed
groups they stand for: `dashboard.selection`), `reader` (their tables, read at most once per
page run: `dashboard.tables`), `styles` (each series' colour and dash: `dashboard.styles`) and
`options` (the sidebar's chart options: `dashboard.chart_options`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dashboard import loader
from dashboard.chart_options import ChartOptions
from dashboard.selection import Selection
from dashboard.styles import Styles
from dashboard.tables import VIEW_COLUMNS, TableReader

__all__ = ["VIEW_COLUMNS", "Ctx", "page_state"]


def page_state(runs: list[loader.Run], shown: list[str]) -> tuple:
    """What a page is drawn from: every run folder, and the status of each run on show (the
    live rule: pid on this host, else heartbeat). When it changes, the page is redrawn."""
    by_rel = {r.rel: r for r in runs}
    return (
        tuple(sorted(by_rel)),
        tuple((r, loader.display_status(by_rel[r]) if r in by_rel else "gone") for r in shown),
    )


class Ctx:
    """The selection, a reader of its tables, its styles and the chart options."""

    def __init__(
        self,
        root: Path,
        runs: list[loader.Run],
        labels: Mapping[str, str],
        baseline: str,
        compare: list[str],
        options: ChartOptions | Mapping | None = None,
    ):
        self.options = ChartOptions.of(options)
        self.selection = Selection(
            root, tuple(runs), dict(labels), baseline, tuple(compare), self.options.pool
        )
        self.reader = TableReader(self.selection)
        self.styles = Styles.of(self.selection)

    def refresh(self, runs: list[loader.Run] | None = None) -> None:
        """Forget this page run's reads, and take newer run.json metadata for known runs."""
        if runs:
            self.selection = self.selection.with_runs(runs)
            self.styles = Styles.of(self.selection)
        self.reader.refresh(self.selection)

    def series_rels(self) -> list[str]:
        return self.selection.series_rels()

"""Which runs a page shows: the baseline, the compared runs, and the seed groups they stand for.

Made once per page run from the sidebar's choice and never changed: a live refresh makes a new
one (`with_runs`), so that no view edits what another is reading. The series (what the charts
and the Summary compare) follow from it alone; statuses are read when asked (a live run's
status changes while the page is open).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from dashboard import loader
from dashboard.metrics import groups, health

Series = tuple[str, list[str]]  # (name on the page, run ids: one run, or a seed group's)


@dataclass(frozen=True)
class Selection:
    """The readable runs of a folder, their display names, and the baseline and compared runs
    (run ids); `pool`: each chosen run stands for its seed group."""

    root: Path
    runs: tuple[loader.Run, ...]
    labels: Mapping[str, str]  # {run id: display name}
    baseline: str
    compare: tuple[str, ...] = ()
    pool: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(self.runs))
        object.__setattr__(self, "compare", tuple(self.compare))
        known = {r.rel for r in self.runs}
        for rel in (self.baseline, *self.compare):
            if rel not in known or rel not in self.labels:
                raise ValueError(f"selection: run {rel!r} is not among the readable runs")

    @cached_property
    def by_rel(self) -> dict[str, loader.Run]:
        return {r.rel: r for r in self.runs}

    @property
    def selected(self) -> list[str]:
        """The baseline, then the compared runs, as picked."""
        return [self.baseline, *self.compare]

    @property
    def base_name(self) -> str:
        return self.labels[self.baseline]

    @cached_property
    def group_of(self) -> dict[str, str]:
        """{run id: its seed group's id}."""
        return {r.rel: groups.group_id(r.meta) for r in self.runs}

    @cached_property
    def groups(self) -> dict[str, list[str]]:
        """{seed group id: its run ids, by seed}."""
        return groups.seed_groups({r.rel: r.meta for r in self.runs})

    @cached_property
    def series(self) -> list[Series]:
        """What the charts and the Summary compare, the baseline's first (`series_of`)."""
        metas = {rel: r.meta for rel, r in self.by_rel.items()}
        return series_of(self.selected, metas, self.labels, self.pool, self.group_of, self.groups)

    def series_rels(self) -> list[str]:
        """Every run on show (each series' members)."""
        return [r for _, members in self.series for r in members]

    def meta(self, rel: str) -> dict:
        return self.by_rel[rel].meta

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

    def with_runs(self, fresh: Sequence[loader.Run]) -> Selection:
        """The same choice with newer run.json metadata for the runs it knows (a live refresh);
        a run that became unreadable keeps its last metadata."""
        newer = {r.rel: r for r in fresh if r.readable}
        runs = tuple(newer.get(r.rel, r) for r in self.runs)
        return replace(self, runs=runs)


def series_of(
    selected: list[str],
    metas: Mapping[str, dict],
    labels: Mapping[str, str],
    pool: bool,
    group_of: Mapping[str, str],
    members_of: Mapping[str, list[str]],
) -> list[Series]:
    """(name, run ids) per line on show, the baseline's first (`selected[0]`). With `pool`,
    each selected run stands for its seed group (`group_of`, `members_of`; the selected run
    first), unless only seeds of the baseline's own setting are chosen: then the runs are shown
    one by one."""
    base_gid = group_of[selected[0]]
    seed_only = bool(selected[1:]) and all(group_of[r] == base_gid for r in selected[1:])
    varying = groups.varying_settings([metas[r] for r in selected])
    out: list[Series] = []
    seen: set[str] = set()
    for rel in selected:
        gid = group_of[rel]
        if pool and not (seed_only and gid == base_gid):
            if gid in seen:
                continue
            members = sorted(members_of[gid], key=lambda m: m != rel)  # the selected run first
        else:
            members = [rel]
        seen.add(gid)
        name = _series_name(rel, members, metas, labels, varying)
        if any(name == n for n, _ in out):  # same visible settings: tell them apart
            name = f"{name} [{labels[rel]}]"
        out.append((name, members))
    return out


def _series_name(
    rel: str,
    members: list[str],
    metas: Mapping[str, dict],
    labels: Mapping[str, str],
    varying: list[str],
) -> str:
    """A single run: its display name; a group: its settings and seeds."""
    if len(members) == 1:
        return labels[rel]
    return groups.group_label(metas[rel], varying, [groups.seed_of(metas[m]) for m in members])

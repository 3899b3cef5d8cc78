"""How each series on show is drawn on every chart: colour by setting, dash by optimizer.

Colours come from `palette.SERIES_COLORS` (24 colours kept apart on a white page): the
baseline's setting takes the first, each further setting the next, so that an SGG group and
the AdamW group of the same setting share a colour and differ in their dash; with two series
on show, one colour each whatever their settings. Dashes: solid AdamW, dashed SGG, dotted
anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dashboard import figures, palette
from dashboard.metrics import groups
from dashboard.metrics.settings import ADAMW, SGG
from dashboard.selection import Selection

OTHER_DASH = "dot"  # an optimizer that is neither SGG nor AdamW
# charts drawn per optimizer (the Sweep): AdamW in the first colour, SGG in the next
OPTIMIZER_COLORS = {ADAMW: palette.SERIES_COLORS[0], SGG: palette.SERIES_COLORS[1]}


@dataclass(frozen=True)
class Styles:
    """{series name: colour} and {series name: dash pattern}."""

    colors: Mapping[str, str]
    dashes: Mapping[str, str]

    @classmethod
    def of(cls, selection: Selection) -> Styles:
        """The styles of `selection`'s series (each by its first run's settings)."""
        firsts = [(name, selection.meta(members[0])) for name, members in selection.series]
        return cls(*series_styles(firsts))


def series_styles(firsts: list[tuple[str, Mapping]]) -> tuple[dict[str, str], dict[str, str]]:
    """({name: colour}, {name: dash}) for series given as (name, a member's run.json), the
    baseline's first."""
    colors: dict[str, str] = {}
    dashes: dict[str, str] = {}
    by_setting: dict[str, str] = {}
    for name, meta in firsts:
        setting = name if len(firsts) <= 2 else _setting(meta)
        n = len(by_setting)
        by_setting.setdefault(setting, palette.SERIES_COLORS[n % len(palette.SERIES_COLORS)])
        colors[name] = by_setting[setting]
        dashes[name] = figures.OPTIMIZER_DASHES.get(groups.optimizer_name(meta), OTHER_DASH)
    return colors, dashes


def _setting(meta: Mapping) -> str:
    """The run's settings besides the optimizer's name (SGG's own options included)."""
    return repr(sorted((k, repr(v)) for k, v in groups.settings(meta).items() if k != "optimizer"))

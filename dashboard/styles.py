"""How each series on show is drawn on every chart: colour by setting, dash by optimizer.

Colours come from `palette.SERIES_COLORS` (24 colours kept apart on a white page): the
baseline's setting takes the first, each further setting the next. A setting is every setting
but the seed and the optimizer's name, SGG's own (K, T, ...) included: runs that differ only in
seed share a colour, while AdamW and SGG at one learning rate do not (SGG's options tell them
apart). With two series on show, one colour each whatever their settings. Dashes: solid
AdamW, dashed SGG, dotted anything else.
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


def legend_words(styles: Styles) -> str:
    """What colour and line style mean on the charts now on show, from the styles they draw
    with (so that the words cannot promise a pairing the page does not make: SGG's own settings
    are part of its setting, so AdamW and SGG at one learning rate never share a colour)."""
    members: dict[str, list[str]] = {}  # {colour: the dashes of the series drawn in it}
    for name, color in styles.colors.items():
        members.setdefault(color, []).append(styles.dashes.get(name, OTHER_DASH))
    repeats = [set(d) for d in members.values() if len(d) > 1]
    if not repeats:
        colour = "Each series has its own colour"
    elif any(len(d) > 1 for d in repeats):
        colour = (
            "Series that share a colour have the same settings apart from the seed and the "
            "optimizer"
        )
    else:
        colour = "Runs that differ only in their seed share a colour"
    if len(styles.colors) > len(palette.SERIES_COLORS):
        colour += f" (colours repeat after {len(palette.SERIES_COLORS)} settings)"
    dashes = set(styles.dashes.values())
    said = ["solid AdamW", "dashed SGG"] + (["dotted other"] if OTHER_DASH in dashes else [])
    return f"{colour}; line style = optimizer ({', '.join(said)})."

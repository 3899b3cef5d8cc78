"""Colours, dash patterns and marker shapes that keep up to 24 lines apart on a white page.

Two lines may share a colour family on a crowded chart, so every line also gets its own dash and
marker shape (`line_style`): two series with equal values stay visible as two.
"""

from __future__ import annotations

import plotly.express as px

# plotly's Dark24: 24 qualitative colours made for white backgrounds
SERIES_COLORS: list[str] = list(px.colors.qualitative.Dark24)
# groups: ColorBrewer's Dark2 first (what K <= 6 has always looked like), then plotly qualitative
# colours picked greedily, each as far as possible (CIELAB) from those before it and from the
# blue / red / grey that mean "sped up / slowed / unchanged" here: every pair differs by 27+ dE
GROUP_COLORS: list[str] = [
    "#1B9E77",
    "#D95F02",
    "#7570B3",
    "#E7298A",
    "#66A61E",
    "#E6AB02",
    "#A6761D",
    "#666666",
    "#511CFB",
    "#FE00FA",
    "#F8A19F",
    "#620042",
    "#782AB6",
    "#00B5F7",
    "#862A16",
    "#FB0D0D",
    "#3283FE",
    "#6C7C32",
    "#DEA0FD",
    "#0D2A63",
    "#C075A6",
    "#FC6955",
    "#222A2A",
    "#DA60CA",
]
WHOLE_LAYER_COLOR = "#4E79A7"
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
SYMBOLS = [
    "circle",
    "diamond",
    "square",
    "triangle-up",
    "x",
    "star",
    "triangle-down",
    "cross",
    "pentagon",
    "hexagon",
    "triangle-left",
    "hourglass",
]
# what a factor set for a weight's step: bigger than AdamW's (blue), about AdamW's (grey),
# smaller (red); keyed by `metrics.cluster_effect`'s class names
EFFECT_COLORS = {
    "bigger steps": "#2166AC",
    "about AdamW's step": "#BDBDBD",
    "smaller steps": "#B2182B",
}


def group_color(c: int) -> str:
    """A group's colour (the whole layer, cluster -1: blue-grey)."""
    return WHOLE_LAYER_COLOR if c < 0 else GROUP_COLORS[int(c) % len(GROUP_COLORS)]


def line_style(i: int) -> dict[str, str]:
    """The i-th line's colour, dash and marker: no two of the first 24 share all three, and
    consecutive lines never share a dash or a marker."""
    return {
        "color": SERIES_COLORS[i % len(SERIES_COLORS)],
        "dash": DASHES[i % len(DASHES)],
        "symbol": SYMBOLS[i % len(SYMBOLS)],
    }


def group_style(c: int) -> dict[str, str]:
    """A group's colour, dash and marker (groups with equal values stay visible as two)."""
    return {
        "color": group_color(c),
        "dash": DASHES[int(c) % len(DASHES)] if c >= 0 else "solid",
        "symbol": SYMBOLS[int(c) % len(SYMBOLS)] if c >= 0 else "circle",
    }

"""The Loss tab's difference panel, from one frame (`prepare.paired_eval_difference`): the
figure and the words under it, both read off the same rows so that they cannot disagree.

Pure: a frame in, a `go.Figure` or text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import figures, prepare
from dashboard.metrics import intervals


def _steps(values) -> str:
    """'step 50' or 'steps 50, 75 and 100' (at most six, then 'and N more')."""
    v = [f"{int(s):,}" for s in values]
    if len(v) > 6:
        v = [*v[:5], f"{len(v) - 5} more"]
    return f"step {v[0]}" if len(v) == 1 else f"steps {', '.join(v[:-1])} and {v[-1]}"


def _how(method: str, n: int, n_max: int) -> str:
    """What the line and band of one series are, in plain words."""
    if method == intervals.PAIRED:
        return (
            f"the mean of the per-seed differences, with its 95% band across {n} paired seeds "
            "(each pair shares its seed: the same initial weights and batches on both sides)"
        )
    if method == intervals.UNPAIRED:
        return (
            "the difference of the mean losses, with its 95% band across seeds (Welch's "
            f"interval; {n} and {n_max} seeds, not paired by seed)"
        )
    if method == intervals.ONE_VS_GROUP:
        return (
            f"one run against a group of {n_max}: the difference of the means, with a 95% band "
            "from the group's spread across seeds"
        )
    return (
        "one run (one seed) each: the difference line alone; no band can be drawn from one run "
        "each, so this chart cannot tell an effect from seed noise"
    )


def _no_spread(g) -> pd.Series:
    """Rows without a band because every seed gave the same value (not for lack of seeds)."""
    return g["lo"].isna() & (g["reason"] == intervals.NO_SPREAD)


def point_note(row) -> str:
    """The hover note of one point of the difference line: its band and what it rests on."""
    if np.isfinite(row.lo) and np.isfinite(row.hi):
        what = (
            f"{row.n} paired seeds"
            if row.method == intervals.PAIRED
            else f"{row.n}/{row.n_max} seeds"
        )
        return f" (95% band {row.lo:.4g} to {row.hi:.4g}; {what})"
    if row.reason == intervals.NO_SPREAD:
        return " (no spread across seeds: no band)"
    return " (one run each: no band)"


def difference_caption(diff: pd.DataFrame, baseline: str, x: str = "step") -> str:
    """The words under the validation-loss difference panel, from the frame it draws (so that
    they cannot disagree): what each line and band is, how to read the sign, and the steps
    where the band excludes 0. One line per series (markdown line breaks)."""
    head = (
        "Validation loss (held-out data) of each run minus the baseline's "
        f"({baseline}) at the same evaluation step: below 0 the run is ahead of the baseline "
        "(lower loss). Each band is a 95% band for the whole curve at once (every step's "
        "interval widened for the number of steps drawn), so that a step where it excludes 0 "
        "is not one of many steps crossing by chance; it is wider than the Summary's interval "
        "for the last step alone."
    )
    if x != "step":
        head += (
            " The difference is taken at equal steps and drawn at the run's mean "
            f"{prepare.X_AXES[x][1].lower()}."
        )
    marks = prepare.beyond_noise(diff)
    lines = [head]
    for name, g in diff.groupby("run", sort=False):
        lines.append(_series_caption(str(name), g, marks[marks["run"] == name]))
    return "  \n".join(lines)


def _series_caption(name: str, g: pd.DataFrame, m: pd.DataFrame) -> str:
    """One series' line: how its line and band are made, steps without spread, its seeds'
    notes, and where its band excludes 0 (`m`: its rows of `prepare.beyond_noise`)."""
    flat = _no_spread(g)
    # a flat step of an unpaired comparison says nothing about how the line is made
    kinds = g[~(flat & (g["method"] == intervals.NONE))]
    kinds = kinds.groupby(["method", "n", "n_max"], sort=False).size()
    how = [
        _how(m_, int(n), int(k)) + (f" (at {c} of {len(g)} steps)" if len(kinds) > 1 else "")
        for (m_, n, k), c in kinds.items()
    ]
    parts = [f"{name}: {'; '.join(how)}." if how else f"{name}:"]
    if flat.any():
        parts.append(
            f"At {_steps(g.loc[flat, 'step'])} its seeds show no spread, so the noise cannot "
            "be measured: no band is drawn there (no spread is not certainty)."
        )
    # a note per distinct message, not per step (the values a note quotes differ by step)
    notes = merged_notes(n.split(" (their mean)")[0] for ns in g["notes"] for n in ns)
    if notes:
        parts.append(f"Seeds: {'; '.join(notes)}.")
    for side, where in (("ahead", "below"), ("behind", "above")):
        at = m.loc[m["side"] == side, "step"]
        if len(at):
            word = "ahead of" if side == "ahead" else "behind"
            parts.append(
                f"At {_steps(at)} the band lies {where} 0 (ringed points): it is {word} "
                "the baseline beyond noise there."
            )
    if m.empty and g["lo"].notna().any():
        parts.append(
            "Over the whole curve (a band that holds at every step at once), its 95% band "
            "includes 0 at every step: no detectable difference, which is not the same as "
            "equal (the band's width is what these seeds can resolve; one step alone, as the "
            "Summary compares, has a narrower interval)."
        )
    return " ".join(parts)


def difference_title(diff: pd.DataFrame) -> str:
    """The panel's title says what is drawn: with a band only where one is drawn."""
    if diff["lo"].notna().any():
        return "Validation loss minus the baseline's (mean over seeds, 95% band; below 0 = ahead)"
    return "Validation loss minus the baseline's (no band: see below; below 0 = ahead)"


RING_HOVER = {
    "ahead": "95% band below 0: ahead of the baseline beyond noise",
    "behind": "95% band above 0: behind the baseline beyond noise",
}


def add_bands(fig: go.Figure, diff: pd.DataFrame, col: str, colors: dict[str, str]) -> None:
    """Each series' 95% band, behind the lines, broken at steps without a band (line_figure's
    bands would bridge such a step and draw a band where there is none); a lone banded step
    as an error bar."""
    outline = prepare.band_outline(diff, col)
    lone = prepare.lone_bands(diff)
    n_before = len(fig.data)
    for name, g in outline.groupby("run", sort=False):
        fig.add_trace(
            go.Scatter(
                x=g[col],
                y=g["y"],
                mode="lines",
                fill="toself",
                fillcolor=colors.get(name, "#333"),
                line={"width": 0},
                opacity=0.18,
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(name),
                name=f"{name} (95% band)",
            )
        )
    for name, g in lone.groupby("run", sort=False):
        fig.add_trace(
            go.Scatter(
                x=g[col],
                y=g["diff"],
                mode="markers",
                marker={"size": 0.1, "color": colors.get(name, "#333")},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (g["hi"] - g["diff"]).to_numpy(),
                    "arrayminus": (g["diff"] - g["lo"]).to_numpy(),
                    "color": colors.get(name, "#333"),
                    "thickness": 6,
                    "width": 0,
                },
                opacity=0.3,
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(name),
                name=f"{name} (95% band)",
            )
        )
    k = len(fig.data) - n_before
    if k:  # behind the lines
        fig.data = fig.data[n_before:] + fig.data[:n_before]


TRAIN_DIFFERENCE_NOTE = (
    "No validation loss to compare, so the difference chart falls back to the training loss: "
    "each run's smoothed training loss (the mean over its seeds) minus the baseline's, below 0 "
    "= ahead. It has no band, so it cannot tell an effect from noise."
)


def difference_figure(
    diff: pd.DataFrame,
    col: str,
    colors: dict[str, str],
    dashes: dict[str, str],
    x_title: str,
) -> go.Figure:
    """Each series' validation-loss difference to the baseline with its 95% band, steps where
    the band excludes 0 ringed, the hover of each point saying its band and what it rests on."""
    fig = figures.line_figure(
        diff,
        col,
        "diff",
        "run",
        colors,
        dashes=dashes,
        markers=True,
        x_title=x_title,
        y_title="difference",
        title=difference_title(diff),
    )
    for t in fig.data:  # the line's hover tells its band and how many runs it rests on
        g = diff[diff["run"] == t.name]
        if len(g) and t.mode and "lines" in t.mode:
            t.customdata = [[point_note(r)] for r in g.itertuples()]
            t.hovertemplate = "%{y:.4g}%{customdata[0]}<extra>%{fullData.name}</extra>"
    add_bands(fig, diff, col, colors)
    add_rings(fig, diff, col, colors)
    fig.add_hline(y=0, line={"color": "#555", "dash": "dash"})
    return fig


def add_rings(fig: go.Figure, diff: pd.DataFrame, col: str, colors: dict[str, str]) -> None:
    """A ring at every step where a series' band excludes 0."""
    for name, g in prepare.beyond_noise(diff).groupby("run", sort=False):
        fig.add_trace(
            go.Scatter(
                x=g[col],
                y=g["diff"],
                mode="markers",
                marker={
                    "symbol": "circle-open",
                    "size": 15,
                    "line": {"width": 2},
                    "color": colors.get(name, "#333"),
                },
                name=f"{name}: band excludes 0",
                legendgroup=str(name),
                showlegend=False,
                hovertext=[RING_HOVER[s] for s in g["side"]],
                hovertemplate=f"%{{hovertext}}<extra>{name}</extra>",
            )
        )


def train_difference_figure(
    diff: pd.DataFrame,
    col: str,
    colors: dict[str, str],
    dashes: dict[str, str],
    x_title: str,
) -> go.Figure:
    """The fallback when no evaluations can be compared: smoothed training loss minus the
    baseline's (`prepare.loss_difference`), a difference of group means without a band."""
    fig = figures.line_figure(
        diff,
        col,
        "diff",
        "run",
        colors,
        dashes=dashes,
        x_title=x_title,
        y_title="difference",
        title="Training loss minus the baseline's (no validation loss; smoothed, no band)",
    )
    fig.add_hline(y=0, line={"color": "#555", "dash": "dash"})
    return fig


_REPEATS = re.compile(r"^(\d+) runs with (.+?): repeats of one seed, counted once$")


def merged_notes(notes: Iterable[str]) -> list[str]:
    """The distinct seed notes of a whole curve, a repeated seed said once: "2 to 3 runs with
    seed 2 (compared run)" where later steps have fewer runs, not two notes for one seed."""
    counts: dict[str, set[int]] = {}
    out: dict[str, None] = {}
    for note in notes:
        m = _REPEATS.match(note)
        if m:
            counts.setdefault(m.group(2), set()).add(int(m.group(1)))
            out[m.group(2)] = None
        else:
            out[note] = None
    texts = []
    for key in out:
        if key not in counts:
            texts.append(key)
            continue
        lo, hi = min(counts[key]), max(counts[key])
        many = f"{hi}" if lo == hi else f"{lo} to {hi}"
        texts.append(f"{many} runs with {key}: repeats of one seed, counted once")
    return texts

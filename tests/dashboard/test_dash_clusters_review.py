"""The Clusters tab after the fresh-eyes review (findings 8 and 9): each series keeps the colour
and dash it has on the other tabs; the chart of shares shows the step the sentences give, with
the sentences' numbers; a group's share is never written as 0% (or 100%) beside a sentence that
gives it as 0.1% (or 99.7%)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dash_clusters_fixtures import PINNED, pinned_run, unchanged, write_clusters
from dash_fixtures import REPO
from streamlit.testing.v1 import AppTest

from dashboard import cluster_figures_layer as lfig
from dashboard import cluster_figures_manager as mfig
from dashboard import cluster_words_manager as mwords
from dashboard import loader
from dashboard.app import ENV_ROOT
from dashboard.metrics import cluster_effect as ce
from dashboard.metrics import clusters
from dashboard.metrics.groups import seed_of

APP = str(REPO / "dashboard" / "app.py")
NOT_APPLIED = f" ({mwords.NOT_APPLIED})"
SHARES_TITLE = "Share of the model's weights at each re-cluster"
PINNED_FIRST = next(iter(PINNED))


def _render(root: Path, monkeypatch, view: str) -> AppTest:
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _specs(at: AppTest) -> dict[str, dict]:
    out = {}
    for c in at.get("plotly_chart"):
        s = json.loads(c.proto.spec)
        out[((s["layout"].get("title") or {}).get("text") or "").split("<")[0]] = s
    return out


def _array(v) -> list:
    """A spec's array: a list, or plotly's typed array ({'dtype', 'bdata'}: base64)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _legend_styles(spec: dict) -> dict[str, tuple[str, str]]:
    """{legend name: (colour, dash)} of a figure's lines."""
    return {
        t["name"]: (t["line"]["color"], t["line"].get("dash") or "solid")
        for t in spec["data"]
        if t.get("name") and t.get("showlegend", True) and (t.get("line") or {}).get("color")
    }


@pytest.fixture(scope="module")
def pages(demo_root, tmp_path_factory):
    """The default selection's Loss and Clusters tabs, rendered once."""
    mp = pytest.MonkeyPatch()
    try:
        yield {v: _render(demo_root, mp, v) for v in ("Loss", "Clusters")}
    finally:
        mp.undo()


# --------------------------------------------------------------------------- finding 8


def test_clusters_lines_keep_each_series_colour_and_dash_from_the_loss_tab(pages):
    """Finding 8: the Loss tab drew AdamW solid blue and SGG dashed pink; 'Bigger and smaller
    steps, over training' drew SGG solid blue and AdamW dashed pink."""
    loss = next(s for s in _specs(pages["Loss"]).values() if len(_legend_styles(s)) >= 2)
    want = _legend_styles(loss)
    specs = _specs(pages["Clusters"])
    lines = next((s for t, s in specs.items() if t.startswith("Bigger and smaller")), None)
    if lines is None:
        pytest.skip("one clustered series on show: no comparison chart")
    got = {k.removesuffix(NOT_APPLIED): v for k, v in _legend_styles(lines).items()}
    shared = set(got) & set(want)
    assert len(shared) >= 2, (got, want)
    for name in shared:
        assert got[name] == want[name], name
    # the per-kind panels draw the series shown (SGG first) in its own colour and dash too
    shown = pages["Clusters"].selectbox(key="cl_series").value
    kinds = next(s for t, s in specs.items() if t.startswith("Mean factor per kind"))
    drawn = {(t["line"]["color"], t["line"].get("dash") or "solid") for t in kinds["data"]
             if t.get("mode") == "lines+markers"}  # fmt: skip
    assert drawn == {want[shown]}, (drawn, want[shown])


def test_lines_take_the_given_styles_and_markers_follow_the_dash():
    t = pd.DataFrame({"step": [1, 2], f"share_{ce.UP}": [0.1, 0.3], f"share_{ce.DOWN}": [0, 0.1]})
    styles = {"sgg": {"color": "#E15F99", "dash": "dash"},
              "adamw (not applied)": {"color": "#2E91E5", "dash": "solid"}}  # fmt: skip
    fig = mfig.effect_lines_figure({"sgg": t, "adamw (not applied)": t}, title="t", styles=styles)
    lines = [x for x in fig.data if x.mode == "lines+markers"]
    assert len(lines) == 4
    for x in lines:
        assert (x.line.color, x.line.dash) == (styles[x.name]["color"], styles[x.name]["dash"])
        assert x.marker.symbol == ("diamond" if x.line.dash == "dash" else "circle")
    kinds = pd.DataFrame({"step": [1, 2], "kind": ["k", "k"], "type": ["MLP"] * 2,
                          "factor": [1.0, 1.2], "factor_min": [1.0, 1.1],
                          "factor_max": [1.0, 1.3]})  # fmt: skip
    fig = mfig.kind_factor_figure(kinds, ["k"], title="t", band_kind="minmax", applied=True,
                                  style=styles["sgg"])  # fmt: skip
    line = next(x for x in fig.data if x.mode == "lines+markers")
    assert (line.line.color, line.line.dash) == ("#E15F99", "dash")


# --------------------------------------------------------------------------- finding 9


def _bars(fig: go.Figure) -> dict[str, go.Bar]:
    return {t.legendgroup: t for t in fig.data if isinstance(t, go.Bar)}


def _label(fig: go.Figure) -> str:
    return next(a.text for a in fig.layout.annotations if (a.text or "").startswith("step "))


def test_the_shares_chart_draws_the_sentences_step_as_its_own_bar(pages):
    """Finding 9: the sentence gave 30% bigger steps at step 600; the step-shaped area held step
    550's 27% up to the right edge, where step 600's value was a vertical line."""
    at = pages["Clusters"]
    spec = _specs(at)[SHARES_TITLE]
    text = "\n".join(str(e.value) for e in at.markdown)
    step = int(re.search(r"at step ([\d,]+), the last re-cluster", text).group(1).replace(",", ""))
    assert not any((t.get("line") or {}).get("shape") == "hv" for t in spec["data"])
    label = next(a["text"] for a in spec["layout"]["annotations"]
                 if a["text"].startswith(f"step {step:,}: "))  # fmt: skip
    for t in spec["data"]:
        assert t["type"] == "bar"
        cls = t["legendgroup"]
        v = dict(zip(_array(t["x"]), _array(t["y"]), strict=True))[step]  # the sentences' step
        if cls in (ce.UP, ce.DOWN):
            shown = mwords.share(v)
            assert f"{shown} {cls}" in label  # the label above the bar: the bar's value
            assert f"**{shown}**" in text, (cls, shown)  # and the sentence's
    caption = "\n".join(str(e.value) for e in at.caption)
    assert f"the bar at step {step:,}, labelled above it, holds the shares in the sentences" in (
        caption
    )


def test_the_label_marks_the_step_every_seed_reached_not_the_last_bar(tmp_path):
    """Seeds that stop at different re-clusters: the sentences give the last one all reached,
    and so does the label (the later bars are means over fewer seeds)."""
    late = {**PINNED, PINNED_FIRST: [(65_536, 2.0), (65_536, 2.0), (65_536, 2.0)]}
    pinned_run(tmp_path, "sgg-s0", seed=0, pin=lambda s: late if s == 600 else PINNED)
    short = pinned_run(tmp_path, "sgg-s1", seed=1)
    write_clusters(short, lambda s: unchanged(PINNED) if s == 100 else PINNED,
                   list(range(100, 501, 100)), shadow=False)  # fmt: skip
    loader.clear_caches()
    found = {r.rel: r for r in loader.discover_runs(tmp_path).runs}
    runs = [(seed_of(r.meta), loader.read_table(r, "clusters", tmp_path).df, r.meta)
            for r in found.values()]  # fmt: skip
    se = ce.series_effect(runs)
    assert se.effect.step == 500 and int(se.over["step"].max()) == 600
    fig = mfig.effect_figure(se.over, title="t", applied=True, at_step=se.effect.step)
    label = _label(fig)
    assert label.startswith("step 500: ")
    assert f"{mwords.share(se.effect.share[ce.UP])} {ce.UP}" in label
    up = _bars(fig)[ce.UP]
    assert dict(zip(up.x, up.y, strict=True))[500] == pytest.approx(se.effect.share[ce.UP])


def test_a_small_group_is_never_written_as_0_percent():
    """Finding 9: 'group 0 (0.1% of the layer)' in the sentence, 'group 0 (0% after)' on the
    chart beside it; and 'group 1 (99.7%)' against '(100% after)'."""
    for v, want in ((0.0004, "0.04%"), (0.0012, "0.1%"), (0.005, "0.5%"), (0.997, "99.7%"),
                    (0.9996, "99.96%"), (1e-7, "0.00001%"), (0.3, "30%")):  # fmt: skip
        assert mwords.share(v) == want, v
    for v in np.linspace(1e-6, 1 - 1e-6, 2001):
        assert mwords.share(v) not in ("0%", "100%", "0.0%", "100.0%"), v
    assert (mwords.share(0), mwords.share(1)) == ("0%", "100%")
    m = pd.DataFrame({"from_cluster": [0, 1, 1, 2], "to_cluster": [1, 0, 1, 1],
                      "count": [200, 10, 9_970, 200]})  # fmt: skip
    shares = clusters.transition_shares(m)
    fig = lfig.transition_figure(shares, title="t")
    after = shares.groupby("to_cluster")["to_share"].first()
    before = shares.groupby("from_cluster")["from_share"].first()
    for k, x, y in zip(range(3), fig.data[0].x, fig.data[0].y, strict=True):
        assert f"({mwords.share(after[k])} after)" in x
        assert f"({mwords.share(before[k])} before)" in y
    assert "(0% after)" not in fig.data[0].x[0] and "(100% after)" not in fig.data[0].x[1]

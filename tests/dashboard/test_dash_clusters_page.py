"""Issue 20 on the page (Streamlit AppTest): the Clusters tab answers the manager first with the
numbers the metrics give, marks a shadow clustering as not applied, follows the recorded weights,
explains the factors, names layers humanely and draws (or says it cannot draw) the AdamW run's
whole-layer histogram."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from dash_fixtures import REPO, small_run
from streamlit.testing.v1 import AppTest

from dashboard import cluster_words_manager as mwords
from dashboard import loader
from dashboard.app import ENV_ROOT
from dashboard.metrics import cluster_effect, groups
from dashboard.metrics.groups import optimizer_name, seed_of
from runformat import atomic, chunks, schema

APP = str(REPO / "dashboard" / "app.py")


def render(root: Path, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["view"] = "Clusters"
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def texts(at: AppTest, kinds=("markdown", "caption", "info", "warning")) -> str:
    return "\n".join(str(e.value) for k in kinds for e in getattr(at, k))


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


OUTCOME = re.compile(r"\b(sped up|slowed( down)?|speeds? up)\b", re.I)


def test_sample_page_answers_the_manager_with_the_metrics_numbers(demo_root, monkeypatch):
    runs = [r for r in loader.discover_runs(demo_root).runs if r.has_clustering]
    sgg, shadow = next(
        (a, b)
        for a in runs
        if optimizer_name(a.meta) == "sgg"
        for b in runs
        if optimizer_name(b.meta) != "sgg" and not groups.differing_settings(a.meta, b.meta)
    )  # SGG and the AdamW shadow with the same settings: the verdict compares them
    at = render(demo_root, monkeypatch, pool=False, baseline=shadow.rel, compare=[sgg.rel])
    se = cluster_effect.series_effect(
        [(seed_of(sgg.meta), loader.read_table(sgg, "clusters", demo_root).df, sgg.meta)]
    )
    want = mwords.effect_bullets(se.effect, se.seeds, se.types).split("\n- **Which")[0]
    said = [str(m.value) for m in at.markdown]
    assert any(m.startswith(want) for m in said)  # the metrics' numbers, word for word
    assert mwords.SCOPE in said  # a setting, not an outcome: Summary / Loss for that
    text = texts(at)
    assert not OUTCOME.search(text)
    assert "What SGG set for this model's step sizes" in [str(h.value) for h in at.subheader]
    assert "Group numbers are ranks, not fixed sets of weights" in text
    assert "changed group" in text and "**Why, at step" in text
    assert "**SGG against its shadow**" in text  # a verdict for SGG against its shadow
    table = next(t.value for t in at.table if "Bigger steps" in t.value.columns)
    assert len(table) == 2 and any("(not applied)" in n for n in table.index)
    box = next(e for e in at.expander if e.label == "Words used on this tab")
    words = "\n".join(str(m.value) for m in box.markdown)
    for term in ("momentum", "re-cluster", "eps", "spread (MDA)", "scale factor",
                 "shadow clustering"):  # fmt: skip
        assert f"**{term}**:" in words, term
    # pickers: humane names, the raw name in a small caption; a shadow entry says not applied
    layer = at.selectbox(key="cl_layer")
    assert "." not in layer.format_func(layer.value)
    assert f"raw name: `{layer.value}`" in text
    series = at.selectbox(key="cl_series")
    shown = [o for o in series.options if o.endswith(" (not applied)")]
    assert len(shown) == 1
    # the shadow AdamW run: "would have", not applied, everywhere it shows
    value = next(c for c in (shadow.rel, shadow.name) if series.format_func(c) == shown[0])
    assert "/" not in shown[0] and ", seed " in shown[0]  # one run by its words, not its path
    series.set_value(value).run()
    assert not at.exception and not at.error
    assert "What SGG would have set (not applied)" in [str(h.value) for h in at.subheader]
    assert "shadow" in texts(at, ("warning",))
    titles = [s["layout"]["title"]["text"] for s in specs(at) if s["layout"].get("title")]
    alone = [t for t in titles if not t.startswith("Bigger and smaller steps")]
    assert alone and all("not applied" in t.lower() for t in alone), titles
    text = texts(at)
    assert "would-be factor" in text and "would-be mean factor" in text
    assert "Grey area: this run, the whole layer (all its groups together" in text


def test_seed_group_page_pools_the_seeds_and_names_runs_humanely(demo_root, monkeypatch):
    runs = [r for r in loader.discover_runs(demo_root).runs if r.has_clustering]
    sgg = [r for r in runs if optimizer_name(r.meta) == "sgg"]
    base = sgg[0].rel.rsplit("-s", 1)[0]
    group = [r for r in sgg if r.rel.startswith(base + "-s")]
    if len(group) < 2:
        pytest.skip("no seed group among the sample runs")
    at = render(demo_root, monkeypatch, baseline=group[0].rel, compare=[])
    seed = at.selectbox(key="cl_run")
    assert all("/" not in o and ", seed " in o for o in seed.options)
    text = texts(at)
    assert f"raw name: `{seed.value}`" in text
    assert f"in each of {len(group)} seeds (the mean over seeds" in text  # pooled, intervals
    assert "How typical this seed" in text and f"over the {len(group)} seeds" in text
    names = [t.get("name") for s in specs(at) for t in s["data"]]
    assert not any("/" in str(n) for n in names)  # no raw run names in legends
    # the "why" follows the slider
    slider = at.select_slider(key="cl_step")
    other = next(o for o in slider.options if str(o) != str(slider.value))
    slider.set_value(int(other)).run()
    assert not at.exception and not at.error
    assert f"**Why, at step {int(other):,}:**" in texts(at)


def _drop_layer_histograms(run: Path, layer: str, quantity: str | None = None) -> None:
    """Rewrite a run's histograms without one layer's rows (of one quantity, or all), through
    runformat."""
    root = run.parent
    r = {x.rel: x for x in loader.discover_runs(root).runs}[run.name]
    df = loader.read_table(r, "histograms", root).df
    drop = df["layer"] == layer
    if quantity:
        drop &= df["quantity"] == quantity
    df = df[~drop]
    data = {c: df[c].to_numpy(dtype=object if c in ("layer", "quantity") else None)
            for c in schema.HISTOGRAMS.names}  # fmt: skip
    d = chunks.table_dir(run, "histograms")
    shutil.rmtree(d)
    d.mkdir()
    atomic.write_parquet(d / chunks.chunk_name(0, 0), schema.build_table("histograms", data))
    loader.clear_caches()


def test_reference_histogram_is_drawn_or_said_not_recorded(tmp_path, monkeypatch):
    small_run(tmp_path, "sgg", optimizer="sgg", seed=1)
    plain = small_run(tmp_path, "adamw-plain", optimizer="adamw", seed=1)
    at = render(tmp_path, monkeypatch, baseline="adamw-plain", compare=["sgg"])
    text = texts(at)
    assert "without shadow clustering" in text
    layer = at.selectbox(key="cl_layer").value
    assert layer == "blocks.0.attn.qkv.weight"
    name = re.search(r"Grey area: (adamw, [^,]+, seed 1), the whole layer \(AdamW without SGG, "
                     r"the same seed\)", text)  # fmt: skip
    assert name, text
    refs = [t for s in specs(at) for t in s["data"] if t.get("name") == f"{name[1]}: whole layer"]
    assert refs and all(t.get("fill") == "tozeroy" for t in refs)  # a grey area in each panel
    _drop_layer_histograms(plain, layer, "adaptive_lr")
    text = texts(render(tmp_path, monkeypatch, baseline="adamw-plain", compare=["sgg"]))
    assert (
        f"Grey area: {name[1]}, the whole layer (AdamW without SGG, the same seed); its adaptive "
        "learning rate of this layer is not recorded." in text
    )
    _drop_layer_histograms(plain, layer)
    at = render(tmp_path, monkeypatch, baseline="adamw-plain", compare=["sgg"])
    text = texts(at)
    assert f"{name[1]}: its whole-layer histogram of this layer is not recorded" in text
    assert "Grey area" not in text
    assert f"{name[1]}: whole layer" not in [t.get("name") for s in specs(at) for t in s["data"]]


def test_adaptive_lr_axis_is_clipped_on_the_sample_embedding(demo_root, monkeypatch):
    runs = [r for r in loader.discover_runs(demo_root).runs if optimizer_name(r.meta) == "sgg"]
    run = next((r for r in runs if "embed_tokens" in json.dumps(r.meta["model"])), None)
    if run is None:
        pytest.skip("no run with an embedding layer")
    at = render(demo_root, monkeypatch, pool=False, baseline=run.rel, compare=[])
    at.selectbox(key="cl_layer").set_value("model.embed_tokens.weight").run()
    assert not at.exception and not at.error
    alr = next(s for s in specs(at) if "Adaptive learning rate" in s["layout"]["title"]["text"])
    lo, hi = alr["layout"]["xaxis"]["range"]
    assert 10**hi < 1e4  # not 1e5 (lr / eps)
    assert alr["layout"]["xaxis3"]["range"] == [lo, hi]  # every group's panel
    caption = texts(at, ("caption",))
    assert "lr / eps = " in caption and "after the schedule" in caption
    note = re.search(r"at ([\d,]+) or above", caption)
    assert note and float(note[1].replace(",", "")) >= 10**hi * 0.999  # the pile is off the axis
    assert np.isfinite(lo)

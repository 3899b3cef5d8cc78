"""Issue 20 on the page (Streamlit AppTest): the Clusters tab answers the manager first with the
numbers the metrics give, marks a shadow clustering as not applied, follows the recorded weights,
explains the factors, names layers humanely and draws (or says it cannot draw) the AdamW run's
whole-layer histogram."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dash_fixtures import REPO, small_run
from streamlit.testing.v1 import AppTest

from dashboard import cluster_words, loader
from dashboard.app import ENV_ROOT
from dashboard.metrics import cluster_effect, cluster_factors
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


def test_sample_page_answers_the_manager_with_the_metrics_numbers(demo_root, monkeypatch):
    runs = [r for r in loader.discover_runs(demo_root).runs if r.has_clustering]
    sgg = next(r for r in runs if optimizer_name(r.meta) == "sgg")
    shadow = next(r for r in runs if optimizer_name(r.meta) != "sgg")
    at = render(demo_root, monkeypatch, pool=False, baseline=shadow.rel, compare=[sgg.rel])
    se = cluster_effect.series_effect(
        [(seed_of(sgg.meta), loader.read_table(sgg, "clusters", demo_root).df, sgg.meta)]
    )
    want = cluster_words.effect_sentence(se.effect, cluster_factors.ema_rate(sgg.meta), se.seeds)
    said = [str(m.value) for m in at.markdown]
    assert want in said  # the page's sentence is the metrics' numbers, word for word
    text = texts(at)
    assert "What SGG did to this model" in [str(h.value) for h in at.subheader]
    assert "Group numbers are ranks, not fixed sets of weights" in text
    assert "changed group" in text
    assert "fell together" in text or "At no re-cluster" in text
    table = next(df.value for df in at.dataframe if "Sped up" in df.value.columns)
    assert len(table) == 2 and any("(not applied)" in n for n in table["Run or seed group"])
    box = next(e for e in at.expander if e.label == "Words used on this tab")
    words = "\n".join(str(m.value) for m in box.markdown)
    for term in ("momentum", "re-cluster", "eps", "spread (MDA)", "scale factor",
                 "shadow clustering"):  # fmt: skip
        assert f"**{term}**:" in words, term
    # layer picker: humane names, the raw name beside
    layer = at.selectbox(key="cl_layer")
    assert "." not in layer.format_func(layer.value)
    assert f"`{layer.value}`" in text
    # the shadow AdamW run: "would have", not applied, everywhere it shows
    at.selectbox(key="cl_series").set_value(shadow.rel).run()
    assert not at.exception and not at.error
    assert "What SGG would have done (not applied)" in [str(h.value) for h in at.subheader]
    assert "shadow" in texts(at, ("warning",))
    titles = [s["layout"]["title"]["text"] for s in specs(at) if s["layout"].get("title")]
    assert any("NOT APPLIED" in t for t in titles), titles


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
    assert "Dashed black: adamw-plain, the whole layer" in text
    names = [t.get("name") for s in specs(at) for t in s["data"]]
    assert "adamw-plain: whole layer" in names
    _drop_layer_histograms(plain, layer, "adaptive_lr")
    text = texts(render(tmp_path, monkeypatch, baseline="adamw-plain", compare=["sgg"]))
    assert (
        "Dashed black: adamw-plain, the whole layer (AdamW, no groups); its adaptive "
        "learning rate of this layer is not recorded in this run" in text
    )
    _drop_layer_histograms(plain, layer)
    at = render(tmp_path, monkeypatch, baseline="adamw-plain", compare=["sgg"])
    text = texts(at)
    assert "its whole-layer histogram of blocks.0.attn.qkv.weight is not recorded" in text
    assert "Dashed black" not in text
    assert "adamw-plain: whole layer" not in [t.get("name") for s in specs(at) for t in s["data"]]


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
    assert "lr / eps" in texts(at, ("caption",))
    assert np.isfinite(lo)

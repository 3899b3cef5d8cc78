"""The Clusters page: what SGG set for the model's step sizes (a manager's answer first, said to
be a setting and not an outcome), SGG against its shadow, then the same weights followed through
the re-clusters, why a layer's factors move, and what groups look like inside a layer. Numbers
from `metrics.cluster_*`; words and figures from `cluster_words_manager` and
`cluster_figures_manager` (the whole model) and their `_layer` modules (one layer)."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import cluster_figures_layer as lfig
from dashboard import cluster_figures_manager as mfig
from dashboard import cluster_words_layer as lwords
from dashboard import cluster_words_manager as words
from dashboard import narrative, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.layer_names import EMBEDDINGS, HEAD, humane_names, layer_type
from dashboard.metrics import cluster_effect, cluster_factors, cluster_population, clusters, groups
from dashboard.metrics.groups import seed_of

GLOSSARY = (
    "momentum",
    "re-cluster",
    "group",
    "spread (MDA)",
    "scale factor",
    "adaptive learning rate",
    "eps",
    "shadow clustering",
)
BARELY_TYPES = (EMBEDDINGS, HEAD)  # where weights that barely train take the bigger steps


def page(ctx: Ctx) -> None:
    st.markdown(words.SCOPE)
    _glossary()
    series = _clustered_series(ctx)
    if not series:
        st.info(
            "None of the selected runs has groups to show. Select an SGG run (or an AdamW "
            "run recorded with shadow clustering)."
        )
        return
    shown = {n: _series_label(ctx, n, m) for n, m in series}
    name = st.selectbox(
        "Run or seed group", [n for n, _ in series], key="cl_series", bind="query-params",
        format_func=shown.get,
    )  # fmt: skip
    members = dict(series)[name]
    se = _series_effect(ctx, members)
    if se is None:
        st.info(f"**{name}**: its cluster table is empty.")
        return
    _effect_ui(ctx, shown[name].removesuffix(f" ({words.NOT_APPLIED})"), members, se,
               series_style(ctx, name))  # fmt: skip
    if len(series) > 1:
        _comparison_ui(ctx, series)
    _layers_ui(ctx, members, se)


def series_style(ctx: Ctx, name: str) -> dict[str, str]:
    """The series' colour and dash as every other tab draws it (`ctx.styles`): AdamW and SGG
    keep theirs here."""
    return {"color": ctx.styles.colors[name], "dash": ctx.styles.dashes[name]}


def _series_label(ctx: Ctx, name: str, members: list[str]) -> str:
    """What a run or seed group is called on this tab: a group's label, one run by its words
    ('sgg, lr 4e-3, seed 0'), '(not applied)' after a shadow clustering."""
    label = run_words(ctx, members[0]) if len(members) == 1 else name
    return label if ctx.selection.by_rel[members[0]].is_sgg else f"{label} ({words.NOT_APPLIED})"


def run_words(ctx: Ctx, rel: str) -> str:
    """A run as the rest of the app names a group, with its seed: 'sgg, lr 4e-3, seed 0'."""
    meta = ctx.selection.by_rel[rel].meta
    varying = groups.varying_settings(
        [ctx.selection.by_rel[r].meta for r in ctx.selection.series_rels()]
    )
    head = groups.group_label(meta, varying, 1).rsplit(" (", 1)[0]
    seed = seed_of(meta)
    return f"{head}, seed {seed}" if seed is not None else head


def _clustered_series(ctx: Ctx) -> list[tuple[str, list[str]]]:
    """The runs on show (seed groups pooled as the sidebar says) that recorded a clustering,
    SGG first; a note for each run that has none."""
    out, plain, missing = [], [], []
    for name, members in ctx.selection.series:
        have = [r for r in members if ctx.reader.df(r, "clusters") is not None]
        for r in members:
            if r not in have:
                run = ctx.selection.by_rel[r]
                (missing if run.has_clustering or run.is_sgg else plain).append(r)
        if have:
            out.append((name, have))
    if plain:
        st.info(
            f"**{', '.join(run_words(ctx, r) for r in plain)}**: plain AdamW, recorded without "
            "shadow clustering, so no groups. Their histograms, if any, are the reference below."
        )
    if missing:
        st.info(f"**{', '.join(run_words(ctx, r) for r in missing)}**: no cluster table was "
                "recorded.")  # fmt: skip
    return sorted(out, key=lambda s: not ctx.selection.by_rel[s[1][0]].is_sgg)


def _runs(ctx: Ctx, members: list[str]) -> list[tuple[object, pd.DataFrame, dict]]:
    metas = {r: ctx.selection.meta(r) for r in members}
    return [(seed_of(metas[r]), ctx.reader.df(r, "clusters"), metas[r]) for r in members]


def _series_effect(ctx: Ctx, members: list[str]) -> cluster_effect.SeriesEffect | None:
    return cached(
        cluster_effect.series_effect, ctx.reader.key("clusters", members), _runs(ctx, members)
    )


def _barely(ctx: Ctx, members: list[str], step: int) -> dict:
    """{layer type: the share of its weights that barely train, over seeds} for the types
    whose bigger steps they explain."""
    out = {}
    for t in BARELY_TYPES:
        vals = []
        for r in members:
            run = ctx.selection.by_rel[r]
            layers = [n for n in cluster_effect.layer_sizes(run.meta) if layer_type(n) == t]
            if not layers:
                continue
            share, _ = clusters.barely_training(
                ctx.reader.df(r, "histograms"), layers, step,
                ctx.reader.table(r, "steps", full=True).df, run.hyperparameters.get("eps"),
            )  # fmt: skip
            if math.isfinite(share):
                vals.append((seed_of(run.meta), share))
        if vals:
            out[t] = cluster_effect.mean_interval(vals)
    return out


def _effect_ui(
    ctx: Ctx, name: str, members: list[str], se: cluster_effect.SeriesEffect, style: dict
) -> None:
    """The manager's answer: bullets and figures from the same numbers (`style`: the series'
    colour and dash)."""
    e = se.effect
    meta = ctx.selection.by_rel[members[0]].meta
    *_, reach = cluster_factors.factor_options(meta, e.reclusters)
    na = "" if e.applied else f" ({words.NOT_APPLIED})"
    if e.applied:
        st.subheader("What SGG set for this model's step sizes")
    else:
        st.subheader(f"What SGG would have set{na}")
        st.warning(
            f"**{name}** trained with plain AdamW and recorded a *shadow* clustering: SGG's "
            "groups and factors computed alongside, not applied. Everything below is what "
            "SGG would have done, not what happened."
        )
    key = (ctx.reader.key(("histograms", "steps"), members), e.step)
    barely = cached(_barely, key, ctx, members, e.step)
    st.markdown(words.effect_bullets(e, se.seeds, se.types, reach=reach, barely=barely))
    band = ctx.options.band
    st.plotly_chart(
        mfig.type_bars_figure(se.types, title=f"Where, at step {e.step:,}: each layer type's "
                              f"weights{na}", applied=e.applied),
        key="cl_types",
    )  # fmt: skip
    order = cluster_effect.kind_order(se.kinds)
    st.plotly_chart(
        mfig.kind_factor_figure(se.kinds, order, band_kind=band, applied=e.applied, style=style,
                                title=f"Mean factor per kind of layer, over training{na}"),
        key="cl_kinds",
    )  # fmt: skip
    st.markdown(words.kinds_sentence(se.kinds, order, e.applied))
    st.plotly_chart(
        mfig.effect_figure(se.over, title=f"Share of the model's weights at each re-cluster{na}",
                           applied=e.applied, at_step=e.step),
        key="cl_effect",
    )  # fmt: skip
    st.caption(words.effect_caption(se, prepare.BANDS.get(band, band)))


def _comparison_ui(ctx: Ctx, series: list[tuple[str, list[str]]]) -> None:
    """Every run / seed group on show, side by side: SGG against its shadow, a table and the
    shares over training."""
    effects, lines, ended, rows, styles = {}, {}, {}, [], {}
    for name, members in series:
        se = _series_effect(ctx, members)
        if se is None:
            continue
        label = _series_label(ctx, name, members)
        effects[label.removesuffix(f" ({words.NOT_APPLIED})")] = (
            se,
            ctx.selection.by_rel[members[0]].meta,
        )
        lines[label] = se.over
        styles[label] = series_style(ctx, name)
        rows.append(words.comparison_row(label, se))
    last = max((int(t["step"].max()) for t in lines.values()), default=0)
    for label, t in lines.items():
        if int(t["step"].max()) < last:
            ended[label] = f"no re-cluster after step {int(t['step'].max()):,}"
    st.subheader("All runs on show")
    for text in words.shadow_verdicts(effects):
        st.markdown(text)
    st.markdown(
        "The share of the model's weights in each class (mean over seeds, its 95% interval) "
        "and their mean factor (its 95% interval):"
    )
    # a static table wraps its cells to the page's width (a data grid cut the last column)
    st.table(pd.DataFrame(rows).set_index("Run or seed group"))
    band = ctx.options.band
    st.plotly_chart(
        mfig.effect_lines_figure(lines, ended=ended, title="Bigger and smaller steps, over "
                                 "training", band_kind=band, styles=styles),
        key="cl_lines",
    )  # fmt: skip
    st.caption(
        f"Lines: the mean over each group's seeds; band: the {prepare.BANDS.get(band, band)} "
        "(sidebar). An X marks a line that stops early. Each run or seed group keeps the colour "
        "and dash it has on the other tabs."
    )


def _layers_ui(ctx: Ctx, members: list[str], se: cluster_effect.SeriesEffect) -> None:
    """One seed, layer by layer, with how typical it is of its group."""
    st.subheader("Layer by layer")
    applied = se.effect.applied
    rel = members[0]
    if len(members) > 1:
        rel = st.selectbox(
            "Seed shown below", members, format_func=lambda r: run_words(ctx, r), key="cl_run",
            bind="query-params", help="The charts below show one run: pick any seed of the group.",
        )  # fmt: skip
    st.caption(f"raw name: `{rel}`")
    cl = ctx.reader.df(rel, "clusters")
    names_of = humane_names(clusters.shown_layers(ctx.selection.by_rel[rel].meta, cl))
    _overview_ui(cl, names_of, applied)
    layer = st.selectbox(
        "Layer", list(names_of), format_func=names_of.get, key="cl_layer", bind="query-params",
        help="Humane names; the parameter's own name is shown under this box.",
    )  # fmt: skip
    st.caption(f"raw name: `{layer}`")
    st.markdown(_typical(ctx, members, rel, layer, names_of[layer], se.effect.step))
    _population_ui(ctx, members, rel, layer, names_of[layer], applied)
    step = _factors_ui(ctx, rel, layer, names_of[layer], applied)
    if step is not None:
        _histograms_ui(ctx, rel, layer, step, applied)


def _typical(ctx: Ctx, members: list[str], rel: str, layer: str, shown: str, step: int) -> str:
    """How this seed's layer compares with the other seeds' (its mean factor at `step`)."""
    vals, this = [], float("nan")
    for r in members:
        v = clusters.factor_at(ctx.reader.df(r, "clusters"), layer, step)
        if v is None:
            continue
        vals.append((seed_of(ctx.selection.by_rel[r].meta), v))
        if r == rel:
            this = v
    d = cluster_effect.mean_interval(vals)
    return lwords.typical_sentence(d, this, run_words(ctx, rel), shown, step)


def _overview_ui(cl: pd.DataFrame, names_of: dict[str, str], applied: bool) -> None:
    piv = clusters.factor_overview(cl, list(names_of))
    title = "All layers: the mean factor of each layer's weights" + (
        "" if applied else f" ({words.NOT_APPLIED})"
    )
    st.plotly_chart(lfig.overview_heatmap(piv, names_of, title=title), key="cl_overview")
    st.caption(
        "Blue: bigger steps than AdamW's, red: smaller, white: AdamW's own (x1); each cell is "
        "the layer's factor averaged over its weights after that re-cluster. The colours are "
        "symmetric around 1 on a log scale (0.5x as red as 2x is blue), stretched near 1 so "
        "that 0.95x and 1.05x show; the colour bar's ends are this seed's lowest and highest "
        "factor. Hover for the parameter's raw name."
    )


def _population_ui(ctx: Ctx, members, rel: str, layer: str, shown: str, applied: bool) -> None:
    """The recorded sample of weights, followed through the re-clusters, pooled over seeds."""
    st.markdown("#### The same weights through the re-clusters")
    st.markdown(words.GROUPS_ARE_RANKS)
    hists = {r: _history(ctx, r) for r in members}
    per = [
        (seed_of(ctx.selection.by_rel[r].meta), cluster_population.stays(h))
        for r, h in hists.items()
    ]
    pooled = cluster_population.stays_across(per)
    per_layer = (ctx.selection.by_rel[rel].meta.get("recording") or {}).get("membership_sample")
    seed_name = run_words(ctx, rel) if len(members) > 1 else ""
    st.markdown(lwords.stays_sentence(pooled, per_layer, shown=seed_name))
    hist = hists[rel]
    model_c, layer_c = cluster_population.churn(hist), cluster_population.churn(hist, layer)
    na = "" if applied else f" ({words.NOT_APPLIED})"
    a, b = st.columns(2)
    a.plotly_chart(lfig.churn_figure(model_c, layer_c, shown, title=f"Changed at each "
                                     f"re-cluster{na}"), key="cl_churn")  # fmt: skip
    b.plotly_chart(
        lfig.raster_figure(cluster_population.raster(hist, layer), shown,
                           title=f"The same weights, re-cluster by re-cluster{na}"),
        key="cl_raster",
    )  # fmt: skip
    spike = lfig.churn_spike(model_c, layer_c, shown)
    note = ""
    if spike is not None:
        step, value, line, who = spike
        moves = cluster_population.class_moves(hist, layer if who == "layer" else None, step)
        note = " " + lwords.spike_note(step, value, line, moves)
    st.caption(
        "Left: of the sampled weights, the share that changed group (a new rank of momentum) "
        "and the share that changed step class (bigger / about AdamW's / smaller). Right: each "
        "row is one sampled weight of this layer, those most often given a bigger step first; "
        "hover a cell for its group and factor." + note
    )


def _history(ctx: Ctx, rel: str) -> pd.DataFrame:
    run = ctx.selection.by_rel[rel]
    return cached(
        cluster_population.sampled_history, ctx.reader.key(("clusters", "membership"), [rel]),
        ctx.reader.df(rel, "membership"), ctx.reader.df(rel, "clusters"),
        cluster_effect.layer_sizes(run.meta),
    )  # fmt: skip


def _factors_ui(ctx: Ctx, rel: str, layer: str, shown: str, applied: bool) -> int | None:
    """Spread, target, EMA and bounds for each group of the layer; why factors moved at the
    step the slider shows."""
    st.markdown("#### Why the factors move")
    meta = ctx.selection.by_rel[rel].meta
    cl = ctx.reader.df(rel, "clusters")
    steps = cluster_factors.factor_steps(cl, layer)
    if steps.empty:
        st.info("No clustering recorded for this layer.")
        return None
    rate, lower, upper, _ = cluster_factors.factor_options(meta, 0)
    sgg = cluster_factors.sgg_options(meta)
    st.markdown(lwords.how_it_works(sgg and sgg.n_clusters, sgg and sgg.recluster_interval, rate,
                                   lower, upper))  # fmt: skip
    name = shown if applied else f"{shown} ({words.NOT_APPLIED})"
    st.plotly_chart(
        lfig.factor_explain_figure(steps, layer_name=name, bounds=(lower, upper), rate=rate,
                                   applied=applied),
        key="cl_explain",
    )  # fmt: skip
    st.caption(lwords.factors_caption(lower, upper, rate, applied))
    step = _step_ui(cl, layer, steps, (rate, lower, upper), applied)
    _groups_ui(ctx, rel, layer, cl, step, applied)
    return step


def _step_ui(
    cl: pd.DataFrame, layer: str, steps: pd.DataFrame, options: tuple, applied: bool
) -> int:
    """The re-clusters at which all of the layer's factors fell, the slider's step, and why
    the factors moved there; returns that step."""
    rate, lower, upper = options
    falls = cluster_factors.falls_together(steps, lower)
    st.markdown(lwords.fall_summary(falls, int(steps["step"].nunique()), applied))
    choices = sorted(steps["step"].unique().tolist())
    default = falls[-1].step if falls else choices[-1]
    step = int(st.select_slider(
        "Re-cluster step", choices, value=default, key="cl_step", bind="query-params",
        help="Which re-cluster the sentences below and the histograms explain.",
    ))  # fmt: skip
    st.markdown(lwords.step_why(steps, step, falls, rate, lower, applied))
    lines = lwords.step_lines(steps, step, lower, upper, applied)
    head = lwords.mean_move_sentence(cluster_factors.mean_move(cl, layer, step), applied)
    st.markdown(head + "\n" + "\n".join(f"- {t}" for t in lines))
    return step


def _groups_ui(ctx: Ctx, rel: str, layer: str, cl: pd.DataFrame, step: int, applied: bool) -> None:
    """The layer's groups: their sizes over time and where the weights went at `step`."""
    c, _ = clusters.layer_groups(cl, layer)
    na = "" if applied else f" ({words.NOT_APPLIED})"
    a, b = st.columns(2)
    a.plotly_chart(
        lfig.cluster_lines(c, "share", title=f"Share of the layer in each group{na}",
                           y_title="share of the layer's weights", stacked=True),
        key="cl_share",
    )  # fmt: skip
    tr = ctx.reader.df(rel, "transitions")
    mat = tr[(tr["layer"] == layer) & (tr["step"] == step)] if tr is not None else None
    before = max((s for s in sorted(c["step"].unique()) if s < step), default=None)
    span = f"step {before:,} → {step:,}" if before is not None else f"step {step:,}"
    first = "First re-cluster: no groups before it."
    b.plotly_chart(
        lfig.transition_figure(clusters.transition_shares(mat),
                               title=f"Where the weights went, {span}{na}",
                               **({"empty": first} if before is None else {})),
        key="cl_moves",
    )  # fmt: skip


def _reference(ctx: Ctx, rel: str, applied: bool) -> tuple[str | None, str, str]:
    """(run whose whole layer is the reference, its name, why it is the reference): for SGG an
    AdamW run on show, the same seed first; for a shadow clustering, the run itself (its groups
    trained with AdamW's own steps)."""
    if not applied:
        return rel, "this run", "all its groups together: every weight took AdamW's own step"
    by_rel = ctx.selection.by_rel
    seed = seed_of(by_rel[rel].meta)
    cands = [r for r in ctx.selection.series_rels() if r != rel and not by_rel[r].is_sgg
             and ctx.reader.df(r, "histograms") is not None]  # fmt: skip
    same = [r for r in cands if seed is not None and seed_of(by_rel[r].meta) == seed]
    ref = (same or cands or [None])[0]
    if ref is None:
        return None, "", ""
    why = "AdamW without SGG, " + ("the same seed" if same else "another seed: none ran this one")
    return ref, run_words(ctx, ref), why


def _histograms_ui(ctx: Ctx, rel: str, layer: str, step: int, applied: bool) -> None:
    """Momentum and adaptive learning rate per group at `step`, one panel per group, over a
    reference whole layer (drawn, or said not recorded)."""
    hist = ctx.reader.df(rel, "histograms")
    ref_rel, ref_name, why = _reference(ctx, rel, applied)
    ref = ctx.reader.df(ref_rel, "histograms") if ref_rel else None
    na = "" if applied else f" (groups {words.NOT_APPLIED})"
    st.markdown(f"#### Inside the layer at step {step:,}")
    drawn, missing = [], []
    for qty, label, x_title, log_x in (
        ("momentum", "Momentum", "momentum (running average of the gradient)", False),
        ("adaptive_lr", "Adaptive learning rate", "lr / (√v + eps): step per unit of momentum "
         "(log)", True),
    ):  # fmt: skip
        h = prepare.histogram_at(hist, layer, qty, step)
        r = (
            prepare.histogram_at(ref, layer, qty, step, whole_layer=True)
            if ref is not None
            else None
        )
        (drawn if r is not None and not r.empty else missing).append(label.lower())
        rng, note = None, ""
        if qty == "adaptive_lr" and not h.empty:
            rng, note = _alr_range(ctx, rel, h, step)
        st.plotly_chart(
            lfig.histogram_panels(h, title=f"{label} per group at step {step:,}{na}",
                                  x_title=x_title, log_x=log_x, reference=r,
                                  reference_name=f"{ref_name}: whole layer", x_range=rng),
            key=f"cl_hist_{qty}",
        )  # fmt: skip
        if note:
            st.caption(note)
    st.caption(
        "How the values inside this layer are distributed, per group: each group's shares add "
        "up to 1, so small groups stay visible. The adaptive learning rate is the step size "
        "AdamW gives each weight per unit of momentum, before SGG's factor."
        + (f" {lwords.reference_note(ref_name, drawn, missing, why)}" if ref_rel else "")
    )


def _alr_range(ctx: Ctx, rel: str, h: pd.DataFrame, step: int):
    """The adaptive-lr axis without the pile at lr / eps, and the note saying what is off it."""
    run = ctx.selection.by_rel[rel]
    eps = run.hyperparameters.get("eps")
    lr = clusters.lr_at(ctx.reader.table(rel, "steps", full=True).df, step)
    ok = isinstance(eps, int | float) and eps > 0 and math.isfinite(lr)
    ceiling = lr / eps if ok else float("nan")
    key = groups.lr_key(run.meta)
    peak = groups.settings(run.meta).get(key) if key else None
    peak = float(peak) if isinstance(peak, int | float) else float("nan")
    v = clusters.alr_view(h, ceiling)
    note = lwords.alr_note(v, ceiling, lr, eps if ok else float("nan"), step, peak)
    return (v.lo, v.hi), note


def _glossary() -> None:
    with st.expander("Words used on this tab"):
        st.markdown("\n".join(f"- **{t}**: {narrative.definition(t)}" for t in GLOSSARY))

"""The Clusters page: what SGG's factors did to the model (a manager's answer first), then the
same weights followed through the re-clusters, why a layer's factors move, and what groups look
like inside a layer. Numbers from `metrics.cluster_*`, words from `cluster_words`, figures from
`cluster_figures`."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import cluster_figures as cfig
from dashboard import cluster_words as words
from dashboard import narrative, prepare
from dashboard.cache import cached
from dashboard.context import Ctx
from dashboard.layer_names import humane_names
from dashboard.loader import Run
from dashboard.metrics import cluster_effect, cluster_factors, cluster_population, clusters
from dashboard.metrics.groups import optimizer_name, seed_of

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


def applies_sgg(run: Run) -> bool:
    """The one test of "this run trained with SGG" (its factors were applied)."""
    return optimizer_name(run.meta).lower() == "sgg"


def page(ctx: Ctx) -> None:
    st.caption(words.INTRO)
    series = _clustered_series(ctx)
    if not series:
        st.info(
            "None of the selected runs has groups to show. Select an SGG run (or an AdamW "
            "run recorded with shadow clustering)."
        )
        _glossary()
        return
    names = [n for n, _ in series]
    name = st.selectbox("Run or seed group", names, key="cl_series", bind="query-params")
    members = dict(series)[name]
    _effect_ui(ctx, name, members)
    if len(series) > 1:
        _comparison_ui(ctx, series)
    st.subheader("Layer by layer")
    rel = members[0]
    if len(members) > 1:
        rel = st.selectbox(
            "Seed shown below",
            members,
            format_func=ctx.labels.get,
            key="cl_run",
            bind="query-params",
            help="The charts below show one run: pick any seed of the group.",
        )
    cl = ctx.df(rel, "clusters")
    names_of = humane_names(_layers(ctx, rel, cl))
    _overview_ui(cl, names_of)
    layer = st.selectbox(
        "Layer", list(names_of), format_func=names_of.get, key="cl_layer", bind="query-params",
        help="Humane names; the parameter's own name is shown under the charts.",
    )  # fmt: skip
    st.caption(f"Parameter: `{layer}`")
    _population_ui(ctx, rel, layer, names_of[layer])
    step = _factors_ui(ctx, rel, layer, names_of[layer])
    if step is not None:
        _histograms_ui(ctx, rel, layer, step)
    _glossary()


def _clustered_series(ctx: Ctx) -> list[tuple[str, list[str]]]:
    """The runs on show (seed groups pooled as the sidebar says) that recorded a clustering,
    SGG first; a note for each run that has none."""
    out, plain, missing = [], [], []
    for name, members in ctx.series:
        have = [r for r in members if ctx.df(r, "clusters") is not None]
        for r in members:
            if r not in have:
                run = ctx.by_rel[r]
                (missing if run.has_clustering or applies_sgg(run) else plain).append(r)
        if have:
            out.append((name, have))
    if plain:
        st.info(
            f"**{', '.join(ctx.labels[r] for r in plain)}**: plain AdamW, recorded without "
            "shadow clustering, so no groups. Their histograms, if any, are the reference below."
        )
    if missing:
        st.info(f"**{', '.join(ctx.labels[r] for r in missing)}**: no cluster table was recorded.")
    return sorted(out, key=lambda s: not applies_sgg(ctx.by_rel[s[1][0]]))


def _runs(ctx: Ctx, members: list[str]) -> list[tuple[object, pd.DataFrame, dict]]:
    return [(seed_of(ctx.by_rel[r].meta), ctx.df(r, "clusters"), ctx.by_rel[r].meta)
            for r in members]  # fmt: skip


def _series_effect(ctx: Ctx, members: list[str]) -> cluster_effect.SeriesEffect | None:
    return cached(cluster_effect.series_effect, ctx.key("clusters", members), _runs(ctx, members))


def _effect_ui(ctx: Ctx, name: str, members: list[str]) -> None:
    """Item 1: one sentence and one figure, the same numbers."""
    se = _series_effect(ctx, members)
    if se is None:
        st.info(f"**{name}**: its cluster table is empty.")
        return
    e = se.effect
    ema = cluster_factors.ema_rate(ctx.by_rel[members[0]].meta)
    if e.applied:
        st.subheader("What SGG did to this model")
        title = f"What SGG did: {name}"
    else:
        st.subheader(f"What SGG would have done ({words.NOT_APPLIED})")
        st.warning(
            f"**{name}** trained with plain AdamW and recorded a *shadow* clustering: SGG's "
            "groups and factors computed alongside, not applied. Everything below is what "
            "SGG would have done, not what happened."
        )
        title = f"What SGG would have done, NOT APPLIED: {name}"
    st.markdown(words.effect_sentence(e, ema, se.seeds))
    st.plotly_chart(
        cfig.effect_figure(se.over, se.types, title=title, applied=e.applied, step=e.step),
        key="cl_effect",
    )
    n = int(se.over["n"].max()) if "n" in se.over else 1
    st.caption(
        f"Each weight is classed by the factor SGG {'applied to' if e.applied else 'computed for'}"
        f" its step ({words.THRESHOLDS}); shares are weighted by parameter count (group sizes "
        "from the cluster table; 1-D weights, not scaled, count as unchanged). 'x AdamW's step "
        "size': the step divided by the one AdamW would take from the same state. Before the "
        "first re-cluster every factor is 1."
        + (f" The mean of {n} seeds at each re-cluster." if n > 1 else "")
        + ("" if e.applied else f" Hatched: {words.NOT_APPLIED}.")
    )


def _comparison_ui(ctx: Ctx, series: list[tuple[str, list[str]]]) -> None:
    """Every run / seed group on show, side by side: a table and the shares over training."""
    rows, lines, ended = [], {}, {}
    last = 0
    for name, members in series:
        se = _series_effect(ctx, members)
        if se is None:
            continue
        label = name if se.effect.applied else f"{name} ({words.NOT_APPLIED})"
        lines[label] = se.over
        last = max(last, int(se.over["step"].max()))
        rows.append(_comparison_row(label, se))
    for label, t in lines.items():
        if int(t["step"].max()) < last:
            ended[label] = f"no re-cluster after step {int(t['step'].max()):,}"
    st.markdown(
        "**All runs on show**: the share of the model's weights in each class (mean over "
        "seeds, its 95% interval) and their mean factor"
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cl_table", height=38 + 35 * len(rows))
    st.plotly_chart(
        cfig.effect_lines_figure(
            lines, ended=ended, title="Sped up and slowed down, over training"
        ),
        key="cl_lines",
    )


def _comparison_row(label: str, se: cluster_effect.SeriesEffect) -> dict:
    """'30% (27% to 32%) at 1.31x': the mean share over seeds, its 95% interval, and the mean
    factor of those weights."""
    e, g = se.effect, se.seeds
    row = {"Run or seed group": label, "Seeds": g.n, "At step": e.step}
    for cls in cluster_effect.CLASSES:
        d = g.share[cls]
        text = words.share(d.estimate)
        if d.has_interval:
            text += f" ({words.share(max(d.low, 0))} to {words.share(min(d.high, 1))})"
        if cls != cluster_effect.SAME and d.estimate > 0:
            text += f" at {words.times(g.factor[cls])}"
        row[cls.capitalize()] = text
    return row


def _layers(ctx: Ctx, rel: str, cl: pd.DataFrame) -> list[str]:
    order = clusters.layer_order(ctx.by_rel[rel].meta)
    have = list(dict.fromkeys(cl["layer"]))
    return [n for n in order if n in set(have)] + [n for n in have if n not in set(order)]


def _overview_ui(cl: pd.DataFrame, names_of: dict[str, str]) -> None:
    piv = clusters.factor_overview(cl, list(names_of))
    applied = cluster_effect.applied(cl)
    title = "All layers: the mean factor of each layer's weights" + (
        "" if applied else f" ({words.NOT_APPLIED})"
    )
    st.plotly_chart(cfig.overview_heatmap(piv, names_of, title=title), key="cl_overview")
    st.caption(
        "Blue: sped up, red: slowed down, white: unchanged (x1); each cell is the layer's "
        "factor averaged over its weights after that re-cluster. Hover for the parameter's name."
    )


def _population_ui(ctx: Ctx, rel: str, layer: str, shown: str) -> None:
    """Item 2: the recorded sample of weights, followed through the re-clusters."""
    st.markdown("#### The same weights through the re-clusters")
    st.markdown(words.GROUPS_ARE_RANKS)
    run = ctx.by_rel[rel]
    key = ctx.key(("clusters", "membership"), [rel])
    hist = cached(
        cluster_population.sampled_history, key, ctx.df(rel, "membership"),
        ctx.df(rel, "clusters"), cluster_effect.layer_sizes(run.meta),
    )  # fmt: skip
    per_layer = (run.meta.get("recording") or {}).get("membership_sample")
    st.markdown(words.stays_sentence(cluster_population.stays(hist), per_layer))
    a, b = st.columns(2)
    a.plotly_chart(
        cfig.churn_figure(cluster_population.churn(hist), cluster_population.churn(hist, layer),
                          shown),
        key="cl_churn",
    )  # fmt: skip
    b.plotly_chart(
        cfig.raster_figure(cluster_population.raster(hist, layer), shown), key="cl_raster"
    )
    st.caption(
        "Left: of the recorded weights, the share that changed group (a new rank of momentum) "
        "and the share that changed what the factor did to them. Right: each row is one "
        "recorded weight of this layer, most often sped up first; hover a cell for its group "
        "and factor."
    )


def _factors_ui(ctx: Ctx, rel: str, layer: str, shown: str) -> int | None:
    """Item 3: spread, target, EMA and bounds for each group of the layer; why factors fell."""
    st.markdown("#### Why the factors move")
    meta = ctx.by_rel[rel].meta
    cl = ctx.df(rel, "clusters")
    steps = cluster_factors.factor_steps(cl, layer)
    if steps.empty:
        st.info("No clustering recorded for this layer.")
        return None
    lower, upper = cluster_factors.bounds(meta)
    rate = cluster_factors.ema_rate(meta)
    st.plotly_chart(
        cfig.factor_explain_figure(
            steps,
            layer_name=shown if cluster_effect.applied(cl) else f"{shown} ({words.NOT_APPLIED})",
            bounds=(lower, upper),
            rate=rate,
        ),
        key="cl_explain",
    )
    st.caption(
        "Read top to bottom. 1: each group's spread of momentum (MDA) against the whole "
        "model's (dashed black). 2: the target they give, model / group, clamped to the "
        f"bounds [{lower:g}, {upper:g}] (dotted lines): a group less spread out than the model "
        "gets a target above 1. 3: the factor in force, which moves "
        + (f"{rate:.0%}" if math.isfinite(rate) else "(1 - beta3)")
        + " of the way to its target at each re-cluster: a triangle down where the target was "
        "below the factor (the EMA pulled it down), up where above."
    )
    falls = cluster_factors.falls_together(steps, lower)
    st.markdown(words.fall_sentence(falls, int(steps["step"].nunique()), rate, lower))
    options = sorted(steps["step"].unique().tolist())
    default = falls[-1].step if falls else options[-1]
    step = st.select_slider(
        "Re-cluster step", options, value=default, key="cl_step", bind="query-params",
        help="Which re-cluster the lines below and the histograms explain.",
    )  # fmt: skip
    lines = words.step_lines(steps, step, lower, upper)
    head = words.mean_move_sentence(cluster_factors.mean_move(cl, layer, int(step)))
    st.markdown(head + "\n" + "\n".join(f"- {t}" for t in lines))

    _groups_ui(ctx, rel, layer, cl, step)
    return int(step)


def _groups_ui(ctx: Ctx, rel: str, layer: str, cl: pd.DataFrame, step: int) -> None:
    """The layer's groups: their sizes over time and where the weights went at `step`."""
    c, _ = clusters.layer_groups(cl, layer)
    a, b = st.columns(2)
    a.plotly_chart(
        cfig.cluster_lines(c, "share", title="Share of the layer's weights in each group",
                           y_title="share", stacked=True),
        key="cl_share",
    )  # fmt: skip
    tr = ctx.df(rel, "transitions")
    mat = tr[(tr["layer"] == layer) & (tr["step"] == step)] if tr is not None else None
    before = max((s for s in sorted(c["step"].unique()) if s < step), default=None)
    span = f"from step {before:,} to step {step:,}" if before is not None else f"at step {step:,}"
    first = "First re-cluster: no groups before it."
    b.plotly_chart(
        cfig.transition_sankey(
            mat,
            title=f"Where the weights went, {span}",
            **({"empty": first} if before is None else {}),
        ),
        key="cl_sankey",
    )


def _ceiling(ctx: Ctx, rel: str, step: int) -> float:
    """lr / eps at `step`: the largest step AdamW gives (a weight whose gradient is zero)."""
    eps = ctx.by_rel[rel].hyperparameters.get("eps")
    s = ctx.table(rel, "steps", full=True).df
    if not isinstance(eps, int | float) or eps <= 0 or s is None or "lr" not in s:
        return float("nan")
    at = s[s["step"] <= step]
    return float(at["lr"].iloc[-1]) / eps if not at.empty else float("nan")


def _histograms_ui(ctx: Ctx, rel: str, layer: str, step: int) -> None:
    """Momentum and adaptive learning rate per group at `step`, against an AdamW run's whole
    layer when one on show recorded it (drawn, or said not recorded)."""
    hist = ctx.df(rel, "histograms")
    ref_rel = next(
        (r for r in ctx.series_rels() if r != rel and not applies_sgg(ctx.by_rel[r])
         and ctx.df(r, "histograms") is not None),
        None,
    )  # fmt: skip
    ref = ctx.df(ref_rel, "histograms") if ref_rel else None
    ref_name = ctx.labels[ref_rel] if ref_rel else ""
    st.markdown(f"#### Inside the layer at step {step:,}")
    a, b = st.columns(2)
    drawn, missing = [], []
    for col, qty, label, what, log_x in (
        (a, "momentum", "Momentum", "momentum", False),
        (b, "adaptive_lr", "Adaptive learning rate (log)", "adaptive learning rate", True),
    ):
        h = prepare.histogram_at(hist, layer, qty, step)
        r = (
            prepare.histogram_at(ref, layer, qty, step, whole_layer=True)
            if ref is not None
            else None
        )
        (drawn if r is not None and not r.empty else missing).append(what)
        rng, note = None, ""
        if qty == "adaptive_lr" and not h.empty:
            ceiling = _ceiling(ctx, rel, step)
            lo, hi, pile = clusters.alr_view(h, ceiling)
            rng, note = (lo, hi), words.alr_note(pile, ceiling, hi)
        col.plotly_chart(
            cfig.histogram_compare_figure(
                h, title=f"{label} per group at step {step:,}", x_title=label, log_x=log_x,
                reference=r, reference_name=f"{ref_name}: whole layer", x_range=rng,
            ),
            key=f"cl_hist_{qty}",
        )  # fmt: skip
        if note:
            col.caption(note)
    st.caption(
        "How the values inside this layer are distributed, per group (each curve adds up to 1, "
        "so small groups stay visible). The adaptive learning rate is the step size AdamW "
        "gives each weight before SGG's factor."
        + (f" {words.reference_note(ref_name, drawn, missing, layer)}" if ref_rel else "")
    )


def _glossary() -> None:
    with st.expander("Words used on this tab"):
        st.markdown("\n".join(f"- **{t}**: {narrative.definition(t)}" for t in GLOSSARY))

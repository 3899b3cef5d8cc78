"""Compare SGG and AdamW training runs: `streamlit run dashboard/app.py [-- --runs DIR]`.

Layout only: every number and figure comes from the pure modules next to this file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import figures, loader, metrics, prepare, report  # noqa: E402

DEFAULT_ROOT = _REPO / "sample_runs"
ENV_ROOT = "SGG_DASHBOARD_RUNS"
LIVE_REFRESH_SECONDS = 5
VIEWS = ["Summary", "Loss", "Gradient stability", "Clusters", "Sweep", "Runs"]
X_LABELS = {"step": "Step", "tokens": "Tokens", "wall_time": "Wall time"}

# The columns the views read (reading fewer columns of many chunks is much faster); the CSV
# download reads whole tables.
VIEW_COLUMNS = {
    "steps": ("step", "wall_time", "loss", "tokens", "grad_norm"),
    "layers": ("step", "layer", "grad_norm"),
}

GLOSSARY = {
    "SGG": "Scaling with Gradient Grouping: an add-on to AdamW that, inside every layer, sorts the "
    "weights into a few groups by how their updates behave and gives each group its own "
    "learning-rate multiplier (the 'scale factor').",
    "AdamW": "the standard optimizer used for language models; here it is the baseline.",
    "loss": "how wrong the model's predictions are (lower is better). Train loss is measured on "
    "the data being learned, eval (validation) loss on held-out data.",
    "gradient norm": "the size of the correction the optimizer computes at a step; sudden jumps "
    "(spikes) are a sign of unstable training.",
}


# --------------------------------------------------------------------------- inputs


def default_root() -> str:
    """`--runs DIR` after `--` on the command line, else $SGG_DASHBOARD_RUNS, else sample_runs/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    if args.runs:
        return str(Path(args.runs).expanduser())
    return os.environ.get(ENV_ROOT) or str(DEFAULT_ROOT)


def root_ui() -> str:
    if "runs_root" not in st.session_state:
        st.session_state["runs_root"] = default_root()
    return st.sidebar.text_input(
        "Folder with runs",
        key="runs_root",
        help="Every folder below this one that contains a run.json is a run.",
    )


def run_labels(runs: list[loader.Run]) -> dict[str, str]:
    """A unique display name per run (its name, or its path when names collide)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    return {r.rel: (r.name if counts[r.name] == 1 else (r.rel or r.name)) for r in runs}


def _fmt_hp(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_list_frame(runs: list[loader.Run], labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for r in runs:
        opt = r.meta.get("optimizer") if isinstance(r.meta.get("optimizer"), dict) else {}
        sgg = opt.get("sgg") or opt.get("shadow") or {}
        hp = r.hyperparameters
        rows.append(
            {
                "Run": labels.get(r.rel, r.name),
                "Folder": r.rel or ".",
                "Optimizer": r.optimizer + (" + shadow clustering" if opt.get("shadow") else ""),
                "Learning rate": "" if r.learning_rate is None else f"{r.learning_rate:g}",
                "Weight decay": _fmt_hp(hp.get("weight_decay", "")),
                "Groups (K)": sgg.get("n_clusters", "") if isinstance(sgg, dict) else "",
                "Re-cluster every (T)": sgg.get("recluster_interval", "")
                if isinstance(sgg, dict)
                else "",
                "Status": loader.display_status(r),
                "Steps": r.last_step if r.last_step is not None else "",
            }
        )
    return pd.DataFrame(rows).astype(str)


def selection_ui(runs: list[loader.Run], labels: dict[str, str]) -> tuple[str, list[str]]:
    """Baseline and compared runs (folder paths), kept in the URL by their display names."""
    by = {r.rel: r for r in runs}
    rel_of = {labels[r.rel]: r.rel for r in runs}
    names = list(rel_of)
    # default: an AdamW run (one with a shadow clustering shows the most), compared with the
    # SGG run(s) trained at the same learning rate
    adamw = [r for r in runs if r.optimizer.lower() == "adamw"]
    adamw.sort(key=lambda r: (not r.shadow, r.rel.count("/"), r.rel))
    default_base = labels[adamw[0].rel] if adamw else names[0]
    for key in ("baseline", "compare"):  # a stale selection (another folder) is dropped
        v = st.session_state.get(key)
        if key == "baseline" and v is not None and v not in rel_of:
            del st.session_state[key]
        if key == "compare" and isinstance(v, list) and any(x not in rel_of for x in v):
            st.session_state[key] = [x for x in v if x in rel_of]
    base_name = st.sidebar.selectbox(
        "Baseline (what the others are compared with)",
        names,
        index=names.index(default_base),
        key="baseline",
        bind="query-params",
    )
    baseline = rel_of[base_name]
    others = [n for n in names if n != base_name]
    base_lr = by[baseline].learning_rate
    sgg = sorted(
        (n for n in others if by[rel_of[n]].optimizer.lower() == "sgg"),
        key=lambda n: (by[rel_of[n]].learning_rate != base_lr, rel_of[n].count("/"), rel_of[n]),
    )
    default_cmp: list[str] | None = sgg[:1] or others[:1]
    if "compare" in st.session_state:
        st.session_state["compare"] = [n for n in st.session_state["compare"] if n != base_name]
        default_cmp = None
    compare = st.sidebar.multiselect(
        "Runs to compare", others, default=default_cmp, key="compare", bind="query-params"
    )
    return baseline, [rel_of[n] for n in compare]


def chart_options_ui() -> dict:
    st.sidebar.markdown("**Chart options**")
    x = st.sidebar.radio(
        "Horizontal axis",
        list(X_LABELS),
        format_func=X_LABELS.get,
        key="x",
        horizontal=True,
        bind="query-params",
    )
    smooth = st.sidebar.slider(
        "Smoothing",
        0.0,
        0.999,
        0.9,
        step=0.001,
        key="smooth",
        bind="query-params",
        help="TensorBoard-style moving average (0 = raw). The raw curve stays visible, faintly.",
    )
    log_y = st.sidebar.toggle("Logarithmic loss axis", value=False, key="logy", bind="query-params")
    return {"x": x, "smoothing": float(smooth), "log_y": bool(log_y)}


# --------------------------------------------------------------------------- cached data


class Ctx:
    """What the views share: the root, the selected runs, their labels and colours."""

    def __init__(
        self,
        root: Path,
        runs: list[loader.Run],
        labels: dict[str, str],
        baseline: str,
        compare: list[str],
        opts: dict,
    ):
        self.root = root
        self.by_rel = {r.rel: r for r in runs}
        self.all_runs = runs
        self.labels = labels
        self.baseline = baseline
        self.selected = [baseline, *compare]
        self.opts = opts
        names = [labels[r] for r in self.selected]
        self.colors = figures.run_colors(names, labels[baseline])
        self.messages: list[str] = []
        self._tables: dict[tuple[str, str, bool], loader.TableResult] = {}

    @property
    def base_name(self) -> str:
        return self.labels[self.baseline]

    def table(self, rel: str, table: str, full: bool = False) -> loader.TableResult:
        """The table (only the columns the views use unless `full`), listed and read at most
        once per page run; the loader caches the chunks across runs."""
        if (rel, table, full) in self._tables:
            return self._tables[(rel, table, full)]
        cols = None if full else VIEW_COLUMNS.get(table)
        res = loader.read_table(self.by_rel[rel], table, self.root, cols)
        self._tables[(rel, table, full)] = res
        for m in res.messages:
            if m not in self.messages:
                self.messages.append(m)
        return res

    def tables(self, table: str, rels: list[str] | None = None) -> dict[str, pd.DataFrame]:
        out = {}
        for rel in rels or self.selected:
            res = self.table(rel, table)
            if res.df is not None and not res.df.empty:
                out[self.labels[rel]] = res.df
        return out

    def key(self, table: str, rels: list[str] | None = None) -> tuple:
        """A hashable fingerprint of `table` for `rels` (cache key for derived data)."""
        return tuple(
            (rel, self.labels[rel], self.table(rel, table).signature)
            for rel in rels or self.selected
        )


@st.cache_data(max_entries=512, show_spinner=False)
def _summary(_run: loader.Run, _steps, _evals, key: tuple, label: str) -> metrics.RunSummary:
    s = metrics.summarize(label, _run.optimizer, loader.display_status(_run), _steps, _evals)
    s.shadow = _run.shadow
    return s


def summaries(ctx: Ctx, rels: list[str]) -> dict[str, metrics.RunSummary]:
    out = {}
    for rel in rels:
        st_res, ev_res = ctx.table(rel, "steps"), ctx.table(rel, "evals")
        key = (rel, st_res.signature, ev_res.signature, loader.display_status(ctx.by_rel[rel]))
        out[rel] = _summary(ctx.by_rel[rel], st_res.df, ev_res.df, key, ctx.labels[rel])
    return out


@st.cache_data(max_entries=128, show_spinner=False)
def _with_speedups(_sums: dict, _data: dict, key: tuple, baseline: str) -> dict:
    import copy

    sums = copy.deepcopy(_sums)
    metrics.add_speedups(sums, _data, baseline)
    return sums


def compared_summaries(ctx: Ctx) -> list[metrics.RunSummary]:
    sums = summaries(ctx, ctx.selected)
    data = {rel: (ctx.table(rel, "steps").df, ctx.table(rel, "evals").df) for rel in ctx.selected}
    key = (ctx.key("steps"), ctx.key("evals"))
    done = _with_speedups(sums, data, key, ctx.baseline)
    return [done[r] for r in ctx.selected]


@st.cache_data(max_entries=64, show_spinner=False)
def _loss_lines(_tables, key, x, smoothing):
    return prepare.loss_lines(_tables, x, smoothing)


@st.cache_data(max_entries=64, show_spinner=False)
def _loss_diff(_tables, key, baseline, x, smoothing):
    return prepare.loss_difference(_tables, baseline, x, smoothing)


@st.cache_data(max_entries=64, show_spinner=False)
def _eval_lines(_tables, key, x):
    return prepare.eval_lines(_tables, x)


@st.cache_data(max_entries=64, show_spinner=False)
def _grad_lines(_tables, key, x):
    return prepare.grad_lines(_tables, x)


@st.cache_data(max_entries=64, show_spinner=False)
def _layer_pivot(_layers, key, order):
    return prepare.layer_pivot(_layers, "grad_norm", order=list(order) if order else None)


@st.cache_data(max_entries=64, show_spinner=False)
def _layer_hist(_tables, key):
    return prepare.layer_norm_hist(_tables)


def loss_figures(ctx: Ctx, smoothing: float | None = None) -> tuple:
    o = ctx.opts
    sm = o["smoothing"] if smoothing is None else smoothing
    col, xlabel = prepare.X_AXES[o["x"]]
    smooth, raw = _loss_lines(ctx.tables("steps"), ctx.key("steps"), o["x"], sm)
    train = figures.line_figure(
        smooth,
        col,
        "loss",
        "run",
        ctx.colors,
        raw=raw,
        log_y=o["log_y"],
        x_title=xlabel,
        y_title="Training loss",
        title=f"Training loss (smoothing {sm:g}; faint: raw)",
    )
    ev = _eval_lines(ctx.tables("evals"), ctx.key("evals"), o["x"])
    evf = figures.line_figure(
        ev,
        col,
        "loss",
        "run",
        ctx.colors,
        log_y=o["log_y"],
        markers=True,
        x_title=xlabel,
        y_title="Validation loss",
        title="Validation loss (held-out data)",
    )
    return train, evf


# --------------------------------------------------------------------------- views


def summary_ui(ctx: Ctx) -> None:
    loader.prefetch(
        [(ctx.by_rel[r], t, VIEW_COLUMNS.get(t)) for r in ctx.selected for t in ("steps", "evals")],
        ctx.root,
    )
    sums = compared_summaries(ctx)
    base = sums[0]
    st.subheader(f"How do the runs compare with {ctx.base_name}?")
    st.caption(
        "Each run trained the same kind of model; they differ in the optimizer (the rule that "
        f"updates the model's weights) or its settings. **{ctx.base_name}** is the reference. "
        "SGG is an add-on to the standard AdamW optimizer that gives groups of similar weights "
        "their own learning-rate multiplier. Lower loss is better; fewer steps to reach the "
        "same loss means faster training."
    )
    for s in sums[1:]:
        loss_kind = "eval" if s.target_kind == "eval" else "train"
        loss = s.final_eval_loss if loss_kind == "eval" else s.final_train_loss
        bloss = base.final_eval_loss if loss_kind == "eval" else base.final_train_loss
        c0, c1, c2, c3, c4 = st.columns([2, 2, 2, 2, 2])
        c0.markdown(f"#### :material/trending_down: {s.name}")
        c1.metric(
            "Speed-up vs baseline",
            f"{s.speedup_steps:.2f}x" if np.isfinite(s.speedup_steps) else "never",
            help="How many times fewer steps this run needed to reach the baseline's final "
            "loss ('never': it did not reach it).",
        )
        delta = loss - bloss if np.isfinite(loss) and np.isfinite(bloss) else None
        c2.metric(
            f"Final {'validation' if loss_kind == 'eval' else 'training'} loss",
            f"{loss:.4g}" if np.isfinite(loss) else "n/a",
            delta=None if delta is None else f"{delta:+.3g} vs baseline",
            delta_color="inverse" if delta else "off",
        )
        spikes = s.loss_spikes - base.loss_spikes
        c3.metric(
            "Loss spikes",
            f"{s.loss_spikes}",
            delta=f"{spikes:+d} vs baseline",
            delta_color="inverse" if spikes else "off",
        )
        cv = s.grad_norm_cv - base.grad_norm_cv
        c4.metric(
            "Gradient-size variation (CV)",
            f"{s.grad_norm_cv:.0%}" if np.isfinite(s.grad_norm_cv) else "n/a",
            delta=(
                f"{(s.grad_norm_cv - base.grad_norm_cv) * 100:+.0f} pts vs baseline"
                if np.isfinite(s.grad_norm_cv) and np.isfinite(base.grad_norm_cv)
                else None
            ),
            delta_color="inverse" if np.isfinite(cv) and round(cv * 100) else "off",
        )
    text = metrics.sentences(sums, base.name)
    if len(sums) == 1:
        st.info("Pick one or more runs to compare in the sidebar.")
    for line in text:
        st.markdown(f"- {line}")
    table = metrics.summary_table(sums)
    st.dataframe(
        table,
        hide_index=True,
        key="summary_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4g")
            for c in table.columns
            if table[c].dtype.kind == "f"
        },
    )
    train_fig, eval_fig = loss_figures(ctx, smoothing=max(ctx.opts["smoothing"], 0.9))
    has_eval = any(np.isfinite(s.final_eval_loss) for s in sums)
    main_fig = eval_fig if has_eval else train_fig
    bars = pd.DataFrame({"run": [s.name for s in sums], "steps": [s.steps_to_target for s in sums]})
    bar_fig = figures.bar_figure(
        bars,
        "run",
        "steps",
        ctx.colors,
        title="Steps to reach the baseline's final loss<br><sup>fewer = faster</sup>",
        y_title="Steps",
        fmt=",.0f",
    )
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(main_fig, key="summary_loss")
    c2.plotly_chart(bar_fig, key="summary_bars")
    with st.expander("What the numbers mean"):
        for k, v in GLOSSARY.items():
            st.markdown(f"- **{k}**: {v}")
        st.markdown(metrics.__doc__.split("\n\n", 1)[1])

    def make_report() -> str:
        notes = [f"{k}: {v}" for k, v in GLOSSARY.items()]
        notes += [
            ln.strip("- ").strip() for ln in metrics.__doc__.split("\n\n", 1)[1].split("\n- ")
        ]
        return report.build_report(
            f"Training runs compared with {ctx.base_name}",
            table,
            text,
            [main_fig, bar_fig, train_fig],
            notes,
        )

    st.download_button(
        "Download this summary as a report (HTML, opens offline)",
        make_report,
        file_name="sgg-summary.html",
        mime="text/html",
        key="report_download",
        on_click="ignore",
    )


def loss_ui(ctx: Ctx) -> None:
    st.caption(
        "Lower is better. The faint lines are the raw values; the bold ones are smoothed "
        "(change the smoothing and the axis in the sidebar)."
    )
    train, ev = loss_figures(ctx)
    st.plotly_chart(train, key="loss_train")
    st.plotly_chart(ev, key="loss_eval")
    if len(ctx.selected) > 1:
        o = ctx.opts
        col, xlabel = prepare.X_AXES[o["x"]]
        diff = _loss_diff(
            ctx.tables("steps"), ctx.key("steps"), ctx.base_name, o["x"], max(o["smoothing"], 0.9)
        )
        fig = figures.line_figure(
            diff,
            col,
            "diff",
            "run",
            ctx.colors,
            x_title=xlabel,
            y_title=f"loss minus {ctx.base_name}'s",
            title=f"Difference from the baseline's training loss (smoothed; below 0 = ahead "
            f"of {ctx.base_name})",
        )
        fig.add_hline(y=0, line={"color": figures.BASELINE_COLOR, "dash": "dash"})
        st.plotly_chart(fig, key="loss_diff")


def grad_ui(ctx: Ctx) -> None:
    st.caption(
        f"{GLOSSARY['gradient norm'].capitalize()} A spike is a value more than "
        f"{metrics.GRAD_SPIKE_FACTOR:g}x the typical (median) value of the preceding "
        f"~{metrics.SPIKE_WINDOW} steps."
    )
    o = ctx.opts
    col, xlabel = prepare.X_AXES[o["x"]]
    lines, bands, spikes = _grad_lines(ctx.tables("steps"), ctx.key("steps"), o["x"])
    st.plotly_chart(
        figures.grad_norm_figure(lines, bands, spikes, col, ctx.colors, x_title=xlabel),
        key="grad_global",
    )
    layer_tabs = ctx.tables("layers")
    if not layer_tabs:
        st.info("None of the selected runs recorded per-layer statistics.")
        return
    hist = _layer_hist(layer_tabs, ctx.key("layers"))
    st.plotly_chart(
        figures.distribution_figure(
            hist,
            ctx.colors,
            x_title="Per-layer gradient norm (log scale)",
            title="How large are the gradients of individual layers? (second half of training; "
            "a narrower hump = more uniform layers)",
        ),
        key="grad_dist",
    )
    names = list(layer_tabs)
    pick = st.selectbox("Run for the layer map", names, key="heat_run")
    rel = next(r for r in ctx.selected if ctx.labels[r] == pick)
    order = _layer_order(ctx.by_rel[rel])
    pivot = _layer_pivot(layer_tabs[pick], ctx.key("layers", [rel]), tuple(order))
    st.plotly_chart(
        figures.heatmap_figure(
            pivot,
            title=f"{pick}: gradient norm per layer (rows) over training (columns)",
            x_title="Step",
            z_title="gradient norm",
        ),
        key="grad_heat",
    )


def _layer_order(run: loader.Run) -> list[str]:
    model = run.meta.get("model") if isinstance(run.meta.get("model"), dict) else {}
    layers = model.get("layers") if isinstance(model.get("layers"), list) else []
    return [str(x.get("name")) for x in layers if isinstance(x, dict) and x.get("name")]


def clusters_ui(ctx: Ctx) -> None:
    st.caption(
        "SGG sorts the weights of every layer into a few groups by their momentum (the running "
        "average of their gradients) and multiplies each group's learning rate by a scale factor: "
        "noisy groups are slowed down (factor < 1), calm groups sped up (factor > 1). The groups "
        "are recomputed every T steps ('re-cluster')."
    )
    clustered = [r for r in ctx.selected if ctx.table(r, "clusters").df is not None]
    for r in ctx.selected:
        if r not in clustered:
            run = ctx.by_rel[r]
            why = (
                "it is a plain AdamW run recorded without shadow clustering, so it has no groups"
                if run.optimizer.lower() != "sgg"
                else "no cluster table was recorded"
            )
            st.info(
                f"**{ctx.labels[r]}**: {why}. Its histograms, if any, are used as the "
                "reference below."
            )
    if not clustered:
        st.info(
            "None of the selected runs has groups to show. Select an SGG run (or an AdamW "
            "run recorded with shadow clustering)."
        )
        return
    sgg_first = sorted(clustered, key=lambda r: ctx.by_rel[r].optimizer.lower() != "sgg")
    pick = st.selectbox("Run", sgg_first, format_func=lambda r: ctx.labels[r], key="cl_run")
    cl = ctx.table(pick, "clusters").df
    if bool(cl["shadow"].fillna(False).all()):
        st.info(
            "These groups come from a *shadow* clustering: computed for comparison only, "
            "they did not change this run's training."
        )
    overview = metrics.size_weighted_factor(cl)
    piv = overview.pivot_table(index="layer", columns="step", values="factor", sort=False)
    order = [n for n in _layer_order(ctx.by_rel[pick]) if n in piv.index] or list(piv.index)
    st.plotly_chart(
        figures.heatmap_figure(
            piv.reindex(order),
            title="All layers: average learning-rate multiplier "
            "(blue: sped up, red: slowed down, white: unchanged)",
            x_title="Step",
            z_title="scale factor",
            log_z=False,
            colorscale="RdBu",
            multiplier=True,
        ),
        key="cl_overview",
    )
    layers = list(dict.fromkeys(order))
    layer = st.selectbox("Layer", layers, key="cl_layer")
    c = cl[cl["layer"] == layer].copy()
    tot = c.groupby("step")["size"].transform("sum")
    c["share"] = c["size"] / tot.where(tot > 0)
    g = (
        c.groupby("step", as_index=False)["global_mda"]
        .first()
        .rename(columns={"global_mda": "mda"})
    )
    a, b = st.columns(2)
    a.plotly_chart(
        figures.cluster_lines(
            c,
            "factor",
            title="Learning-rate multiplier of each group",
            y_title="scale factor",
            log_y=True,
        ),
        key="cl_factor",
    )
    b.plotly_chart(
        figures.cluster_lines(
            c,
            "share",
            title="Share of the layer's weights in each group",
            y_title="share",
            stacked=True,
        ),
        key="cl_share",
    )
    a, b = st.columns(2)
    a.plotly_chart(
        figures.cluster_lines(
            c, "center", title="Group centres (typical momentum of the group)", y_title="momentum"
        ),
        key="cl_center",
    )
    b.plotly_chart(
        figures.cluster_lines(
            c,
            "mda",
            title="Spread of each group (MDA) vs the model-wide spread",
            y_title="median deviation from the layer mean",
            reference=g,
            reference_name="model-wide (global MDA)",
            log_y=True,
        ),
        key="cl_mda",
    )
    steps = sorted(c["step"].unique().tolist())
    if not steps:
        return
    step = st.select_slider("Re-cluster step", steps, value=steps[-1], key="cl_step")
    tr = ctx.table(pick, "transitions").df
    a, b = st.columns(2)
    moved = metrics.moved_share(tr[tr["layer"] == layer] if tr is not None else None)
    a.plotly_chart(
        figures.cluster_lines(
            moved.assign(cluster=0).rename(columns={"moved": "share"})
            if not moved.empty
            else moved,
            "share",
            title="Share of weights that changed group at each re-cluster",
            y_title="share moved",
        ),
        key="cl_moved",
    )
    mat = tr[(tr["layer"] == layer) & (tr["step"] == step)] if tr is not None else None
    b.plotly_chart(
        figures.transition_sankey(mat, title=f"Where the weights went at step {step:,}"),
        key="cl_sankey",
    )
    hist = ctx.table(pick, "histograms").df
    ref_rel = next(
        (
            r
            for r in ctx.selected
            if r != pick
            and ctx.by_rel[r].optimizer.lower() != "sgg"
            and ctx.table(r, "histograms").df is not None
        ),
        None,
    )
    ref = ctx.table(ref_rel, "histograms").df if ref_rel else None
    ref_name = f"{ctx.labels[ref_rel]}: whole layer" if ref_rel else ""
    st.caption(
        "How the values inside this layer are distributed, per group (each curve adds up to 1, "
        "so small groups stay visible). The adaptive learning rate is the step size AdamW "
        "gives each weight; SGG multiplies it by the group's factor."
        + (f" Dashed black: {ref_name} (AdamW, no groups)." if ref_rel else "")
    )
    a, b = st.columns(2)
    for col, qty, label, log_x in (
        (a, "momentum", "Momentum", False),
        (b, "adaptive_lr", "Adaptive learning rate (log)", True),
    ):
        h = prepare.histogram_at(hist, layer, qty, step)
        r = (
            prepare.histogram_at(ref, layer, qty, step, whole_layer=True)
            if ref is not None
            else None
        )
        col.plotly_chart(
            figures.histogram_compare_figure(
                h,
                title=f"{label} per group at step {step:,}",
                x_title=label,
                log_x=log_x,
                reference=r,
                reference_name=ref_name,
            ),
            key=f"cl_hist_{qty}",
        )


@st.cache_data(max_entries=64, show_spinner=False)
def _sweep_frame(_ctx_runs, _sums, key, hp):
    rows = []
    for rel, run in _ctx_runs.items():
        s = _sums[rel]
        v = metrics.hyperparameter_value(run.meta, hp)
        if v is None:
            continue
        diverged = s.first_nan_step is not None and s.steps is not None
        loss = s.final_eval_loss if np.isfinite(s.final_eval_loss) else s.final_train_loss
        rows.append(
            {
                "name": s.name,
                "optimizer": run.optimizer,
                "value": v,
                "final_loss": float("nan") if diverged else loss,
            }
        )
    return pd.DataFrame(rows, columns=["name", "optimizer", "value", "final_loss"])


def sweep_ui(ctx: Ctx) -> None:
    use_all = st.toggle(
        "Use every run in the folder (not only the selected ones)", value=True, key="sweep_all"
    )
    rels = [r.rel for r in ctx.all_runs if r.readable] if use_all else ctx.selected
    metas = {rel: ctx.by_rel[rel].meta for rel in rels}
    keys = metrics.varying_hyperparameters(metas)
    if not keys:
        st.info(
            "These runs do not differ in any numeric setting, so there is no sweep to show. "
            "A sweep is a set of runs that differ in one setting, e.g. the learning rate."
        )
        return
    hp = st.selectbox(
        "Setting that was varied",
        keys,
        key="sweep_key",
        format_func=lambda k: f"{metrics.plain_name(k)} ({k})",
    )
    members = metrics.sweep_members(metas, hp)
    left_out = [r for r in rels if r not in members]
    if left_out:
        st.caption(
            "Compared: the runs whose other settings are identical. Left out (they differ "
            "in more than this setting): " + ", ".join(ctx.labels[r] for r in left_out)
        )
    unfinished = [
        r
        for r in members
        if loader.display_status(ctx.by_rel[r]) in ("running", "stalled / probably killed")
    ]
    if unfinished:
        st.caption(
            "Still training (or stopped mid-way), so their final loss would mislead; left out: "
            + ", ".join(
                f"{ctx.labels[r]} ({loader.display_status(ctx.by_rel[r])})" for r in unfinished
            )
        )
    rels = [r for r in members if r not in unfinished]
    if len({metrics.hyperparameter_value(metas[r], hp) for r in rels}) < 2:
        st.info("No group of runs differs only in this setting.")
        return
    sums = summaries(ctx, rels)
    key = (
        tuple((r, ctx.table(r, "steps").signature, ctx.table(r, "evals").signature) for r in rels),
        hp,
    )
    df = _sweep_frame({r: ctx.by_rel[r] for r in rels}, sums, key, hp)
    opt_colors = {ctx.by_rel[ctx.baseline].optimizer: figures.BASELINE_COLOR}
    opt_colors.setdefault("sgg", figures.PALETTE[0])
    pos = df["value"][df["value"] > 0]
    log_x = bool(len(pos) == len(df) and pos.max() / pos.min() >= 20) if len(pos) else False
    st.plotly_chart(
        figures.sweep_figure(
            df, key=metrics.plain_name(hp), colors_by_optimizer=opt_colors, log_x=log_x
        ),
        key="sweep_fig",
    )
    tol = metrics.tolerance(df)
    for line in metrics.tolerance_sentences(tol, hp):
        st.markdown(f"- {line}")
    st.dataframe(
        df.assign(result=np.where(np.isfinite(df["final_loss"]), "", "diverged")).rename(
            columns={"value": hp, "final_loss": "final loss"}
        ),
        hide_index=True,
        key="sweep_table",
    )


def runs_ui(ctx: Ctx) -> None:
    st.caption(
        "Settings of the selected runs side by side; rows where they differ are highlighted."
    )
    metas = {ctx.labels[r]: ctx.by_rel[r].meta for r in ctx.selected}
    cfg = metrics.config_table(metas)
    if cfg.empty:
        st.info("No settings recorded.")
    else:
        differing = [str(k) for k in cfg.index[cfg["differs"]]]
        if differing and len(ctx.selected) > 1:
            st.markdown(
                "**They differ in:** "
                + ", ".join(f"`{k}`" for k in differing[:20])
                + (" ..." if len(differing) > 20 else "")
            )
        only = st.toggle("Only show differences", value=False, key="cfg_diff_only")
        cfg = cfg.sort_values("differs", ascending=False, kind="stable")  # differences first
        view = cfg[cfg["differs"]] if only else cfg
        shown = view.drop(columns="differs").map(lambda v: "" if v is None else str(v))
        diff = view["differs"]
        styled = shown.style.apply(
            lambda row: ["background-color: #FFF3CD" if diff[row.name] else "" for _ in row], axis=1
        )
        st.dataframe(styled, key="cfg_table", height=420)
    st.markdown("**Download a recorded table as CSV**")
    a, b = st.columns(2)
    rel = a.selectbox("Run", ctx.selected, format_func=lambda r: ctx.labels[r], key="csv_run")
    present = [t for t in loader.TABLES if ctx.table(rel, t).n_chunks]
    if not present:
        st.info("This run has no readable tables.")
        return
    table = b.selectbox("Table", present, key="csv_table")
    run, root = ctx.by_rel[rel], ctx.root

    def csv() -> bytes:  # runs only when the button is clicked (a whole table can be large)
        df = loader.read_table(run, table, root).df
        return b"" if df is None else df.to_csv(index=False).encode()

    st.download_button(
        f"Download {table} of {ctx.labels[rel]} (CSV)",
        csv,
        file_name=f"{ctx.labels[rel]}-{table}.csv".replace("/", "_"),
        mime="text/csv",
        key="csv_download",
        on_click="ignore",
    )


VIEW_FUNCS = {
    "Summary": summary_ui,
    "Loss": loss_ui,
    "Gradient stability": grad_ui,
    "Clusters": clusters_ui,
    "Sweep": sweep_ui,
    "Runs": runs_ui,
}


def views_ui(ctx: Ctx) -> None:
    tabs = st.tabs(VIEWS, key="view", bind="query-params")
    for name, tab in zip(VIEWS, tabs, strict=True):
        if tab.open:
            with tab:
                try:
                    VIEW_FUNCS[name](ctx)
                except Exception as e:  # a bug in one view must not take the page down
                    st.error(
                        f"This view could not be drawn ({type(e).__name__}: {e}). The "
                        "other views still work."
                    )
    if ctx.messages:
        with st.expander(
            f"{len(ctx.messages)} problem(s) while reading the selected runs", expanded=True
        ):
            for m in ctx.messages:
                st.warning(m)


# --------------------------------------------------------------------------- page


def main() -> None:
    st.set_page_config(page_title="SGG vs AdamW: training runs", layout="wide")
    st.title("Training runs: SGG compared with AdamW")
    root = root_ui()
    disc = loader.discover_runs(root)
    for m in disc.messages:
        st.info(m)
    if disc.root is None or not disc.runs:
        st.info(
            "Point the sidebar's *Folder with runs* at a folder that contains training runs "
            "(each run is a folder with a run.json file)."
        )
        return
    bad = [r for r in disc.runs if r.problems]
    if bad:
        with st.expander(
            f"{len(bad)} run(s) with problems", expanded=any(not r.readable for r in bad)
        ):
            for r in bad:
                for p in r.problems:
                    (st.warning if not r.readable else st.info)(p)
    runs = [r for r in disc.runs if r.readable]
    labels = run_labels(runs)
    with st.expander(f"{len(disc.runs)} run(s) found in `{disc.root}`", expanded=False):
        st.dataframe(
            run_list_frame(disc.runs, {**labels, **run_labels(disc.runs)}),
            hide_index=True,
            key="run_list",
        )
    if not runs:
        st.warning("None of the runs in this folder can be read.")
        return
    baseline, compare = selection_ui(runs, labels)
    opts = chart_options_ui()
    with st.sidebar.expander("Words used on this page"):
        for k, v in GLOSSARY.items():
            st.markdown(f"**{k}**: {v}")
    ctx = Ctx(disc.root, runs, labels, baseline, compare, opts)
    statuses = {ctx.labels[r]: loader.display_status(ctx.by_rel[r]) for r in ctx.selected}
    for name, s in statuses.items():
        if s.startswith("stalled"):
            st.warning(
                f"**{name}** says it is running, but it has not written anything for a "
                "long time: it is stalled or was probably killed."
            )
    live = any(s == "running" for s in statuses.values())
    if live:
        st.caption(
            f"Live: a selected run is still training; refreshing every "
            f"{LIVE_REFRESH_SECONDS} s (only new chunks are read)."
        )
    st.fragment(run_every=LIVE_REFRESH_SECONDS if live else None)(live_views)(ctx)


def live_views(ctx: Ctx) -> None:
    ctx._tables.clear()  # a fragment rerun re-lists the chunks (new ones are read, once)
    ctx.messages.clear()
    if any(loader.display_status(ctx.by_rel[r]) == "running" for r in ctx.selected):
        disc = loader.discover_runs(ctx.root)  # picks up the newest run.json (status, heartbeat)
        fresh = {r.rel: r for r in disc.runs if r.readable}
        ctx.by_rel.update({k: v for k, v in fresh.items() if k in ctx.by_rel})
        if not any(loader.display_status(ctx.by_rel[r]) == "running" for r in ctx.selected):
            st.rerun(scope="app")  # the run has finished: redraw the page, stop refreshing
    views_ui(ctx)


if __name__ == "__main__":
    main()

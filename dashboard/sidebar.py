"""The sidebar and the run list: which folder, which runs, which chart options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import loader
from dashboard.metrics import groups, health
from dashboard.prepare import BANDS

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "sample_runs"
ENV_ROOT = "SGG_DASHBOARD_RUNS"
X_LABELS = {"step": "Step", "tokens": "Tokens", "wall_time": "Wall time"}


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
    """One row per run, its seed group first (runs that differ only in the seed share it)."""
    readable = [r for r in runs if r.readable]
    members = groups.seed_groups({r.rel: r.meta for r in readable})
    varying = groups.varying_settings([r.meta for r in readable])
    by_rel = {r.rel: r for r in readable}
    group_of: dict[str, str] = {}
    for rels in members.values():
        label = groups.group_label(by_rel[rels[0]].meta, varying, len(rels))
        group_of.update(dict.fromkeys(rels, label))
    rows = []
    for r in sorted(runs, key=lambda r: (group_of.get(r.rel, "~"), r.rel)):
        opt = r.meta.get("optimizer") if isinstance(r.meta.get("optimizer"), dict) else {}
        sgg = opt.get("sgg") or opt.get("shadow") or {}
        hp = r.hyperparameters
        rows.append(
            {
                "Seed group": group_of.get(r.rel, ""),
                "Run": labels.get(r.rel, r.name),
                "Seed": str(groups.seed_of(r.meta) if r.readable else ""),
                "Folder": r.rel or ".",
                "Optimizer": r.optimizer
                + (" (also computed SGG's grouping, not applied)" if opt.get("shadow") else ""),
                "Learning rate": "" if r.learning_rate is None else f"{r.learning_rate:g}",
                "Weight decay": _fmt_hp(hp.get("weight_decay", "")),
                "Groups (K)": sgg.get("n_clusters", "") if isinstance(sgg, dict) else "",
                "Re-cluster every (T)": sgg.get("recluster_interval", "")
                if isinstance(sgg, dict)
                else "",
                "Status": health.live_status(r.meta) if r.readable else "unreadable",
                "Steps": r.last_step if r.last_step is not None else "",
            }
        )
    return pd.DataFrame(rows).astype(str)


def _pooling() -> bool:
    """Whether seeds are pooled (the toggle below the picker; read before it is drawn)."""
    v = st.session_state.get("pool")
    if v is None:
        v = str(st.query_params.get("pool", "true")).lower() not in ("false", "0")
    return bool(v)


def picker_options(
    runs: list[loader.Run], labels: dict[str, str], pool: bool, keep: set[str]
) -> tuple[list[str], dict[str, str]]:
    """(run names the pickers list, what each shows). Pooled: one entry per seed group (its
    first seed stands for it, shown by the group's label) plus any run already chosen; else
    every run by its name."""
    names = [labels[r.rel] for r in runs]
    if not pool:
        return names, {n: n for n in names}
    metas = {r.rel: r.meta for r in runs}
    reps = groups.group_options(metas)
    members = groups.seed_groups(metas)
    size = {r: len(m) for m in members.values() for r in m}
    group_of = {r: reps[m[0]] for m in members.values() for r in m}
    shown: dict[str, str] = {}
    for r in runs:
        n = labels[r.rel]
        if r.rel in reps and size[r.rel] > 1:
            shown[n] = reps[r.rel]
        elif size[r.rel] == 1:
            shown[n] = n
        elif n in keep:
            shown[n] = f"{n} (its group: {group_of[r.rel]})"
    return [n for n in names if n in shown], shown


def selection_ui(runs: list[loader.Run], labels: dict[str, str]) -> tuple[str, list[str]]:
    """Baseline and compared runs (folder paths), kept in the URL by their display names. With
    seeds pooled the pickers list seed groups; the default answers "does SGG help?": standard
    SGG against AdamW with the same settings, the pair with the most seeds."""
    by = {r.rel: r for r in runs}
    rel_of = {labels[r.rel]: r.rel for r in runs}
    names = list(rel_of)
    pair = groups.default_pair({r.rel: r.meta for r in runs})
    for key in ("baseline", "compare"):  # a stale selection (another folder) is dropped
        v = st.session_state.get(key)
        if key == "baseline" and v is not None and v not in rel_of:
            del st.session_state[key]
        if key == "compare" and isinstance(v, list) and any(x not in rel_of for x in v):
            st.session_state[key] = [x for x in v if x in rel_of]
    # the URL (?baseline=NAME&compare=A&compare=B, run names) sets the choice when the page
    # opens; the pickers show groups, so they are synced by hand (a bound widget would put the
    # group's label in the URL)
    if not st.session_state.get("_selection_from_url"):
        st.session_state["_selection_from_url"] = True
        url_base = [n for n in st.query_params.get_all("baseline") if n in rel_of]
        url_cmp = [n for n in st.query_params.get_all("compare") if n in rel_of]
        if url_base:
            st.session_state["baseline"] = url_base[0]
        if url_cmp or url_base:
            st.session_state["compare"] = url_cmp
    keep = set(st.session_state.get("compare") or []) | {st.session_state.get("baseline")}
    pool = _pooling()
    options, shown = picker_options(runs, labels, pool, keep & set(names))
    if pair:
        default_base, default_cmp = labels[pair[0]], [labels[pair[1]]]
    else:  # no like-for-like SGG/AdamW pair: an AdamW run, and the SGG run closest to it
        adamw = sorted(
            (r for r in runs if r.optimizer.lower() == "adamw" and labels[r.rel] in options),
            key=lambda r: (not r.shadow, r.rel.count("/"), r.rel),
        )
        default_base = labels[adamw[0].rel] if adamw else options[0]
        rest = [n for n in options if n != default_base]
        sgg = sorted(
            (n for n in rest if by[rel_of[n]].optimizer.lower() == "sgg"),
            key=lambda n: (
                groups.n_differences(by[rel_of[n]].meta, by[rel_of[default_base]].meta),
                rel_of[n],
            ),
        )
        default_cmp = sgg[:1] or rest[:1]
    # the default first: index 0 (a non-zero default beside a value set from the URL would
    # make Streamlit warn)
    options = [default_base, *(n for n in options if n != default_base)]
    shown.setdefault(default_base, default_base)
    base_name = st.sidebar.selectbox(
        "Baseline (what the others are compared with)",
        options,
        index=0,
        format_func=lambda n: shown.get(n, n),
        key="baseline",
        help="With 'Pool seeds into groups' on, each entry is a seed group: all its seeds "
        "are used.",
    )
    baseline = rel_of[base_name]
    others = [n for n in options if n != base_name]
    default_cmp = [n for n in default_cmp if n in others]
    if "compare" in st.session_state:
        st.session_state["compare"] = [n for n in st.session_state["compare"] if n in others]
        default_cmp = None
    compare = st.sidebar.multiselect(
        "Seed groups to compare" if pool else "Runs to compare",
        others,
        default=default_cmp,
        format_func=lambda n: shown.get(n, n),
        key="compare",
        help="Each entry is a seed group (all its seeds are compared); turn off 'Pool seeds "
        "into groups' to pick single runs."
        if pool
        else None,
    )
    st.query_params["baseline"] = base_name
    st.query_params["compare"] = list(compare)
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
    pool = st.sidebar.toggle(
        "Pool seeds into groups",
        value=True,
        key="pool",
        bind="query-params",
        help="Runs with the same settings that differ only in the seed are drawn as one line "
        "(their mean) with a band, and compared as a group.",
    )
    band = st.sidebar.radio(
        "Band around a group's mean",
        list(BANDS),
        format_func=BANDS.get,
        key="band",
        bind="query-params",
        disabled=not pool,
    )
    return {
        "x": x,
        "smoothing": float(smooth),
        "log_y": bool(log_y),
        "pool": bool(pool),
        "band": band,
    }

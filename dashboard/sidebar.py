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
                "Optimizer": r.optimizer + (" + shadow clustering" if opt.get("shadow") else ""),
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


def selection_ui(runs: list[loader.Run], labels: dict[str, str]) -> tuple[str, list[str]]:
    """Baseline and compared runs (folder paths), kept in the URL by their display names."""
    by = {r.rel: r for r in runs}
    rel_of = {labels[r.rel]: r.rel for r in runs}
    names = list(rel_of)
    # default: an AdamW run (one with a shadow clustering shows the most, then one with the
    # most seeds), compared with the SGG run whose settings differ least
    adamw = [r for r in runs if r.optimizer.lower() == "adamw"]
    seeds = {
        rel: len(members)
        for members in groups.seed_groups({r.rel: r.meta for r in runs}).values()
        for rel in members
    }
    adamw.sort(key=lambda r: (not r.shadow, -seeds[r.rel], r.rel.count("/"), r.rel))
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
        key=lambda n: (  # like for like first: the fewest settings that differ
            len(groups.differing_settings(by[rel_of[n]].meta, by[baseline].meta)),
            groups.n_differences(by[rel_of[n]].meta, by[baseline].meta),
            by[rel_of[n]].learning_rate != base_lr,
            rel_of[n].count("/"),
            rel_of[n],
        ),
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

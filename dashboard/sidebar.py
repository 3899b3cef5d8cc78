"""The sidebar and the run list: which folder, which runs, which chart options."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import loader
from dashboard.chart_options import ChartOptions
from dashboard.metrics import groups, health
from dashboard.metrics.settings import info_of, is_adamw, names_sgg
from dashboard.prepare import BANDS

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "sample_runs"
ENV_ROOT = "SGG_DASHBOARD_RUNS"
X_LABELS = {"step": "Step", "tokens": "Tokens", "wall_time": "Wall time"}


def default_root() -> str:
    """`--runs DIR` after `--` on the command line, else $SGG_DASHBOARD_RUNS, else sample_runs/.
    DIR may be an object store prefix, `s3://bucket/prefix` (kept as written)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    if args.runs:
        return args.runs if "://" in args.runs else str(Path(args.runs).expanduser())
    return os.environ.get(ENV_ROOT) or str(DEFAULT_ROOT)


def root_ui() -> str:
    if "runs_root" not in st.session_state:
        st.session_state["runs_root"] = default_root()
    return st.sidebar.text_input(
        "Folder with runs",
        key="runs_root",
        help="Every folder below this one that contains a run.json is a run. A prefix on an "
        "object store works too: s3://bucket/prefix (credentials from the AWS environment).",
    )


def run_labels(runs: list[loader.Run]) -> dict[str, str]:
    """A unique display name per run: its name, or its path when names collide; then every
    run of that sub-folder is shown by its path, so that its runs read alike (not some as
    'main-600/adamw-s0' and others as bare names that look like top-level runs)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1

    def folder(rel: str) -> str:
        return rel.rsplit("/", 1)[0] if "/" in rel else ""

    clashing = {folder(r.rel) for r in runs if counts[r.name] > 1} - {""}
    return {
        r.rel: (r.rel or r.name) if counts[r.name] > 1 or folder(r.rel) in clashing else r.name
        for r in runs
    }


def _fmt_hp(v) -> str:
    """A setting in the run list: '' when the run does not record it."""
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_list_frame(runs: list[loader.Run], labels: dict[str, str]) -> pd.DataFrame:
    """One row per run, its seed group first (runs that differ only in the seed share it)."""
    readable = [r for r in runs if r.readable]
    members = groups.seed_groups({r.rel: r.meta for r in readable})
    varying = groups.varying_settings([r.meta for r in readable])
    by_rel = {r.rel: r for r in readable}
    group_of: dict[str, str] = {}
    for rels in members.values():
        seeds = [groups.seed_of(by_rel[r].meta) for r in rels]
        label = groups.group_label(by_rel[rels[0]].meta, varying, seeds)
        group_of.update(dict.fromkeys(rels, label))
    rows = []
    for r in sorted(runs, key=lambda r: (group_of.get(r.rel, "~"), r.rel)):
        info = info_of(r.meta)  # the typed description: the same fields whatever wrote the run
        sgg = info.sgg
        rows.append(
            {
                "Seed group": group_of.get(r.rel, ""),
                "Run": labels.get(r.rel, r.name),
                "Seed": _fmt_hp(info.seed if r.readable else ""),
                "Folder": r.rel or ".",
                "Optimizer": (groups.optimizer_name(r.meta) if r.readable else "")
                + (
                    " (also computed SGG's grouping, not applied)"
                    if groups.shadow_of(r.meta)
                    else ""
                ),
                "Learning rate": _fmt_hp(info.lr),
                "Weight decay": _fmt_hp(info.weight_decay),
                "Groups (K)": _fmt_hp(sgg.n_clusters if sgg else None),
                "Re-cluster every (T)": _fmt_hp(sgg.recluster_interval if sgg else None),
                "Status": health.live_status(r.meta) if r.readable else "unreadable",
                "Steps": r.last_step if r.last_step is not None else "",
            }
        )
    return pd.DataFrame(rows).astype(str)


def url_flag(value: object, default: bool) -> bool:
    """A yes/no URL value: false/0/no/off and true/1/yes/on (any case); else `default`."""
    text = str(value).strip().lower() if value is not None else ""
    if text in ("false", "0", "no", "off"):
        return False
    if text in ("true", "1", "yes", "on"):
        return True
    return default


def pool_ui() -> bool:
    """The 'Pool seeds into groups' toggle, drawn above the pickers (it decides what they list),
    kept in the URL by hand as ?pool=false: Streamlit's own binding reads only true/false, so
    ?pool=0 left the toggle on while the pickers listed single runs."""
    if "pool" not in st.session_state:
        st.session_state["pool"] = url_flag(st.query_params.get("pool"), default=True)
    pool = bool(
        st.sidebar.toggle(
            "Pool seeds into groups",
            key="pool",
            help="Runs with the same settings that differ only in the seed are drawn as one "
            "line (their mean) with a band, and compared as a group; the pickers then list "
            "seed groups.",
        )
    )
    if pool:
        if "pool" in st.query_params:
            del st.query_params["pool"]
    else:
        st.query_params["pool"] = "false"
    return pool


PILL_CHARS = 22  # about what a picked entry shows of its label in the sidebar before "..."
PICKER_NAMES = {
    "scale decay": "decay",
    "re-cluster interval T": "T",
    "groups K": "K",
    "warmup steps": "warmup",
}


def picker_group_labels(metas: dict[str, dict]) -> dict[str, str]:
    """{first run of each seed group: its label in the pickers}. A picked entry is cut at the
    end to fit the sidebar, so a label starts with what tells its group apart: the optimizer,
    the settings in which the group differs from what most groups share (in short), then the
    learning rate, always named ("sgg, decay 0.9, lr 4e-3 (3 seeds)" beside "sgg, lr 4e-3 (3
    seeds)"); where two labels would still start alike, the learning rate comes first. The
    full label (`groups.group_options`) is shown below the pickers."""
    members = {m[0]: m for m in groups.seed_groups(metas).values()}
    varying = groups.varying_settings(list(metas.values()))
    counts: dict[str, Counter] = {k: Counter() for k in varying}
    for rep in members:
        s = groups.settings(metas[rep])
        for k in varying:
            if k in s and (names_sgg(s["optimizer"]) or not groups.sgg_only(k)):
                counts[k][repr(s[k])] += 1
    common = {}
    for k, c in counts.items():
        top = c.most_common(2)
        if top and (len(top) == 1 or top[0][1] > top[1][1]):
            common[k] = top[0][0]
    keys = {}
    for rep in members:
        s = groups.settings(metas[rep])
        keys[rep] = [k for k in varying if not (k in s and repr(s[k]) == common.get(k))]
    seeds = {r: [groups.seed_of(metas[x]) for x in m] for r, m in members.items()}
    out = {r: _picker_label(metas[r], keys[r], seeds[r], lr_first=False) for r in members}
    starts = Counter(v[:PILL_CHARS] for v in set(out.values()))
    for r in members:
        if starts[out[r][:PILL_CHARS]] > 1:
            out[r] = _picker_label(metas[r], keys[r], seeds[r], lr_first=True)
    taken = Counter(out.values())
    return {r: (f"{v} [{r}]" if taken[v] > 1 else v) for r, v in out.items()}


def _picker_label(meta: dict, keys: list[str], seeds: list[object], lr_first: bool) -> str:
    """'sgg, decay 0.9, lr 4e-3 (3 seeds)': the optimizer, `keys` in short (not the settings
    only SGG reads, for another optimizer) and the learning rate, last unless `lr_first`."""
    s = groups.settings(meta)
    lr = groups.lr_key(meta)
    shown = [
        k
        for k in keys
        if k in s and k != lr and (names_sgg(s["optimizer"]) or not groups.sgg_only(k))
    ]
    parts = [f"{_short(k)} {_fmt_hp(s[k])}" for k in shown]
    if lr and lr in s:
        parts.insert(0 if lr_first else len(parts), f"lr {groups.fmt_lr(s[lr])}")
    head = ", ".join([s["optimizer"], *parts])
    return f"{head} ({groups.seeds_label(seeds)})"


def _short(key: str) -> str:
    name = groups.short_name(key)
    return PICKER_NAMES.get(name, name)


def full_labels(runs: list[loader.Run], labels: dict[str, str]) -> dict[str, str]:
    """{run id: what it stands for in words}: its seed group's full label (every setting that
    varies), or its name when it has no other seeds."""
    metas = {r.rel: r.meta for r in runs}
    out = {r.rel: labels[r.rel] for r in runs}
    reps = groups.group_options(metas)
    for m in groups.seed_groups(metas).values():
        if len(m) > 1:
            out.update(dict.fromkeys(m, reps[m[0]]))
    return out


def picker_options(
    runs: list[loader.Run], labels: dict[str, str], pool: bool, keep: set[str]
) -> tuple[list[str], dict[str, str]]:
    """(run names the pickers list, what each shows). Pooled: one entry per seed group (its
    first seed stands for it, shown by the group's picker label) plus any run already
    chosen; else every run by its name."""
    names = [labels[r.rel] for r in runs]
    if not pool:
        return names, {n: n for n in names}
    metas = {r.rel: r.meta for r in runs}
    reps = picker_group_labels(metas)
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


@dataclass
class Picked:
    """What the pickers chose (run ids) and what the opening URL named that is not here."""

    baseline: str
    compare: list[str]
    url_missing: list[str] = field(default_factory=list)  # names of no run in this folder
    url_unreadable: list[str] = field(default_factory=list)  # names of runs that can't be read


def _url_selection(rel_of: dict[str, str], unreadable: set[str]) -> None:
    """Once per session: the URL (?baseline=NAME&compare=A&compare=B, run names) sets the
    choice; names that are not here are kept in the session, for the page to say so."""
    if st.session_state.get("_selection_from_url"):
        return
    st.session_state["_selection_from_url"] = True
    raw_base = st.query_params.get_all("baseline")
    raw_cmp = st.query_params.get_all("compare")
    url_base = [n for n in raw_base if n in rel_of]
    url_cmp = [n for n in raw_cmp if n in rel_of]
    if url_base:
        st.session_state["baseline"] = url_base[0]
    if url_cmp or (url_base and not raw_cmp):  # none of the named runs here: the default
        st.session_state["compare"] = url_cmp
    missing = [n for n in dict.fromkeys([*raw_base, *raw_cmp]) if n not in rel_of]
    if missing:
        st.session_state["_url_missing"] = {
            "missing": [n for n in missing if n not in unreadable],
            "unreadable": [n for n in missing if n in unreadable],
            "shown": None,  # the selection drawn at load: the notice stays until it changes
        }


def _url_notice(base_name: str, compare: list[str]) -> tuple[list[str], list[str]]:
    """(missing, unreadable) names of the opening URL, while the selection they replaced is
    still the one on show."""
    note = st.session_state.get("_url_missing")
    if not note:
        return [], []
    now = (base_name, tuple(compare))
    if note["shown"] is None:
        note["shown"] = now
    elif note["shown"] != now:  # the reader has chosen since: the notice has done its job
        del st.session_state["_url_missing"]
        return [], []
    return list(note["missing"]), list(note["unreadable"])


def selection_ui(
    runs: list[loader.Run], labels: dict[str, str], pool: bool, unreadable: set[str] = frozenset()
) -> Picked:
    """Baseline and compared runs (folder paths), kept in the URL by their display names. With
    seeds pooled the pickers list seed groups; the default answers "does SGG help?"
    (`default_choice`). `unreadable`: names of runs here that cannot be read (a URL naming one
    is told so)."""
    rel_of = {labels[r.rel]: r.rel for r in runs}
    _drop_stale(rel_of)
    # the pickers show groups, so they are synced with the URL by hand (a bound widget would
    # put the group's label in the URL)
    _url_selection(rel_of, set(unreadable))
    keep = set(st.session_state.get("compare") or []) | {st.session_state.get("baseline")}
    options, shown = picker_options(runs, labels, pool, keep & set(rel_of))
    default_base, default_cmp = default_choice(runs, labels, options)
    # the default first: index 0 (a non-zero default beside a value set from the URL would
    # make Streamlit warn)
    options = [default_base, *(n for n in options if n != default_base)]
    shown.setdefault(default_base, default_base)
    base_name = _baseline_ui(options, shown)
    others = [n for n in options if n != base_name]
    compare = _compare_ui(others, [n for n in default_cmp if n in others], shown, pool)
    st.query_params["baseline"] = base_name
    st.query_params["compare"] = list(compare)
    missing, unread = _url_notice(base_name, list(compare))
    return Picked(rel_of[base_name], [rel_of[n] for n in compare], missing, unread)


def _drop_stale(rel_of: dict[str, str]) -> None:
    """A selection kept in the session that names runs not in this folder (another folder's)
    is dropped."""
    v = st.session_state.get("baseline")
    if v is not None and v not in rel_of:
        del st.session_state["baseline"]
    v = st.session_state.get("compare")
    if isinstance(v, list) and any(x not in rel_of for x in v):
        st.session_state["compare"] = [x for x in v if x in rel_of]


def default_choice(
    runs: list[loader.Run], labels: dict[str, str], options: list[str]
) -> tuple[str, list[str]]:
    """(baseline name, compared names) when nothing is chosen: standard SGG against AdamW with
    the same settings, the pair with the most seeds (`groups.default_pair`); else an AdamW run
    and the SGG run closest to it. Never a foreign run with no loss (an empty mirror), nor,
    while another run names its optimizer, one that does not."""
    from dashboard.foreign import has_loss

    usable = [r for r in runs if has_loss(r.meta)] or runs
    usable = [r for r in usable if groups.names_optimizer(r.meta)] or usable
    pair = groups.default_pair({r.rel: r.meta for r in usable})
    if pair:
        return labels[pair[0]], [labels[pair[1]]]
    by = {r.rel: r for r in runs}
    rel_of = {labels[r.rel]: r.rel for r in runs}
    first_choice = {r.rel for r in usable}
    adamw = sorted(
        (r for r in usable if is_adamw(r.meta) and labels[r.rel] in options),
        key=lambda r: (not r.shadow, r.rel.count("/"), r.rel),
    )
    fine = [n for n in options if rel_of[n] in first_choice] or options
    base = labels[adamw[0].rel] if adamw else fine[0]
    rest = [n for n in fine if n != base]
    sgg = sorted(
        (n for n in rest if by[rel_of[n]].is_sgg),
        key=lambda n: (groups.n_differences(by[rel_of[n]].meta, by[rel_of[base]].meta), rel_of[n]),
    )
    return base, sgg[:1] or rest[:1]


def _baseline_ui(options: list[str], shown: dict[str, str]) -> str:
    """The baseline picker; the name of the run picked."""
    current = st.session_state.get("baseline")
    if current in shown and st.session_state.get("_baseline_label") not in (None, shown[current]):
        # same run, new label (seeds pooled or not, a seed added): the browser keeps showing
        # the label it was sent unless the value is set again
        st.session_state["baseline"] = current
    base_name = st.sidebar.selectbox(
        "Baseline (what the others are compared with)",
        options,
        index=0,
        format_func=lambda n: shown.get(n, n),
        key="baseline",
        help="With 'Pool seeds into groups' on, each entry is a seed group: all its seeds "
        "are used. An entry names the settings in which its group differs from most others "
        "(T: re-cluster interval, K: groups, decay: scale decay), then the learning rate; the "
        "full names of what is on show are below the pickers.",
    )
    st.session_state["_baseline_label"] = shown.get(base_name, base_name)
    return base_name


def _compare_ui(
    others: list[str], default: list[str], shown: dict[str, str], pool: bool
) -> list[str]:
    """The picker of compared runs or seed groups; the names picked."""
    if "compare" in st.session_state:
        st.session_state["compare"] = [n for n in st.session_state["compare"] if n in others]
        default = None
    return st.sidebar.multiselect(
        "Seed groups to compare" if pool else "Runs to compare",
        others,
        default=default,
        format_func=lambda n: shown.get(n, n),
        key="compare",
        help=(
            "Each entry is a seed group (all its seeds are compared); turn off 'Pool seeds "
            "into groups' to pick single runs. "
            if pool
            else ""
        )
        + "A long name is cut short in its chip: the full names are listed under 'Compared'.",
    )


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$])")


def md_escape(text: str) -> str:
    """`text` shown literally in Markdown (run names hold underscores and brackets)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def series_words(
    series: list[tuple[str, list[str]]], full: dict[str, str], labels: dict[str, str]
) -> list[str]:
    """Each series on show (`Ctx.series`) in full words: its seed group's full label, or the
    run's name when it is drawn alone."""
    return [full[m[0]] if len(m) > 1 else labels[m[0]] for _, m in series]


def selection_markdown(names: list[str]) -> str:
    """The selection in full words below the pickers (they cut long labels), one per line."""
    if not names:
        return ""
    head = f"**Baseline:** {md_escape(names[0])}  \n**Compared:**"
    if len(names) == 1:
        return f"{head} nothing yet: pick one above."
    if len(names) == 2:
        return f"{head} {md_escape(names[1])}"
    return head + "\n" + "\n".join(f"- {md_escape(n)}" for n in names[1:])


def missing_notice(missing: list[str], unreadable: list[str], names: list[str]) -> str:
    """The warning for a link naming runs that are not here, saying what is shown instead."""
    parts = []
    if missing:
        what = "a run that is" if len(missing) == 1 else "runs that are"
        parts.append(f"The link names {what} not in this folder: {', '.join(missing)}")
    if unreadable:
        what = "a run that" if len(unreadable) == 1 else "runs that"
        parts.append(
            f"The link names {what} cannot be read: {', '.join(unreadable)} (see the run list)"
        )
    if not parts:
        return ""
    shown = names[0] + (" against " + "; ".join(names[1:]) if len(names) > 1 else "")
    return md_escape("; ".join(parts) + f". Showing {shown} instead.")


def chart_options_ui(pool: bool) -> ChartOptions:
    """How the charts draw what is selected (`pool` comes from `pool_ui`, above the pickers)."""
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
    band = st.sidebar.radio(
        "Band around a group's mean",
        list(BANDS),
        format_func=BANDS.get,
        key="band",
        bind="query-params",
        disabled=not pool,
    )
    return ChartOptions(x=x, smoothing=float(smooth), log_y=bool(log_y), pool=bool(pool), band=band)

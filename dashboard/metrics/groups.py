"""Seed groups and like-for-like: which runs differ only in the seed, and what else differs.

Runs whose settings (run.json `config`, or the optimizer's hyperparameters without a config)
are equal except for the seed form a group; recording options (where to write, how often to
flush) are not settings.
"""

from __future__ import annotations

import hashlib

from dashboard.metrics.sweep import (
    IGNORED_FOR_SWEEP,
    RECORDING_KEYS,
    SEED_KEYS,
    plain_name,
    sweepable_settings,
)

HOST_KEYS = ("hostname", "cpu", "device", "cpu_count", "torch_threads")


def optimizer_name(meta: dict) -> str:
    opt = meta.get("optimizer")
    return str(opt.get("name") or "?") if isinstance(opt, dict) else "?"


def settings(meta: dict) -> dict[str, object]:
    """What a run was trained with: the optimizer's name and its sweepable settings, without
    the seed and without recording options."""
    flat = sweepable_settings(meta)
    skip = SEED_KEYS | RECORDING_KEYS | IGNORED_FOR_SWEEP
    out: dict[str, object] = {"optimizer": optimizer_name(meta).lower()}
    out.update({k: v for k, v in flat.items() if k not in skip})
    return out


def seed_of(meta: dict) -> object:
    """The run's seed (config.seed, else run.json's seed), or None when unknown."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    for v in (cfg.get("seed"), meta.get("seed")):
        if v is not None and not isinstance(v, bool):
            return v
    return None


def group_id(meta: dict) -> str:
    """A short stable id for the settings of a run (equal for runs that differ only in seed)."""
    sig = repr(sorted((k, repr(v)) for k, v in settings(meta).items()))
    return hashlib.sha1(sig.encode()).hexdigest()[:10]


def seed_groups(metas: dict[str, dict]) -> dict[str, list[str]]:
    """{group id: run ids sorted by seed}, groups in the order of their first run."""
    out: dict[str, list[str]] = {}
    for rid, meta in metas.items():
        out.setdefault(group_id(meta), []).append(rid)
    return {g: sorted(m, key=lambda r: repr(seed_of(metas[r]))) for g, m in out.items()}


def fmt_lr(v: float) -> str:
    """A learning rate as the run names write it: 0.004 -> '4e-3', 0.016 -> '1.6e-2'."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 or v >= 0.1:
        return f"{v:g}" if isinstance(v, float) else str(v)
    mantissa, exponent = f"{v:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _fmt(v: object, key: str = "") -> str:
    if key.rsplit(".", 1)[-1] == "lr" and isinstance(v, float):
        return fmt_lr(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


# settings that only SGG reads: part of "the optimizer" when SGG is compared with AdamW
SGG_ONLY = {
    "n_clusters",
    "recluster_interval",
    "scale_decay",
    "beta3",
    "cluster_on",
    "scale_bounds",
    "min_ndim",
    "global_mda",
}


def sgg_only(key: str) -> bool:
    """Settings only SGG reads (in an AdamW run they configure a shadow clustering at most)."""
    return key.rsplit(".", 1)[-1] in SGG_ONLY


def differing_settings(a: dict, b: dict, skip_optimizer: bool = True) -> list[tuple[str, str, str]]:
    """(plain name, value in a, value in b) for every setting in which run a and run b differ
    (the optimizer itself left out: that is what is being compared, with the settings only SGG
    reads when the two optimizers differ)."""
    sa, sb = settings(a), settings(b)
    other_optimizer = sa["optimizer"] != sb["optimizer"]
    out = []
    for k in sorted(set(sa) | set(sb)):
        if skip_optimizer and (k == "optimizer" or (other_optimizer and sgg_only(k))):
            continue
        va, vb = sa.get(k), sb.get(k)
        if repr(va) != repr(vb):
            out.append(
                (
                    plain_name(k),
                    _fmt(va, k) if k in sa else "not set",
                    _fmt(vb, k) if k in sb else "not set",
                )
            )
    return out


SHORT_NAMES = {
    "learning rate": "lr",
    "weight decay": "wd",
    "training steps": "steps",
    "scale decay (beta3)": "scale decay",
}


def short_name(key: str) -> str:
    """'config.lr' -> 'lr': for labels that must stay short (legends, table rows)."""
    name = plain_name(key)
    return SHORT_NAMES.get(name, name)


def n_differences(a: dict, b: dict) -> int:
    """How many settings besides the optimizer's name differ (SGG-only ones included): ranks
    the most like-for-like run first."""
    sa, sb = settings(a), settings(b)
    keys = (set(sa) | set(sb)) - {"optimizer"}
    return sum(repr(sa.get(k)) != repr(sb.get(k)) for k in keys)


def lr_key(meta: dict) -> str | None:
    """The key of the learning rate among a run's settings (None when it has none)."""
    return next((k for k in settings(meta) if k.rsplit(".", 1)[-1] == "lr"), None)


def seeds_label(seeds: list[object]) -> str:
    """'3 seeds'; '3 runs, 2 seeds' when a seed repeats; '6 runs, seeds not recorded' - what a
    group's N counts is distinct seeds, never runs."""
    n_runs = len(seeds)
    known = [repr(s) for s in seeds if s is not None]
    distinct = len(set(known))
    if not known:
        return "1 run" if n_runs == 1 else f"{n_runs} runs, seeds not recorded"
    text = f"{distinct} seed{'s' if distinct != 1 else ''}"
    if distinct == 1 and n_runs > 1:
        return f"{n_runs} runs of one seed"
    return text if n_runs == distinct else f"{n_runs} runs, {text}"


def group_label(meta: dict, varying: list[str], n: int | list[object]) -> str:
    """'sgg, lr 4e-3 (3 seeds)': the optimizer, its learning rate (always: a heading must say
    which lr it speaks of) and the other settings that vary between the groups on show (never
    a setting only SGG reads for another optimizer)."""
    s = settings(meta)
    if s["optimizer"] != "sgg":  # settings only SGG reads say nothing about another optimizer
        varying = [k for k in varying if not sgg_only(k)]
    lr = lr_key(meta)
    keys = ([lr] if lr else []) + [k for k in varying if k != lr]
    parts = [f"{short_name(k)} {_fmt(s[k], k)}" for k in keys if k in s and k != "optimizer"]
    head = s["optimizer"] + (", " + ", ".join(parts) if parts else "")
    if isinstance(n, list):  # the members' seeds: count distinct ones
        return f"{head} ({seeds_label(n)})"
    return f"{head} ({n} seed{'s' if n != 1 else ''})"


def varying_settings(metas: list[dict]) -> list[str]:
    """The settings (keys) whose values differ between these runs, learning rate first."""
    values: dict[str, set[str]] = {}
    for meta in metas:
        for k, v in settings(meta).items():
            values.setdefault(k, set()).add(repr(v))
    keys = [k for k, v in values.items() if len(v) > 1 and k != "optimizer"]
    return sorted(keys, key=lambda k: (not k.endswith(".lr"), k))


def same_hardware(a: dict, b: dict) -> bool | None:
    """True when both runs ran on the same host and hardware (run.json `host`), False when
    they did not, None when it is not recorded."""
    ha, hb = a.get("host"), b.get("host")
    if not isinstance(ha, dict) or not isinstance(hb, dict):
        return None
    return all(ha.get(k) == hb.get(k) for k in HOST_KEYS)


def _sgg_variant(meta: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in settings(meta).items() if sgg_only(k)))


def default_pair(metas: dict[str, dict]) -> tuple[str, str] | None:
    """(baseline run, compared run) that answer "does SGG help?": a standard SGG group against
    the AdamW group with the same settings (no difference besides the optimizer), the pair with
    the most seeds first, then SGG's most common variant (not an ablation), then an AdamW group
    that also recorded a shadow clustering (the Clusters view shows it). Each side's first
    seed stands for its group. None when no such pair exists."""
    by_group = seed_groups(metas)
    first = {g: m[0] for g, m in by_group.items()}
    sgg = [g for g in by_group if settings(metas[first[g]])["optimizer"] == "sgg"]
    adamw = [g for g in by_group if settings(metas[first[g]])["optimizer"] == "adamw"]
    variants: dict[tuple, int] = {}
    for g in sgg:
        v = _sgg_variant(metas[first[g]])
        variants[v] = variants.get(v, 0) + len(by_group[g])
    pairs = []
    for gs in sgg:
        for ga in adamw:
            ms, ma = metas[first[gs]], metas[first[ga]]
            if differing_settings(ms, ma):
                continue
            shadow = isinstance(ma.get("optimizer"), dict) and bool(ma["optimizer"].get("shadow"))
            pairs.append(
                (
                    -min(len(by_group[gs]), len(by_group[ga])),
                    -variants[_sgg_variant(ms)],
                    not shadow,
                    first[ga],
                    first[gs],
                )
            )
    if not pairs:
        return None
    best = min(pairs)
    return best[3], best[4]


def group_options(metas: dict[str, dict]) -> dict[str, str]:
    """{first run of each seed group: the group's label}, the labels naming the settings that
    vary over all the runs (what a picker of groups lists)."""
    varying = varying_settings(list(metas.values()))
    return {
        members[0]: group_label(metas[members[0]], varying, [seed_of(metas[m]) for m in members])
        for members in seed_groups(metas).values()
    }

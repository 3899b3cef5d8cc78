"""Seed groups and like-for-like: which runs differ only in the seed, and what else differs.

A run's settings are its typed description (`runformat.run_info`: the same field whatever tool
wrote the run) and the rest of its config by leaf name (`metrics.settings`). Runs whose
settings are equal except for the seed form a group; recording options (where to write, how
often to flush) are not settings. Two runs differ in a setting only when both record it: a
setting one of them does not record is "not recorded" in it, said apart, never a difference.
"""

from __future__ import annotations

import hashlib

from dashboard.metrics.settings import (
    SGG_ONLY,
    TYPED_KEYS,
    UNKNOWN_OPTIMIZER,
    applies_sgg,
    canonical,
    info_of,
    is_adamw,
    names_sgg,
    optimizer_of,
    sgg_only,
    shadow_of,
)
from dashboard.metrics.sweep import (
    IGNORED_FOR_SWEEP,
    RECORDING_KEYS,
    SEED_KEYS,
    plain_name,
    sweepable_settings,
)

HOST_KEYS = ("hostname", "cpu", "device", "cpu_count", "torch_threads")
# re-exported: part of what "like for like" means, and the one optimizer test
__all__ = ["SGG_ONLY", "UNKNOWN_OPTIMIZER", "applies_sgg", "is_adamw", "sgg_only", "shadow_of"]


def optimizer_name(meta: dict) -> str:
    """The optimizer's name, lower case; UNKNOWN_OPTIMIZER when the run does not say (a
    foreign run logged without its settings): every label, heading and table shows this
    (`settings.optimizer_of`, which `loader.Run.optimizer` gives too)."""
    return optimizer_of(meta)


def names_optimizer(meta: dict) -> bool:
    """Whether the run says which optimizer it ran."""
    return optimizer_name(meta) != UNKNOWN_OPTIMIZER


_SETTINGS: dict[int, tuple[dict, dict[str, object]]] = {}


def settings(meta: dict) -> dict[str, object]:
    """What a run was trained with: the optimizer's name and its sweepable settings, without
    the seed and without recording options. Kept per run.json object, as `info_of` is (a page
    groups its runs several times a rerun: ~1,500 calls for 126 runs)."""
    hit = _SETTINGS.get(id(meta))
    if hit is not None and hit[0] is meta:
        return dict(hit[1])
    flat = sweepable_settings(meta)
    skip = SEED_KEYS | RECORDING_KEYS | IGNORED_FOR_SWEEP
    out: dict[str, object] = {"optimizer": optimizer_name(meta)}
    out.update({k: v for k, v in flat.items() if k not in skip})
    if len(_SETTINGS) > 4096:
        _SETTINGS.clear()
    _SETTINGS[id(meta)] = (meta, out)
    return dict(out)


def seed_of(meta: dict) -> int | None:
    """The run's seed (the typed description's: config.seed, else run.json's seed), or None
    when it is not recorded or not an integer (run_info says so among its problems)."""
    return info_of(meta).seed


def group_id(meta: dict) -> str:
    """A short stable id for the settings of a run (equal for runs that differ only in seed)."""
    # the tool that wrote it too: runs of two tools are never one group of seeds
    sig = repr(sorted((k, canonical(v)) for k, v in settings(meta).items()))
    source = info_of(meta).source
    if source != "recorded":
        sig += f"|source={source}"
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


def _compared(a: dict, b: dict, skip_optimizer: bool) -> tuple[dict, dict, list[str]]:
    """Both runs' settings and the keys to compare (the optimizer, and SGG's own settings
    when the optimizers differ, left out: that is what is being compared)."""
    sa, sb = settings(a), settings(b)
    other_optimizer = sa["optimizer"] != sb["optimizer"]
    keys = [
        k
        for k in sorted(set(sa) | set(sb))
        if not (skip_optimizer and (k == "optimizer" or (other_optimizer and sgg_only(k))))
    ]
    return sa, sb, keys


def differing_settings(a: dict, b: dict, skip_optimizer: bool = True) -> list[tuple[str, str, str]]:
    """(plain name, value in a, value in b) for every setting both runs record and in which
    they differ (numbers by value: TensorBoard's 4.0 is 4). A setting only one of them records
    is no difference (`unrecorded_settings` names it)."""
    sa, sb, keys = _compared(a, b, skip_optimizer)
    return [
        (plain_name(k), _fmt(sa[k], k), _fmt(sb[k], k))
        for k in keys
        if k in sa and k in sb and canonical(sa[k]) != canonical(sb[k])
    ]


def unrecorded_settings(a: dict, b: dict) -> list[tuple[str, str]]:
    """(plain name, "a" or "b": the run that does not record it) for each typed setting (the
    learning rate, betas, clipping, ...) that only one of the two runs records: not compared,
    and not a difference. Untyped config keys are compared only where both have them."""
    sa, sb, keys = _compared(a, b, True)
    return [
        (plain_name(k), "a" if k not in sa else "b")
        for k in keys
        if k in TYPED_KEYS and (k in sa) != (k in sb)
    ]


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
    """How many settings besides the optimizer's name differ (SGG-only ones included), a
    setting only one of them records counted too: ranks the most like-for-like run first."""
    return (
        len(differing_settings(a, b, skip_optimizer=False))
        - int(optimizer_name(a) != optimizer_name(b))
        + len(unrecorded_settings(a, b))
    )


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


SOURCE_NAMES = {
    "hf": "HF Trainer",
    "lightning": "Lightning",
    "tensorboard": "TensorBoard",
    "wandb": "W&B",
    "mlflow": "MLflow",
    "csv": "CSV",
}


def group_label(meta: dict, varying: list[str], n: int | list[object]) -> str:
    """'sgg, lr 4e-3 (3 seeds)': the optimizer, its learning rate (always: a heading must say
    which lr it speaks of) and the other settings that vary between the groups on show (never
    a setting only SGG reads for another optimizer)."""
    s = settings(meta)
    if not names_sgg(s["optimizer"]):  # settings only SGG reads say nothing about another optimizer
        varying = [k for k in varying if not sgg_only(k)]
    lr = lr_key(meta)
    keys = ([lr] if lr else []) + [k for k in varying if k != lr]
    parts = [f"{short_name(k)} {_fmt(s[k], k)}" for k in keys if k in s and k != "optimizer"]
    head = s["optimizer"] + (", " + ", ".join(parts) if parts else "")
    tool = SOURCE_NAMES.get(info_of(meta).source, info_of(meta).source)
    head += f" · {tool}" if info_of(meta).source != "recorded" else ""
    if isinstance(n, list):  # the members' seeds: count distinct ones
        return f"{head} ({seeds_label(n)})"
    return f"{head} ({n} seed{'s' if n != 1 else ''})"


def varying_settings(metas: list[dict]) -> list[str]:
    """The settings (keys) whose values differ between these runs, learning rate first."""
    values: dict[str, set[str]] = {}
    for meta in metas:
        for k, v in settings(meta).items():
            values.setdefault(k, set()).add(canonical(v))
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
    return tuple(sorted((k, canonical(v)) for k, v in settings(meta).items() if sgg_only(k)))


def default_pair(metas: dict[str, dict]) -> tuple[str, str] | None:
    """(baseline run, compared run) that answer "does SGG help?": a standard SGG group against
    the AdamW group with the same settings (no difference besides the optimizer), the pair with
    the most seeds first, then SGG's most common variant (not an ablation), then an AdamW group
    that also recorded a shadow clustering (the Clusters view shows it). Each side's first
    seed stands for its group. None when no such pair exists."""
    by_group = seed_groups(metas)
    first = {g: m[0] for g, m in by_group.items()}
    sgg = [g for g in by_group if applies_sgg(metas[first[g]])]
    adamw = [g for g in by_group if is_adamw(metas[first[g]])]
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
            shadow = shadow_of(ma)
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

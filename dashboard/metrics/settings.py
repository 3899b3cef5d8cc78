"""A run's settings as the dashboard compares them: typed fields first, then untyped config.

Every run is read through `runformat.run_info` (one typed description, whatever wrote the run),
so the HF Trainer's nested `training_arguments.learning_rate`, a TensorBoard run's flat
`learning_rate` and our `config.lr` are one setting, `config.lr`. The rest of the config (model
size, data options, ...) is compared by its leaf name, and only where both runs have it: one
tool's extra options are not differences. Settings about logging, saving and where things go
are not settings of the training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from runformat import run_info
from runformat.run_info import RunInfo

# settings that differ between the runs of one sweep without making them incomparable
SEED_KEYS = {"config.seed", "config.data_seed", "hyperparameters.seed"}
# options that change what is recorded, not how the model trains
RECORDING_KEYS = {
    "config.eval_every",
    "config.eval_batches",
    "config.layer_stride",
    "config.flush_every",
    "config.flush_seconds",
    "config.histogram_every",
    "config.histogram_bins",
    "config.membership_sample",
    "config.compact",
    "config.resume",
    "config.jobs",
}
IGNORED_FOR_SWEEP = {
    "config.optimizer",
    "config.name",
    "config.run_name",
    "config.out",
    "config.out_dir",
    "config.output_dir",
    "config.shadow",
    "config.progress",
    "config.threads",
    "config.overwrite",
    "config.checkpoint_every",
}
# other tools' options (HF TrainingArguments, Lightning) about logging, saving, evaluating,
# devices and where things go: how a run was written or run, not how the model trains
TOOL_OPTIONS = {
    "report_to",
    "disable_tqdm",
    "log_level",
    "log_level_replica",
    "log_on_each_node",
    "project",
    "use_cpu",
    "no_cuda",
    "local_rank",
    "overwrite_output_dir",
    "skip_memory_metrics",
    "restore_callback_states_from_checkpoint",
    "enable_jit_checkpoint",
    "torch_empty_cache_steps",
    "prediction_loss_only",
    "per_device_eval_batch_size",
    "batch_eval_metrics",
    "label_names",
    "remove_unused_columns",
    "past_index",
    "ignore_data_skip",
    "auto_find_batch_size",
    "full_determinism",
    "use_legacy_prediction_loop",
    "do_train",
    "do_eval",
    "do_predict",
}
TOOL_PREFIXES = (
    "logging_",
    "save_",
    "eval_",
    "hub_",
    "push_to_hub",
    "dataloader_",
    "ddp_",
    "fsdp",
    "deepspeed",
    "include_",
    "trackio",
    "resume_from",
    "load_best",
    "metric_for_best",
    "greater_is_better",
    "accelerator_config",
    "parallelism_config",
    "split_batches",
    "dispatch_batches",
    "even_batches",
    "use_seedable_sampler",
    "non_blocking",
    "gradient_accumulation_kwargs",
)
# torch optimizer flags that choose an implementation, not the update
IMPLEMENTATION_FLAGS = {"foreach", "fused", "capturable", "differentiable", "initial_lr", "lr"}
# the typed fields' names as settings (config.<name>), in the order the pages list them
TYPED_KEYS = tuple(
    f"config.{k}"
    for k in (
        "lr",
        "lr_schedule",
        "warmup_steps",
        "min_lr_ratio",
        "betas",
        "eps",
        "weight_decay",
        "grad_clip",
        "batch_size",
        "tokens_per_step",
        "precision",
        "steps",
        *run_info.SGG_KEYS,
    )
)

# settings that only SGG reads: part of "the optimizer" when SGG is compared with AdamW
SGG_ONLY = frozenset({*run_info.SGG_KEYS, "beta3"})

_INFO: dict[int, tuple[Mapping, RunInfo]] = {}


def sgg_only(key: str) -> bool:
    """Settings only SGG reads (in an AdamW run they configure a shadow clustering at most)."""
    return key.rsplit(".", 1)[-1] in SGG_ONLY


def info_of(meta: Mapping) -> RunInfo:
    """`run_info.from_meta(meta)`, kept per run.json object (the pages ask for it many times a
    rerun; run.json objects are read-only once loaded)."""
    hit = _INFO.get(id(meta))
    if hit is not None and hit[0] is meta:
        return hit[1]
    info = run_info.from_meta(meta)
    if len(_INFO) > 4096:
        _INFO.clear()
    _INFO[id(meta)] = (meta, info)
    return info


# the optimizer names the pages tell apart; `applies_sgg` and `is_adamw` are the one place a
# name is compared with them
SGG = "sgg"
ADAMW = "adamw"
UNKNOWN_OPTIMIZER = "unknown optimizer"  # what a person reads for a run that does not say


def optimizer_of(meta: Mapping) -> str:
    """The optimizer's name, lower case, from the typed description; UNKNOWN_OPTIMIZER when
    the run does not say (a foreign run logged without its settings)."""
    name = info_of(meta).optimizer
    return name if name and name.strip("? ") else UNKNOWN_OPTIMIZER


def names_sgg(optimizer: str) -> bool:
    """Whether an optimizer name (as `optimizer_of` gives it) is SGG."""
    return optimizer == SGG


def names_adamw(optimizer: str) -> bool:
    """Whether an optimizer name (as `optimizer_of` gives it) is AdamW."""
    return optimizer == ADAMW


def applies_sgg(meta: Mapping) -> bool:
    """The run trained with SGG: its factors were applied (a shadow clustering of another
    optimizer is not)."""
    return names_sgg(optimizer_of(meta))


def is_adamw(meta: Mapping) -> bool:
    """The run trained with AdamW (with or without a shadow clustering)."""
    return names_adamw(optimizer_of(meta))


def shadow_of(meta: Mapping) -> bool:
    """Whether the run computed SGG's grouping only to show it (an observe-only shadow)."""
    sgg = info_of(meta).sgg
    return sgg is not None and not sgg.applied


def tool_option(key: str) -> bool:
    """Another tool's option about logging, saving or devices (by its leaf name)."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf in TOOL_OPTIONS or leaf.startswith(TOOL_PREFIXES)


def flatten(d, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their JSON-ish repr."""
    out: dict[str, object] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, Mapping):
                out.update(flatten(v, key))
            else:
                out[key] = str(v) if isinstance(v, list) else v
    return out


def typed_settings(meta: Mapping) -> dict[str, object]:
    """The typed fields the run records, as config.<name>."""
    return {f"config.{k}": v for k, v in info_of(meta).settings().items()}


def untyped_settings(meta: Mapping) -> dict[str, object]:
    """The rest of the config, by leaf name (the full path where two leaves share a name):
    without the names the typed fields read and without other tools' logging options. A run
    without a config: its optimizer's other hyperparameters (momentum, amsgrad, ...)."""
    info = info_of(meta)
    leaves = flatten(info.raw)
    if not leaves:
        opt = meta.get("optimizer")
        hp = opt.get("hyperparameters") if isinstance(opt, Mapping) else None
        hp = hp if isinstance(hp, Mapping) else {}
        leaves = {k: v for k, v in flatten(hp).items() if k not in IMPLEMENTATION_FLAGS}
    kept = {
        path: v
        for path, v in leaves.items()
        if path.rsplit(".", 1)[-1] not in run_info.TYPED_NAMES and not tool_option(path)
    }
    count: dict[str, int] = {}
    for path in kept:
        leaf = path.rsplit(".", 1)[-1]
        count[leaf] = count.get(leaf, 0) + 1
    return {
        f"config.{path.rsplit('.', 1)[-1] if count[path.rsplit('.', 1)[-1]] == 1 else path}": v
        for path, v in kept.items()
    }


def canonical(v: object) -> str:
    """A value as compared: numbers by value (4 and 4.0, as TensorBoard logs ints, are one
    value), pairs as pairs, the rest by repr."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return repr(v)
    if isinstance(v, int | float):
        return repr(float(v)) if math.isfinite(float(v)) else repr(v)
    if isinstance(v, tuple | list):
        return "(" + ", ".join(canonical(x) for x in v) + ")"
    return repr(v)

"""One typed description of a run: what it was trained with, whatever wrote it.

run.json's `optimizer` and `config` are free-form (our recorder, the HF Trainer's nested
`training_arguments`, a foreign tool's flat hyperparameters in its own names), so reading them by
bare keys compares `config.lr` with `learning_rate` and "adam beta1 not set" with 0.9. `RunInfo`
is the one reading of them: typed fields in one vocabulary, filled from run.json's stored
`description` (written by the recorder and the foreign readers) or, for a run written before it
existed, derived from the legacy fields in the same way. A value of the wrong type never raises:
it becomes a sentence in `RunInfo.problems` naming the field, and the field reads as not
recorded. Needs the standard library only (the run format's rule: pyarrow + stdlib).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("recorded", "hf", "lightning", "tensorboard", "wandb", "mlflow", "csv")
# which gradient norm a run's `grad_norm` column holds: the recorder measures the gradient the
# optimizer received (after any clipping); the HF Trainer logs what clip_grad_norm_ returned,
# the total norm before clipping
PRE_CLIP, POST_CLIP = "pre_clip", "post_clip"
GRAD_NORMS = (PRE_CLIP, POST_CLIP)
KNOWN_OPTIMIZERS = ("sgg", "adamw", "adam", "sgd", "adafactor", "lion", "muon", "rmsprop")


@dataclass(frozen=True)
class LrSchedule:
    """The learning-rate schedule, as far as the run says."""

    kind: str | None = None  # "linear", "cosine", "constant", ... (None: not recorded)
    warmup_steps: int | None = None
    min_ratio: float | None = None  # the lowest learning rate as a share of the peak


@dataclass(frozen=True)
class SGGOptions:
    """SGG's options; `applied` False: an observe-only (shadow) clustering of another optimizer,
    computed for the Clusters view and not applied to the weights."""

    applied: bool = True
    n_clusters: int | None = None
    recluster_interval: int | None = None
    scale_decay: float | None = None
    scale_bounds: tuple[float, float] | None = None
    cluster_on: str | None = None
    global_mda: str | None = None
    clamp: str | None = None
    scale_weight_decay: bool | None = None
    min_ndim: int | None = None
    mda_eps: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """What a run was trained with. None everywhere means "not recorded in this run"."""

    source: str = "recorded"  # one of SOURCES
    optimizer: str | None = None  # lower case: "sgg", "adamw", ...
    base: str | None = None  # SGG's base optimizer, lower case
    lr: float | None = None  # the peak (configured) learning rate
    lr_schedule: LrSchedule = LrSchedule()
    betas: tuple[float, float] | None = None
    eps: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None  # max gradient norm; 0.0: no clipping; None: not recorded
    grad_norm: str | None = None  # PRE_CLIP / POST_CLIP: what the grad_norm column holds
    batch_size: int | None = None  # examples per optimizer step (per process)
    tokens_per_step: int | None = None
    precision: str | None = None  # "fp32", "bf16", "fp16", ...
    seed: int | None = None
    steps: int | None = None  # planned optimizer steps
    sgg: SGGOptions | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    problems: tuple[str, ...] = field(default=(), compare=False, hash=False)

    def settings(self) -> dict[str, object]:
        """The training settings two runs are compared by, {name: value}, only those recorded;
        SGG's options only when SGG is applied (a shadow clustering changes no training)."""
        s = self.lr_schedule
        out: dict[str, object] = {
            "lr": self.lr,
            "lr_schedule": s.kind,
            "warmup_steps": s.warmup_steps,
            "min_lr_ratio": s.min_ratio,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "grad_clip": self.grad_clip,
            "batch_size": self.batch_size,
            "tokens_per_step": self.tokens_per_step,
            "precision": self.precision,
            "steps": self.steps,
        }
        if self.sgg is not None and self.sgg.applied:
            opts = dataclasses.asdict(self.sgg)
            opts.pop("applied")
            out.update(opts)
        return {k: v for k, v in out.items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        """run.json's `description` (without `raw`: the config is run.json's own `config`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("raw")
        out["problems"] = list(self.problems)
        out["lr_schedule"] = dataclasses.asdict(self.lr_schedule)
        out["betas"] = list(self.betas) if self.betas is not None else None
        if self.sgg is not None:
            sgg = dataclasses.asdict(self.sgg)
            sgg["scale_bounds"] = list(self.sgg.scale_bounds) if self.sgg.scale_bounds else None
            out["sgg"] = sgg
        return out


# names that feed the typed fields, in every tool's spelling: a config key with one of these
# leaf names is read into RunInfo and not compared again as an untyped setting
LR_KEYS = ("lr", "learning_rate", "peak_lr", "max_lr")
BETA_KEYS = ("betas",)
BETA1_KEYS = ("beta1", "adam_beta1")
BETA2_KEYS = ("beta2", "adam_beta2")
EPS_KEYS = ("eps", "adam_epsilon", "adam_eps", "epsilon")
WD_KEYS = ("weight_decay", "wd")
CLIP_KEYS = ("grad_clip", "max_grad_norm", "clip_grad_norm", "gradient_clip_val", "grad_clip_norm")
BATCH_KEYS = ("batch_size", "train_batch_size", "per_device_train_batch_size", "micro_batch_size")
ACCUM_KEYS = ("gradient_accumulation_steps", "accumulate_grad_batches")
TOKENS_KEYS = ("tokens_per_step", "tokens_per_batch")
SEQ_KEYS = ("seq_len", "max_seq_length", "block_size", "seq_length")
STEPS_KEYS = ("steps", "max_steps", "total_steps", "num_steps", "train_steps", "training_steps")
WARMUP_KEYS = ("warmup_steps", "num_warmup_steps", "warmup_iters")
WARMUP_RATIO_KEYS = ("warmup_ratio",)
MIN_RATIO_KEYS = ("min_lr_ratio", "min_lr_rate")
SCHEDULE_KEYS = ("lr_schedule", "lr_scheduler_type", "schedule", "lr_scheduler", "scheduler")
PRECISION_KEYS = ("precision", "mixed_precision", "dtype", "amp_dtype")
HALF_FLAGS = ("bf16", "fp16")
SEED_KEYS = ("seed",)
OPTIMIZER_KEYS = ("optimizer", "optim", "optimizer_name", "optimizer_type", "opt")
SGG_KEYS = tuple(f.name for f in dataclasses.fields(SGGOptions) if f.name != "applied")
TYPED_NAMES = frozenset(
    LR_KEYS
    + BETA_KEYS
    + BETA1_KEYS
    + BETA2_KEYS
    + EPS_KEYS
    + WD_KEYS
    + CLIP_KEYS
    + BATCH_KEYS
    + ACCUM_KEYS
    + TOKENS_KEYS
    + STEPS_KEYS
    + WARMUP_KEYS
    + WARMUP_RATIO_KEYS
    + MIN_RATIO_KEYS
    + SCHEDULE_KEYS
    + PRECISION_KEYS
    + HALF_FLAGS
    + SEED_KEYS
    + OPTIMIZER_KEYS
    + SGG_KEYS
)

PRECISIONS = {
    "fp32": ("32", "32-true", "fp32", "float32", "torch.float32", "float", "no", "full"),
    "bf16": ("bf16", "bf16-mixed", "bfloat16", "torch.bfloat16"),
    "fp16": ("16", "16-mixed", "fp16", "float16", "torch.float16", "half"),
    "bf16-true": ("bf16-true",),
    "fp16-true": ("16-true", "fp16-true"),
    "fp64": ("64", "64-true", "fp64", "float64", "double"),
}
_PRECISION_OF = {alias: name for name, aliases in PRECISIONS.items() for alias in aliases}


# --------------------------------------------------------------------------- value checks


class _Reader:
    """Checks values and collects the sentences about those of the wrong type."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, value: Any, what: str) -> None:
        self.problems.append(
            f"run.json: {path} is {_show(value)}, not {what}; treated as not recorded."
        )

    def number(self, path: str, v: Any, *, positive: bool = False) -> float | None:
        x = _as_number(v)
        if x is None or (positive and x <= 0) or x < 0:
            self.bad(path, v, "a positive number" if positive else "a non-negative number")
            return None
        return x

    def integer(self, path: str, v: Any, *, minimum: int | None = 0) -> int | None:
        x = _as_number(v)
        if x is None or not float(x).is_integer() or (minimum is not None and x < minimum):
            self.bad(path, v, "an integer" if minimum is None else f"an integer >= {minimum}")
            return None
        return int(x)

    def text(self, path: str, v: Any) -> str | None:
        if isinstance(v, Mapping):  # {"name": "cosine", ...}, {"class_path": ...}
            v = v.get("name") or v.get("class_path") or v.get("type")
        if not isinstance(v, str) or not v.strip():
            self.bad(path, v, "text")
            return None
        return v.strip()

    def pair(self, path: str, v: Any) -> tuple[float, float] | None:
        if isinstance(v, str):  # "[0.9, 0.95]" as a foreign tool logs it
            parts = [p for p in re.split(r"[\s,()\[\]]+", v) if p]
            v = parts if len(parts) == 2 else v
        if isinstance(v, list | tuple) and len(v) == 2:
            a, b = _as_number(v[0]), _as_number(v[1])
            if a is not None and b is not None:
                return (a, b)
        self.bad(path, v, "a pair of numbers")
        return None

    def flag(self, path: str, v: Any) -> bool | None:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        self.bad(path, v, "true or false")
        return None


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if isinstance(v, int | float) and math.isfinite(float(v)):
        return float(v)
    return None


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def optimizer_name(text: str) -> str:
    """'adamw_torch_fused' -> 'adamw', 'torch.optim.AdamW' -> 'adamw', 'SGG' -> 'sgg'; other
    names lower-cased as they are."""
    low = text.strip().lower().rsplit(".", 1)[-1]
    for name in KNOWN_OPTIMIZERS:  # "sgg" before "adamw" before "adam"
        if low.startswith(name):
            return name
    return low


def precision_name(text: str) -> str:
    low = text.strip().lower()
    return _PRECISION_OF.get(low, low)


# --------------------------------------------------------------------------- lookup


class _Settings:
    """The places a setting may be, searched in order: the config's top level (the user's own
    words), the optimizer's hyperparameters (what it ran with; a scheduler's `initial_lr` is
    the peak), the settings a recorder callback passed (`hints`: the HF TrainingArguments,
    Lightning's trainer), then one level down in the config (the HF callback's
    `training_arguments`, {"optimizer": {...}}): a Trainer given its own optimizer lists
    learning_rate and adam_beta1 that it did not use."""

    def __init__(
        self, config: Mapping[str, Any], hp: Mapping[str, Any], hints: Mapping[str, Any] | None
    ) -> None:
        self.layers: list[tuple[str, Mapping[str, Any]]] = [("config", config)]
        if hp:
            peak = {"lr": hp["initial_lr"]} if hp.get("initial_lr") is not None else {}
            self.layers.append(("optimizer.hyperparameters", {**hp, **peak}))
        if hints:
            self.layers.append(("settings", hints))
        nested = sorted(
            ((k, v) for k, v in config.items() if isinstance(v, Mapping)),
            key=lambda kv: kv[0] != "training_arguments",
        )
        self.layers += [(f"config.{k}", v) for k, v in nested]

    def find(
        self, keys: tuple[str, ...], check: Callable[[str, Any], Any], where: str | None = None
    ) -> tuple[Any, str | None, Mapping[str, Any] | None]:
        """(the first value that passes `check`, its path, the mapping it was in)."""
        for prefix, layer in self.layers:
            if where is not None and prefix != where:
                continue
            for key in keys:
                v = layer.get(key)
                if v is None:
                    continue
                path = f"{prefix}.{key}"
                x = check(path, v)
                if x is not None:
                    return x, path, layer
        return None, None, None


# --------------------------------------------------------------------------- from run.json


def from_meta(meta: Any) -> RunInfo:
    """The run's description: run.json's stored `description` where present (fields it lacks
    are derived), else derived from the legacy fields. Never raises."""
    if not isinstance(meta, Mapping):
        return RunInfo(problems=("run.json is not a JSON object.",))
    derived = derive(meta)
    stored = meta.get("description")
    if stored is None:
        return derived
    if not isinstance(stored, Mapping):
        msg = f"run.json: description is {_show(stored)}, not an object; derived from the rest."
        return dataclasses.replace(derived, problems=(*derived.problems, msg))
    return _from_stored(stored, derived)


def _from_stored(d: Mapping[str, Any], derived: RunInfo) -> RunInfo:
    r = _Reader()
    values: dict[str, Any] = {}

    def get(name: str, check: Callable[[str, Any], Any]) -> None:
        if name in d:
            v = d[name]
            values[name] = None if v is None else check(f"description.{name}", v)

    get("source", r.text)  # SOURCES, or a newer reader's kind
    get("optimizer", lambda p, v: optimizer_name(t) if (t := r.text(p, v)) else None)
    get("base", lambda p, v: t.lower() if (t := r.text(p, v)) else None)
    get("lr", lambda p, v: r.number(p, v, positive=True))
    get("betas", r.pair)
    get("eps", r.number)
    get("weight_decay", r.number)
    get("grad_clip", r.number)
    get("grad_norm", lambda p, v: _choice(r, p, v, GRAD_NORMS))
    get("batch_size", lambda p, v: r.integer(p, v, minimum=1))
    get("tokens_per_step", lambda p, v: r.integer(p, v, minimum=1))
    get("precision", lambda p, v: precision_name(t) if (t := r.text(p, v)) else None)
    get("seed", lambda p, v: r.integer(p, v, minimum=None))
    get("steps", lambda p, v: r.integer(p, v, minimum=1))
    get("lr_schedule", lambda p, v: _schedule_of(r, p, v))
    get("sgg", lambda p, v: _sgg_of(r, p, v, applied=None))
    kept = d.get("problems")
    kept = tuple(str(x) for x in kept) if isinstance(kept, list) else ()
    return dataclasses.replace(
        derived, **values, problems=tuple(dict.fromkeys(kept + tuple(r.problems)))
    )


def _choice(r: _Reader, path: str, v: Any, allowed: tuple[str, ...]) -> str | None:
    if isinstance(v, str) and v in allowed:
        return v
    r.bad(path, v, "one of " + ", ".join(allowed))
    return None


def _schedule_of(r: _Reader, path: str, v: Any) -> LrSchedule | None:
    if not isinstance(v, Mapping):
        r.bad(path, v, "an object")
        return None
    kind, warm, low = v.get("kind"), v.get("warmup_steps"), v.get("min_ratio")
    return LrSchedule(
        kind=None if kind is None else r.text(f"{path}.kind", kind),
        warmup_steps=None if warm is None else r.integer(f"{path}.warmup_steps", warm),
        min_ratio=None if low is None else r.number(f"{path}.min_ratio", low),
    )


def _sgg_of(r: _Reader, path: str, v: Any, applied: bool | None) -> SGGOptions | None:
    """SGG's options from a dict (the optimizer's `sgg`/`shadow` object, or a description's)."""
    if not isinstance(v, Mapping):
        r.bad(path, v, "an object")
        return None

    def one(key: str, check: Callable[[str, Any], Any]) -> Any:
        x = v.get(key)
        return None if x is None else check(f"{path}.{key}", x)

    if applied is None:  # a stored description says
        applied = one("applied", r.flag)
        applied = True if applied is None else applied
    return SGGOptions(
        applied=applied,
        n_clusters=one("n_clusters", lambda p, x: r.integer(p, x, minimum=1)),
        recluster_interval=one("recluster_interval", lambda p, x: r.integer(p, x, minimum=1)),
        scale_decay=one("scale_decay", r.number),
        scale_bounds=one("scale_bounds", r.pair),
        cluster_on=one("cluster_on", r.text),
        global_mda=one("global_mda", r.text),
        clamp=one("clamp", r.text),
        scale_weight_decay=one("scale_weight_decay", r.flag),
        min_ndim=one("min_ndim", r.integer),
        mda_eps=one("mda_eps", r.number),
    )


def derive(
    meta: Mapping[str, Any],
    *,
    hints: Mapping[str, Any] | None = None,
    source: str | None = None,
    grad_norm: str | None = None,
) -> RunInfo:
    """The description from run.json's legacy fields (`optimizer`, `config`, `seed`,
    `source`): the optimizer's own hyperparameters first (what it really ran with), then the
    config in our names or another tool's, then `hints` (settings a callback knows that the
    config may not hold). `source` and `grad_norm` override what the meta says."""
    r = _Reader()
    opt, hp, sgg = _optimizer_parts(r, meta.get("optimizer"))
    config = meta.get("config")
    if config is not None and not isinstance(config, Mapping):
        r.problems.append(f"run.json: config is {_show(config)}, not an object; ignored.")
    cfg = _Settings(config if isinstance(config, Mapping) else {}, hp, hints)
    found_source = source or _source_of(meta)
    name = opt.get("name") if isinstance(opt, Mapping) else opt
    name = optimizer_name(name) if isinstance(name, str) and name.strip("? ") else None
    if name is None:
        name = cfg.find(
            OPTIMIZER_KEYS, lambda p, v: optimizer_name(t) if (t := r.text(p, v)) else None
        )[0]
    base = opt.get("base") if isinstance(opt, Mapping) else None
    base = base.lower() if name == "sgg" and isinstance(base, str) and base else None
    steps = cfg.find(STEPS_KEYS, lambda p, v: _planned_steps(r, p, v))[0]
    if name == "sgg":  # the config's own words first, as for every setting
        sgg = _sgg_from_config(r, cfg, sgg)
    return RunInfo(
        source=found_source,
        optimizer=name,
        base=base,
        lr=cfg.find(LR_KEYS, lambda p, v: r.number(p, v, positive=True))[0],
        lr_schedule=_schedule(r, cfg, steps),
        betas=_betas(r, cfg),
        eps=cfg.find(EPS_KEYS, r.number)[0],
        weight_decay=cfg.find(WD_KEYS, r.number)[0],
        grad_clip=cfg.find(CLIP_KEYS, r.number)[0],
        grad_norm=grad_norm or _grad_norm_of(meta, found_source),
        batch_size=_batch_size(r, cfg),
        tokens_per_step=_tokens_per_step(r, cfg),
        precision=_precision(r, cfg),
        seed=_seed(r, cfg, meta),
        steps=steps,
        sgg=sgg,
        raw=config if isinstance(config, Mapping) else {},
        problems=tuple(dict.fromkeys(r.problems)),
    )


def _optimizer_parts(
    r: _Reader, opt: Any
) -> tuple[Mapping[str, Any] | str | None, Mapping[str, Any], SGGOptions | None]:
    """(the optimizer object or its name, its hyperparameters, SGG's options)."""
    if opt is None or isinstance(opt, str):
        return opt, {}, None
    if not isinstance(opt, Mapping):
        r.problems.append(f"run.json: optimizer is {_show(opt)}, not an object; ignored.")
        return None, {}, None
    hp = opt.get("hyperparameters")
    if hp is not None and not isinstance(hp, Mapping):
        r.problems.append(
            f"run.json: optimizer.hyperparameters is {_show(hp)}, not an object; ignored."
        )
        hp = None
    sgg = None
    if opt.get("sgg") is not None:
        sgg = _sgg_of(r, "optimizer.sgg", opt["sgg"], applied=True)
    elif opt.get("shadow") is not None:
        sgg = _sgg_of(r, "optimizer.shadow", opt["shadow"], applied=False)
    return opt, hp or {}, sgg


def _source_of(meta: Mapping[str, Any]) -> str:
    """A foreign run's reader kind (run.json `source.kind`), else "recorded"."""
    src = meta.get("source")
    kind = src.get("kind") if isinstance(src, Mapping) else None
    return kind if isinstance(kind, str) and kind else "recorded"


def _grad_norm_of(meta: Mapping[str, Any], source: str) -> str | None:
    """What a run's grad_norm column holds: our recorder's is the gradient the optimizer got
    (after any clipping); the HF Trainer's, logged through any tool, is clip_grad_norm_'s
    return value (before clipping); another tool's own metric: not known."""
    if source in ("recorded", "hf", "lightning"):
        return POST_CLIP
    src = meta.get("source") if isinstance(meta.get("source"), Mapping) else {}
    columns = src.get("columns") if isinstance(src.get("columns"), Mapping) else {}
    logged = str(columns.get("grad_norm") or "")
    if logged.startswith("sgg/"):  # the recorder's own mirror
        return POST_CLIP
    if logged and src.get("writer") == "hf":
        return PRE_CLIP
    return None


def _betas(r: _Reader, cfg: _Settings) -> tuple[float, float] | None:
    """`betas`, or beta1 and beta2 apart (adam_beta1 / adam_beta2), the first place that has
    them."""
    for prefix, layer in cfg.layers:
        x = cfg.find(BETA_KEYS, r.pair, where=prefix)[0]
        if x is not None:
            return x
        b1 = next((layer[k] for k in BETA1_KEYS if layer.get(k) is not None), None)
        b2 = next((layer[k] for k in BETA2_KEYS if layer.get(k) is not None), None)
        if b1 is not None and b2 is not None:
            x = r.pair(f"{prefix}.beta1/beta2", [b1, b2])
            if x is not None:
                return x
    return None


def _planned_steps(r: _Reader, path: str, v: Any) -> int | None:
    x = _as_number(v)
    if x is not None and x <= 0 and float(x).is_integer():  # HF's max_steps=-1: by epochs
        return None
    return r.integer(path, v, minimum=1)


def _tokens_per_step(r: _Reader, cfg: _Settings) -> int | None:
    """The config's tokens per step, else batch size (with accumulation) x sequence length:
    what our recorder's config says as `batch_size` and `seq_len`."""
    said = cfg.find(TOKENS_KEYS, lambda p, v: r.integer(p, v, minimum=1))[0]
    if said is not None:
        return said
    batch = _batch_size(r, cfg)
    seq = cfg.find(SEQ_KEYS, lambda p, v: r.integer(p, v, minimum=1))[0]
    return batch * seq if batch is not None and seq is not None else None


def _batch_size(r: _Reader, cfg: _Settings) -> int | None:
    size, _, layer = cfg.find(BATCH_KEYS, lambda p, v: r.integer(p, v, minimum=1))
    if size is None or layer is None:
        return None
    accum = next((layer[k] for k in ACCUM_KEYS if layer.get(k) is not None), 1)
    accum = _as_number(accum)
    return size * int(accum) if accum and float(accum).is_integer() and accum >= 1 else size


def _schedule(r: _Reader, cfg: _Settings, steps: int | None) -> LrSchedule:
    kind = cfg.find(SCHEDULE_KEYS, lambda p, v: t.lower() if (t := r.text(p, v)) else None)[0]
    warm = cfg.find(WARMUP_KEYS, lambda p, v: _warmup(r, p, v, steps))[0]
    if warm is None and steps is not None:
        ratio = cfg.find(WARMUP_RATIO_KEYS, r.number)[0]
        warm = round(ratio * steps) if ratio is not None and ratio <= 1 else None
    low = cfg.find(MIN_RATIO_KEYS, r.number)[0]
    return LrSchedule(kind=kind, warmup_steps=warm, min_ratio=low)


def _warmup(r: _Reader, path: str, v: Any, steps: int | None) -> int | None:
    x = _as_number(v)
    if x is not None and 0 < x < 1:  # transformers 5: a fraction of the steps
        return round(x * steps) if steps is not None else None
    return r.integer(path, v)


def _precision(r: _Reader, cfg: _Settings) -> str | None:
    """ "bf16", "fp32", ...: a precision setting (Lightning's 32 or "bf16-mixed", a dtype), else
    the HF Trainer's bf16 / fp16 flags."""

    def check(path: str, v: Any) -> str | None:
        if isinstance(v, int | float) and not isinstance(v, bool):  # Lightning's precision=32
            v = f"{v:g}"
        t = r.text(path, v)
        return precision_name(t) if t else None

    name = cfg.find(PRECISION_KEYS, check)[0]
    if name is not None:
        return name
    for _, layer in cfg.layers:  # the HF Trainer's flags
        flags = {k: layer[k] for k in HALF_FLAGS if isinstance(layer.get(k), bool)}
        if flags:
            return next((k for k in HALF_FLAGS if flags.get(k)), "fp32")
    return None


def _seed(r: _Reader, cfg: _Settings, meta: Mapping[str, Any]) -> int | None:
    x = cfg.find(SEED_KEYS, lambda p, v: r.integer(p, v, minimum=None))[0]
    if x is None and meta.get("seed") is not None:
        x = r.integer("seed", meta["seed"], minimum=None)
    return x


def _sgg_from_config(r: _Reader, cfg: _Settings, recorded: SGGOptions | None) -> SGGOptions | None:
    """An SGG run's options: the config's top-level names (n_clusters, recluster_interval, ...)
    over the recorder's `optimizer.sgg`; a run logged by another tool has only the config's
    (at any level)."""
    where = "config" if recorded is not None else None
    found = {}
    for key in SGG_KEYS:
        v, _, _ = cfg.find((key,), lambda p, x: x, where=where)
        if v is not None:
            found[key] = v
    if not found:
        return recorded
    opts = _sgg_of(r, "config", found, applied=True)
    if recorded is None or opts is None:
        return opts
    given = {k: getattr(opts, k) for k in found if getattr(opts, k) is not None}
    return dataclasses.replace(recorded, **given)

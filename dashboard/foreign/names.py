"""Which logged metric fills which run-format column: configurable, HF Trainer and Lightning first.

Each column has an ordered list of candidate names (shell-style patterns, `fnmatch`): the first
candidate that a run logged wins, so a run that logged both `train/loss` and `loss` reads the
HF-style name. The defaults cover the recorder's own mirrors (`sgg/loss`, `sgg/lr`,
`sgg/grad_norm`, `sgg/tokens`: recorder/mirrors.py, read with no configuration and tried first,
since they are the recorder's exact per-step values), what the Hugging Face `Trainer`'s
TensorBoard, W&B and MLflow callbacks write (`train/loss`, `loss`, `eval/loss`, `eval_loss`,
`train/learning_rate`, ...) and what Lightning users usually log (`train_loss`, `val_loss`,
`lr-AdamW` from `LearningRateMonitor`, `grad_2.0_norm_total` from
`lightning.pytorch.utilities.grad_norm`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_FILE", "DEFAULT_NAMES", "MetricNames", "names_for"]

CONFIG_FILE = "foreign-metrics.json"  # in the runs folder: extra names, tried first


def _tuple(*names: str) -> tuple[str, ...]:
    return tuple(names)


@dataclass(frozen=True)
class MetricNames:
    """Candidate metric names per column of the `steps` and `evals` tables."""

    loss: tuple[str, ...] = _tuple(
        "sgg/loss",  # the recorder's own mirrors (recorder/mirrors.py)
        "train/loss",  # HF Trainer (TensorBoard, W&B)
        "loss",  # HF Trainer (MLflow), plain loops
        "train_loss",  # Lightning convention
        "train_loss_step",  # Lightning self.log(..., on_step=True, on_epoch=True)
        "train/loss_step",
        "training_loss",
        "Loss/train",
        "trainer/loss",
    )
    lr: tuple[str, ...] = _tuple(
        "sgg/lr",
        "train/learning_rate",
        "learning_rate",
        "lr",
        "train/lr",
        "lr-*",  # Lightning LearningRateMonitor: lr-<OptimizerClass>[/pg<i>]
    )
    grad_norm: tuple[str, ...] = _tuple(
        "sgg/grad_norm",  # after clipping, as the recorder's (the HF Trainer's: before)
        "train/grad_norm",
        "grad_norm",
        "grad_2.0_norm_total",  # lightning.pytorch.utilities.grad_norm(module, 2)
        "grad_norm/total",
        "train/global_grad_norm",
    )
    tokens: tuple[str, ...] = _tuple(
        "sgg/tokens",
        "train/num_input_tokens_seen",
        "num_input_tokens_seen",
        "tokens",
        "train/tokens",
    )
    # split -> candidates; the HF Trainer's extra eval sets come from `eval_split_pattern`
    evals: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "val": (
                "eval/loss",
                "eval_loss",
                "val_loss",
                "val/loss",
                "validation/loss",
                "valid/loss",
                "val_loss_epoch",
                "Loss/val",
            ),
            "test": ("test/loss", "test_loss"),
        }
    )
    eval_split_pattern: str = r"^eval[/_](?P<split>[^/]+)_loss$"  # eval/<name>_loss
    # the step axis of histories that count log calls rather than optimizer steps (W&B)
    step: tuple[str, ...] = _tuple(
        "train/global_step", "trainer/global_step", "global_step", "step", "train/step"
    )
    # added to every logged step so that step 1 is the first optimizer step, as in our runs;
    # None: +1 for runs written by Lightning (its loggers count steps from 0), else 0
    step_offset: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "lr", "grad_norm", "tokens", "step"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a sequence of metric names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.step_offset is not None and (
            isinstance(self.step_offset, bool) or not isinstance(self.step_offset, int)
        ):
            raise ValueError(f"step_offset must be an int or None, got {self.step_offset!r}")
        if not isinstance(self.evals, Mapping):
            raise ValueError(f"evals must map a split to metric names, got {self.evals!r}")
        try:
            re.compile(self.eval_split_pattern)
        except re.error as e:
            raise ValueError(f"eval_split_pattern is not a regular expression ({e})") from e

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (saved in a foreign run's meta so that every reader uses the same names)."""
        d = dataclasses.asdict(self)
        d["evals"] = {k: list(v) for k, v in self.evals.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> MetricNames:
        if not d:
            return DEFAULT_NAMES
        d = dict(d)
        if "evals" in d:
            d["evals"] = {str(k): tuple(v) for k, v in dict(d["evals"]).items()}
        return cls(**d)

    def extended(self, extra: Mapping[str, Any]) -> MetricNames:
        """These names with `extra`'s candidates tried first (unknown keys: ValueError)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(extra) - known
        if unknown:
            raise ValueError(f"unknown metric name settings: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for key, value in extra.items():
            if key in ("eval_split_pattern", "step_offset"):
                changes[key] = value
            elif key == "evals":
                if not isinstance(value, Mapping):
                    raise ValueError(f"evals must map a split to metric names, got {value!r}")
                evals = {k: tuple(v) for k, v in self.evals.items()}
                for split, names in value.items():
                    names = [names] if isinstance(names, str) else list(names)
                    evals[split] = (*names, *evals.get(split, ()))
                changes[key] = evals
            else:
                names = [value] if isinstance(value, str) else list(value)
                changes[key] = (*names, *getattr(self, key))
        return dataclasses.replace(self, **changes)

    def pick(self, column: str, logged: Iterable[str]) -> str | None:
        """The logged metric name that fills `column` (None: not recorded in this run)."""
        return first_match(getattr(self, column), logged)

    def eval_tags(self, logged: Iterable[str]) -> dict[str, str]:
        """split -> the logged metric name holding that split's evaluation loss."""
        logged = list(logged)
        out: dict[str, str] = {}
        used: set[str] = set()
        for split, candidates in self.evals.items():
            tag = first_match(candidates, logged)
            if tag is not None:
                out[split] = tag
                used.add(tag)
        pattern = re.compile(self.eval_split_pattern)
        for tag in sorted(logged):
            m = pattern.match(tag)
            if m and tag not in used and m.group("split") not in out:
                out[m.group("split")] = tag
        return out


def first_match(candidates: Iterable[str], logged: Iterable[str]) -> str | None:
    names = sorted(set(logged))
    present = set(names)
    for pattern in candidates:
        if pattern in present:
            return pattern
        if any(ch in pattern for ch in "*?["):
            hits = fnmatch.filter(names, pattern)
            if hits:
                return min(hits, key=lambda n: (len(n), n))  # lr-AdamW before lr-AdamW/pg1
    return None


DEFAULT_NAMES = MetricNames()


def names_for(root: Path) -> tuple[MetricNames, list[str]]:
    """The names for the runs under `root`: the defaults, extended by `root/foreign-metrics.json`
    when present ({"loss": ["my/loss"], "evals": {"val": ["my/val_loss"]}, ...}); a bad file
    is reported and ignored."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return DEFAULT_NAMES, []
    try:
        extra = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(extra, dict):
            raise ValueError("expected a JSON object")
        return DEFAULT_NAMES.extended(extra), []
    except (OSError, ValueError, TypeError) as e:
        return DEFAULT_NAMES, [f"`{CONFIG_FILE}` was ignored ({e})."]

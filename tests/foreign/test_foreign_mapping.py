"""The pure part: which logged name fills which column, and how values and configs are read."""

from __future__ import annotations

import pytest

from dashboard.foreign.mapping import build_meta, infer_optimizer, scalar_value
from dashboard.foreign.names import DEFAULT_NAMES, MetricNames


def test_first_candidate_wins_and_patterns_match():
    logged = ["loss", "train/loss", "lr-AdamW/pg1", "lr-AdamW", "epoch"]
    assert DEFAULT_NAMES.pick("loss", logged) == "train/loss"  # HF's name first
    assert DEFAULT_NAMES.pick("lr", logged) == "lr-AdamW"  # group 0, not /pg1
    assert DEFAULT_NAMES.pick("grad_norm", logged) is None  # not recorded


def test_eval_splits_default_and_hf_extra_eval_sets():
    logged = ["eval/loss", "eval/wiki_loss", "eval/code_loss", "test_loss", "eval/runtime"]
    assert DEFAULT_NAMES.eval_tags(logged) == {
        "val": "eval/loss",
        "test": "test_loss",
        "code": "eval/code_loss",
        "wiki": "eval/wiki_loss",
    }


def test_extended_names_are_tried_first_and_round_trip():
    names = DEFAULT_NAMES.extended({"loss": "objective", "evals": {"val": ["heldout"]}})
    assert names.pick("loss", ["train/loss", "objective"]) == "objective"
    assert names.eval_tags(["eval/loss", "heldout"])["val"] == "heldout"
    assert MetricNames.from_dict(names.to_dict()) == names


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": "train/loss"}, "loss"),  # a string, not a sequence of names
        ({"lr": [1, 2]}, "lr"),
        ({"evals": ["val_loss"]}, "evals"),
        ({"eval_split_pattern": "("}, "eval_split_pattern"),
        ({"step_offset": "1"}, "step_offset"),
        ({"step_offset": True}, "step_offset"),
    ],
)
def test_bad_names_raise_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetricNames(**kwargs)


def test_unknown_extension_key_is_a_value_error():
    with pytest.raises(ValueError, match="losss"):
        DEFAULT_NAMES.extended({"losss": ["x"]})


@pytest.mark.parametrize(
    "raw, value",
    [("0.001", 0.001), ("3", 3), ("True", True), ("None", None), ("adamw", "adamw"), (2, 2)],
)
def test_params_logged_as_strings_read_back_as_values(raw, value):
    assert scalar_value(raw) == value


@pytest.mark.parametrize(
    "config, logged, name",
    [
        ({"optim": "adamw_torch_fused"}, [], "adamw"),
        ({"optimizer": {"class_path": "torch.optim.AdamW"}}, [], "adamw"),
        ({"optimizer": "SGG"}, [], "sgg"),
        ({}, ["lr-Adam"], "adam"),
        ({}, ["train/loss"], "?"),
    ],
)
def test_optimizer_name_from_config_or_lightning_lr_metric(config, logged, name):
    assert infer_optimizer(config, logged) == name


def test_meta_keeps_run_naming_settings_apart_and_uses_our_keys():
    meta = build_meta(
        kind="tensorboard",
        name="r",
        config={"learning_rate": "0.003", "seed": "5", "output_dir": "/x", "optim": "adamw_torch"},
        steps=None,
        evals=None,
        chosen={"loss": "train/loss"},
        logged=["train/loss"],
        source={"path": "/x"},
        updated=0.0,
    )
    assert meta["config"] == {"lr": 0.003, "seed": 5, "optimizer": "adamw_torch"}
    assert meta["seed"] == 5 and meta["optimizer"]["hyperparameters"]["lr"] == 0.003
    assert meta["source"]["run_specific"] == {"output_dir": "/x"}
    assert meta["source"]["not_recorded"] == ["lr", "grad_norm", "tokens"]
    assert meta["status"] == "finished" and meta["format"] == "sgg-run"

"""The typed run description (runformat.run_info): one reading of run.json whatever wrote it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runformat import run_info
from runformat.run_info import POST_CLIP, PRE_CLIP, LrSchedule, RunInfo, from_meta

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_runs" / "sgg-lr4e-3-T25-s0"

# the HF TrainingArguments' names for the settings (what TensorBoard/W&B/MLflow hold flat and the
# recorder's HF callback nests under config.training_arguments)
HF_ARGS = {
    "learning_rate": 1e-2,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "max_steps": 30,
    "lr_scheduler_type": "linear",
    "warmup_steps": 3,
    "seed": 7,
    "bf16": False,
    "fp16": False,
    "optim": "adamw_torch_fused",
    "logging_steps": 10,
}


def _sample() -> dict:
    meta = json.loads((SAMPLE / "run.json").read_text())
    meta.pop("description", None)  # written before the description existed: derived
    return meta


def test_a_sample_run_is_described_from_its_legacy_fields():
    info = from_meta(_sample())
    assert info.problems == ()
    assert (info.source, info.optimizer, info.base) == ("recorded", "sgg", "adamw")
    assert info.lr == 4e-3  # the peak (config.lr, the scheduler's initial_lr), not step 1's
    assert info.lr_schedule == LrSchedule(kind=None, warmup_steps=20, min_ratio=0.1)
    assert (info.betas, info.eps, info.weight_decay) == ((0.9, 0.95), 1e-8, 0.1)
    assert info.grad_clip == 0.0 and info.grad_norm == POST_CLIP
    assert (info.batch_size, info.steps, info.seed) == (16, 200, 0)
    assert info.sgg is not None and info.sgg.applied
    assert (info.sgg.n_clusters, info.sgg.recluster_interval, info.sgg.scale_decay) == (
        3,
        25,
        0.99,
    )
    assert info.raw["d_model"] == 128  # the config, for display


def test_the_stored_description_is_read_back_as_written():
    meta = _sample()
    info = from_meta(meta)
    stored = json.loads(json.dumps(info.to_json()))  # through JSON, as run.json holds it
    meta["description"] = {**stored, "lr": 1e-3}  # the stored one is what counts
    back = from_meta(meta)
    assert back == RunInfo(**{**info.__dict__, "lr": 1e-3})
    assert back.problems == ()


def test_a_stored_description_missing_a_field_derives_that_field():
    meta = _sample()
    meta["description"] = {"source": "hf", "optimizer": "sgg"}
    info = from_meta(meta)
    assert info.source == "hf" and info.lr == 4e-3 and info.steps == 200


def test_nested_training_arguments_and_flat_hparams_read_alike():
    nested = from_meta({"optimizer": {"name": "adamw"}, "config": {"training_arguments": HF_ARGS}})
    flat = from_meta({"config": dict(HF_ARGS), "source": {"kind": "tensorboard"}})
    for info in (nested, flat):
        assert info.optimizer == "adamw" and info.lr == 1e-2
        assert info.betas == (0.9, 0.999) and info.eps == 1e-8 and info.weight_decay == 0.0
        assert info.grad_clip == 1.0 and info.batch_size == 8  # 4 per device x 2 accumulated
        assert (info.steps, info.seed, info.precision) == (30, 7, "fp32")
        assert info.lr_schedule == LrSchedule("linear", 3, None)
    assert nested.settings() == flat.settings()
    assert (nested.source, flat.source) == ("recorded", "tensorboard")


def test_the_optimizer_a_trainer_was_given_wins_over_the_arguments_it_did_not_use():
    """A Trainer given its own SGG(AdamW(lr=3e-3)) still lists learning_rate 5e-5."""
    meta = {
        "optimizer": {
            "name": "sgg",
            "base": "AdamW",
            "hyperparameters": {"lr": 3e-3, "initial_lr": 3e-3, "betas": [0.8, 0.9]},
        },
        "config": {"training_arguments": {**HF_ARGS, "learning_rate": 5e-5}},
    }
    info = from_meta(meta)
    assert (info.optimizer, info.base, info.lr, info.betas) == ("sgg", "adamw", 3e-3, (0.8, 0.9))
    # settings the Trainer applies whatever the optimizer (clipping, batch, steps) still count
    assert info.grad_clip == 1.0 and info.steps == 30


def test_derive_reads_a_callbacks_settings_and_overrides_source_and_norm():
    info = run_info.derive(
        {"optimizer": {"name": "adamw", "hyperparameters": {"lr": 1e-3}}, "config": {"x": 1}},
        hints={"max_grad_norm": 0.5, "bf16": True, "max_steps": -1},
        source="hf",
        grad_norm=POST_CLIP,
    )
    assert (info.source, info.grad_norm, info.grad_clip, info.precision) == (
        "hf",
        POST_CLIP,
        0.5,
        "bf16",
    )
    assert info.steps is None  # HF's max_steps=-1: trained by epochs, no planned step count


@pytest.mark.parametrize(
    ("meta", "field", "check"),
    [
        ({"seed": "zero"}, "seed", lambda i: i.seed is None),
        ({"config": {"seed": "zero"}, "seed": 3}, "config.seed", lambda i: i.seed == 3),
        ({"config": {"lr": "fast"}}, "config.lr", lambda i: i.lr is None),
        ({"config": {"lr": -1.0}}, "config.lr", lambda i: i.lr is None),
        ({"config": {"betas": "wide"}}, "config.betas", lambda i: i.betas is None),
        ({"config": {"steps": 2.5}}, "config.steps", lambda i: i.steps is None),
        ({"config": {"batch_size": True}}, "config.batch_size", lambda i: i.batch_size is None),
        ({"config": [1, 2]}, "config", lambda i: i.raw == {}),
        ({"optimizer": 5}, "optimizer", lambda i: i.optimizer is None),
        (
            {"optimizer": {"name": "sgg", "sgg": {"n_clusters": "three"}}},
            "optimizer.sgg.n_clusters",
            lambda i: i.sgg is not None and i.sgg.n_clusters is None,
        ),
        ({"description": "yes"}, "description", lambda i: i.source == "recorded"),
        ({"description": {"seed": "zero"}}, "description.seed", lambda i: i.seed is None),
        (
            {"description": {"grad_norm": "maybe"}},
            "description.grad_norm",
            lambda i: i.grad_norm is None,
        ),
        (
            {"description": {"lr_schedule": {"warmup_steps": "some"}}},
            "description.lr_schedule.warmup_steps",
            lambda i: i.lr_schedule.warmup_steps is None,
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_a_sentence_naming_the_field(meta, field, check):
    info = from_meta(meta)  # never raises
    assert check(info), info
    assert any(p.startswith(f"run.json: {field} is ") for p in info.problems), info.problems


def test_the_seed_zero_message_reads_as_the_issue_asks():
    (msg,) = from_meta({"seed": "zero"}).problems
    assert msg == "run.json: seed is 'zero', not an integer; treated as not recorded."


def test_an_optimizer_given_as_text_is_its_name_and_other_shapes_do_not_raise():
    assert from_meta({"optimizer": "AdamW"}).optimizer == "adamw"
    assert from_meta({"optimizer": "?"}).optimizer is None
    for meta in (None, [], "x", {"config": None, "optimizer": None}):
        from_meta(meta)


def test_a_foreign_hf_runs_norm_is_before_clipping_our_mirror_after():
    hf = {"source": {"kind": "tensorboard", "writer": "hf", "columns": {"grad_norm": "x"}}}
    assert from_meta(hf).grad_norm == PRE_CLIP
    mirror = {"source": {"kind": "wandb", "columns": {"grad_norm": "sgg/grad_norm"}}}
    assert from_meta(mirror).grad_norm == POST_CLIP
    assert from_meta({"source": {"kind": "mlflow", "columns": {}}}).grad_norm is None


def test_a_shadow_clustering_is_no_training_setting():
    shadow = {"n_clusters": 3, "recluster_interval": 10}
    info = from_meta({"optimizer": {"name": "adamw", "shadow": shadow}, "config": {"lr": 1e-3}})
    assert info.sgg is not None and not info.sgg.applied
    assert info.settings() == {"lr": 1e-3}


def test_runformat_run_info_needs_no_pandas_or_torch():
    """pyarrow + stdlib only (numpy comes with pyarrow)."""
    code = (
        "import sys; import runformat.run_info; "
        "assert not {'pandas', 'torch'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)

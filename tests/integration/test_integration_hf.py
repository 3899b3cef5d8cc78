"""SGG inside the Hugging Face Trainer: checkpoint/resume reproduces a run; the callback records."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("transformers")
from integration_helpers import TokenData, read_table, render_every_view, tiny_llama
from transformers import Trainer, TrainerCallback, TrainingArguments

from recorder.hf import RecorderCallback
from sgg import SGG

MAX_STEPS, SAVE_AT, RECLUSTER, EVAL_EVERY = 12, 6, 4, 6


class StopAt(TrainerCallback):
    """Interrupt training after `step` (like a job killed right after its checkpoint)."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def make_trainer(out, run_dir, stop=None) -> Trainer:
    model = tiny_llama(0)
    opt = SGG(
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        n_clusters=3,
        recluster_interval=RECLUSTER,
        scale_decay=0.5,
        update_impl="eager",
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / (2 * MAX_STEPS))
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        save_strategy="steps",
        save_steps=SAVE_AT,
        eval_strategy="steps",
        eval_steps=EVAL_EVERY,
        logging_steps=1,
        seed=0,
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=TokenData(64, seed=0),
        eval_dataset=TokenData(8, seed=1),
        optimizers=(opt, sched),
        callbacks=[RecorderCallback(run_dir, config={"test": "hf"}), StopAt(stop)],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    full = make_trainer(tmp / "full", tmp / "runs" / "full")
    full.train()
    first = make_trainer(tmp / "ckpt", tmp / "runs" / "resumed", stop=SAVE_AT)
    first.train()
    ckpt = tmp / "ckpt" / f"checkpoint-{SAVE_AT}"
    saved = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    resumed = make_trainer(tmp / "ckpt", tmp / "runs" / "resumed")
    resumed.train(resume_from_checkpoint=str(ckpt))
    return {"full": full, "resumed": resumed, "saved": saved, "runs": tmp / "runs"}


def _sgg(trainer) -> SGG:
    return trainer.optimizer.optimizer  # Trainer wraps it in accelerate's AcceleratedOptimizer


def test_checkpoint_holds_sgg_state_and_loads_weights_only(runs):
    s = runs["saved"]["sgg"]
    assert s["sgg_step"] == SAVE_AT
    assert s["last_recluster_step"] == RECLUSTER
    assert len(s["layers"]) == len(_sgg(runs["full"]).clustered_params())


def test_resumed_trainer_continues_identically(runs):
    full, resumed = runs["full"], runs["resumed"]
    assert resumed.state.global_step == full.state.global_step == MAX_STEPS
    a, b = dict(full.model.named_parameters()), dict(resumed.model.named_parameters())
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)
    sa, sb = _sgg(full), _sgg(resumed)
    assert sa.sgg_step == sb.sgg_step == MAX_STEPS
    assert sa.last_recluster_step == sb.last_recluster_step == MAX_STEPS
    for pa, pb in zip(sa.clustered_params(), sb.clustered_params(), strict=True):
        ca, cb = sa.cluster_state(pa), sb.cluster_state(pb)
        assert torch.equal(ca.assignments, cb.assignments)
        assert torch.equal(ca.factors, cb.factors)
        assert not torch.all(ca.factors == 1)


def test_callback_records_every_step_once_across_the_resume(runs):
    full_dir, res_dir = runs["runs"] / "full", runs["runs"] / "resumed"
    meta = json.loads((res_dir / "run.json").read_text())
    assert meta["status"] == "finished"
    assert [s["resume_step"] for s in meta["segments"]][1:] == [SAVE_AT]
    assert meta["optimizer"]["name"] == "sgg"
    assert meta["config"] == {"test": "hf"}
    full, res = read_table(full_dir, "steps"), read_table(res_dir, "steps")
    for steps in (full, res):
        assert steps["step"].tolist() == list(range(1, MAX_STEPS + 1))
        assert steps["loss"].notna().all() and steps["grad_norm"].notna().all()
        assert steps["step"][steps["reclustered"]].tolist() == [4, 8, 12]
    # the resumed run recorded what the uninterrupted one did
    assert res["loss"].tolist() == full["loss"].tolist()
    assert res["lr"].tolist() == full["lr"].tolist()
    evals = read_table(res_dir, "evals")
    assert evals["step"].tolist() == [EVAL_EVERY, 2 * EVAL_EVERY]
    assert (evals["split"] == "val").all()
    assert evals["loss"].tolist() == read_table(full_dir, "evals")["loss"].tolist()
    clusters = read_table(res_dir, "clusters")
    assert sorted(set(clusters["step"])) == [4, 8, 12]


def test_callback_on_a_new_trainer_refuses_an_existing_run(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["runs"] / "full", run_dir)
    trainer = make_trainer(tmp_path / "out", run_dir)
    with pytest.raises(Exception, match="already holds a run"):
        trainer.train()


def test_dashboard_shows_the_trainer_runs(runs, monkeypatch):
    listed = render_every_view(runs["runs"], monkeypatch)
    assert {"full", "resumed"} <= listed

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


# --------------------------------------------------------------------------- what was logged

LOG_STEPS, LOG_MAX_STEPS, LOG_LR = (1, 10), 30, 1e-2


class KeepLogs(TrainerCallback):
    """What the Trainer logged: {step: logs}."""

    def __init__(self) -> None:
        self.logs: dict[int, dict] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.setdefault(state.global_step, {}).update(logs or {})


def _logging_trainer(tmp, name: str, every: int, sgg: bool) -> KeepLogs:
    """A Trainer logging every `every` steps to TensorBoard (runs/<name>-tb); with `sgg`, SGG
    recorded through the callback too (runs/<name>); without, the Trainer's own AdamW."""
    model = tiny_llama(0)
    keep = KeepLogs()
    callbacks: list = [keep]
    optimizers = (None, None)
    if sgg:
        base = torch.optim.AdamW(model.parameters(), lr=LOG_LR, weight_decay=0.0)
        optimizers = (SGG(base, n_clusters=3, recluster_interval=10, update_impl="eager"), None)
        callbacks.append(RecorderCallback(tmp / "runs" / name))
    args = TrainingArguments(
        output_dir=str(tmp / "out" / name),
        max_steps=LOG_MAX_STEPS,
        per_device_train_batch_size=4,
        learning_rate=LOG_LR,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=every,
        save_strategy="no",
        seed=0,
        report_to=["tensorboard"],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TENSORBOARD_LOGGING_DIR", str(tmp / "runs" / f"{name}-tb"))
        Trainer(
            model=model,
            args=args,
            train_dataset=TokenData(64, seed=0),
            optimizers=optimizers,
            callbacks=callbacks,
        ).train()
    return keep


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    pytest.importorskip("tensorboard")
    tmp = tmp_path_factory.mktemp("hf-logging")
    keeps = {k: _logging_trainer(tmp, f"sgg-log{k}", k, sgg=True) for k in LOG_STEPS}
    keeps["adamw"] = _logging_trainer(tmp, "adamw-log10", 10, sgg=False)
    return tmp / "runs", keeps


def _read(root, rel: str):
    from dashboard import loader

    runs = {r.rel: r for r in loader.discover_runs(root).runs}
    run = runs[rel]
    return run, loader.read_table(run, "steps", root).df


def _three(keep: KeepLogs, key: str) -> dict[int, float]:
    steps = sorted(s for s, logs in keep.logs.items() if key in logs)
    assert len(steps) >= 3, keep.logs
    picked = [steps[0], steps[len(steps) // 2], steps[-1]]
    return {s: float(keep.logs[s][key]) for s in picked}


@pytest.mark.parametrize("every", LOG_STEPS)
def test_callback_records_the_logged_loss_at_its_steps_and_nothing_between(logged, every):
    from dashboard.metrics import health, statistics

    root, keeps = logged
    run, steps = _read(root, f"sgg-log{every}")
    assert steps["step"].tolist() == list(range(1, LOG_MAX_STEPS + 1))
    for step, value in _three(keeps[every], "loss").items():
        assert steps.loc[steps["step"] == step, "loss"].item() == pytest.approx(value, rel=1e-6)
    logged_steps = {s for s, logs in keeps[every].logs.items() if "loss" in logs}
    not_logged = steps[~steps["step"].isin(logged_steps)]
    assert not_logged["loss"].isna().all() and len(not_logged) == LOG_MAX_STEPS - len(logged_steps)
    # a loss not logged is not a diverged one
    assert health.nonfinite_loss(steps) == (0, None)
    problems = health.data_problems(run.meta, "finished", steps)
    assert not any("diverged" in p or "not-a-number" in p for p in problems), problems
    summary = statistics.summarize("r", "sgg", "finished", steps, None)
    assert summary.nan_steps == 0 and summary.first_nan_step is None


def test_the_trainers_tensorboard_log_reads_as_logged_and_its_norm_is_before_clipping(logged):
    root, keeps = logged
    tb, tb_steps = _read(root, "sgg-log10-tb")
    rec, rec_steps = _read(root, "sgg-log10")
    for key, column in (("loss", "loss"), ("grad_norm", "grad_norm")):
        for step, value in _three(keeps[10], key).items():
            got = tb_steps.loc[tb_steps["step"] == step, column].item()
            assert got == pytest.approx(value, rel=1e-6), (key, step)
    assert tb.meta["description"]["grad_norm"] == "pre_clip"
    assert rec.meta["description"]["grad_norm"] == "post_clip"
    # what each holds: the Trainer's is the norm clip_grad_norm_ returned, ours what the
    # optimizer received, capped at max_grad_norm
    both = tb_steps.merge(rec_steps, on="step", suffixes=("_tb", "_rec"))
    assert (both["grad_norm_rec"] <= 1.0 + 1e-4).all()
    clipped = both[both["grad_norm_tb"] > 1.0]
    assert len(clipped) and (clipped["grad_norm_rec"] < clipped["grad_norm_tb"]).all()


def test_the_callbacks_description_holds_the_trainers_settings(logged):
    root, _ = logged
    run, _ = _read(root, "sgg-log10")
    d = run.meta["description"]
    assert (d["source"], d["optimizer"], d["base"], d["lr"]) == ("hf", "sgg", "adamw", LOG_LR)
    assert (d["grad_clip"], d["batch_size"], d["steps"], d["seed"]) == (1.0, 4, 30, 0)
    assert d["lr_schedule"]["kind"] == "linear" and d["precision"] == "fp32"
    assert d["problems"] == []


def test_sgg_recorded_and_the_trainers_adamw_on_tensorboard_are_like_for_like(logged):
    from dashboard import narrative
    from dashboard.metrics import compare, groups

    root, _ = logged
    rec, rec_steps = _read(root, "sgg-log10")
    tb, tb_steps = _read(root, "adamw-log10-tb")
    assert groups.optimizer_name(tb.meta) == "adamw"
    assert groups.differing_settings(rec.meta, tb.meta) == []
    assert groups.unrecorded_settings(rec.meta, tb.meta) == []
    a = compare.run_facts("sgg", rec.meta, "finished", rec_steps, None)
    b = compare.run_facts("adamw", tb.meta, "finished", tb_steps, None)
    c = compare.compare([a], [b], "sgg", "adamw")
    assert narrative.like_for_like(c) == ""
    text = narrative.stability_sentence(c)
    assert "cannot tell: one run's gradient norm is before clipping, the other's after" in text

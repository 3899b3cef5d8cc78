"""One source of truth for the step (issue 9): the optimizer's step count, restored with its
checkpoint; log_step's step must agree; losses are checked at once; checkpoints flush."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import torch
from recorder_helpers import read, tiny_model, train_steps

from recorder import Recorder
from sgg import SGG

SGG_OPTS = {"n_clusters": 3, "recluster_interval": 5, "update_impl": "eager"}


def _sgg(model):
    return SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), **SGG_OPTS)


def _one_step(model, opt, gen):
    loss = model(torch.randn(4, 8, generator=gen)).square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def test_a_step_that_disagrees_with_the_optimizer_is_refused(tmp_path):
    model = tiny_model()
    opt = _sgg(model)
    gen = torch.Generator().manual_seed(0)
    with Recorder(tmp_path / "r", optimizer=opt, model=model, flush_every_steps=3) as rec:
        loss = _one_step(model, opt, gen)
        with pytest.raises(ValueError, match=r"step=2\).*taken 1 steps"):
            rec.log_step(2, loss=loss)  # the 2 * s
        rec.log_step(1, loss=loss)
        for s in range(2, 7):
            rec.log_step(loss=_one_step(model, opt, gen))  # step left out: the optimizer's
            assert rec.step == s
    steps = read(tmp_path / "r", "steps")
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6] and steps["loss"].notna().all()
    assert steps.loc[steps.reclustered, "step"].tolist() == [5]
    assert read(tmp_path / "r", "clusters")["step"].unique().tolist() == [5]


def test_a_zero_based_loop_gets_a_clear_error_not_a_shift(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    with Recorder(tmp_path / "r", optimizer=opt, model=model) as rec:
        with pytest.raises(ValueError, match=r"before the first optimizer\.step"):
            rec.log_step(loss=1.0)
        loss = _one_step(model, opt, gen)
        with pytest.raises(ValueError, match=r"step=0\).*taken 1 steps.*0-based"):
            rec.log_step(0, loss=loss)
        rec.log_step(1, loss=loss)
    assert read(tmp_path / "r", "steps")["loss"].tolist() == [pytest.approx(loss.item())]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.ones(2), "shape"),
        (torch.tensor(True), "real number"),
        ("0.5", "str"),
        (True, "bool"),
        ([1.0], "list"),
    ],
)
def test_a_bad_loss_fails_at_once_and_nothing_is_lost(tmp_path, bad, match):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, flush_every_steps=2) as rec:
        train_steps(model, opt, 3, rec)
        gen = torch.Generator().manual_seed(9)
        _one_step(model, opt, gen)
        with pytest.raises(ValueError, match=match):
            rec.log_step(4, loss=bad)
        rec.log_step(4, loss=torch.ones(1))  # one element is one number
        train_steps(model, opt, 2, rec, start=5)
    steps = read(run, "steps")
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6] and steps["loss"].notna().all()
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_new_recorder_on_a_restored_sgg_starts_at_its_step(tmp_path):
    model = tiny_model()
    opt = _sgg(model)
    train_steps(model, opt, 6)
    restored_model = tiny_model()
    restored_model.load_state_dict(model.state_dict())
    restored = _sgg(restored_model)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    with Recorder(tmp_path / "r", optimizer=restored, model=restored_model) as rec:
        assert rec.step == 6
        train_steps(restored_model, restored, 6, rec, start=7)
    steps = read(tmp_path / "r", "steps")
    assert steps["step"].tolist() == list(range(7, 13))
    assert steps.loc[steps.reclustered, "step"].tolist() == [10]
    assert read(tmp_path / "r", "clusters")["step"].unique().tolist() == [10]


def test_a_shadow_counts_with_the_optimizer_after_a_resume(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    shadow = {"n_clusters": 2, "recluster_interval": 4}
    rec = Recorder(run, optimizer=opt, model=model, shadow=shadow)
    train_steps(model, opt, 6, rec)
    checkpoint = copy.deepcopy(opt.state_dict())  # flushes steps 1..6
    rec.close()
    opt.load_state_dict(checkpoint)
    with Recorder(run, optimizer=opt, model=model, shadow=shadow, mode="resume") as rec:
        train_steps(model, opt, 6, rec, start=7)
    steps = read(run, "steps")
    assert steps["step"].tolist() == list(range(1, 13))
    assert steps.loc[steps.reclustered, "step"].tolist() == [4, 8, 12]
    assert sorted(read(run, "clusters")["step"].unique()) == [4, 8, 12]


def test_state_dict_flushes_and_a_late_log_step_is_refused(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    gen = torch.Generator().manual_seed(0)
    with Recorder(run, optimizer=opt, model=model, flush_every_steps=100) as rec:
        train_steps(model, opt, 3, rec)
        opt.state_dict()
        assert json.loads((run / "run.json").read_text())["last_flushed_step"] == 3
        assert read(run, "steps")["step"].tolist() == [1, 2, 3]
        _one_step(model, opt, gen)
        opt.state_dict()  # checkpoint saved before log_step: step 4 is on disk without loss
        with pytest.raises(ValueError, match="before saving a checkpoint"):
            rec.log_step(4, loss=1.0)
    assert read(run, "steps")["step"].tolist() == [1, 2, 3, 4]


def test_resume_needs_the_restored_optimizer(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model) as rec:
        train_steps(model, opt, 4, rec)
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="0 steps but the run holds steps up to 4"):
        Recorder(run, optimizer=fresh, model=model, mode="resume")
    with Recorder(run, optimizer=fresh, model=model, mode="resume", resume_step=0) as rec:
        train_steps(model, fresh, 2, rec)
    assert read(run, "steps")["step"].tolist() == [1, 2]


def test_log_eval_is_keyword_only_with_batch_losses(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model) as rec:
        train_steps(model, opt, 2, rec)
        rec.log_eval(batch_losses=[1.0, 2.0, 4.0])
        rec.log_eval(loss=torch.tensor(0.5), split="test")
        rec.log_eval(step=2, loss=0.25, split="given-step")
        with pytest.raises(ValueError, match="batch_losses"):
            rec.log_eval(batch_losses=[])
        with pytest.raises(TypeError, match="positional"):
            rec.log_eval(2, 0.125)  # the older positional form is gone: which is the step?
        with pytest.raises(TypeError, match="positional"):
            rec.log_step(3, 0.5)  # loss and tokens are keywords too
    ev = read(run, "evals").set_index("split")
    assert ev.loc["val", "loss"] == pytest.approx(7 / 3)
    assert ev.loc["val", "loss_std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert ev.loc["val", "n_batches"] == 3
    assert ev.loc["test", "loss"] == 0.5 and np.isnan(ev.loc["test", "loss_std"])
    assert ev.loc["given-step", "loss"] == 0.25
    assert (ev["step"] == 2).all()


class ListSink:
    def __init__(self):
        self.rows, self.closed = [], 0

    def log_scalars(self, step, scalars):
        self.rows.append((step, dict(scalars)))

    def close(self):
        self.closed += 1


class BrokenSink(ListSink):
    def log_scalars(self, step, scalars):
        raise RuntimeError("sink down")


def test_sinks_get_each_steps_scalars_and_a_broken_sink_never_stops_training(tmp_path):
    model = tiny_model()
    opt = _sgg(model)
    good, broken = ListSink(), BrokenSink()
    with (
        warnings.catch_warnings(record=True) as caught,
        Recorder(
            tmp_path / "r", optimizer=opt, model=model, sinks=[broken, good], layer_stride=2
        ) as rec,
    ):
        warnings.simplefilter("always")
        train_steps(model, opt, 6, rec)
    assert [s for s, _ in good.rows] == [1, 2, 3, 4, 5, 6] and good.closed == 1
    steps = read(tmp_path / "r", "steps")
    first = good.rows[0][1]
    assert first["loss"] == pytest.approx(steps["loss"][0])
    assert first["grad_norm"] == pytest.approx(steps["grad_norm"][0])
    assert {"lr", "optimizer_time", "tokens"} <= set(first)
    assert {"update_norm", "param_norm"} & set(first) == set()  # on layer-statistics steps
    assert good.rows[1][1]["update_norm"] == pytest.approx(steps["update_norm"][1])
    assert "sgg_factor_mean" not in first and good.rows[4][1]["reclustered"] == 1.0
    assert good.rows[5][1]["sgg_factor_mean"] == pytest.approx(1.0, rel=0.5)
    assert sum("sink down" in str(w.message) for w in caught) == 1
    with pytest.raises(ValueError, match="sinks"):
        Recorder(tmp_path / "x", optimizer=opt, model=model, sinks=[object()])


def test_optimizer_time_and_host_are_recorded(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "r", optimizer=opt, model=model) as rec:
        train_steps(model, opt, 3, rec)
    t = read(tmp_path / "r", "steps")["optimizer_time"]
    assert t.notna().all() and (t > 0).all() and (t < 10).all()
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    host = meta["host"]
    assert host["torch"] == torch.__version__ and host["torch_threads"] == torch.get_num_threads()
    assert {"hostname", "platform", "cpu", "device"} <= set(host) and meta["pid"] > 0


def test_a_version_1_run_resumes_as_version_2(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model) as rec:
        train_steps(model, opt, 3, rec)
    meta = json.loads((run / "run.json").read_text())
    meta["format_version"] = 1  # as the recorder wrote it before version 2
    (run / "run.json").write_text(json.dumps(meta))
    with Recorder(run, optimizer=opt, model=model, mode="resume") as rec:
        train_steps(model, opt, 2, rec, start=4)
    assert json.loads((run / "run.json").read_text())["format_version"] == 2
    assert read(run, "steps")["step"].tolist() == [1, 2, 3, 4, 5]

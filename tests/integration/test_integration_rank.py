"""Ranks other than 0 record nothing (without starting a process group)."""

from __future__ import annotations

import pytest
import torch

from recorder import Recorder
from recorder.distributed import NullRecorder, get_rank, rank_zero_recorder, unwrap_optimizer


def _model_and_opt():
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.AdamW(model.parameters())


def test_rank_zero_recorder_is_inert_on_other_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert get_rank() == 1
    model, opt = _model_and_opt()
    with rank_zero_recorder(tmp_path / "run", optimizer=opt, model=model) as rec:
        assert isinstance(rec, NullRecorder)
        model(torch.randn(3, 4)).sum().backward()
        opt.step()
        rec.log_step(1, loss=0.5, tokens=3)
        rec.log_eval(step=1, loss=0.4)
        rec.flush()
        assert rec.step == 1
    assert rec.closed
    assert not (tmp_path / "run").exists()


def test_rank_zero_recorder_records_on_rank_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    model, opt = _model_and_opt()
    with rank_zero_recorder(tmp_path / "run", optimizer=opt, model=model) as rec:
        assert isinstance(rec, Recorder)
    assert (tmp_path / "run" / "run.json").is_file()


def test_unwrap_optimizer_leaves_plain_optimizers_alone():
    _, opt = _model_and_opt()
    assert unwrap_optimizer(opt) is opt


def test_callback_on_other_ranks_writes_nothing(tmp_path):
    pytest.importorskip("transformers")
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from recorder.hf import RecorderCallback

    cb = RecorderCallback(tmp_path / "run")
    state = TrainerState(is_world_process_zero=False)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    model, opt = _model_and_opt()
    cb.on_train_begin(args, state, TrainerControl(), model=model, optimizer=opt)
    cb.on_optimizer_step(args, state, TrainerControl())
    cb.on_log(args, state, TrainerControl(), logs={"loss": 1.0, "eval_loss": 2.0})
    cb.on_save(args, state, TrainerControl())
    cb.on_train_end(args, state, TrainerControl())
    assert cb.recorder is None and not (tmp_path / "run").exists()


def test_callback_rejects_resume_mode(tmp_path):
    pytest.importorskip("transformers")
    from recorder.hf import RecorderCallback

    with pytest.raises(ValueError, match="mode"):
        RecorderCallback(tmp_path / "run", mode="resume")

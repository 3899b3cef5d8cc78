"""The training command's seeds: one seed means the same start and the same data for every
optimizer (so SGG and AdamW runs pair up), another seed means a different start and data."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from runformat import run_info
from sgg_train import config as C
from sgg_train import data as D
from sgg_train import model as M
from sgg_train import train as T

TINY = dict(
    d_model=16,
    layers=1,
    heads=2,
    seq_len=16,
    batch_size=2,
    steps=6,
    warmup_steps=2,
    eval_every=3,
    eval_batches=2,
    layer_stride=1,
    checkpoint_every=0,
    progress=False,
    threads=1,
)


def _state(cfg: C.TrainConfig) -> dict[str, torch.Tensor]:
    return M.build_model(cfg).state_dict()


def _batches(cfg: C.TrainConfig, n: int) -> list[torch.Tensor]:
    train_data, _ = D.split_corpus(D.load_corpus(), cfg.val_fraction)
    gen = torch.Generator().manual_seed(cfg.seed)
    return [D.sample_batch(train_data, cfg.batch_size, cfg.seq_len, gen) for _ in range(n)]


def _losses(run_dir) -> pd.Series:
    steps = pd.read_parquet(run_dir / "tables" / "steps").sort_values("step")
    return steps.set_index("step")["loss"]


def test_same_seed_same_init_and_batches_whatever_the_optimizer():
    sgg = C.TrainConfig(optimizer="sgg", seed=3, **TINY)
    adamw = dataclasses.replace(sgg, optimizer="adamw", shadow=True, lr=1e-2)
    a, b = _state(sgg), _state(adamw)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(_batches(sgg, 5), _batches(adamw, 5), strict=True))


def test_other_seed_other_init_and_batches():
    s0 = C.TrainConfig(seed=0, **TINY)
    s1 = dataclasses.replace(s0, seed=1)
    a, b = _state(s0), _state(s1)
    assert not all(torch.equal(a[k], b[k]) for k in a if a[k].dim() >= 2)
    assert not any(torch.equal(x, y) for x, y in zip(_batches(s0, 5), _batches(s1, 5), strict=True))


def test_recorded_sgg_and_adamw_runs_of_one_seed_see_the_same_data(tmp_path):
    """End to end: with no re-cluster inside the run, SGG's factors stay 1, so SGG and AdamW runs
    of one seed record the same loss at every step only if they share weights and batches."""
    base = C.TrainConfig(seed=2, recluster_interval=1000, **TINY)
    runs = {}
    for opt, seed in (("sgg", 2), ("adamw", 2), ("adamw", 5)):
        cfg = dataclasses.replace(
            base, optimizer=opt, seed=seed, out=str(tmp_path / f"{opt}{seed}")
        )
        T.train(cfg)
        runs[opt, seed] = _losses(cfg.run_dir)
    sgg, adamw, other = runs["sgg", 2], runs["adamw", 2], runs["adamw", 5]
    assert len(sgg) == len(adamw) == TINY["steps"]
    assert sgg.iloc[0] == adamw.iloc[0]  # before any update: same weights, same first batch
    pd.testing.assert_series_equal(sgg, adamw, rtol=1e-5, atol=0)
    assert (other - adamw).abs().min() > 1e-4  # another seed: other weights and batches


def test_eval_logs_one_loss_per_batch(tmp_path):
    cfg = C.TrainConfig(optimizer="adamw", out=str(tmp_path / "run"), **TINY)
    T.train(cfg)
    evals = pd.read_parquet(cfg.run_dir / "tables" / "evals").sort_values("step")
    assert evals["step"].tolist() == [3, 6]
    assert evals["n_batches"].tolist() == [TINY["eval_batches"]] * 2
    assert (evals["loss_std"] > 0).all()  # two different held-out batches
    info = run_info.from_meta(json.loads((cfg.run_dir / "run.json").read_text()))
    schedule = info.lr_schedule  # the schedule is named beside its warm-up and floor
    assert (schedule.kind, schedule.warmup_steps, schedule.min_ratio) == ("cosine", 2, 0.1)


def test_evaluate_returns_one_loss_per_batch():
    cfg = C.TrainConfig(**TINY)
    _, val_data = D.split_corpus(D.load_corpus(), cfg.val_fraction)
    val = D.eval_windows(val_data, cfg.eval_batches * cfg.batch_size, cfg.seq_len)
    losses = T.evaluate(M.build_model(cfg), val, cfg.batch_size)
    assert len(losses) == cfg.eval_batches and len(set(losses)) == cfg.eval_batches


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"optimizer": "adamw", "shadow": True, "lr": 1.6e-2, "compact": False, "seed": 7},
        {"scale_decay": 0.9, "recluster_interval": 50, "progress": False, "eps": 1e-10},
    ],
)
def test_config_argv_round_trips(changes):
    cfg = C.TrainConfig(**{**TINY, **changes})
    assert T.parse_args(C.config_argv(cfg)) == (cfg, "new")


@pytest.mark.parametrize("name", ["eval_every", "eval_batches", "histogram_bins", "steps"])
def test_invalid_sizes_name_the_argument(name):
    with pytest.raises(ValueError, match=name):
        C.TrainConfig(**{name: 0})

"""TensorBoard runs written by torch's SummaryWriter, read back as run-format tables."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from foreign_writers import EVAL_EVERY, STEPS, loss_at, lr_at, write_tensorboard_hf

from dashboard import foreign, loader
from dashboard.foreign import reader
from runformat import schema

pytest.importorskip("tensorboard")


def _one(root):
    found = foreign.discover(root.resolve())
    assert len(found.runs) == 1, (found.runs, found.messages)
    return found.runs[0]


@pytest.mark.parametrize("new_style", [False, True], ids=["simple_value", "tensor"])
def test_hf_style_run_maps_to_steps_and_evals(tmp_path, new_style):
    write_tensorboard_hf(tmp_path / "adamw-tb", seed=3, new_style=new_style)
    run = _one(tmp_path)
    steps, msgs, _ = foreign.read_table(run.meta, "steps")
    assert msgs == []
    assert list(steps.columns) == schema.STEPS.names
    assert steps["step"].tolist() == list(range(1, STEPS + 1))
    np.testing.assert_allclose(steps["loss"], [loss_at(s) + 0.03 for s in range(1, STEPS + 1)])
    np.testing.assert_allclose(steps["lr"], [lr_at(s) for s in range(1, STEPS + 1)], rtol=1e-6)
    assert steps["tokens"].tolist() == [64 * s for s in range(1, STEPS + 1)]
    assert steps["grad_norm"].isna().all()  # not logged: null, and said so
    assert run.meta["source"]["not_recorded"] == ["grad_norm"]
    assert (steps["wall_time"].diff().dropna() >= 0).all() and steps["wall_time"].iloc[0] < 60
    evals, _, _ = foreign.read_table(run.meta, "evals")
    assert list(evals.columns) == schema.EVALS.names
    assert evals["step"].tolist() == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert set(evals["split"]) == {"val"}
    np.testing.assert_allclose(evals["loss"], [loss_at(s) + 0.5 for s in evals["step"]])
    assert evals["tokens"].tolist() == [64 * s for s in evals["step"]]


def test_tables_have_the_run_format_types(tmp_path):
    write_tensorboard_hf(tmp_path / "r")
    run = _one(tmp_path)
    for table in ("steps", "evals", "lrs"):
        df, _, _ = foreign.read_table(run.meta, table)
        assert list(df.columns) == schema.TABLES[table].names
        # converts back to the run format's Arrow schema without loss (as a recorded table)
        back = pa.Table.from_pandas(df, schema=schema.TABLES[table], preserve_index=False)
        assert back.num_rows == len(df)
        assert df["step"].dtype == np.int64
    assert foreign.read_table(run.meta, "layers")[0] is None  # not recorded: no table
    hist, _, _ = foreign.read_table(run.meta, "histograms")
    assert list(hist.columns) == schema.HISTOGRAMS.names
    assert hist["count"].sum() == 5 and set(hist["layer"]) == {"weights/fc"}


def test_config_seed_optimizer_and_learning_rate_from_the_args_text(tmp_path):
    write_tensorboard_hf(tmp_path / "adamw-tb", seed=7)
    run = loader.Run(*[getattr(_one(tmp_path), f) for f in ("path", "rel", "meta")])
    assert run.optimizer == "adamw"  # HF's optim "adamw_torch"
    assert run.learning_rate == pytest.approx(1e-3)
    assert run.meta["seed"] == 7
    # HF's names for our config's keys: stored as ours, so the runs compare like for like
    assert run.meta["config"]["optimizer"] == "adamw_torch" and "optim" not in run.meta["config"]
    assert run.meta["config"]["lr"] == pytest.approx(1e-3)
    assert "output_dir" not in run.meta["config"]  # names the run, not its training
    assert run.meta["source"]["run_specific"] == {"output_dir": "out"}
    assert run.status == "running"  # written seconds ago: a live run
    assert run.last_step == STEPS


def test_lightning_names_and_hparams(tmp_path):
    """Lightning's names: train_loss / val_loss / lr-AdamW / grad_2.0_norm_total, hparams
    through the hparams plugin (SummaryWriter.add_hparams, as Lightning's logger does)."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "version_0"))
    for s in range(1, 21):
        w.add_scalar("train_loss", 2.0 / s, s)
        w.add_scalar("lr-AdamW", 0.01, s)
        w.add_scalar("grad_2.0_norm_total", 0.5 + s, s)
        w.add_scalar("epoch", s // 10, s)
    w.add_scalar("val_loss", 0.3, 20)
    w.add_hparams({"lr": 0.01, "seed": 2, "batch_size": 16}, {"hp_metric": 0.3})
    w.close()
    run = _one(tmp_path)
    assert run.meta["source"]["columns"] == {
        "loss": "train_loss",
        "lr": "lr-AdamW",
        "grad_norm": "grad_2.0_norm_total",
        "eval:val": "val_loss",
    }
    assert run.meta["optimizer"]["name"] == "adamw"  # from LearningRateMonitor's name
    assert run.meta["seed"] == 2 and run.meta["config"]["batch_size"] == 16
    steps, _, _ = foreign.read_table(run.meta, "steps")
    np.testing.assert_allclose(steps["grad_norm"], [0.5 + s for s in range(1, 21)])


def test_cache_by_file_signature_and_live_append(tmp_path):
    """Unchanged files: no second read. New events (a live run): read again, rows appended."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "live"), flush_secs=3600)
    for s in range(1, 11):
        w.add_scalar("train/loss", 1.0 / s, s)
    w.flush()
    run = _one(tmp_path)
    assert foreign.read_table(run.meta, "steps")[0]["step"].max() == 10
    n = reader.loads()
    for _ in range(3):
        foreign.read_table(run.meta, "steps")
        foreign.discover(tmp_path.resolve())
    assert reader.loads() == n
    for s in range(11, 16):
        w.add_scalar("train/loss", 1.0 / s, s)
    w.flush()
    run = _one(tmp_path)
    df = foreign.read_table(run.meta, "steps")[0]
    assert reader.loads() == n + 1
    assert df["step"].tolist() == list(range(1, 16))
    w.close()


def test_metric_names_from_the_folder_config(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "custom"))
    for s in range(1, 6):
        w.add_scalar("objective/train", 1.0 / s, s)
        w.add_scalar("objective/heldout", 2.0 / s, s)
    w.close()
    run = _one(tmp_path)
    assert foreign.read_table(run.meta, "steps")[0] is None  # unknown names: not recorded
    assert any("known name" in p for p in run.problems)
    (tmp_path / "foreign-metrics.json").write_text(
        json.dumps({"loss": ["objective/train"], "evals": {"heldout": ["objective/heldout"]}})
    )
    run = _one(tmp_path)
    steps, _, _ = foreign.read_table(run.meta, "steps")
    evals, _, _ = foreign.read_table(run.meta, "evals")
    np.testing.assert_allclose(steps["loss"], [1.0 / s for s in range(1, 6)])
    assert set(evals["split"]) == {"heldout"}


def test_bad_folder_config_is_reported_not_raised(tmp_path):
    write_tensorboard_hf(tmp_path / "r")
    (tmp_path / "foreign-metrics.json").write_text('{"losss": ["x"]}')
    found = foreign.discover(tmp_path.resolve())
    assert len(found.runs) == 1
    assert any("foreign-metrics.json" in m and "losss" in m for m in found.messages)


def test_loader_lists_and_reads_tensorboard_runs_beside_recorded_ones(tmp_path):
    write_tensorboard_hf(tmp_path / "baselines" / "adamw-tb")
    disc = loader.discover_runs(tmp_path)
    assert [r.rel for r in disc.runs] == ["baselines/adamw-tb"]
    res = loader.read_table(disc.runs[0], "steps", disc.root, ("loss",))
    assert res.df.columns.tolist() == ["step", "loss"] and len(res.df) == STEPS
    assert loader.display_status(disc.runs[0]) == "running"


def test_a_finished_run_is_kept_on_disk_for_the_next_process(tmp_path):
    import os
    import time

    run_dir = write_tensorboard_hf(tmp_path / "runs" / "done")
    old = time.time() - 3600  # finished an hour ago: not live
    for f in run_dir.iterdir():
        os.utime(f, (old, old))
    first = foreign.read_table(_one(tmp_path / "runs").meta, "steps")[0]
    n = reader.loads()
    foreign.clear_cache()  # a new dashboard process: nothing in memory
    run = _one(tmp_path / "runs")
    again = foreign.read_table(run.meta, "steps")[0]
    assert reader.loads() == n  # served from the disk cache, not read again
    assert again.equals(first) and run.meta["status"] == "finished"
    with (run_dir / next(f.name for f in run_dir.iterdir())).open("ab") as fh:
        fh.write(b"")  # same size; a new mtime is a new signature
    os.utime(next(run_dir.iterdir()))
    foreign.clear_cache()
    foreign.read_table(_one(tmp_path / "runs").meta, "steps")
    assert reader.loads() == n + 1  # changed files are read again, never served stale


def test_disk_cache_can_be_turned_off(tmp_path, monkeypatch):
    from dashboard.foreign import disk_cache

    monkeypatch.setenv("SGG_FOREIGN_CACHE", "off")
    assert disk_cache.folder() is None
    write_tensorboard_hf(tmp_path / "r")
    foreign.read_table(_one(tmp_path).meta, "steps")  # works without it


def test_symlinked_event_files_are_refused(tmp_path):
    outside = write_tensorboard_hf(tmp_path / "outside" / "run")
    (tmp_path / "root" / "linked").mkdir(parents=True)
    for f in outside.iterdir():
        (tmp_path / "root" / "linked" / f.name).symlink_to(f)
    found = foreign.discover((tmp_path / "root").resolve())
    assert found.runs == []
    assert any("`linked`" in m and "refused" in m for m in found.messages)

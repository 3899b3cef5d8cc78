"""A foreign run's step at which a metric was not logged is "not logged" (null), never a NaN:
only a NaN or infinite loss the run really logged means it diverged, as for a recorded run
(dashboard.metrics.logged). Written with TensorBoard's own SummaryWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from foreign_writers import age, loss_at, lr_at

from dashboard import foreign
from dashboard.foreign import mapping, reader
from dashboard.metrics.logged import nonfinite_loss
from dashboard.metrics.statistics import summarize

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
STEPS = 60
LOSS_EVERY = 10
NAN_AT = 40  # the step at which the diverging run logs a NaN loss


def write_sparse_loss(run_dir: Path, nan_at: int | None = None) -> None:
    """A loop that logs the learning rate every step, the loss every LOSS_EVERY steps and an
    evaluation loss every 20; from `nan_at` on, the logged loss is NaN (a diverged run)."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    w.add_text("args", '{"optim": "adamw_torch", "learning_rate": 0.001, "seed": 0}')
    for s in range(1, STEPS + 1):
        w.add_scalar("train/learning_rate", lr_at(s), s)
        if s % LOSS_EVERY == 0:
            diverged = nan_at is not None and s >= nan_at
            w.add_scalar("train/loss", float("nan") if diverged else loss_at(s), s)
        if s % 20 == 0:
            w.add_scalar("eval/loss", loss_at(s) + 0.5, s)
    w.close()


def found_meta(run_dir: Path) -> dict:
    found = foreign.discover(run_dir.parent)
    (run,) = [r for r in found.runs if Path(r.meta["source"]["path"]) == run_dir]
    return run.meta


def test_mapping_writes_null_where_not_logged_and_keeps_a_logged_nan():
    scalars = pd.DataFrame(
        {
            "tag": ["train/loss", "train/learning_rate", "train/learning_rate", "train/loss"],
            "step": [1, 1, 2, 3],
            "wall_time": [1.0, 1.0, 2.0, 3.0],
            "value": [2.0, 1e-3, 1e-3, float("nan")],
        }
    )
    steps, chosen = mapping.steps_table(scalars)
    assert chosen["loss"] == "train/loss" and chosen["lr"] == "train/learning_rate"
    assert steps.column("step").to_pylist() == [1, 2, 3]
    loss = steps.column("loss").to_pylist()
    assert loss[0] == 2.0 and loss[1] is None and np.isnan(loss[2])  # not logged / logged NaN
    assert steps.column("lr").to_pylist()[2] is None  # lr not logged at step 3
    assert steps.column("grad_norm").null_count == 3  # never logged


def test_loss_every_ten_steps_is_not_diverged(tmp_path):
    run_dir = tmp_path / "tb-every10"
    write_sparse_loss(run_dir)
    steps, msgs, _ = foreign.read_table(found_meta(run_dir), "steps")
    assert msgs == []
    assert len(steps) == STEPS and steps["lr"].notna().all()  # lr every step
    logged = steps[steps["loss"].notna()]
    assert list(logged["step"]) == list(range(LOSS_EVERY, STEPS + 1, LOSS_EVERY))
    np.testing.assert_allclose(logged["loss"], [loss_at(s) for s in logged["step"]], rtol=1e-6)
    assert nonfinite_loss(steps) == (0, None)  # 54 steps without a loss: none of them NaN
    s = summarize("tb", "adamw", "finished", steps, None)
    assert s.nan_steps == 0 and s.first_nan_step is None
    assert s.final_train_loss == pytest.approx(np.mean(logged["loss"]), rel=1e-6)
    lrs, _, _ = foreign.read_table(found_meta(run_dir), "lrs")
    assert len(lrs) == STEPS and lrs["lr"].notna().all()


def test_a_logged_nan_loss_is_diverged(tmp_path):
    run_dir = tmp_path / "tb-nan"
    write_sparse_loss(run_dir, nan_at=NAN_AT)
    steps, _, _ = foreign.read_table(found_meta(run_dir), "steps")
    # steps 40, 50, 60 logged NaN; the other steps without a loss do not count
    assert nonfinite_loss(steps) == (3, NAN_AT)
    s = summarize("tb", "adamw", "finished", steps, None)
    assert s.nan_steps == 3 and s.first_nan_step == NAN_AT


def test_a_second_read_from_the_disk_cache_keeps_the_rule(tmp_path):
    """The mapped tables kept on disk for the next dashboard process keep null and NaN apart."""
    every10, nan = tmp_path / "tb-every10", tmp_path / "tb-nan"
    write_sparse_loss(every10)
    write_sparse_loss(nan, nan_at=NAN_AT)
    for f in [*every10.iterdir(), *nan.iterdir()]:
        age(f)  # finished long ago: kept on disk (a live run is not)
    for d in (every10, nan):
        foreign.read_table(found_meta(d), "steps")
    foreign.clear_cache()  # memory cache gone: the next read comes from the disk cache
    before = reader.loads()
    assert nonfinite_loss(foreign.read_table(found_meta(every10), "steps")[0]) == (0, None)
    assert nonfinite_loss(foreign.read_table(found_meta(nan), "steps")[0]) == (3, NAN_AT)
    assert reader.loads() == before  # not read by TensorBoard's library again


def test_page_calls_only_the_logged_nan_run_diverged(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    write_sparse_loss(tmp_path / "tb-every10")
    write_sparse_loss(tmp_path / "tb-nan", nan_at=NAN_AT)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["baseline"] = "tb-every10"
    at.session_state["compare"] = ["tb-nan"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(
        str(e.value) for kind in ("warning", "info", "error", "markdown") for e in getattr(at, kind)
    )
    assert "its loss became not-a-number at step 40 (diverged)" in text
    assert "step 10 (diverged)" not in text and "step 1 (diverged)" not in text
    captions = "\n".join(str(e.value) for e in at.caption)
    assert "on show checked for damage" not in captions  # only TensorBoard runs: no "All 0 ..."
    assert "Checked for damage so far" not in captions
    (table,) = [d.value for d in at.dataframe if "Steps with NaN loss" in d.value.columns]
    nan_steps = dict(zip(table["Run"], table["Steps with NaN loss"], strict=True))
    assert nan_steps == {"tb-every10": 0, "tb-nan": 3}


def test_lightning_csv_logger_keeps_a_logged_nan_apart_from_an_empty_cell(tmp_path):
    """Lightning's CSVLogger writes an empty cell where a call did not log a metric and "nan"
    where it logged a NaN: the first is not logged, the second diverged."""
    pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path / "runs"), name="csv")
    logger.log_hyperparams({"lr": 1e-3, "seed": 0})
    for s in range(STEPS):  # Lightning's steps count from 0
        logger.log_metrics({"lr-AdamW": lr_at(s + 1)}, step=s)
        if (s + 1) % LOSS_EVERY == 0:
            diverged = s + 1 >= NAN_AT
            logger.log_metrics({"train_loss": float("nan") if diverged else loss_at(s + 1)}, step=s)
    logger.finalize("success")
    run_dir = Path(logger.log_dir)
    assert ",nan" in (run_dir / "metrics.csv").read_text()  # what the writer wrote
    steps, msgs, _ = foreign.read_table(found_meta(run_dir), "steps")
    assert msgs == []
    logged = steps[steps["step"] % LOSS_EVERY == 0]  # counted from 1 again, as the user does
    assert len(logged) == STEPS // LOSS_EVERY and steps["lr"].notna().all()
    assert nonfinite_loss(steps) == (3, NAN_AT)  # 40, 50, 60; none of the 54 empty cells


def test_wandb_keeps_a_logged_nan_apart_from_a_metric_a_row_did_not_log(wandb_env):
    """`wandb.log` rows with the learning rate every step and the loss every LOSS_EVERY steps,
    NaN from NAN_AT on: the rows without a loss are not logged, the NaN ones diverged."""
    import wandb
    from foreign_writers import wait_for_wandb_exit

    run = wandb.init(project="sparse", dir=str(wandb_env), config={"lr": 1e-3, "seed": 0})
    for s in range(1, STEPS + 1):
        row = {"lr": lr_at(s)}
        if s % LOSS_EVERY == 0:
            row["loss"] = float("nan") if s >= NAN_AT else loss_at(s)
        run.log(row, step=s)
    run.finish()
    (d,) = [p for p in (wandb_env / "wandb").iterdir() if p.name.endswith(run.id)]
    wait_for_wandb_exit(d)
    (found,) = foreign.discover(wandb_env).runs
    steps, msgs, _ = foreign.read_table(found.meta, "steps")
    assert msgs == []
    assert len(steps) == STEPS and steps["lr"].notna().all()
    logged = steps[steps["step"] % LOSS_EVERY == 0].set_index("step")["loss"]
    assert logged[10] == pytest.approx(loss_at(10)) and np.isnan(logged[NAN_AT])
    assert nonfinite_loss(steps) == (3, NAN_AT)  # 40, 50, 60; none of the 54 rows without

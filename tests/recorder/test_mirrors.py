"""Mirrors of the recorder's step scalars: real SummaryWriter, wandb offline run, MLflow store."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from recorder_helpers import read, tiny_model, train_steps

from recorder import Recorder
from recorder.mirrors import MLflowSink, TensorBoardSink, WandbSink
from recorder.sinks import ScalarSink
from sgg import SGG

STEPS = 12
SGG_OPTIONS = dict(n_clusters=2, recluster_interval=4)


def record_with(run_dir, sink):
    model = tiny_model()
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), **SGG_OPTIONS)
    with Recorder(run_dir, optimizer=opt, model=model, sinks=[sink], flush_every_steps=5) as rec:
        train_steps(model, opt, STEPS, rec)
    return read(run_dir, "steps")


def check_mirrored(series: dict[str, dict[int, float]], steps) -> None:
    """The mirrored series equal the recorded `steps` table, step by step."""
    assert sorted(series["sgg/loss"]) == list(range(1, STEPS + 1))
    for col in ("loss", "lr", "grad_norm", "update_norm", "param_norm"):
        known = steps[steps[col].notna()]  # update/param norms: on layer-statistics steps
        assert sorted(series[f"sgg/{col}"]) == known["step"].tolist() != []
        got = [series[f"sgg/{col}"][s] for s in known["step"]]
        np.testing.assert_allclose(got, known[col], rtol=1e-6, err_msg=col)
    reclustered = [s for s, v in series["sgg/reclustered"].items() if v == 1.0]
    assert reclustered == steps.loc[steps["reclustered"], "step"].tolist() != []
    assert all(np.isfinite(v) and v > 0 for v in series["sgg/sgg_factor_mean"].values())
    assert series["sgg/tokens"][STEPS] == 32 * STEPS


def test_sinks_implement_the_protocol(tmp_path):
    pytest.importorskip("tensorboard")
    sink = TensorBoardSink(tmp_path / "tb")
    assert isinstance(sink, ScalarSink)
    sink.close()
    sink.close()  # idempotent


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: TensorBoardSink(p, prefix=3), "prefix"),
        (lambda p: TensorBoardSink(object()), "writer"),
        (lambda p: WandbSink(object()), "run"),
        (lambda p: MLflowSink("abc", client=object(), flush_every_seconds=0), "flush_every"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, make, match):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match=match):
        make(tmp_path / "tb")


def test_tensorboard_mirror_of_a_recorded_sgg_run(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))  # the user's own writer
    writer.add_scalar("my/loss", 1.0, 1)
    steps = record_with(tmp_path / "run", TensorBoardSink(writer))
    writer.add_scalar("my/loss", 0.5, 2)  # still open after the recorder closed
    writer.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    series = {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}
    assert series["my/loss"] == {1: 1.0, 2: 0.5}
    check_mirrored(series, steps)


def test_wandb_mirror_of_a_recorded_sgg_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    from dashboard.foreign import wandb_run

    for k, v in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_CONFIG_DIR": str(tmp_path / ".cfg"),
        "WANDB_CACHE_DIR": str(tmp_path / ".cache"),
    }.items():
        monkeypatch.setenv(k, v)
    wandb.teardown()  # wandb keeps the settings of its first use in the process: start afresh
    run = wandb.init(project="mirror", dir=str(tmp_path))
    for i in range(3):  # the loop's own logs: wandb's _step is no longer the optimizer step
        run.log({"my/metric": float(i)})
    steps = record_with(tmp_path / "run", WandbSink(run))
    run.finish()
    (d,) = [p for p in (tmp_path / "wandb").iterdir() if p.name.endswith(run.id)]
    deadline = time.monotonic() + 60  # wandb's service writes the log after finish() returns
    while (read := wandb_run.read(d))["status"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    wandb.teardown()
    raw = read["scalars"]  # read back through wandb's own records
    mirrored = raw[raw["tag"].str.startswith("sgg/")]
    series: dict[str, dict[int, float]] = {}
    for tag, part in mirrored.groupby("tag"):
        series[tag] = dict(zip(part["step"], part["value"], strict=True))
    check_mirrored(series, steps)


def test_mlflow_mirror_of_a_recorded_sgg_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(client.create_experiment("mirror")).info.run_id
    steps = record_with(tmp_path / "run", MLflowSink(run_id, client=client))
    keys = client.get_run(run_id).data.metrics
    series = {
        k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in sorted(keys)
    }
    check_mirrored(series, steps)


def test_recording_without_sinks_imports_no_tracking_library():
    code = (
        "import sys, torch\n"
        "from recorder import Recorder\n"
        "from sgg import SGG\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorboard', 'wandb', 'mlflow', 'recorder.mirrors') or m == 'recorder.mirrors']\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"

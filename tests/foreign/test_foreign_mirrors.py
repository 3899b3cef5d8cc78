"""The recorder's own mirrors (`recorder.mirrors`: `sgg/loss`, ... in TensorBoard, W&B and
MLflow) read with no `foreign-metrics.json`; an empty MLflow mirror beside recorded runs is
never the default baseline, nor named "?"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from foreign_writers import record_sgg as record
from foreign_writers import three_steps, wait_for_wandb_exit

from dashboard import foreign, loader
from dashboard.foreign.names import CONFIG_FILE
from dashboard.metrics import groups

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
STEPS = 12


def recorded_steps(run_dir: Path):
    disc = loader.discover_runs(run_dir)
    (run,) = disc.runs
    return loader.read_table(run, "steps", disc.root).df.set_index("step")


def test_the_recorders_mirrors_read_with_no_configuration(
    tmp_path, wandb_env, mlflow_file_store, monkeypatch
):
    pytest.importorskip("tensorboard")
    import wandb
    from mlflow import MlflowClient

    from recorder.mirrors import MLflowSink, TensorBoardSink, WandbSink

    wb = wandb.init(project="mirror", dir=str(wandb_env), name="sgg-mirror")
    client = MlflowClient(tracking_uri=mlflow_file_store.as_uri())
    ml_id = client.create_run(client.create_experiment("mirror"), run_name="sgg-mirror")
    ml_id = ml_id.info.run_id
    sinks = [
        TensorBoardSink(tmp_path / "tb" / "sgg-mirror"),
        WandbSink(wb),
        MLflowSink(ml_id, client=client),
    ]
    record(tmp_path / "recorded" / "sgg", sinks=sinks)
    wb.finish()
    client.set_terminated(ml_id)
    (d,) = (wandb_env / "wandb").glob("offline-run-*")
    wait_for_wandb_exit(d)
    want = recorded_steps(tmp_path / "recorded")
    for folder in (tmp_path / "tb", wandb_env / "wandb", mlflow_file_store):
        assert not (folder / CONFIG_FILE).exists()
        found = foreign.discover(folder.resolve())
        (run,) = found.runs
        assert found.messages == [] and run.problems == ()
        cols = run.meta["source"]["columns"]
        assert cols == {
            "loss": "sgg/loss",
            "lr": "sgg/lr",
            "grad_norm": "sgg/grad_norm",
            "tokens": "sgg/tokens",
        }, folder
        assert run.meta["source"]["step_offset"] == 0
        steps, msgs, _ = foreign.read_table(run.meta, "steps")
        assert msgs == []
        got = steps.set_index("step")
        assert got.index.tolist() == list(range(1, STEPS + 1))
        for col in ("loss", "lr", "grad_norm", "tokens"):
            for s in three_steps(dict(want[col].items())):
                np.testing.assert_allclose(
                    float(got.at[s, col]), float(want.at[s, col]), rtol=1e-6, err_msg=col
                )


def _empty_mirror(store: Path, name: str) -> None:
    """An MLflow run the mirror made but never wrote to (the training stopped before the
    mirror's first batch was sent)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    exp = client.get_experiment_by_name("mirror")
    exp_id = exp.experiment_id if exp else client.create_experiment("mirror")
    client.set_terminated(client.create_run(exp_id, run_name=name).info.run_id)


def test_an_empty_mlflow_mirror_is_never_the_default_baseline(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for seed in (0, 1):
        record(tmp_path / f"sgg-s{seed}", seed=seed)
    for seed in (0, 1):  # one per seed, as the mirror of each recorded run would be
        _empty_mirror(tmp_path / "mlruns", f"aaa-mirror-s{seed}")  # sorts first by name
    found = foreign.discover(tmp_path.resolve())
    assert len(found.runs) == 2
    assert all(not foreign.has_loss(r.meta) for r in found.runs)
    assert all(groups.optimizer_name(r.meta) == groups.UNKNOWN_OPTIMIZER for r in found.runs)
    assert all("logged no metrics" in " ".join(r.problems) for r in found.runs)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    base = at.selectbox(key="baseline")
    assert "mirror" not in base.value and "mirror" not in str(base.format_func(base.value))
    assert all("mirror" not in v for v in at.multiselect(key="compare").value)
    headings = [h.value for h in at.subheader]
    assert any(h.startswith("How do the runs compare with sgg") for h in headings), headings
    assert not [h for h in headings if "?" in h.removesuffix("?")]
    # the empty mirrors are listed, each with its word among the runs with problems
    (listed,) = [d.value for d in at.dataframe if "Folder" in d.value.columns]
    assert len(listed[listed["Folder"].str.startswith("mlruns/")]) == 2
    notes = [i.value for i in at.info if "logged no metrics" in i.value]
    assert len(notes) == 2 and all("aaa-mirror" in n or "mlruns/" in n for n in notes)

"""The dashboard with foreign runs: a mixed folder on the page, and no extra installed at all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from foreign_writers import write_mlflow_hf, write_tensorboard_hf, write_wandb_hf

from recorder import Recorder
from sgg import SGG

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")


def record_sgg_run(run_dir: Path, steps: int = 30) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-3), n_clusters=2, recluster_interval=5)
    cfg = {"lr": 1e-3, "seed": 0, "optimizer": "sgg"}
    with Recorder(run_dir, optimizer=opt, model=model, config=cfg, seed=0) as rec:
        for step in range(1, steps + 1):
            x = torch.randn(16, 8)
            loss = torch.nn.functional.mse_loss(model(x), x[:, :4])
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=16)
            if step % 10 == 0:
                rec.log_eval(step=step, loss=loss.detach() + 0.1)


def test_summary_of_a_recorded_sgg_run_beside_a_tensorboard_adamw_baseline(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    record_sgg_run(tmp_path / "sgg-lr1e-3")
    write_tensorboard_hf(tmp_path / "tensorboard" / "adamw-baseline", seed=0)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "could not be drawn" in e.value]  # the Summary
    # same learning rate and optimizer key as the recorded run's config: like for like on those
    assert not [w.value for w in at.warning if "learning rate" in w.value]
    (listed,) = [d.value for d in at.dataframe if "Folder" in d.value.columns]  # the run list
    assert "tensorboard/adamw-baseline" in set(listed["Folder"])
    row = listed[listed["Folder"] == "tensorboard/adamw-baseline"].iloc[0]
    assert row["Optimizer"] == "adamw" and row["Learning rate"] == "0.001"


BLOCKED_RUN = textwrap.dedent(
    """
    import json, sys

    class Blocker:  # as if the extras were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorboard", "wandb", "mlflow"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Blocker())
    from dashboard import loader

    disc = loader.discover_runs(sys.argv[1])
    print(json.dumps({
        "runs": [r.rel for r in disc.runs],
        "messages": disc.messages,
        "imported": sorted(m for m in sys.modules if m.split(".")[0] in {"tensorboard", "wandb"}),
    }))
    """
)


def test_dashboard_without_the_extras_names_the_extra_a_folder_needs(tmp_path):
    pytest.importorskip("tensorboard")
    record_sgg_run(tmp_path / "sgg", steps=5)
    write_tensorboard_hf(tmp_path / "tb" / "adamw")
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["runs"] == ["sgg"]  # our run is still there
    assert res["imported"] == []
    (msg,) = [m for m in res["messages"] if "TensorBoard" in m]
    assert "`tb/adamw`" in msg and "pip install '.[tensorboard]'" in msg


def test_reading_foreign_runs_imports_no_torch(tmp_path, wandb_env, mlflow_file_store):
    """The dashboard opens runs on a laptop without PyTorch: reading all three kinds of
    foreign run imports neither torch nor our recorder."""
    write_tensorboard_hf(tmp_path / "tb" / "adamw")
    write_wandb_hf(wandb_env, "wb-adamw")
    write_mlflow_hf(mlflow_file_store.as_uri(), "ml-adamw")
    code = (
        "import sys\n"
        "from dashboard import loader\n"
        "d = loader.discover_runs(sys.argv[1])\n"
        "rows = sum(len(loader.read_table(r, 'steps', d.root).df) for r in d.runs)\n"
        "print(len(d.runs), rows, sorted(m for m in ('torch', 'sgg', 'recorder') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "3 90 []"

"""A foreign run that does not name its optimizer reads "unknown optimizer" wherever a person
reads its label: the run list, the pickers, the Summary's heading and tables; never "?"."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from foreign_writers import loss_at, lr_at, record_sgg

from dashboard import foreign
from dashboard.metrics import groups

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
STEPS = 30


def write_unnamed(run_dir: Path, seed: int) -> None:
    """A SummaryWriter loop whose logged settings name the learning rate and seed, not the
    optimizer."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    w.add_text("args", json.dumps({"learning_rate": 1e-3, "seed": seed}))
    for s in range(1, STEPS + 1):
        w.add_scalar("train/loss", loss_at(s) + 0.01 * seed, s)
        w.add_scalar("train/learning_rate", lr_at(s), s)
        if s % 10 == 0:
            w.add_scalar("eval/loss", loss_at(s) + 0.5, s)
    w.close()


def lone_question_marks(text: str) -> list[str]:
    """'?' used as a name: alone, or before a comma, bracket or space ('? (2 seeds)')."""
    return re.findall(r"(?:^|[\s(\[,:])\?(?=[\s,)\]]|$)", text)


def test_label_of_a_run_that_does_not_say():
    assert groups.optimizer_name({}) == groups.UNKNOWN_OPTIMIZER == "unknown optimizer"
    assert groups.optimizer_name({"optimizer": {"name": "?"}}) == "unknown optimizer"
    assert groups.optimizer_name({"optimizer": {"name": "AdamW"}}) == "adamw"
    assert not groups.names_optimizer({"optimizer": {"name": "?"}})
    label = groups.group_label({"config": {"lr": 1e-3}}, [], [0, 1])
    assert label == "unknown optimizer, lr 1e-3 (2 seeds)"


def test_pickers_run_list_and_headings_say_unknown_optimizer(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    for seed in (0, 1):
        write_unnamed(tmp_path / "tensorboard" / f"plain-s{seed}", seed)
    record_sgg(tmp_path / "sgg-s0", seed=0, steps=STEPS)
    found = foreign.discover(tmp_path.resolve())
    assert [groups.optimizer_name(r.meta) for r in found.runs] == 2 * ["unknown optimizer"]
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["baseline"] = "plain-s0"
    at.session_state["compare"] = ["sgg-s0"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (listed,) = [d.value for d in at.dataframe if "Folder" in d.value.columns]  # the run list
    rows = listed[listed["Folder"].str.startswith("tensorboard/")]
    assert list(rows["Optimizer"]) == ["unknown optimizer", "unknown optimizer"]
    base = at.selectbox(key="baseline")
    shown = str(base.format_func(base.value))
    assert shown.startswith("unknown optimizer, lr 1e-3 (2 seeds)"), shown
    headings = [h.value for h in at.subheader]
    assert (
        "How do the runs compare with unknown optimizer, lr 1e-3 · TensorBoard (2 seeds)?"
        in headings
    )
    texts = [
        str(e.value)
        for kind in ("subheader", "markdown", "caption", "warning", "info", "error")
        for e in getattr(at, kind)
    ]
    texts += [d.value.to_csv() for d in at.dataframe] + [t.value.to_csv() for t in at.table]
    assert not [t for t in texts if lone_question_marks(t)], [
        t for t in texts if lone_question_marks(t)
    ]
    summary = [d.value for d in at.dataframe if "Optimizer" in d.value.columns]
    assert any("unknown optimizer" in set(df["Optimizer"]) for df in summary)

"""A setting one run does not record is neither the same nor a difference: the Summary's
"N of the M differ in more than the optimizer" and the Sweep's "left out (they differ ...)"
count only settings both runs record and that differ (a mixed-folder review found both counting
a TensorBoard baseline that simply did not log its batch size as 'differing')."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from dashboard import loader, narrative, sweep_report
from dashboard.metrics import compare
from dashboard.selection import Selection
from tests.dashboard.dash_fixtures import SAMPLE_RUNS

pytest.importorskip("tensorboard")


def _write_tensorboard(run_dir: Path, lr: float, seed: int) -> None:
    """What a HF Trainer's TensorBoard callback leaves when its arguments name only the
    learning rate, seed and optimizer: train/loss every step, eval/loss every 25."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_dir))
    w.add_text("args", json.dumps({"learning_rate": lr, "seed": seed, "optim": "adamw_torch"}))
    for s in range(1, 201):
        w.add_scalar("train/loss", 5.0 / (1 + 0.02 * s) + 0.01 * seed, s)
        if s % 25 == 0:
            w.add_scalar("eval/loss", 5.3 / (1 + 0.02 * s) + 0.01 * seed, s)
    w.close()


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SGG_FOREIGN_CACHE", "off")
    root = tmp_path / "runs"
    for name in ("sgg-lr4e-3-T25-s0", "sgg-lr4e-3-T25-s1", "adamw-lr4e-3-s0", "adamw-lr1e-3-s0"):
        shutil.copytree(SAMPLE_RUNS / name, root / name)
    _write_tensorboard(root / "tb" / "tb-lr4e-3-s0", 4e-3, 0)
    _write_tensorboard(root / "tb" / "tb-lr4e-3-s1", 4e-3, 1)
    return root


def _facts(run: loader.Run, root: Path) -> compare.RunFacts:
    steps = loader.read_table(run, "steps", root).df
    evals = loader.read_table(run, "evals", root).df
    return compare.run_facts(run.name, run.meta, "finished", steps, evals)


def test_unrecorded_settings_are_not_counted_as_differences(root):
    runs = {r.rel: r for r in loader.discover_runs(root).runs}
    sgg = [_facts(runs[r], root) for r in ("sgg-lr4e-3-T25-s0", "sgg-lr4e-3-T25-s1")]
    tb = [_facts(runs[r], root) for r in runs if r.startswith("tb/")]
    adamw_other_lr = [_facts(runs["adamw-lr1e-3-s0"], root)]
    vs_tb = compare.compare(sgg, tb, "sgg", "tb")
    vs_lr = compare.compare(sgg, adamw_other_lr, "sgg", "adamw 1e-3")
    assert vs_tb.not_recorded and not vs_tb.not_like_for_like  # only unrecorded settings
    assert vs_lr.not_like_for_like  # a real difference: the learning rate
    text = narrative.overview([vs_tb, dataclasses.replace(vs_lr, base_name="tb")])
    assert "1 of the 2 differ from the baseline in more than the optimizer" in text
    assert "1 could not be checked fully: some settings are not recorded" in text


def test_the_sweep_does_not_say_an_unrecorded_run_differs(root):
    found = loader.discover_runs(root)
    rels = [r.rel for r in found.runs]
    sel = Selection(found.root, tuple(found.runs), {r: r for r in rels}, rels[0])
    compared, left_out, unfinished = sweep_report.sweep_runs(sel, rels, "config.lr")
    differ, unchecked = sweep_report.left_out_reasons(
        sel, left_out, compared + unfinished, "config.lr"
    )
    assert set(unchecked) == {r for r in left_out if r.startswith("tb/")}
    assert not set(differ) & set(unchecked)

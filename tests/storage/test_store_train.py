"""`sgg-train --out s3://...`: the training command records and checkpoints on the object
store, resumes from the checkpoint there, and never writes a local folder named `s3:`."""

from __future__ import annotations

import pytest

from recorder.writer import read_table
from runformat import run_json, schema, storage
from sgg_train import train as T

TINY = [
    "--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch-size", "2",
    "--warmup-steps", "1", "--eval-every", "3", "--eval-batches", "2", "--threads", "1",
    "--no-progress", "--checkpoint-every", "3",
]  # fmt: skip


@pytest.mark.slow
def test_sgg_train_out_s3_records_checkpoints_and_resumes_on_the_store(
    store, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    out = f"{store}/sgg-run"
    assert T.main([*TINY, "--steps", "6", "--no-compact", "--out", out]) == 0
    assert not any(tmp_path.iterdir())  # nothing local: no "s3:" folder
    run = storage.locate(out)
    assert (run / schema.CHECKPOINT).is_file()
    assert run_json.read(run)["status"] == "finished"
    assert T.main([*TINY, "--steps", "6", "--out", out]) == 2  # "new" on a run: refused
    assert "already holds a run" in capsys.readouterr().err
    assert T.main([*TINY, "--steps", "9", "--resume", "--out", out]) == 0
    steps = read_table(run, "steps").column("step").to_pylist()
    assert sorted(steps) == list(range(1, 10))
    meta = run_json.read(run)
    assert [s["resume_step"] for s in meta["segments"]] == [None, 6]
    assert meta["config"]["out"] == out  # the URI as given: no endpoint, no credential


@pytest.mark.slow
def test_sgg_train_sweep_out_s3_writes_each_run_under_the_prefix(store, tmp_path, monkeypatch):
    from sgg_train import cli

    monkeypatch.chdir(tmp_path)
    sweep = ["--optimizers", "adamw", "--lr", "1e-3", "--seeds", "0", "1", "--jobs", "2"]
    tiny = [*TINY[:-2], "--no-checkpoint"]  # TINY ends with --checkpoint-every 3
    assert cli.main(["sweep", *sweep, *tiny, "--steps", "2", "--out", store]) == 0
    assert not any(tmp_path.iterdir())
    for name in ("adamw-lr1e-3-s0", "adamw-lr1e-3-s1"):
        meta = run_json.read(storage.locate(f"{store}/{name}"))
        assert meta["status"] == "finished" and meta["config"]["out"] == f"{store}/{name}"
    assert cli.main(["sweep", *sweep, *tiny, "--steps", "2", "--out", store]) == 0  # all skipped

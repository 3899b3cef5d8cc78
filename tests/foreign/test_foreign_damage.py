"""Damage is named: a TensorBoard event file cut to 60% or with a flipped byte, a `.wandb` log
with bytes flipped mid-way or cut short, an `mlflow.db` of random bytes: each shows its run as
"incomplete: N of M ... read" (or "damaged: ... is not read") naming the file, other runs in
the folder still load, and a file still being written (a live run) is "running", not damaged.
Folders that look like runs but are not read say why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from foreign_writers import (
    STEPS,
    age,
    record_sgg,
    write_summarywriter,
    write_tensorboard_hf,
    write_wandb_loop,
)

from dashboard import foreign, loader
from dashboard.foreign import tensorboard, wandb_run
from dashboard.metrics import health

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")


def _runs(root: Path):
    found = foreign.discover(root.resolve())
    return {r.rel: r for r in found.runs}, found.messages


def _event_file(run_dir: Path) -> Path:
    (f,) = run_dir.glob("events.out.tfevents.*")
    return f


def _cut(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _flip(path: Path, at: int, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for i in range(at, at + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_file_cut_to_60_percent_is_named_and_others_still_load(tmp_path):
    write_summarywriter(tmp_path / "cut")
    write_summarywriter(tmp_path / "good")
    age(_event_file(tmp_path / "good"))
    f = _event_file(tmp_path / "cut")
    whole = tensorboard.frame_scan(f.read_bytes()).records
    _cut(f, 0.6)
    age(f)
    runs, _ = _runs(tmp_path)
    assert set(runs) == {"cut", "good"}
    assert runs["good"].problems == ()
    (problem,) = runs["cut"].problems
    read = tensorboard.frame_scan(f.read_bytes()).records
    assert 0 < read < whole
    assert problem.startswith(f"`cut`: incomplete: {read:,} records read: `{f.name}` is cut off")
    steps, msgs, _ = foreign.read_table(runs["cut"].meta, "steps")
    assert msgs == [problem]  # what the page shows at the top, beside the run (Ctx.problems)
    assert 0 < steps["step"].max() < STEPS
    assert f"written after the record of step {int(steps['step'].max()):,} is lost" in problem
    assert runs["cut"].meta["source"]["damaged"] == [f.name]
    assert runs["cut"].meta["status"] == health.STOPPED  # its log ends mid-record: not finished
    assert runs["good"].meta["status"] == "finished"


def test_a_live_tensorboard_file_with_a_torn_record_is_running_not_damaged(tmp_path):
    write_summarywriter(tmp_path / "live")
    _cut(_event_file(tmp_path / "live"), 0.6)  # as a reader can see a record being written
    runs, _ = _runs(tmp_path)
    assert runs["live"].problems == ()
    assert runs["live"].meta["status"] == "running"


def test_tensorboard_record_failing_its_crc_mid_file_is_named_n_of_m(tmp_path):
    write_summarywriter(tmp_path / "flipped")
    f = _event_file(tmp_path / "flipped")
    scan = tensorboard.frame_scan(f.read_bytes())
    _flip(f, scan.size // 2)  # inside a record's data: only its CRC can tell
    age(f)
    runs, _ = _runs(tmp_path)
    (problem,) = runs["flipped"].problems
    n = tensorboard.records_tensorboard_reads(f)
    assert 0 < n < scan.records
    assert f"incomplete: {n:,} of {scan.records:,} records read: `{f.name}` is damaged" in problem
    assert "fails its checksum" in problem


def test_a_whole_tensorboard_file_has_no_word(tmp_path):
    write_tensorboard_hf(tmp_path / "whole")
    age(_event_file(tmp_path / "whole"))
    runs, _ = _runs(tmp_path)
    assert runs["whole"].problems == ()


# --------------------------------------------------------------------------- W&B


def test_wandb_log_with_bytes_flipped_mid_way_reads_past_the_damage(wandb_env):
    """200 plain `wandb.log` rows; bytes flipped in the middle lose one 32 KiB block of the
    log: the rows after it are still read, the exit record too, and the page says how many
    rows of how many were read."""
    d, logged = write_wandb_loop(wandb_env, "flipped", stepped=False, steps=200)
    write_wandb_loop(wandb_env, "good", stepped=True, steps=20)
    log = wandb_run.log_file(d)
    size = log.stat().st_size
    assert size > 2 * wandb_run.BLOCK  # several blocks: damage in one leaves the others
    _flip(log, size // 2)
    runs, _ = _runs(wandb_env)
    by_name = {r.meta["name"]: r for r in runs.values()}
    assert by_name["good"].problems == () and by_name["good"].meta["status"] == "finished"
    run = by_name["flipped"]
    (problem,) = run.problems
    steps, msgs, _ = foreign.read_table(run.meta, "steps")
    assert msgs == [problem]
    n = len(steps)
    assert 100 < n < 200
    assert f"incomplete: {n} of 200 history rows read: `{log.name}` is damaged" in problem
    assert "could not be read (a record there fails its checksum" in problem
    assert steps["step"].max() == 200  # read on after the damaged block
    missing = sorted(set(range(1, 201)) - set(steps["step"]))
    assert f"between step {missing[0] - 1} and step {missing[-1] + 1}" in problem
    kept = steps.set_index("step")["loss"]
    np.testing.assert_allclose(kept, [logged["loss"][s] for s in kept.index])
    assert run.meta["status"] == "finished"  # its exit record, after the damage, was read


def test_wandb_log_cut_short_is_named_unless_still_written(wandb_env):
    d, _ = write_wandb_loop(wandb_env, "cut", stepped=False, steps=60)
    log = wandb_run.log_file(d)
    _cut(log, 0.6)
    runs, _ = _runs(wandb_env)
    (run,) = runs.values()
    assert run.problems == () and run.meta["status"] == "running"  # written a moment ago
    age(log)
    foreign.clear_cache()
    runs, _ = _runs(wandb_env)
    (run,) = runs.values()
    (problem,) = run.problems
    assert "ends in the middle of a record" in problem and f"`{log.name}`" in problem
    assert run.meta["status"] == wandb_run.STOPPED == health.STOPPED  # no exit record: not finished


# --------------------------------------------------------------------------- MLflow


def test_an_mlflow_db_of_random_bytes_is_listed_as_damaged(tmp_path, mlflow_file_store):
    from foreign_writers import write_mlflow_hf

    write_mlflow_hf(mlflow_file_store.as_uri(), "good")
    bad = tmp_path / "other" / "mlflow.db"
    bad.parent.mkdir()
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "other" / "notes.db").write_bytes(b"not ours")  # not named like a store: quiet
    runs, messages = _runs(tmp_path)
    assert runs["other/mlflow.db"].readable is False
    (problem,) = runs["other/mlflow.db"].problems
    assert problem.startswith("`other/mlflow.db`: damaged: `mlflow.db` is not read: it is not")
    assert "SQLite" in problem
    good = [r for r in runs.values() if r.readable]
    assert [r.meta["name"] for r in good] == ["good"]
    assert not any("notes.db" in m for m in messages)
    disc = loader.discover_runs(tmp_path)
    (listed,) = [r for r in disc.runs if r.rel == "other/mlflow.db"]
    assert listed.problems == (problem,) and loader.display_status(listed) == "unreadable"


# --------------------------------------------------------------------------- not read


def test_folders_that_look_like_runs_but_are_not_read_say_why(tmp_path):
    v = tmp_path / "lightning_logs" / "version_0"
    v.mkdir(parents=True)
    (v / "hparams.yaml").write_text("lr: 0.001\n")
    w = tmp_path / "wandb" / "offline-run-20250101_120000-abcd1234"
    (w / "files").mkdir(parents=True)
    c = tmp_path / "lightning_logs" / "version_1"
    c.mkdir()
    (c / "hparams.yaml").write_text("lr: 0.001\n")
    (c / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
    runs, messages = _runs(tmp_path)
    assert runs == {}
    text = "\n".join(messages)
    assert "`lightning_logs/version_0` is not read: it holds Lightning's `hparams.yaml`" in text
    assert "`wandb/offline-run-20250101_120000-abcd1234` is not read: it is a wandb run" in text
    assert "`lightning_logs/version_1` is not read: its `metrics.csv` has no `step`" in text


def test_csv_logger_hparams_with_python_objects_still_read(tmp_path):
    v = tmp_path / "lightning_logs" / "version_0"
    v.mkdir(parents=True)
    (v / "metrics.csv").write_text("epoch,step,train_loss\n0,0,2.0\n0,1,1.5\n0,2,1.25\n")
    (v / "hparams.yaml").write_text(
        "lr: 0.001\nbetas: !!python/tuple\n- 0.9\n- 0.95\nact: !!python/name:torch.nn.GELU ''\n"
    )
    runs, _ = _runs(tmp_path)
    run = runs["lightning_logs/version_0"]
    assert run.problems == ()
    assert run.meta["config"]["betas"] == [0.9, 0.95]
    assert run.meta["config"]["act"] == "torch.nn.GELU"
    steps, _, _ = foreign.read_table(run.meta, "steps")
    assert steps["step"].tolist() == [1, 2, 3]  # Lightning counts from 0
    np.testing.assert_allclose(steps["loss"], [2.0, 1.5, 1.25])


# --------------------------------------------------------------------------- the page


@pytest.mark.slow
def test_the_page_names_the_damage_beside_the_run(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.sidebar import ENV_ROOT

    record_sgg(tmp_path / "sgg-lr1e-3", steps=30)
    write_tensorboard_hf(tmp_path / "tensorboard" / "adamw-cut")
    f = _event_file(tmp_path / "tensorboard" / "adamw-cut")
    _cut(f, 0.6)
    age(f)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    top = [w.value for w in at.warning if "incomplete:" in w.value]
    assert len(top) == 1 and "adamw-cut" in top[0] and f"`{f.name}` is cut off" in top[0]


# --------------------------------------------------------------------------- fuzz


def _mutations(data: bytes, rng: np.random.Generator, n: int):
    """`n` damaged copies: cut at a random byte, or 1-4 random bytes flipped."""
    for _ in range(n):
        if rng.random() < 0.4:
            yield data[: int(rng.integers(1, len(data)))]
        else:
            out = bytearray(data)
            for i in rng.integers(0, len(data), int(rng.integers(1, 5))):
                out[i] ^= int(rng.integers(1, 256))
            yield bytes(out)


def _record_ends(data: bytes) -> set[int]:
    """Where each whole record of an event file ends (a cut there leaves whole records)."""
    ends, pos = set(), 0
    while pos < len(data):
        pos += 16 + tensorboard.RECORD_LENGTH.unpack_from(data, pos)[0]
        ends.add(pos)
    return ends


def _steps_or_none(run):
    if not run.readable:
        return None
    df, _, _ = foreign.read_table(run.meta, "steps")
    return None if df is None else df[["step", "loss", "lr", "grad_norm"]]


@pytest.mark.slow
def test_fuzz_no_damaged_foreign_run_is_shown_without_a_word(tmp_path, wandb_env):
    """Random cuts and byte flips of a TensorBoard event file and of a `.wandb` log: never a
    traceback, and whenever what is read differs from the whole file's data, the run says so
    (a word beside it, or for W&B the status of a log that never ended). An event file cut
    exactly between two records cannot tell it was cut: such cuts are not drawn."""
    rng = np.random.default_rng(17)
    write_summarywriter(tmp_path / "tb-whole")
    wb_dir, _ = write_wandb_loop(wandb_env, "wb-whole", stepped=False, steps=60)
    cases = [
        (tmp_path / "tb-whole", _event_file(tmp_path / "tb-whole")),
        (wb_dir, wandb_run.log_file(wb_dir)),
    ]
    for k, (run_dir, f) in enumerate(cases):
        age(f)
        (whole,) = foreign.discover(run_dir.resolve()).runs
        want = _steps_or_none(whole)
        whole_data = f.read_bytes()
        boundaries = _record_ends(whole_data) if k == 0 else set()
        mutations = (d for d in _mutations(whole_data, rng, 16) if len(d) not in boundaries)
        for i, data in enumerate(mutations):
            copy = tmp_path / "fuzz" / f"{k}-{i}" / run_dir.name
            copy.mkdir(parents=True)
            for g in run_dir.rglob("*"):
                if g.is_file():
                    target = copy / g.relative_to(run_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data if g == f else g.read_bytes())
                    age(target)
            found = foreign.discover(copy.parent.resolve())
            (run,) = found.runs
            got = _steps_or_none(run)
            same = got is not None and want is not None and got.equals(want)
            said = bool(run.problems) or run.meta.get("status") == health.STOPPED
            assert same or said, (k, i, len(data))


def test_a_tensorboard_file_cut_after_it_was_read_is_read_again(tmp_path):
    """The open reader of a run keeps appending; a file that shrank is read afresh."""
    write_summarywriter(tmp_path / "run")
    f = _event_file(tmp_path / "run")
    age(f)
    (run,) = foreign.discover(tmp_path.resolve()).runs
    assert run.problems == () and len(foreign.read_table(run.meta, "steps")[0]) == STEPS
    _cut(f, 0.6)
    age(f)
    (run,) = foreign.discover(tmp_path.resolve()).runs
    (problem,) = run.problems
    assert "is cut off" in problem
    assert len(foreign.read_table(run.meta, "steps")[0]) < STEPS


def test_csv_logger_without_pyyaml_reads_the_metrics_and_says_so(tmp_path):
    import json
    import subprocess
    import sys

    v = tmp_path / "lightning_logs" / "version_0"
    v.mkdir(parents=True)
    (v / "metrics.csv").write_text("epoch,step,train_loss\n0,0,2.0\n0,1,1.5\n")
    (v / "hparams.yaml").write_text("lr: 0.001\n")
    code = (
        "import importlib.util, json, sys\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] == 'yaml' "
        "else _find(n, *a)\n"
        "sys.modules['yaml'] = None  # import yaml fails, as when it is not installed\n"
        "from dashboard import foreign\n"
        "(r,) = foreign.discover(__import__('pathlib').Path(sys.argv[1])).runs\n"
        "df, _, _ = foreign.read_table(r.meta, 'steps')\n"
        "print(json.dumps({'problems': list(r.problems), 'steps': df['step'].tolist(),"
        " 'config': r.meta['config']}))\n"
    )
    env = {**__import__("os").environ, "SGG_FOREIGN_CACHE": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
        env=env,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["steps"] == [1, 2] and res["config"] == {}
    assert res["problems"] == [
        "`lightning_logs/version_0`: `hparams.yaml` is not read: PyYAML is not installed "
        "(`pip install pyyaml`)"
    ]

"""The Recorder on a tiny model: tables, statistics, modes, failures, bounded buffers."""

from __future__ import annotations

import copy
import errno
import json
import sys
import types

import numpy as np
import pytest
import torch
from recorder_helpers import FakeSGG, read, tiny_model, train_steps

from recorder import Recorder, RecorderError, RecorderOptions, RunExistsError, writer
from runformat import schema


def _run(tmp_path, n=20, **kw):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "run"
    with Recorder(run, optimizer=opt, model=model, config={"x": 1}, seed=0, **kw) as rec:
        train_steps(model, opt, n, rec)
        rec.log_eval(step=n, loss=torch.tensor(0.5))
    return run, model, rec


def test_adamw_run_writes_every_table_it_should(tmp_path):
    run, model, _ = _run(tmp_path, n=20, layer_stride=5, flush_every_steps=7, histogram_every=10)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["last_flushed_step"] == 20
    assert meta["optimizer"]["name"] == "adamw" and meta["optimizer"]["sgg"] is None
    assert [lay["name"] for lay in meta["model"]["layers"]] == [
        n for n, _ in model.named_parameters()
    ]
    assert meta["model"]["num_parameters"] == sum(p.numel() for p in model.parameters())
    steps = read(run, "steps")
    assert steps["step"].tolist() == list(range(1, 21))
    assert steps["tokens"].tolist() == [32 * s for s in range(1, 21)]
    assert steps[["loss", "grad_norm", "optimizer_time"]].notna().all().all()
    # default update_norm="state": update and parameter norms on layer-statistics steps
    for col in ("update_norm", "param_norm"):
        assert steps.loc[steps[col].notna(), "step"].tolist() == [5, 10, 15, 20]
    assert not steps["reclustered"].any()
    assert (np.diff(steps["wall_time"]) >= 0).all()
    assert len(writer.list_chunks(run, "steps")) == 3  # 7 + 7 + 6
    assert read(run, "lrs")["lr"].eq(1e-2).all()
    layers = read(run, "layers")
    assert sorted(set(layers["step"])) == [5, 10, 15, 20]
    assert len(layers) == 4 * len(list(model.parameters()))
    assert (layers["factor_mean"] == 1).all()
    hist = read(run, "histograms")
    assert sorted(set(hist["step"])) == [10, 20] and (hist["cluster"] == -1).all()
    assert set(hist["layer"]) == {n for n, p in model.named_parameters() if p.dim() >= 2}
    assert read(run, "evals")["loss"].tolist() == [0.5]
    for t in ("clusters", "transitions", "membership"):
        assert read(run, t).empty


@pytest.mark.parametrize("update_norm", ["snapshot", "state"])
def test_global_norms_match_a_direct_computation(tmp_path, update_norm):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Recorder(
        tmp_path / "r", optimizer=opt, model=model, update_norm=update_norm, layer_stride=1
    ) as rec:
        x = torch.randn(4, 8)
        model(x).square().mean().backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
        before = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        rec.log_step(1, loss=1.0)
    row = read(tmp_path / "r", "steps").iloc[0]
    assert row["grad_norm"] == pytest.approx(g, rel=1e-5)
    assert row["update_norm"] == pytest.approx((after - before).norm().item(), rel=1e-4)
    assert row["param_norm"] == pytest.approx(after.norm().item(), rel=1e-5)


def test_layer_statistics_match_numpy(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-8)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, layer_stride=3, quantile_sample=4096) as rec:
        train_steps(model, opt, 3, rec)
        name, p = next(iter(model.named_parameters()))  # 128 elements: 4096 % 128 == 0 (exact)
        m = opt.state[p]["exp_avg"].numpy().ravel()
        v = opt.state[p]["exp_avg_sq"].numpy().ravel()
        pos = rec.layers.quantile_positions[0].numpy()  # every position, repeated 32 times
    row = read(run, "layers").set_index("layer").loc[name]
    assert row["m_mean"] == pytest.approx(m.mean(), rel=1e-4, abs=1e-9)
    assert row["m_std"] == pytest.approx(m.std(), rel=1e-3)
    assert row["m_abs_mean"] == pytest.approx(np.abs(m).mean(), rel=1e-5)
    assert row["m_q25"] == pytest.approx(np.quantile(m[pos], 0.25), rel=1e-4, abs=1e-9)
    assert row["v_mean"] == pytest.approx(v.mean(), rel=1e-5)
    alr = 1e-2 / (np.sqrt(v / (1 - 0.999**3)) + 1e-8)
    cols = ("alr_q05", "alr_q25", "alr_q50", "alr_q75", "alr_q95")
    for q, col in zip(schema.QUANTILES, cols, strict=True):
        assert row[col] == pytest.approx(np.quantile(alr[pos], q), rel=1e-4)
    assert row["update_to_weight"] == pytest.approx(row["update_norm"] / row["param_norm"])


def test_fake_sgg_clusters_equal_its_introspection(tmp_path):
    model = tiny_model()
    opt = FakeSGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=5)
    run = tmp_path / "r"
    seen = {}

    def keep(o, step):
        seen[step] = {id(p): o.cluster_state(p) for p in o.clustered_params()}

    opt.register_recluster_hook(keep)
    with Recorder(run, optimizer=opt, model=model, seed=3, membership_sample=10) as rec:
        train_steps(model, opt, 12, rec)
    names = {id(p): n for n, p in model.named_parameters()}
    clusters = read(run, "clusters")
    assert sorted(set(clusters["step"])) == [5, 10]
    for step, states in seen.items():
        for pid, st in states.items():
            rows = clusters[(clusters.step == step) & (clusters.layer == names[pid])]
            assert rows["size"].tolist() == st.sizes.tolist()
            assert rows["factor"].tolist() == pytest.approx(st.factors.tolist())
            assert rows["raw_factor"].tolist() == pytest.approx(st.raw_factors.tolist())
    tr = read(run, "transitions")
    assert set(tr["step"]) == {10}
    for pid, st in seen[10].items():
        rows = tr[tr.layer == names[pid]].sort_values(["from_cluster", "to_cluster"])
        assert rows["count"].tolist() == st.transitions.reshape(-1).tolist()
    mb = read(run, "membership")
    first = mb[(mb.step == 10) & (mb.layer == "0.weight")]
    st = seen[10][id(model[0].weight)]
    assert (
        first["cluster"].tolist()
        == st.assignments[torch.as_tensor(first["position"].to_numpy().copy())].tolist()
    )
    assert len(first) == 10
    steps = read(run, "steps")
    assert steps.loc[steps.reclustered, "step"].tolist() == [5, 10]
    hist = read(run, "histograms")
    one = hist[(hist.step == 5) & (hist.layer == "0.weight") & (hist.quantity == "momentum")]
    assert sorted(set(one["cluster"])) == [-1, 0, 1, 2]
    whole = one[one.cluster == -1]["count"].to_numpy()
    per = one[one.cluster >= 0].groupby("bin")["count"].sum().to_numpy()
    assert whole.sum() == model[0].weight.numel() and (whole == per).all()
    layers = read(run, "layers")
    assert (layers.loc[layers.layer == "0.bias", "factor_mean"] == 1).all()


def test_shadow_clustering_is_flagged_and_leaves_training_unchanged(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sgg", types.SimpleNamespace(SGG=FakeSGG))
    ref = tiny_model()
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    train_steps(ref, ref_opt, 12)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, shadow={"recluster_interval": 5}) as rec:
        train_steps(model, opt, 12, rec)
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    clusters = read(run, "clusters")
    assert clusters["shadow"].all() and sorted(set(clusters["step"])) == [5, 10]
    assert read(run, "histograms")["shadow"].all()
    assert json.loads((run / "run.json").read_text())["optimizer"]["shadow"] is not None


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    run, _, _ = _run(tmp_path, n=3)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(RunExistsError, match="resume"):
        Recorder(run, optimizer=opt, model=model)
    with Recorder(run, optimizer=opt, model=model, mode="overwrite") as rec:
        train_steps(model, opt, 2, rec)
    assert read(run, "steps")["step"].tolist() == [1, 2]
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    for mode in ("new", "overwrite"):
        with pytest.raises(RunExistsError, match="holds no run"):
            Recorder(other, optimizer=opt, model=model, mode=mode)
    with pytest.raises(RecorderError, match="no run"):
        Recorder(other, optimizer=opt, model=model, mode="resume")
    assert (other / "precious.txt").exists()


def test_resume_drops_later_rows_and_continues_without_duplicates(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    rec = Recorder(run, optimizer=opt, model=model, flush_every_steps=4, layer_stride=2)
    train_steps(model, opt, 6, rec)
    checkpoint = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
    assert json.loads((run / "run.json").read_text())["last_flushed_step"] == 6  # state_dict
    train_steps(model, opt, 4, rec, start=7)
    rec.flush()  # a crash after step 10 was flushed: no close()
    rec._view.detach()  # the crashed process's hooks are gone with it
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["opt"])
    with pytest.raises(ValueError, match=r"resume_step=4 disagrees with the optimizer.* 6 steps"):
        Recorder(run, optimizer=opt, model=model, mode="resume", resume_step=4)
    with Recorder(run, optimizer=opt, model=model, mode="resume", layer_stride=2) as rec2:
        train_steps(model, opt, 4, rec2, start=7)
    steps = read(run, "steps")
    assert steps["step"].tolist() == list(range(1, 11))
    assert steps["tokens"].tolist() == [32 * s for s in range(1, 11)]
    assert (np.diff(steps["wall_time"]) >= 0).all()
    assert sorted(read(run, "layers")["step"].unique()) == [2, 4, 6, 8, 10]
    meta = json.loads((run / "run.json").read_text())
    assert [s["resume_step"] for s in meta["segments"]] == [None, 6]
    assert any(c.name.startswith("part-001-") for c in writer.list_chunks(run, "steps"))


def test_exception_marks_failed_and_reraises(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    with (
        pytest.raises(ZeroDivisionError),
        Recorder(tmp_path / "r", optimizer=opt, model=model) as rec,
    ):
        train_steps(model, opt, 2, rec)
        1 / 0  # noqa: B018
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"]["type"] == "ZeroDivisionError"
    assert "1 / 0" in meta["error"]["traceback"]
    assert meta["last_flushed_step"] == 2


def test_disk_full_during_training_raises_recorder_error(tmp_path, monkeypatch):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    rec = Recorder(tmp_path / "r", optimizer=opt, model=model, flush_every_steps=2)
    train_steps(model, opt, 2, rec)
    rec.flush()  # steps 1-2 on disk
    real = writer.pq.write_table
    calls = []

    def full_after_steps(table, *a, **k):  # the disk fills up half-way through a flush
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, *a, **k)

    monkeypatch.setattr(writer.pq, "write_table", full_after_steps)
    train_steps(model, opt, 2, rec, start=3)  # the flush of steps 3-4 fails on the writer thread
    with pytest.raises(RecorderError, match=r"flush of steps 3-4.*no space left"):
        rec.flush()  # waits for the writer: its failure is raised here
    monkeypatch.setattr(writer.pq, "write_table", real)  # space again: still no silent mixing
    with pytest.raises(RecorderError, match="stopped after a failed write"):
        train_steps(model, opt, 1, rec, start=5)  # and by every later log_step
    rec.close()
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["last_flushed_step"] == 2
    assert "No space left" in meta["error"]["message"]
    assert sorted(read(tmp_path / "r", "steps")["step"]) == [1, 2, 3, 4]  # 3-4: after the mark


def test_unwritable_run_directory(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(RecorderError) as info:
        Recorder(tmp_path / "f" / "run", optimizer=torch.optim.SGD(tiny_model().parameters(), 0.1))
    assert str(tmp_path / "f") in str(info.value)


def test_buffer_is_bounded_without_log_step(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    with Recorder(tmp_path / "r", optimizer=opt, model=model, flush_every_steps=5) as rec:
        for _ in range(40):
            model(torch.randn(2, 8)).sum().backward()
            opt.step()
            opt.zero_grad()
            assert len(rec.buffer.rows) <= 11
    assert read(tmp_path / "r", "steps")["step"].tolist() == list(range(1, 41))


def test_flush_by_seconds(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    with Recorder(tmp_path / "r", optimizer=opt, model=model, flush_every_seconds=1e-9) as rec:
        train_steps(model, opt, 3, rec)
        rec.flush()  # waits for the writer thread (nothing is left to flush: no fourth chunk)
        assert len(writer.list_chunks(tmp_path / "r", "steps")) == 3


def test_plain_sgd_without_moments_gives_null_moment_columns(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "r", optimizer=opt, model=model, layer_stride=1) as rec:
        train_steps(model, opt, 2, rec)
    layers = read(tmp_path / "r", "layers")
    assert layers["m_mean"].isna().all() and layers["grad_norm"].notna().all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "append"}, "mode"),
        ({"layer_stride": 0}, "layer_stride"),
        ({"flush_every_steps": -1}, "flush_every_steps"),
        ({"flush_every_seconds": 0}, "flush_every_seconds"),
        ({"histogram_every": -1}, "histogram_every"),
        ({"resume_step": -2}, "resume_step"),
    ],
)
def test_bad_values_are_value_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recorder(
            tmp_path / "r", optimizer=torch.optim.SGD(tiny_model().parameters(), 0.1), **kwargs
        )


def test_options_dataclass_is_saved(tmp_path):
    run, _, _ = _run(tmp_path, n=2, options=RecorderOptions(layer_stride=7))
    meta = json.loads((run / "run.json").read_text())
    assert meta["recording"]["layer_stride"] == 7


def test_failed_start_removes_what_it_created(tmp_path, monkeypatch):
    from recorder import run_meta

    def refuse(*a, **k):
        raise RecorderError(errno.EACCES, "refused", "run.json")

    monkeypatch.setattr(run_meta, "write_run_json", refuse)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with pytest.raises(RecorderError, match="refused"):
        Recorder(tmp_path / "a" / "run", optimizer=opt, model=model)
    assert not (tmp_path / "a" / "run").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(RecorderError, match="refused"):
        Recorder(mine, optimizer=opt, model=model)
    assert mine.is_dir() and list(mine.iterdir()) == []
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    monkeypatch.undo()
    with Recorder(mine, optimizer=opt, model=model) as rec:  # nothing half-made in the way
        train_steps(model, opt, 2, rec)
    assert read(mine, "steps")["step"].tolist() == [1, 2]

"""Seed groups, like-for-like settings, same-hardware checks, and whether a run is alive."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess

import pandas as pd

from dashboard.metrics import groups, health

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def _meta(opt="sgg", lr=4e-3, seed=0, **cfg):
    return {
        "optimizer": {"name": opt},
        "config": {"optimizer": opt, "lr": lr, "seed": seed, "out": f"runs/{seed}", **cfg},
        "seed": seed,
    }


def test_runs_that_differ_only_in_seed_or_recording_form_a_group():
    metas = {
        "s0": _meta(seed=0),
        "s1": _meta(seed=1, eval_every=25, flush_every=10),
        "a0": _meta("adamw", seed=0),
        "s0-lr": _meta(lr=1e-3, seed=0),
    }
    g = groups.seed_groups(metas)
    assert sorted(map(sorted, g.values())) == [["a0"], ["s0", "s1"], ["s0-lr"]]
    label = groups.group_label(metas["s0"], groups.varying_settings(list(metas.values())), 2)
    assert label == "sgg, lr 4e-3 (2 seeds)"


def test_differing_settings_name_what_is_not_like_for_like():
    diff = groups.differing_settings(_meta(lr=3e-3, steps=400), _meta("adamw", steps=600))
    assert ("learning rate", "3e-3", "4e-3") in diff
    assert ("training steps", "400", "600") in diff
    assert all(name != "optimizer" for name, _, _ in diff)
    # settings only SGG reads are part of "the optimizer" against AdamW, not against SGG
    ablation = _meta(scale_decay=0.9)
    assert groups.differing_settings(ablation, _meta("adamw", scale_decay=0.99)) == []
    assert groups.differing_settings(ablation, _meta(scale_decay=0.99)) == [
        ("scale decay (beta3)", "0.9", "0.99")
    ]
    varying = groups.varying_settings([ablation, _meta(scale_decay=0.99)])
    assert (
        groups.group_label(_meta("adamw", scale_decay=0.99), varying, 3)
        == "adamw, lr 4e-3 (3 seeds)"
    )


def test_same_hardware_needs_the_host_recorded():
    host = {"hostname": "h", "cpu": "c", "device": "cpu", "cpu_count": 2, "torch_threads": 2}
    assert groups.same_hardware({"host": host}, {"host": dict(host)}) is True
    assert groups.same_hardware({"host": host}, {"host": {**host, "device": "H200"}}) is False
    assert groups.same_hardware({"host": host}, {}) is None


def _running(**kw):
    return {"status": "running", "recording": {"flush_every_seconds": 30}, **kw}


def test_a_dead_process_on_this_host_is_stopped_at_once():
    proc = subprocess.Popen(["true"])
    proc.wait()
    meta = _running(hostname=socket.gethostname(), pid=proc.pid, updated_at=NOW.isoformat())
    assert health.live_status(meta, now=NOW) == health.STOPPED
    alive = _running(hostname=socket.gethostname(), pid=proc.pid, updated_at=NOW.isoformat())
    alive["pid"] = os.getpid()
    assert health.live_status(alive, now=NOW) == health.RUNNING


def test_elsewhere_the_heartbeat_decides_within_a_few_flushes():
    beat = (NOW - dt.timedelta(seconds=80)).isoformat()
    meta = _running(hostname="elsewhere", pid=1, updated_at=beat)
    assert health.live_status(meta, now=NOW) == health.RUNNING  # 80 s < 3 x 30 s
    meta["updated_at"] = (NOW - dt.timedelta(seconds=100)).isoformat()
    assert health.live_status(meta, now=NOW) == health.STOPPED
    assert health.live_status({"status": "finished"}) == health.FINISHED


def test_data_problems_are_plain_sentences():
    steps = pd.DataFrame({"step": range(1, 401), "loss": [1.0] * 400})
    meta = {"last_flushed_step": 600, "config": {"steps": 600}}
    text = "; ".join(health.data_problems(meta, health.FINISHED, steps))
    assert "truncated: its steps end at 400, but it recorded 600" in text
    assert "incomplete: 400 of 600 planned steps" in text
    assert health.data_problems({"last_flushed_step": 400}, health.FINISHED, steps) == []


def test_a_sweep_keeps_every_seed():
    from dashboard.metrics import sweep

    metas = {
        f"{o}-{lr}-{s}": _meta(o, lr, s)
        for o in ("sgg", "adamw")
        for lr in (1e-3, 4e-3)
        for s in (0, 1)
    }
    metas["ablation"] = _meta(lr=4e-3, scale_decay=0.9)
    assert sorted(sweep.sweep_members(metas, "config.lr")) == sorted(set(metas) - {"ablation"})

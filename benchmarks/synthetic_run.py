"""Generate realistic, format-conformant run directories (docs/run-format.md, version 1).

Pure numpy + pyarrow (no torch, no sgg, no recorder): the dashboard is developed, tested and
benchmarked against these until real runs exist. The numbers are made up but shaped like the
real thing: a power-law loss curve with warm-up and cosine decay, SGG reaching a given loss
in fewer steps than AdamW, AdamW spiking and diverging at high learning rates, K clusters per
layer whose scale factors move slowly (EMA with beta3), membership transitions, and momentum /
adaptive-learning-rate histograms per cluster.

    python -m benchmarks.synthetic_run OUT_DIR --demo     # the demo set (see make_demo_runs)
    python -m benchmarks.synthetic_run OUT_DIR --steps 1000000 --layers 24
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT_VERSION = 1

F64, F32, I64, I32 = pa.float64(), pa.float32(), pa.int64(), pa.int32()
STR, BOOL = pa.string(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "steps": pa.schema(
        [
            ("step", I64),
            ("wall_time", F64),
            ("loss", F64),
            ("tokens", I64),
            ("grad_norm", F64),
            ("update_norm", F64),
            ("param_norm", F64),
            ("lr", F64),
            ("reclustered", BOOL),
        ]
    ),
    "lrs": pa.schema([("step", I64), ("group", I32), ("lr", F64)]),
    "evals": pa.schema(
        [("step", I64), ("tokens", I64), ("wall_time", F64), ("split", STR), ("loss", F64)]
    ),
    "layers": pa.schema(
        [("step", I64), ("layer", STR), ("numel", I64)]
        + [(c, F32) for c in ("grad_norm", "param_norm", "update_norm", "update_to_weight")]
        + [(c, F32) for c in ("m_mean", "m_std", "m_abs_mean")]
        + [(f"m_q{q}", F32) for q in ("05", "25", "50", "75", "95")]
        + [("v_mean", F32), ("v_q50", F32)]
        + [(f"alr_q{q}", F32) for q in ("05", "25", "50", "75", "95")]
        + [("factor_mean", F32)]
    ),
    "clusters": pa.schema(
        [
            ("step", I64),
            ("layer", STR),
            ("cluster", I32),
            ("size", I64),
            ("center", F32),
            ("mda", F32),
            ("global_mda", F32),
            ("raw_factor", F32),
            ("factor", F32),
            ("shadow", BOOL),
        ]
    ),
    "transitions": pa.schema(
        [
            ("step", I64),
            ("layer", STR),
            ("from_cluster", I32),
            ("to_cluster", I32),
            ("count", I64),
            ("shadow", BOOL),
        ]
    ),
    "membership": pa.schema(
        [("step", I64), ("layer", STR), ("position", I64), ("cluster", I32), ("shadow", BOOL)]
    ),
    "histograms": pa.schema(
        [
            ("step", I64),
            ("layer", STR),
            ("quantity", STR),
            ("cluster", I32),
            ("bin", I32),
            ("bin_left", F64),
            ("bin_right", F64),
            ("count", I64),
            ("shadow", BOOL),
        ]
    ),
}


@dataclass(frozen=True)
class SyntheticRun:
    """What to generate. Defaults give a small SGG run that renders in well under a second."""

    name: str = "sgg-lr1e-3"
    optimizer: str = "sgg"  # "sgg" or "adamw"
    shadow: bool = False  # AdamW with an observe-only clustering (same tables, shadow=True)
    steps: int = 3000
    n_layers: int = 8  # parameter tensors; every 4th is a 1-D norm weight (not clustered)
    lr: float = 1e-3
    weight_decay: float = 0.1
    n_clusters: int = 3
    recluster_interval: int = 250
    beta3: float = 0.99
    layer_stride: int = 10
    flush_every_steps: int = 250
    eval_every: int = 100
    histogram_bins: int = 40
    histogram_every: int = 250  # for runs without clustering
    membership_sample: int = 256
    tokens_per_step: int = 131072  # batch 512 x sequence 256
    seconds_per_step: float = 0.35
    seed: int = 0
    status: str = "finished"  # "finished", "running", "failed"
    heartbeat_age_s: float = 0.0  # how old updated_at is (a stalled run: large)
    extra_config: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- curves


def _lr_schedule(steps: np.ndarray, total: int, lr: float) -> np.ndarray:
    warm = max(1, total // 10)
    s = steps.astype(np.float64)
    cos = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((s - warm) / max(1, total - warm), 0, 1)))
    return lr * np.where(s < warm, s / warm, cos)


def _speed(spec: SyntheticRun) -> float:
    """How many 'AdamW steps' one step of this run is worth (SGG learns faster)."""
    return 1.45 if spec.optimizer == "sgg" else 1.0


def _lr_penalty(spec: SyntheticRun) -> float:
    """Extra final loss from a sub-optimal learning rate; SGG tolerates a wider range."""
    width = 1.6 if spec.optimizer == "sgg" else 0.8  # in decades
    d = (np.log10(spec.lr) - np.log10(1e-3)) / width
    return float(0.35 * d * d)


def _diverges_at(spec: SyntheticRun) -> int | None:
    limit = 3e-2 if spec.optimizer == "sgg" else 5e-3
    if spec.lr > limit:
        return int(spec.steps * 0.35)
    return None


def _step_table(spec: SyntheticRun, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = spec.steps
    step = np.arange(1, n + 1, dtype=np.int64)
    eff = step * _speed(spec)
    clean = 2.9 + _lr_penalty(spec) + 7.5 * (1 + eff / 60.0) ** -0.55
    noise = rng.normal(0, 0.035, n) * clean
    # occasional loss spikes that decay over ~50 steps; more of them for AdamW and high lr
    rate = (1.2e-3 if spec.optimizer == "adamw" else 1e-4) * max(1.0, spec.lr / 1e-3)
    spikes = np.zeros(n)
    idx = np.flatnonzero(rng.random(n) < rate)
    for i in idx[idx > n // 20]:
        end = min(n, i + 200)
        spikes[i:end] += 1.2 * np.exp(-np.arange(end - i) / 40.0)
    loss = clean + noise + spikes
    div = _diverges_at(spec)
    if div is not None:
        loss[div - 60 : div] += np.linspace(0, 6, 60)
        loss[div:] = np.nan
    lr = _lr_schedule(step, n, spec.lr)
    gnorm = 0.6 * (1 + step / 300.0) ** -0.25 * np.exp(rng.normal(0, 0.15, n))
    if spec.optimizer == "sgg":
        gnorm *= np.exp(rng.normal(0, 0.05, n))  # calmer
    gnorm[idx[idx > n // 20]] *= 6.0
    gnorm *= 1 + 3 * spikes
    if div is not None:
        gnorm[div - 60 : div] *= np.linspace(1, 50, 60)
        gnorm[div:] = np.nan
    wall = np.cumsum(
        spec.seconds_per_step
        * (1.03 if spec.optimizer == "sgg" or spec.shadow else 1.0)
        * np.exp(rng.normal(0, 0.05, n))
    )
    return {
        "step": step,
        "wall_time": wall,
        "loss": loss,
        "tokens": step * spec.tokens_per_step,
        "grad_norm": gnorm,
        "update_norm": lr * 40 * np.exp(rng.normal(0, 0.05, n)),
        "param_norm": 180 + 25 * np.log1p(step / 500.0),
        "lr": lr,
        "reclustered": _clustered(spec) & (step % spec.recluster_interval == 0),
    }


def _clustered(spec: SyntheticRun) -> bool:
    return spec.optimizer == "sgg" or spec.shadow


def _layer_names(n_layers: int) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for i in range(n_layers):
        block = i // 4
        kind = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "ln.weight")[i % 4]
        shape = {0: (768, 256), 1: (256, 256), 2: (1024, 256), 3: (256,)}[i % 4]
        out.append((f"blocks.{block}.{kind}", shape))
    return out


# --------------------------------------------------------------------------- writing


def _write(run: Path, table: str, seq: int, data: dict, segment: int = 0) -> None:
    schema = SCHEMAS[table]
    arrays = [pa.array(data[f.name], type=f.type, from_pandas=True) for f in schema]
    t = pa.Table.from_arrays(arrays, schema=schema)
    d = run / "tables" / table
    d.mkdir(parents=True, exist_ok=True)
    final = d / f"part-{segment:03d}-{seq:06d}.parquet"
    tmp = d / f".{final.name}.tmp"
    pq.write_table(t, tmp, compression="zstd")
    os.replace(tmp, final)


def _slice(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def write_run_json(run: Path, meta: dict) -> None:
    tmp = run / ".run.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, run / "run.json")


def _run_json(spec: SyntheticRun, last_step: int, wall: float, layers) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    created = now - dt.timedelta(seconds=wall + spec.heartbeat_age_s)
    updated = now - dt.timedelta(seconds=spec.heartbeat_age_s)
    sgg_opts = {
        "n_clusters": spec.n_clusters,
        "recluster_interval": spec.recluster_interval,
        "beta3": spec.beta3,
        "scale_min": 0.1,
        "scale_max": 10.0,
        "cluster_on": "signed_momentum",
        "global_mda": "median_over_model",
        "observe_only": spec.shadow,
    }
    hyper = {"lr": spec.lr, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": spec.weight_decay}
    return {
        "format": "sgg-run",
        "format_version": FORMAT_VERSION,
        "run_id": uuid.UUID(int=spec.seed * 7919 + zlib.crc32(spec.name.encode())).hex,
        "name": spec.name,
        "status": spec.status,
        "error": (
            {"type": "RuntimeError", "message": "loss is NaN", "traceback": "..."}
            if spec.status == "failed"
            else None
        ),
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "finished_at": _iso(updated) if spec.status != "running" else None,
        "pid": 12345,
        "hostname": "synthetic",
        "last_flushed_step": last_step,
        "segments": [{"segment": 0, "resume_step": 0, "started_at": _iso(created)}],
        "optimizer": {
            "name": spec.optimizer,
            "base": "AdamW",
            "hyperparameters": hyper,
            "param_groups": 2,
            "sgg": sgg_opts if spec.optimizer == "sgg" else None,
            "shadow": sgg_opts if spec.shadow else None,
        },
        "config": {
            "model": "tiny-llama",
            "dataset": "synthetic-c4",
            "steps": spec.steps,
            "batch_size": 512,
            "seq_len": 256,
            "lr": spec.lr,
            "optimizer": spec.optimizer,
            "warmup_fraction": 0.1,
            **spec.extra_config,
        },
        "model": {
            "class": "TinyLlama",
            "num_parameters": int(sum(int(np.prod(s)) for _, s in layers)),
            "num_trainable": int(sum(int(np.prod(s)) for _, s in layers)),
            "layers": [
                {"name": n, "shape": list(s), "numel": int(np.prod(s)), "clustered": len(s) >= 2}
                for n, s in layers
            ],
        },
        "seed": spec.seed,
        "versions": {"python": "3.11", "torch": "none (synthetic)", "pyarrow": pa.__version__},
        "recording": {
            "layer_stride": spec.layer_stride,
            "flush_every_steps": spec.flush_every_steps,
            "flush_every_seconds": 30,
            "membership_sample": spec.membership_sample,
            "histogram_bins": spec.histogram_bins,
            "histogram_every": spec.histogram_every,
            "synthetic": True,
        },
        "compacted": [],
    }


def write_run(root: str | Path, spec: SyntheticRun, subdir: str | None = None) -> Path:
    """Write one run directory under `root` (in chunks, like the recorder) and return it."""
    rng = np.random.default_rng(spec.seed + zlib.crc32(spec.name.encode()) % 1000)
    run = Path(root) / (subdir or spec.name)
    run.mkdir(parents=True, exist_ok=True)
    layers = _layer_names(spec.n_layers)
    st = _step_table(spec, rng)
    n = spec.steps
    lrs = {
        "step": np.repeat(st["step"], 2),
        "group": np.tile(np.array([0, 1], dtype=np.int32), n),
        "lr": np.repeat(st["lr"], 2),
    }
    ev_steps = np.arange(spec.eval_every, n + 1, spec.eval_every, dtype=np.int64)
    ev_loss = st["loss"][ev_steps - 1]
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(st["loss"], nan=np.inf))])
    lo = np.maximum(ev_steps - 20, 0)
    with np.errstate(invalid="ignore"):
        trailing = (csum[ev_steps] - csum[lo]) / (ev_steps - lo)  # mean of the last 20 steps
    ev_loss = np.where(np.isfinite(ev_loss), trailing + 0.05, np.nan)
    evals = {
        "step": ev_steps,
        "tokens": ev_steps * spec.tokens_per_step,
        "wall_time": st["wall_time"][ev_steps - 1],
        "split": np.array(["val"] * len(ev_steps), dtype=object),
        "loss": ev_loss,
    }
    layer_tab = _layers_table(spec, layers, st, rng)
    clus = _cluster_tables(spec, layers, rng) if _clustered(spec) else None
    hists = _histograms(spec, layers, rng)

    for seq, start in enumerate(range(0, n, spec.flush_every_steps)):
        lo, hi = start + 1, min(n, start + spec.flush_every_steps)

        def in_range(s, lo=lo, hi=hi):
            return (s >= lo) & (s <= hi)

        _write(run, "steps", seq, _slice(st, in_range(st["step"])))
        _write(run, "lrs", seq, _slice(lrs, in_range(lrs["step"])))
        m = in_range(evals["step"])
        if m.any():
            _write(run, "evals", seq, _slice(evals, m))
        m = in_range(layer_tab["step"])
        if m.any():
            _write(run, "layers", seq, _slice(layer_tab, m))
        if clus is not None:
            for name, tab in clus.items():
                m = in_range(tab["step"])
                if m.any():
                    _write(run, name, seq, _slice(tab, m))
        m = in_range(hists["step"])
        if m.any():
            _write(run, "histograms", seq, _slice(hists, m))
    write_run_json(run, _run_json(spec, n, float(st["wall_time"][-1]), layers))
    return run


def _layers_table(spec, layers, st, rng) -> dict[str, np.ndarray]:
    rec = np.arange(spec.layer_stride, spec.steps + 1, spec.layer_stride, dtype=np.int64)
    nl = len(layers)
    r = len(rec)
    step = np.repeat(rec, nl)
    names = np.tile(np.array([n for n, _ in layers], dtype=object), r)
    numel = np.tile(np.array([int(np.prod(s)) for _, s in layers], dtype=np.int64), r)
    depth = np.tile(np.linspace(1.6, 0.5, nl), r)  # deeper layers: smaller gradients
    g_global = st["grad_norm"][rec - 1]
    spread = 0.55 if spec.optimizer == "adamw" else 0.3  # SGG: per-layer norms less spread out
    gn = np.repeat(g_global, nl) * depth**spread * 0.3 * np.exp(rng.normal(0, spread, r * nl))
    pn = np.repeat(st["param_norm"][rec - 1], nl) / np.sqrt(nl)
    un = (
        np.repeat(st["update_norm"][rec - 1], nl) / np.sqrt(nl) * np.exp(rng.normal(0, 0.1, r * nl))
    )
    m_std = gn * 1e-3
    alr_mid = np.repeat(st["lr"][rec - 1], nl) * 3e3 * np.exp(rng.normal(0, 0.2, r * nl))
    alr_w = 3.0 if spec.optimizer == "adamw" else 2.0
    cols = {
        "step": step,
        "layer": names,
        "numel": numel,
        "grad_norm": gn,
        "param_norm": pn,
        "update_norm": un,
        "update_to_weight": un / pn,
        "m_mean": rng.normal(0, 0.05, r * nl) * m_std,
        "m_std": m_std,
        "m_abs_mean": 0.8 * m_std,
        "v_mean": (m_std * 3) ** 2,
        "v_q50": (m_std * 2) ** 2,
        "factor_mean": np.ones(r * nl)
        if spec.optimizer == "adamw"
        else 1
        + 0.2 * np.tanh(np.repeat(rec, nl) / (spec.steps / 2) * np.tile(np.linspace(-1, 1, nl), r)),
    }
    for q, z in zip(("05", "25", "50", "75", "95"), (-1.64, -0.67, 0, 0.67, 1.64), strict=True):
        cols[f"m_q{q}"] = z * m_std
        cols[f"alr_q{q}"] = alr_mid * alr_w**z
    return cols


def _cluster_tables(spec, layers, rng) -> dict[str, dict[str, np.ndarray]]:
    k = spec.n_clusters
    rec = np.arange(spec.recluster_interval, spec.steps + 1, spec.recluster_interval)
    clustered = [(n, s) for n, s in layers if len(s) >= 2]
    shadow = spec.optimizer != "sgg"
    C = {c: [] for c in SCHEMAS["clusters"].names}
    T = {c: [] for c in SCHEMAS["transitions"].names}
    M = {c: [] for c in SCHEMAS["membership"].names}
    for li, (name, shape) in enumerate(clustered):
        numel = int(np.prod(shape))
        base_share = rng.dirichlet(np.full(k, 6.0))
        base_share = np.sort(base_share)[::-1]
        factor = np.ones(k)
        npos = min(spec.membership_sample, numel)
        positions = np.sort(rng.choice(numel, size=npos, replace=False)).astype(np.int64)
        assign = rng.choice(k, size=npos, p=base_share)
        prev_sizes = None
        for _j, s in enumerate(rec):
            frac = s / spec.steps
            share = base_share * np.exp(rng.normal(0, 0.05, k))
            share /= share.sum()
            sizes = np.round(share * numel).astype(np.int64)
            sizes[0] += numel - sizes.sum()
            scale = 1e-3 * (1 + 0.5 * li / max(1, len(clustered))) * (1 - 0.5 * frac)
            centers = scale * (np.arange(k) - (k - 1) / 2) * 2.0
            mda = scale * np.array([0.6, 1.0, 2.5, 4.0, 6.0][:k]) * np.exp(rng.normal(0, 0.1, k))
            global_mda = 1e-3 * (1 - 0.5 * frac)
            raw = np.clip(global_mda / (mda + 1e-12), 0.1, 10.0)
            factor = spec.beta3 * factor + (1 - spec.beta3) * raw
            for c in range(k):
                C["step"].append(s)
                C["layer"].append(name)
                C["cluster"].append(c)
                C["size"].append(sizes[c])
                C["center"].append(centers[c])
                C["mda"].append(mda[c])
                C["global_mda"].append(global_mda)
                C["raw_factor"].append(raw[c])
                C["factor"].append(factor[c])
                C["shadow"].append(shadow)
            stay = 0.9 - 0.3 * (1 - frac)
            new = np.where(rng.random(npos) < stay, assign, rng.choice(k, size=npos, p=share))
            if prev_sizes is not None:
                counts = np.zeros((k, k), dtype=np.int64)
                np.add.at(counts, (assign, new), 1)
                counts = np.round(counts / max(1, npos) * numel).astype(np.int64)
                for a in range(k):
                    for b in range(k):
                        T["step"].append(s)
                        T["layer"].append(name)
                        T["from_cluster"].append(a)
                        T["to_cluster"].append(b)
                        T["count"].append(counts[a, b])
                        T["shadow"].append(shadow)
            assign = new if prev_sizes is not None else assign
            prev_sizes = sizes
            M["step"].append(np.full(npos, s))
            M["layer"].append(np.full(npos, name, dtype=object))
            M["position"].append(positions)
            M["cluster"].append(assign.astype(np.int32))
            M["shadow"].append(np.full(npos, shadow))
    out = {
        "clusters": {c: np.asarray(v) for c, v in C.items()},
        "transitions": {c: np.asarray(v) for c, v in T.items()},
        "membership": {c: np.concatenate(v) if v else np.array([]) for c, v in M.items()},
    }
    for name in ("clusters", "transitions"):
        out[name]["layer"] = out[name]["layer"].astype(object)
    return out


def _histograms(spec, layers, rng) -> dict[str, np.ndarray]:
    k = spec.n_clusters
    every = spec.recluster_interval if _clustered(spec) else spec.histogram_every
    rec = np.arange(every, spec.steps + 1, every)
    clustered = [(n, s) for n, s in layers if len(s) >= 2]
    shadow = spec.optimizer != "sgg"
    nb = spec.histogram_bins
    H = {c: [] for c in SCHEMAS["histograms"].names}

    def add(s, name, quantity, cluster, counts, edges):
        H["step"].append(np.full(nb, s))
        H["layer"].append(np.full(nb, name, dtype=object))
        H["quantity"].append(np.full(nb, quantity, dtype=object))
        H["cluster"].append(np.full(nb, cluster, dtype=np.int32))
        H["bin"].append(np.arange(nb, dtype=np.int32))
        H["bin_left"].append(edges[:-1])
        H["bin_right"].append(edges[1:])
        H["count"].append(counts.astype(np.int64))
        H["shadow"].append(np.full(nb, shadow))

    sample = 4000
    for li, (name, shape) in enumerate(clustered):
        numel = int(np.prod(shape))
        for s in rec:
            frac = s / spec.steps
            scale = 1e-3 * (1 + 0.5 * li / max(1, len(clustered))) * (1 - 0.5 * frac)
            shares = np.array([0.5, 0.35, 0.15, 0.1, 0.05][:k])
            shares /= shares.sum()
            spreads = np.array([0.6, 1.0, 2.5, 4.0, 6.0][:k]) * scale
            per = [rng.normal(0, spreads[c], max(1, int(sample * shares[c]))) for c in range(k)]
            mom_all = np.concatenate(per)
            lo, hi = np.quantile(mom_all, [0.001, 0.999])
            edges = np.linspace(lo, hi, nb + 1)
            alr_base = spec.lr * 3e3 * (1 - 0.5 * frac)
            # SGG rescales each cluster: calm clusters get a larger step, noisy ones a smaller
            sgg_mult = np.array([1.8, 1.0, 0.4, 0.3, 0.2][:k]) if spec.optimizer == "sgg" else None
            alr = []
            for c in range(k):
                a = alr_base * np.exp(rng.normal(0, 1.0, len(per[c]))) / (spreads[c] / scale) ** 0.7
                if sgg_mult is not None:
                    a = a * sgg_mult[c]
                alr.append(a)
            alr_all = np.concatenate(alr)
            lo_a, hi_a = np.quantile(alr_all, [0.001, 0.999])
            aedges = np.logspace(np.log10(lo_a), np.log10(hi_a), nb + 1)
            mult = numel / sample
            if _clustered(spec):
                for c in range(k):
                    add(s, name, "momentum", c, np.histogram(per[c], edges)[0] * mult, edges)
                    add(s, name, "adaptive_lr", c, np.histogram(alr[c], aedges)[0] * mult, aedges)
            add(s, name, "momentum", -1, np.histogram(mom_all, edges)[0] * mult, edges)
            add(s, name, "adaptive_lr", -1, np.histogram(alr_all, aedges)[0] * mult, aedges)
    if not H["step"]:
        return {c: np.array([]) for c in H}
    return {c: np.concatenate(v) for c, v in H.items()}


# --------------------------------------------------------------------------- run sets


def make_demo_runs(root: str | Path, steps: int = 3000, n_layers: int = 8) -> list[Path]:
    """The demo set: an SGG run (K=3) and its AdamW baseline (with a shadow clustering), a
    plain AdamW run, and a learning-rate sweep for both optimizers."""
    root = Path(root)
    common = dict(steps=steps, n_layers=n_layers, recluster_interval=max(10, steps // 12))
    out = [
        write_run(
            root,
            SyntheticRun(name="adamw-baseline", optimizer="adamw", shadow=True, seed=1, **common),
        ),
        write_run(root, SyntheticRun(name="sgg-k3", optimizer="sgg", seed=2, **common)),
        write_run(root, SyntheticRun(name="adamw-plain", optimizer="adamw", seed=3, **common)),
    ]
    for opt in ("adamw", "sgg"):
        for lr in (1e-4, 1e-3, 1e-2):
            out.append(
                write_run(
                    root / "lr-sweep",
                    SyntheticRun(
                        name=f"{opt}-lr{lr:g}",
                        optimizer=opt,
                        lr=lr,
                        seed=4,
                        **{**common, "steps": max(100, steps // 3)},
                    ),
                )
            )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--demo", action="store_true", help="write the demo set")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--optimizer", default="sgg", choices=["sgg", "adamw"])
    p.add_argument("--shadow", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layer-stride", type=int, default=10)
    p.add_argument("--recluster-interval", type=int, default=250)
    p.add_argument("--flush-every-steps", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--name", default=None)
    p.add_argument("--status", default="finished", choices=["finished", "running", "failed"])
    a = p.parse_args(argv)
    if a.demo:
        for r in make_demo_runs(a.out, steps=a.steps, n_layers=a.layers):
            print(r)
        return
    spec = SyntheticRun(
        name=a.name or f"{a.optimizer}-{a.steps}",
        optimizer=a.optimizer,
        shadow=a.shadow,
        steps=a.steps,
        n_layers=a.layers,
        lr=a.lr,
        layer_stride=a.layer_stride,
        recluster_interval=a.recluster_interval,
        flush_every_steps=a.flush_every_steps,
        eval_every=a.eval_every,
        status=a.status,
    )
    print(write_run(a.out, spec))


if __name__ == "__main__":
    main()

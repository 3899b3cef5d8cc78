"""Warm the first page's code while the runs are listed: latency hiding for a cold start.

A fresh dashboard process pays, on its first page, for what Python and its libraries load on
first use: plotly's template and trace validators, the lazily imported parts of pandas and
scipy.special, the first call of each statistic. The first thing a page does is list the runs
folder, which on an object store is mostly waiting for the store (one request per run.json).
`start` does that first-use work meanwhile, once per process, in a background thread, on two
tiny synthetic seed groups passed through the same pure functions the Summary calls (no
Streamlit call, no cache, nothing kept). It never affects what a page shows: it only makes the
same work cheaper when the page does it; any failure is ignored.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

_STARTED = threading.Event()
STEPS = 60  # long enough for every statistic's code path (spikes, reach, smoothing)


def start() -> threading.Thread | None:
    """Start the warm-up in a background thread, once per process (None after the first)."""
    if _STARTED.is_set():
        return None
    _STARTED.set()
    thread = threading.Thread(target=warm, name="sgg-warmup", daemon=True)
    thread.start()
    return thread


def warm() -> bool:
    """The Summary's statistics, sentences, tables and loss figure on synthetic runs; whether
    all of it ran (a failure is ignored: the page then pays the first use itself)."""
    try:
        _summary_work()
    except Exception:
        return False
    return True


def _runs(optimizer: str, offset: float) -> list[tuple[dict, pd.DataFrame, pd.DataFrame]]:
    """Two seeds of a synthetic run: (run.json, steps, evals)."""
    out = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        step = np.arange(1, STEPS + 1)
        loss = 4.0 / np.sqrt(step) + offset + 0.01 * rng.standard_normal(STEPS)
        steps = pd.DataFrame(
            {
                "step": step,
                "wall_time": 0.05 * step,
                "loss": loss,
                "tokens": 1024.0 * step,
                "grad_norm": 1.0 + 0.1 * rng.standard_normal(STEPS),
                "optimizer_time": np.full(STEPS, 0.01),
                "reclustered": (step % 20 == 0).astype(float),
            }
        )
        at = step[9::10]
        evals = pd.DataFrame(
            {"step": at, "loss": loss[at - 1], "split": "val", "loss_std": 0.01, "n_batches": 4}
        )
        meta = {
            "name": f"{optimizer}-s{seed}",
            "status": "finished",
            "optimizer": {"name": optimizer, "hyperparameters": {"lr": 1e-3}},
            "config": {"seed": seed, "lr": 1e-3, "steps": STEPS},
        }
        out.append((meta, steps, evals))
    return out


def _summary_work() -> None:
    import plotly.io as pio

    from dashboard import cards, figures, narrative, prepare
    from dashboard.metrics import compare, statistics

    sides = {"sgg": _runs("sgg", 0.0), "adamw": _runs("adamw", 0.05)}
    facts = {
        name: [compare.run_facts(m["name"], m, "finished", s, e) for m, s, e in runs]
        for name, runs in sides.items()
    }
    comp = compare.compare(facts["sgg"], facts["adamw"], "sgg", "adamw")
    narrative.comparison_sentences(comp)
    narrative.comparison_table([comp], comp)
    narrative.cost_table([comp], comp)
    narrative.detail_table([comp], comp)
    cards.comparison_cards(comp)
    data = {m["name"]: (s, e) for runs in sides.values() for m, s, e in runs}
    infos = {
        m["name"]: {"name": m["name"], "optimizer": n, "status": "finished"}
        for n, runs in sides.items()
        for m, _, _ in runs
    }
    statistics.summary_table(statistics.summarize_runs(data, infos, "adamw-s0"))
    evals = {name: [e for _, _, e in runs] for name, runs in sides.items()}
    means = prepare.group_mean_tables(evals, ("wall_time", "loss", "tokens"))
    lines = prepare.eval_lines(means, "step")
    bands = prepare.group_bands(evals, "step", "loss", 0.0)
    colors = {"sgg": "#E15F99", "adamw": "#2E91E5"}
    fig = figures.line_figure(lines, "step", "loss", "run", colors, bands=bands, markers=True)
    pio.to_json(fig, validate=False)  # what st.plotly_chart sends

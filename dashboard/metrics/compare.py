"""Group against baseline group, like for like: loss at equal steps, speed, steadiness, time.

Every difference is an `intervals.Difference` (the one rule for claims); the narrative turns
them into words and the cards, tables, report and sweep show the same objects.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard.metrics import groups, intervals
from dashboard.metrics.intervals import Difference
from dashboard.metrics.logged import nonfinite_loss
from dashboard.metrics.settings import applies_sgg, info_of, is_adamw
from dashboard.metrics.spikes import GRAD_SPIKE_FACTOR, LOSS_SPIKE_FACTOR, spike_mask
from dashboard.metrics.statistics import (
    FINAL_WINDOW,
    coefficient_of_variation,
    eval_series,
    moving_average,
)
from runformat import run_info
from runformat.run_json import parse_time

NAN = float("nan")
STALL_SECONDS = 1.0  # an optimizer step slower than this is listed as a stall
NOT_TOGETHER = (
    "the two sides were not trained at the same time, and a shared machine's load changes "
    "from one hour to the next"
)


@dataclass
class RunFacts:
    """What the comparisons need from one run, extracted once (cached per run)."""

    name: str
    seed: object
    meta: dict
    status: str
    last_step: int = 0
    eval_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_n: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_avg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grad_cv: float = NAN
    loss_spikes: int = 0
    grad_spikes: float = NAN  # NaN: the run recorded no gradient norm ("not recorded", never 0)
    first_nan_step: int | None = None
    optimizer_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reclustered: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    shadow: bool = False
    stalls: list[tuple[int, float, str]] = field(default_factory=list)  # (step, seconds, why)
    grad: np.ndarray = field(default_factory=lambda: np.zeros(0))  # gradient norm per step
    # the training loss per step: its spikes over the steps a shorter run also ran
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spike_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # loss and gradient
    span: tuple[float, float] = (NAN, NAN)  # when the run was made (epoch seconds)
    fused: bool | None = None  # torch AdamW's `fused` flag (None: not recorded)
    unread: str = ""  # why its steps could not be read (damage): left out of every comparison

    @property
    def has_evals(self) -> bool:
        return int(np.isfinite(self.eval_loss).sum()) >= 2


def _col(df: pd.DataFrame | None, name: str) -> np.ndarray:
    if df is None or name not in df:
        return np.full(0 if df is None else len(df), np.nan)
    return df[name].to_numpy(dtype=np.float64, na_value=np.nan)


def run_facts(
    name: str,
    meta: dict,
    status: str,
    steps: pd.DataFrame | None,
    evals: pd.DataFrame | None,
    unread: str = "",
) -> RunFacts:
    """Extract a run's facts; a column the run did not record is simply empty (not an error).
    `unread`: why its steps could not be read (damage); such a run takes part in no comparison."""
    opt = meta.get("optimizer") if isinstance(meta.get("optimizer"), dict) else {}
    f = RunFacts(name, groups.seed_of(meta), meta, status, shadow=groups.shadow_of(meta))
    f.unread = unread
    f.span = _span(meta)
    hp = opt.get("hyperparameters") if isinstance(opt.get("hyperparameters"), dict) else {}
    f.fused = hp.get("fused") if isinstance(hp.get("fused"), bool) else None
    if steps is not None and not steps.empty and "step" in steps:
        step = steps["step"].to_numpy(dtype=np.float64)
        f.last_step = int(step[-1])
        loss = _col(steps, "loss")
        bad = ~np.isfinite(loss)  # a NaN or a step whose loss was not logged: no value
        f.first_nan_step = nonfinite_loss(steps)[1]  # only a logged NaN/inf diverged
        avg = np.full(loss.size, np.nan)
        if (~bad).any():
            avg[~bad] = moving_average(loss[~bad], min(FINAL_WINDOW, int((~bad).sum())))
            first = np.flatnonzero(~bad)[: min(FINAL_WINDOW, int((~bad).sum()))]
            # before a full window: the mean so far, so that short runs still have a value
            avg[first] = np.cumsum(loss[first]) / np.arange(1, first.size + 1)
        f.train_step, f.train_avg = step, avg
        loss_peaks = spike_mask(loss, LOSS_SPIKE_FACTOR)
        f.loss_spikes = int(loss_peaks.sum())
        g = _col(steps, "grad_norm")
        grad_peaks = spike_mask(g, GRAD_SPIKE_FACTOR)
        f.grad_spikes = float(grad_peaks.sum()) if np.isfinite(g).any() else NAN
        f.grad_cv = coefficient_of_variation(g)
        f.grad, f.loss = g, loss
        f.spike_steps = np.concatenate([step[loss_peaks], step[grad_peaks]])
        f.optimizer_time = _col(steps, "optimizer_time")
        rc = _col(steps, "reclustered")
        f.reclustered = np.where(np.isfinite(rc), rc, 0.0) > 0
        f.stalls = stalls(step, f.optimizer_time, f.reclustered)
        wall = _col(steps, "wall_time")
        if wall.size > 1:
            dstep = np.diff(step)
            with np.errstate(invalid="ignore", divide="ignore"):
                f.step_time = np.where(dstep > 0, np.diff(wall) / dstep, np.nan)
    ev = eval_series(evals)
    if ev is not None and "step" in ev:
        f.eval_step = ev["step"].to_numpy(dtype=np.float64)
        f.eval_loss = _col(ev, "loss")
        f.eval_std = _col(ev, "loss_std")
        f.eval_n = _col(ev, "n_batches")
    return f


def _span(meta: dict) -> tuple[float, float]:
    """(start, end) of the run in epoch seconds (NaN where run.json does not say)."""
    start = parse_time(meta.get("created_at"))
    end = parse_time(meta.get("finished_at")) or parse_time(meta.get("updated_at"))
    return (start.timestamp() if start else NAN, end.timestamp() if end else NAN)


def concurrent(a: list[RunFacts], b: list[RunFacts]) -> bool | None:
    """Whether the two sides ran at the same time (every run of one side overlapping some run
    of the other): on a shared machine, runs made at different times see different loads, so
    their times measure the machine as much as the optimizer. None when not recorded."""
    spans = [f.span for f in a + b]
    if not all(math.isfinite(x) for sp in spans for x in sp):
        return None

    def overlaps(x: RunFacts, ys: list[RunFacts]) -> bool:
        return any(x.span[0] < y.span[1] and y.span[0] < x.span[1] for y in ys)

    return all(overlaps(x, b) for x in a) and all(overlaps(y, a) for y in b)


def stalls(
    step, seconds, reclustered, limit: float = STALL_SECONDS
) -> list[tuple[int, float, str]]:
    """(step, seconds, what it was) of every optimizer step slower than `limit`: the first
    step (building or compiling the update), the first re-cluster, any other."""
    t = np.asarray(seconds, dtype=np.float64)
    rc = np.asarray(reclustered, dtype=bool)
    out = []
    first_rc = int(np.argmax(rc)) if rc.size and rc.any() else -1
    with np.errstate(invalid="ignore"):
        slow = np.flatnonzero(t > limit)
    for i in slow:
        why = (
            "first step"
            if i == 0
            else "first re-cluster"
            if i == first_rc
            else "re-cluster"
            if rc.size > i and rc[i]
            else "right after the first re-cluster"
            if i == first_rc + 1 and first_rc >= 0
            else "other step"
        )
        out.append((int(step[i]), float(t[i]), why))
    return out


def loss_at(f: RunFacts, step: float, kind: str) -> tuple[float, float, float]:
    """(loss, per-batch sd, batches) at the last logged point at or before `step`."""
    xs, ys = (f.eval_step, f.eval_loss) if kind == "validation" else (f.train_step, f.train_avg)
    ok = np.flatnonzero((xs <= step) & np.isfinite(ys))
    if not ok.size:
        return NAN, NAN, NAN
    i = ok[-1]
    if kind == "validation":
        return float(ys[i]), float(f.eval_std[i]), float(f.eval_n[i])
    return float(ys[i]), NAN, NAN


def first_step_at_or_below(f: RunFacts, target: float, kind: str) -> float:
    """The step at which the loss first reaches `target`, interpolated linearly between the
    last point above it and the first at or below it (NaN if never): evaluations every 25
    steps must not make every seed's answer a multiple of 25."""
    xs, ys = (f.eval_step, f.eval_loss) if kind == "validation" else (f.train_step, f.train_avg)
    ok = np.isfinite(ys)
    xs, ys = np.asarray(xs, dtype=np.float64)[ok], np.asarray(ys, dtype=np.float64)[ok]
    if not math.isfinite(target) or not ys.size:
        return NAN
    hit = np.flatnonzero(ys <= target)
    if not hit.size:
        return NAN
    i = int(hit[0])
    if i == 0 or ys[i - 1] == ys[i]:
        return float(xs[i])
    frac = (ys[i - 1] - target) / (ys[i - 1] - ys[i])
    return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))


def resolution(facts: list[RunFacts], kind: str) -> float:
    """The spacing of the points a loss is read at (evaluations, or logged steps): a step
    count read off them is uncertain by up to this much."""
    gaps = [
        np.diff(f.eval_step[np.isfinite(f.eval_loss)] if kind == "validation" else f.train_step)
        for f in facts
    ]
    gaps = [g[g > 0] for g in gaps if g.size]
    allg = np.concatenate(gaps) if gaps else np.zeros(0)
    return float(np.median(allg)) if allg.size else 0.0


def loss_kind(facts: list[RunFacts]) -> str:
    """Validation loss when every run has evaluations, else training loss."""
    return "validation" if facts and all(f.has_evals for f in facts) else "training"


def common_step(facts: list[RunFacts], kind: str) -> int:
    """The last step every run reached and, for validation loss, the last step at which every
    run has an evaluation (a run missing it must not be read at an earlier one while the page
    says "at step N"); the last step all reached when their evaluations share no step."""
    if kind == "validation":
        done = [f.eval_step[np.isfinite(f.eval_loss)] for f in facts if f.has_evals]
        if not done:
            return 0
        shared = set(done[0].tolist()).intersection(*(d.tolist() for d in done[1:]))
        end = min(d[-1] for d in done)
        shared = [x for x in shared if x <= end]
        return int(max(shared)) if shared else int(end)
    ends = [f.last_step for f in facts]
    return int(min(ends)) if ends else 0


@dataclass
class Comparison:
    """One group (or run) against the baseline group; differences are run minus baseline."""

    name: str
    base_name: str
    n: int
    n_base: int
    kind: str  # "validation" or "training"
    at_step: int
    lengths: tuple[int, int]  # longest run of each side
    not_like_for_like: list[tuple[str, str, str]]
    loss: float
    base_loss: float
    loss_diff: Difference
    target: float
    steps_to_target: float  # mean over the seeds compared in steps_diff
    base_steps_to_target: float
    steps_diff: Difference
    reached: bool  # every seed of the run side reached the target
    end_gap: float  # relative gap to the target at the run's last comparable step
    cv: float
    base_cv: float
    cv_diff: Difference
    spikes: float
    base_spikes: float
    spikes_diff: Difference
    hardware: str  # "same", "different", "unknown"
    optimizer_time: float
    base_optimizer_time: float
    optimizer_time_diff: Difference
    step_time: float
    base_step_time: float
    step_time_diff: Difference
    base_shadow: bool
    diverged_at: int | None
    base_diverged_at: int | None
    same_settings: bool = False  # the two sides differ only in the seed
    first_step_time: float = NAN  # optimizer time of the first step (compilation), seed mean
    base_first_step_time: float = NAN
    recluster_time: float = NAN  # optimizer time of a re-cluster step, mean over seeds
    base_recluster_time: float = NAN
    n_recluster: float = NAN  # re-cluster steps per run
    base_n_recluster: float = NAN
    reached_k: int = 0  # seeds of the run side that reached the target
    base_reached_k: int = 0
    resolution: float = 0.0  # spacing of the points steps-to-target is read at
    notes: tuple[str, ...] = ()  # repeats merged, seeds left out: said beside the verdicts
    stalls: tuple[tuple[str, int, float, str], ...] = ()  # (run, step, seconds, what)
    runs: tuple[int, int] = (0, 0)  # runs of each side (repeats of a seed included)
    seeds: tuple[frozenset, frozenset] = (frozenset(), frozenset())  # distinct seeds per side
    concurrent: bool | None = None  # the two sides were trained at the same time
    base_fused: bool | None = None  # the baseline's torch AdamW ran with fused=True
    base_adamw: bool = False  # the baseline trained with AdamW (what `base_fused` is about)
    sgg_applied: bool = False  # the compared side's optimizer is SGG, applied to its weights
    # typed settings only one side records: (plain name, the side's name that does not)
    not_recorded: tuple[tuple[str, str], ...] = ()
    # why the gradient norms are not compared (`grad_norm_mismatch`); then `spikes` counts
    # loss spikes alone
    grad_mismatch: str = ""

    @property
    def speedup(self) -> float:
        a, b = self.steps_to_target, self.base_steps_to_target
        return b / a if math.isfinite(a) and math.isfinite(b) and a > 0 else NAN


def seed_key(f: RunFacts) -> str | None:
    """The seed as a key: 0, 0.0 (TensorBoard writes numbers as floats) and "0" are one seed
    (what every comparison, and the Sweep, counts as one seed)."""
    s = f.seed
    if s is None:
        return None
    if isinstance(s, float) and s.is_integer():
        s = int(s)
    return str(s)


def _by_seed(facts: list[RunFacts], values: list[float], side: str) -> tuple[dict, tuple]:
    """{seed: value} with one value per distinct seed, and the notes on what was merged."""
    pairs = [(seed_key(f), v) for f, v in zip(facts, values, strict=True)]
    return intervals.seed_values(pairs, side)


def n_seeds(facts: list[RunFacts]) -> int:
    """Distinct seeds among these runs (runs without a recorded seed count as one at most)."""
    return len(_by_seed(facts, [0.0] * len(facts), "")[0])


@dataclass(frozen=True)
class StepCost:
    """A run's time per step, with the one-off steps apart: `typical` is the median of the
    ordinary steps (neither the first step, which includes compilation, nor a re-cluster step);
    `ordinary` holds those steps' times."""

    typical: float
    first: float
    recluster: float  # mean time of a re-cluster step (NaN when none)
    n_recluster: int
    ordinary: np.ndarray
    amortised: float = NAN  # per step after the first, re-cluster steps spread over all


def step_cost(times, reclustered=None) -> StepCost:
    """Split a run's per-step times into the first step, the re-cluster steps and the ordinary
    ones (whose median is the typical cost: one slow step cannot move it)."""
    t = np.asarray(times, dtype=np.float64)
    rc = np.zeros(t.size, dtype=bool) if reclustered is None else np.asarray(reclustered, bool)
    if rc.size != t.size:
        rc = np.zeros(t.size, dtype=bool)
    if t.size == 0 or not np.isfinite(t).any():
        return StepCost(NAN, NAN, NAN, 0, np.zeros(0))
    first = float(t[0]) if np.isfinite(t[0]) else NAN
    ordinary_mask = ~rc & np.isfinite(t)
    ordinary_mask[0] = False
    ordinary = t[ordinary_mask]
    rct = t[rc & np.isfinite(t)]
    rct = rct[1:] if rc[0] else rct  # a first step that re-clusters counts as the first step
    typical = float(np.median(ordinary)) if ordinary.size else NAN
    # what a step costs over a run: the typical ordinary step (a median: one slow step cannot
    # move it) with the re-cluster steps' time spread over all steps (they are part of the cost)
    amortised = (typical * ordinary.size + float(rct.sum())) / max(1, ordinary.size + rct.size)
    return StepCost(
        typical,
        first,
        float(rct.mean()) if rct.size else NAN,
        int(rct.size),
        ordinary,
        amortised if ordinary.size else NAN,
    )


def diff_by_seed(a_facts, a_vals, b_facts, b_vals, resolution: float = 0.0) -> Difference:
    """The difference of the two sides, one value per distinct seed (the rule in intervals);
    the notes of merged repeats and runs without a seed go with it."""
    a, na = _by_seed(a_facts, a_vals, "compared")
    b, nb = _by_seed(b_facts, b_vals, "baseline")
    if not pairable(a_facts + b_facts):  # one seed number, not the same weights and batches
        return intervals.across_seeds(
            list(a.values()), list(b.values()), resolution=resolution, notes=na + nb
        )
    return intervals.across_seeds(a, b, resolution=resolution, notes=na + nb)


def pairable(facts: list[RunFacts]) -> bool:
    """Whether runs of one seed share their initial weights and batches: only runs of our
    recorder (sgg_train draws both from the seed); another tool's seed 0 is not ours."""
    return all(info_of(f.meta).source == "recorded" for f in facts)


def side_mean(facts: list[RunFacts], values: list[float]) -> float:
    """The mean over distinct seeds (a repeated seed counts once)."""
    return _mean(list(_by_seed(facts, values, "")[0].values()))


def _mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else NAN


def _hardware(a: list[RunFacts], b: list[RunFacts]) -> str:
    same = [groups.same_hardware(x.meta, y.meta) for x in a for y in b]
    if any(s is None for s in same) or not same:
        return "unknown"
    return "same" if all(same) else "different"


def _costs(facts: list[RunFacts], attr: str) -> list[StepCost]:
    # a step-time row i is the time between steps i and i+1: its re-cluster flag is the later one
    return [
        step_cost(
            getattr(f, attr),
            f.reclustered[1:] if attr == "step_time" and f.reclustered.size else f.reclustered,
        )
        for f in facts
    ]


def _time_diff(a: list[RunFacts], b: list[RunFacts], attr: str) -> tuple[float, float, Difference]:
    """Typical (median) time per ordinary step of each side, averaged over seeds, and the
    difference with its interval: across seeds on the per-run medians, or, one run each,
    from the spread of the ordinary steps."""
    ca, cb = _costs(a, attr), _costs(b, attr)
    per_a, per_b = [c.amortised for c in ca], [c.amortised for c in cb]
    # the unit is the run: steps within one run share its machine's state, so their spread
    # says nothing about how much the same job varies from run to run (two seeds of one
    # setting were measured 27% apart); one run each is "cannot tell"
    d = diff_by_seed(a, per_a, b, per_b)
    return side_mean(a, per_a), side_mean(b, per_b), d


GRAD_NORM_WORDS = {run_info.PRE_CLIP: "before clipping", run_info.POST_CLIP: "after clipping"}


def grad_norm_mismatch(a: list[RunFacts], b: list[RunFacts], name: str, base_name: str) -> str:
    """Why the two sides' gradient norms cannot be compared ('' when they can): one side's
    `grad_norm` column holds the norm before clipping (the HF Trainer's log), the other's after
    (the recorder's), as each run's description says (`grad_norm`); with clipping active the
    second is capped at the max norm, so their variation differs whatever the optimizer does.
    Not when a run says it did not clip (`grad_clip` 0: before and after are the same)."""

    def kinds(side: list[RunFacts]) -> set[str]:
        out = set()
        for f in side:
            info = info_of(f.meta)
            if info.grad_norm is not None and info.grad_clip != 0:
                out.add(info.grad_norm)
        return out

    ka, kb = kinds(a), kinds(b)
    if len(ka) != 1 or len(kb) != 1 or ka == kb:
        return ""
    (x,), (y,) = ka, kb
    return (
        "one run's gradient norm is before clipping, the other's after: "
        f"{name}'s is {GRAD_NORM_WORDS[x]} (run.json description grad_norm {x}), "
        f"{base_name}'s {GRAD_NORM_WORDS[y]} ({y})"
    )


def _cv_until(f: RunFacts, last: int) -> float:
    """Gradient-size variation over the steps up to `last` (the whole run's when it ends there):
    the warm-up share it leaves out is of those steps, as for a run that stopped at `last`."""
    if f.grad.size != f.train_step.size or not f.grad.size:
        return f.grad_cv
    if last >= f.last_step:  # the whole run (its own value when `run_facts` made it)
        return f.grad_cv if math.isfinite(f.grad_cv) else coefficient_of_variation(f.grad)
    return coefficient_of_variation(f.grad[f.train_step <= last])


def _spikes_until(f: RunFacts, last: int, grad: bool = True) -> float:
    """Spikes up to step `last`, found in those steps alone as if the run had stopped there
    (the whole run's counts when it ends there): loss and gradient, or the loss's alone
    (`grad` False)."""
    whole = float(f.loss_spikes + (f.grad_spikes if grad else 0.0))
    if last >= f.last_step or f.loss.size != f.train_step.size or not f.loss.size:
        return whole
    keep = f.train_step <= last
    count = int(spike_mask(f.loss[keep], LOSS_SPIKE_FACTOR).sum())
    if grad and np.isfinite(f.grad_spikes):
        count += int(spike_mask(f.grad[keep], GRAD_SPIKE_FACTOR).sum())
    return float(count)


def _mean_point(points: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(loss, per-batch sd, batches) of repeats of one seed: the means, the first count."""
    arr = np.asarray(points, dtype=np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean()), float(arr[0, 2])


def _reach_notes(facts: list[RunFacts], steps: list[float], side: str) -> tuple[str, ...]:
    """The distinct seeds that did not reach the target (a seed with repeats: when none of
    them did), named once."""
    per_seed, _ = _by_seed(facts, steps, "")
    missed = sorted(str(k) for k, v in per_seed.items() if not math.isfinite(v))
    if not missed:
        return ()
    who = ", ".join(f"seed {m}" if m != "None" else "runs without a seed" for m in missed)
    return (f"{who} ({side}) did not reach the target: left out of the steps comparison",)


def _reached(facts: list[RunFacts], steps: list[float]) -> int:
    """Distinct seeds that reached the target (a repeated seed counts once)."""
    per_seed, _ = _by_seed(facts, steps, "")
    return sum(1 for v in per_seed.values() if math.isfinite(v))


def short_run_notes(facts: list[RunFacts], at: int) -> tuple[str, ...]:
    """Why the comparison step is earlier than where most runs end: the runs that stopped
    before the others (the rule: every run is compared at the last step all of them reached,
    and the runs that set it are named)."""
    longest = max((f.last_step for f in facts), default=0)
    if not facts or at >= longest:
        return ()
    short = [f for f in facts if f.last_step < longest]
    who = ", ".join(f"{f.name} stopped at step {f.last_step}" for f in short)
    return (f"compared at step {at}, the last step every run reached: {who}",)


def grad_missing(a: list[RunFacts], b: list[RunFacts]) -> str:
    """Which runs recorded no gradient norm ('' when all did): their gradient spikes are not
    recorded (never 0), so spikes count the loss's alone on both sides."""
    missing = [f.name for f in a + b if not np.isfinite(f.grad_spikes)]
    if not missing or len(missing) == len(a + b):
        return "no run recorded a gradient norm" if missing else ""
    return "gradient norm not recorded in " + ", ".join(missing) + ": spikes count loss spikes only"


def compare(
    run_side: list[RunFacts], base_side: list[RunFacts], name: str, base_name: str
) -> Comparison:
    """Compare a group of runs (seeds) with the baseline group, like for like. A run whose
    steps could not be read (`RunFacts.unread`) is left out of its side, said in `notes`."""
    left_out = tuple(f"{f.name} left out: {f.unread}" for f in run_side + base_side if f.unread)
    run_side = [f for f in run_side if not f.unread] or run_side
    base_side = [f for f in base_side if not f.unread] or base_side
    everyone = run_side + base_side
    kind = loss_kind(everyone)
    healthy = [f for f in everyone if f.first_nan_step is None]
    at = common_step(healthy or everyone, kind)  # a diverged run must not shorten the others
    left_out += short_run_notes(healthy or everyone, at)
    # steadiness reads every training step, not the evaluations: the last step all reached
    upto = common_step(healthy or everyone, "training")
    left_out += steadiness_note(run_side, base_side, upto)
    left_out += tuple(
        f"gradient-size variation of {side_name} from {k} of {len(side)} runs"
        for side, side_name in ((run_side, name), (base_side, base_name))
        if 0 < (k := sum(np.isfinite(f.grad_spikes) for f in side)) < len(side)
    )
    same = groups.group_id(run_side[0].meta) == groups.group_id(base_side[0].meta)
    loss = _loss_fields(run_side, base_side, kind, at, same)
    reach, reach_notes = _reach_fields(run_side, base_side, kind, loss["target"])
    nan_a = [f.first_nan_step for f in run_side if f.first_nan_step is not None]
    nan_b = [f.first_nan_step for f in base_side if f.first_nan_step is not None]
    return Comparison(
        name=name,
        base_name=base_name,
        n=n_seeds(run_side),
        n_base=n_seeds(base_side),
        kind=kind,
        at_step=at,
        lengths=(max(f.last_step for f in run_side), max(f.last_step for f in base_side)),
        not_like_for_like=groups.differing_settings(run_side[0].meta, base_side[0].meta),
        **loss,
        **reach,
        **_steadiness_fields(run_side, base_side, name, base_name, upto),
        **_time_fields(run_side, base_side),
        base_shadow=any(f.shadow for f in base_side),
        diverged_at=min(nan_a) if nan_a else None,
        base_diverged_at=min(nan_b) if nan_b else None,
        same_settings=same,
        # damaged and short runs, then repeats merged and seeds that missed the target
        notes=tuple(dict.fromkeys(left_out + loss["loss_diff"].notes + reach_notes)),
        stalls=tuple((f.name, *x) for f in everyone for x in f.stalls),
        runs=(len(run_side), len(base_side)),
        seeds=(
            frozenset(_by_seed(run_side, [0.0] * len(run_side), "")[0]),
            frozenset(_by_seed(base_side, [0.0] * len(base_side), "")[0]),
        ),
        base_fused=base_side[0].fused,
        base_adamw=is_adamw(base_side[0].meta),
        sgg_applied=applies_sgg(run_side[0].meta),
        not_recorded=tuple(
            (k, name if who == "a" else base_name)
            for k, who in groups.unrecorded_settings(run_side[0].meta, base_side[0].meta)
        ),
    )


def _loss_fields(
    a: list[RunFacts], b: list[RunFacts], kind: str, at: int, same: bool
) -> dict[str, object]:
    """The loss at step `at`: each side's mean over seeds, the difference, and the target (the
    baseline's loss there) that steps-to-match reads against."""
    a_loss = [loss_at(f, at, kind) for f in a]
    b_loss = [loss_at(f, at, kind) for f in b]
    # the per-batch spread measures evaluation noise, not the seed's luck: it cannot separate
    # two seeds of one setting, so such a pair gets no interval
    if n_seeds(a) == 1 and n_seeds(b) == 1 and kind == "validation":  # repeats: their mean
        (la, sa, na), (lb, sb, nb) = _mean_point(a_loss), _mean_point(b_loss)
        loss_diff = (
            intervals.from_spread(la, sa, na, lb, sb, nb)
            if not same
            else Difference(la - lb, mean=la, base_mean=lb, reason=intervals.ONE_EACH)
        )
        notes = _by_seed(a, [x[0] for x in a_loss], "compared")[1]
        notes += _by_seed(b, [x[0] for x in b_loss], "baseline")[1]
        loss_diff = dataclasses.replace(loss_diff, notes=notes)
    else:
        loss_diff = diff_by_seed(a, [x[0] for x in a_loss], b, [x[0] for x in b_loss])
    return {
        "loss": loss_diff.mean,
        "base_loss": loss_diff.base_mean,
        "loss_diff": loss_diff,
        "target": side_mean(b, [x[0] for x in b_loss]),
    }


def _reach_fields(
    a: list[RunFacts], b: list[RunFacts], kind: str, target: float
) -> tuple[dict[str, object], tuple[str, ...]]:
    """Steps to reach the baseline's loss on each side, the difference, how many seeds
    reached it, and where the run side ends relative to it; the notes on seeds left out."""
    a_steps = [first_step_at_or_below(f, target, kind) for f in a]
    b_steps = [first_step_at_or_below(f, target, kind) for f in b]
    res = resolution(a + b, kind)
    steps_diff = diff_by_seed(a, a_steps, b, b_steps, resolution=res)
    notes = _reach_notes(a, a_steps, "compared") + _reach_notes(b, b_steps, "baseline")
    k_a = _reached(a, a_steps)
    # where the run stands at its own last comparable point, relative to the target
    own_end = [loss_at(f, f.last_step if kind == "training" else np.inf, kind)[0] for f in a]
    end_gap = side_mean(a, own_end) / target - 1 if math.isfinite(target) and target else NAN
    fields = {
        "steps_to_target": steps_diff.mean,
        "base_steps_to_target": steps_diff.base_mean,
        "steps_diff": steps_diff,
        "reached": k_a == n_seeds(a),
        "end_gap": end_gap,
        "reached_k": k_a,
        "base_reached_k": _reached(b, b_steps),
        "resolution": res,
    }
    return fields, notes


def _steadiness_fields(
    a: list[RunFacts], b: list[RunFacts], name: str, base_name: str, last: int
) -> dict[str, object]:
    """Gradient-size variation and spikes per run, over the steps up to `last`, which both
    sides reached (a run three times longer has more steps after its warm-up, and more chances
    to spike)."""
    cv_a, cv_b = [_cv_until(f, last) for f in a], [_cv_until(f, last) for f in b]
    cv_diff = diff_by_seed(a, cv_a, b, cv_b)
    mismatch = grad_norm_mismatch(a, b, name, base_name) or grad_missing(a, b)
    # gradient spikes of norms before and after clipping are not compared: loss spikes only
    sp_a = [_spikes_until(f, last, grad=not mismatch) for f in a]
    sp_b = [_spikes_until(f, last, grad=not mismatch) for f in b]
    if mismatch:  # no verdict on norms measured before and after clipping
        cv_diff = Difference(
            cv_diff.estimate, mean=cv_diff.mean, base_mean=cv_diff.base_mean, reason=mismatch
        )
    return {
        "cv": side_mean(a, cv_a),
        "base_cv": side_mean(b, cv_b),
        "cv_diff": cv_diff,
        "spikes": side_mean(a, sp_a),
        "base_spikes": side_mean(b, sp_b),
        "spikes_diff": diff_by_seed(a, sp_a, b, sp_b),
        "grad_mismatch": mismatch,
    }


def steadiness_note(a: list[RunFacts], b: list[RunFacts], last: int) -> tuple[str, ...]:
    """Which steps the spikes and the gradient-size variation are counted over, when some run
    went past `last` (its later steps are left out; none when every run ends there)."""
    if not any(f.last_step > last for f in a + b):
        return ()
    firsts = {int(f.train_step[0]) for f in a + b if f.train_step.size}
    span = f"steps {firsts.pop()} to {last}" if len(firsts) == 1 else f"the steps up to {last}"
    both = all(len({f.last_step for f in side}) == 1 for side in (a, b))
    who = "the steps both sides ran" if both else "the steps every run reached"
    what = (
        "spikes"
        if grad_norm_mismatch(a, b, "", "") or grad_missing(a, b)
        else ("spikes and gradient-size variation")
    )
    return (f"{what} counted over {span}, {who} (the longer runs' later steps left out)",)


def _time_fields(a: list[RunFacts], b: list[RunFacts]) -> dict[str, object]:
    """Optimizer and wall time per step, compared only on one machine at one time; the
    one-off steps (the first, the re-clusters) apart."""
    hw = _hardware(a, b)
    ot_a, ot_b, ot_d = _time_diff(a, b, "optimizer_time")
    st_a, st_b, st_d = _time_diff(a, b, "step_time")
    if hw != "same":  # wall times of different machines say nothing about the optimizer
        ot_d = Difference(ot_a - ot_b) if hw == "unknown" else Difference(NAN)
        st_d = Difference(NAN)
    together = concurrent(a, b)
    if hw == "same" and together is False:  # one machine, other loads: no verdict
        ot_d = Difference(ot_a - ot_b, mean=ot_a, base_mean=ot_b, reason=NOT_TOGETHER)
        st_d = Difference(st_a - st_b, mean=st_a, base_mean=st_b, reason=NOT_TOGETHER)
    cost_a, cost_b = _costs(a, "optimizer_time"), _costs(b, "optimizer_time")
    return {
        "hardware": hw,
        "optimizer_time": ot_a,
        "base_optimizer_time": ot_b,
        "optimizer_time_diff": ot_d,
        "step_time": st_a,
        "base_step_time": st_b,
        "step_time_diff": st_d,
        "concurrent": together,
        "first_step_time": _mean([c.first for c in cost_a]),
        "base_first_step_time": _mean([c.first for c in cost_b]),
        "recluster_time": _mean([c.recluster for c in cost_a]),
        "base_recluster_time": _mean([c.recluster for c in cost_b]),
        "n_recluster": _mean([c.n_recluster for c in cost_a]),
        "base_n_recluster": _mean([c.n_recluster for c in cost_b]),
    }

"""Issue 16's rule, attacked: never a false verdict.

Groups with a known truth (generated values, and `RunFacts` built directly) go through the same
functions the page uses (`intervals`, `compare.compare`, `verdicts`, `narrative`). Under the null
a direction may be claimed in at most 5% of trials (plus binomial slack); repeats of a seed, runs
without a seed, zero spread and quantised steps must never make a verdict; a real shift of the
stated detectable size must be found about 80% of the time; and every sentence's words and numbers
must agree with the `Difference` behind them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest

from dashboard import cards, narrative, verdicts
from dashboard.metrics import compare, intervals
from dashboard.metrics.compare import RunFacts
from dashboard.metrics.intervals import Difference

ALPHA = 1 - intervals.LEVEL

# a direction word used as a verdict ("more than 1,000 seeds" and "more seeds" are advice)
DIRECTION = re.compile(
    r"\b(better|worse|lower|higher|faster|slower|steadier|less steady|fewer|less time|"
    r"more time|more)\b(?! than| seeds| paired)"
)
LOWER_WORDS = ("lower (better)", "lower", "better", "faster", "fewer", "steadier", "less time")
VOCABULARY: list[tuple[str, str, Callable[[float], str]]] = [
    ("lower (better)", "higher (worse)", verdicts.num),
    ("faster", "slower", verdicts.steps_unit),
    ("fewer", "more", verdicts.num),
    ("steadier", "less steady", verdicts.points),
    ("less time", "more time", verdicts.ms),
]

# --------------------------------------------------------------------------- reading the text

NUM = r"[+-]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?"
QTY = rf"{NUM}(?: (?:ms|s|steps?|points)\b)?%?"
SCALE = {"ms": 1e-3, "s": 1.0, "steps": 1.0, "step": 1.0, "points": 1.0, "": 1.0}
WORD = (
    r"lower \(better\)|higher \(worse\)|less steady|less time|more time|faster|slower|fewer|"
    r"more|steadier|lower|higher|better|worse"
)
CLAIM = re.compile(
    rf"(?P<word>{WORD}) by (?P<mag>{QTY}) \(95% interval (?P<lo>{QTY}) to (?P<hi>{QTY})"
    rf"|{verdicts.NO_DIFFERENCE} \((?P<est>{QTY}) ± (?P<hw>{QTY})\)"
    rf"|{verdicts.CANNOT_TELL}: [^;]*?\(difference (?P<est2>{QTY})\)"
)
VERSUS = re.compile(rf"(?P<x>{QTY}) vs (?P<y>{QTY})(?P<mid>[^:.]*(?:\.\d[^:.]*)*): ")


def quantity(text: str) -> tuple[float, float]:
    """(value in the unit's base, half of the last shown digit): '-2.71 ms' -> (-0.00271, 5e-6)."""
    m = re.fullmatch(rf"({NUM})(?: (ms|s|steps?|points))?(%?)", text.strip())
    assert m, text
    number, unit = m.group(1).replace(",", ""), m.group(2) or ""
    mantissa, _, exp = number.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    scale = SCALE[unit] * 10.0 ** int(exp or 0)
    return float(mantissa) * scale, 0.5 * 10.0**-decimals * scale


def claimed(text: str) -> dict | None:
    """The first claim in `text`: its estimate (signed, with its rounding), its word and, when
    detected, its interval."""
    m = CLAIM.search(text)
    if not m:
        return None
    if m.group("word"):
        mag, err = quantity(m.group("mag"))
        sign = -1.0 if m.group("word") in LOWER_WORDS else 1.0
        return {
            "estimate": sign * mag,
            "err": err,
            "word": m.group("word"),
            "low": quantity(m.group("lo"))[0],
            "high": quantity(m.group("hi"))[0],
            "at": m.start(),
        }
    est, err = quantity(m.group("est") or m.group("est2"))
    return {"estimate": est, "err": err, "word": None, "at": m.start()}


def check_versus(sentence: str) -> int:
    """Every 'X vs Y: <claim>' in `sentence` states an estimate equal to X - Y up to the shown
    digits, and a verdict word only beside an interval that excludes zero and holds the
    estimate. Returns how many were checked."""
    checked = 0
    for m in VERSUS.finditer(sentence):
        rest = sentence[m.end() :]
        c = claimed(rest)
        if c is None or c["at"] > 0:
            continue  # 'X vs Y' not followed by a claim (a setting, a one-off cost)
        (x, ex), (y, ey) = quantity(m.group("x")), quantity(m.group("y"))
        assert abs((x - y) - c["estimate"]) <= ex + ey + c["err"] + 1e-12, (sentence, m.group())
        if c["word"]:
            lo, hi = c["low"], c["high"]
            assert lo <= hi and (lo > 0 or hi < 0), sentence  # shown digits may meet
            assert (lo > 0) == (c["estimate"] > 0), sentence
            assert lo - c["err"] <= c["estimate"] <= hi + c["err"], sentence
        checked += 1
    return checked


# --------------------------------------------------------------------------- known truth


def slack(trials: int, rate: float = ALPHA) -> float:
    """The most a true rate of `rate` shows in `trials` trials, but for 1 in ~700 (3 sd)."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


def exact_sd(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """n values whose sample standard deviation is exactly `sd` (a group showing the true sd)."""
    z = rng.normal(0, 1, n)
    z = (z - z.mean()) / z.std(ddof=1)
    return z * sd


def draw(
    rng: np.random.Generator, design: str, n: int, shift: float, sd: float, n_base: int = 0
) -> Difference:
    """One trial: the run side's values are the baseline's shifted by `shift`, each with a
    per-seed noise of `sd` (paired: a large luck of the seed shared by both sides)."""
    n_base = n_base or n
    if design == "paired":
        luck = rng.normal(0, 50 * sd, n)
        a = 7.0 + shift + luck + rng.normal(0, sd / math.sqrt(2), n)
        b = 7.0 + luck + rng.normal(0, sd / math.sqrt(2), n)
        return intervals.across_seeds(dict(enumerate(a)), dict(enumerate(b)))
    if design == "unpaired":
        a = 7.0 + shift + rng.normal(0, sd, n)
        return intervals.across_seeds(list(a), list(7.0 + rng.normal(0, sd, n_base)))
    if design == "unequal variances":
        a = 7.0 + shift + rng.normal(0, sd, n)
        return intervals.across_seeds(list(a), list(7.0 + rng.normal(0, 10 * sd, n_base)))
    if design == "one vs group":
        a = 7.0 + shift + rng.normal(0, sd)
        return intervals.across_seeds([a], list(7.0 + rng.normal(0, sd, n)))
    raise ValueError(design)


DESIGNS = ["paired", "unpaired", "unequal variances", "one vs group"]


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_under_the_null_a_direction_is_claimed_at_most_5_percent(design, n):
    """Equal truth, spreads from 1e-3 to 1e3: a direction in at most 5% (+ slack) of trials,
    and the words of `claim` / `verdict_word` say a direction exactly when detected."""
    rng = np.random.default_rng(100 * n + DESIGNS.index(design))
    trials, claims = 600, 0
    for i in range(trials):
        d = draw(rng, design, n, 0.0, (1e-3, 1.0, 1e3)[i % 3])
        claims += d.detected
        if i < 15:
            lower, higher, fmt = VOCABULARY[i % len(VOCABULARY)]
            text = verdicts.claim(d, lower, higher, fmt)
            assert bool(DIRECTION.search(text)) == d.detected, text
            word = verdicts.verdict_word(d, lower, higher)
            assert bool(DIRECTION.search(word)) == d.detected, word
    assert claims / trials <= slack(trials), f"{claims} of {trials} null trials claimed"


def test_unequal_group_sizes_keep_the_null_rate():
    rng = np.random.default_rng(7)
    trials = 600
    claims = sum(draw(rng, "unpaired", 2, 0.0, 1.0, n_base=8).detected for _ in range(trials))
    claims += sum(
        draw(rng, "unequal variances", 8, 0.0, 1.0, n_base=2).detected for _ in range(trials)
    )
    assert claims / (2 * trials) <= slack(2 * trials)


# --------------------------------------------------------------------------- seeds are seeds


@pytest.mark.parametrize("k", [2, 6])
def test_a_run_copied_k_times_counts_as_one_seed(k):
    """The same (seed, value) repeated k times: the same N, interval and verdict as once."""
    rng = np.random.default_rng(k)
    for _ in range(40):
        n = int(rng.integers(2, 6))
        a = {s: float(v) for s, v in enumerate(rng.normal(0.3, 1.0, n))}
        b = {s: float(v) for s, v in enumerate(rng.normal(0.0, 1.0, n))}
        copied, notes = intervals.seed_values([(0, a[0])] * k + [(s, a[s]) for s in a if s])
        assert copied == pytest.approx(a, rel=1e-15)  # the mean of k equal values
        assert any("repeats of one seed" in x for x in notes)
        for run_side, base_side in ((copied, b), (list(copied.values()), list(b.values()))):
            once = intervals.across_seeds(
                a if isinstance(run_side, dict) else list(a.values()), base_side
            )
            twice = intervals.across_seeds(run_side, base_side)
            for attr in ("estimate", "low", "high", "n", "n_max", "method", "detected"):
                assert getattr(twice, attr) == pytest.approx(getattr(once, attr), nan_ok=True)


HOST = {"hostname": "h", "cpu": "c", "device": "cpu", "cpu_count": 2, "torch_threads": 1}
EVERY = 25


def curve(t: np.ndarray) -> np.ndarray:
    """A convex, decreasing loss curve (like a language model's)."""
    return 2.0 + 5.0 / (1.0 + t / 50.0)


def facts(
    name: str,
    seed: object,
    opt: str,
    rng: np.random.Generator,
    *,
    luck: float = 0.0,
    shift: float = 0.0,
    delay: float = 0.0,
    end: int = 600,
    every: int = EVERY,
    drop: tuple[int, ...] = (),
    noise: float = 0.003,
    batch_sd: float = 0.05,
    seconds: float = 0.01,
) -> RunFacts:
    """A run's facts with a known truth: loss `curve(step - delay) + shift + luck` (+ noise)
    evaluated every `every` steps up to `end` (evaluations at `drop` missing), per-step optimizer
    times around `seconds`."""
    es = np.arange(every, end + 1, every, dtype=np.float64)
    el = curve(es - delay) + shift + luck + rng.normal(0, noise, es.size)
    el[np.isin(es, drop)] = np.nan
    ts = np.arange(1, end + 1, dtype=np.float64)
    meta = {
        "optimizer": {"name": opt},
        "config": {"optimizer": opt, "lr": 4e-3, "seed": seed},
        "seed": seed,
        "host": HOST,
    }
    return RunFacts(
        name,
        seed,
        meta,
        "finished",
        last_step=end,
        eval_step=es,
        eval_loss=el,
        eval_std=np.full(es.size, batch_sd),
        eval_n=np.full(es.size, 8.0),
        train_step=ts,
        train_avg=curve(ts - delay) + shift + luck,
        grad_cv=0.3 + luck + rng.normal(0, 0.02),
        loss_spikes=int(rng.integers(0, 3)),
        optimizer_time=np.abs(seconds + rng.normal(0, seconds / 10, end)),
        step_time=np.abs(0.5 + rng.normal(0, 0.01, end - 1)),
        reclustered=np.zeros(end, dtype=bool),
    )


def pair_of_groups(rng, n: int, n_base: int | None = None, **run_kw) -> tuple[list, list]:
    """SGG seeds 0..n-1 against AdamW seeds 0..n_base-1; seed i has the same luck on both."""
    n_base = n if n_base is None else n_base
    luck = rng.normal(0, 0.02, max(n, n_base))
    a = [facts(f"sgg-s{i}", i, "sgg", rng, luck=luck[i], **run_kw) for i in range(n)]
    b = [facts(f"adamw-s{i}", i, "adamw", rng, luck=luck[i]) for i in range(n_base)]
    return a, b


DIFFS = ("loss_diff", "steps_diff", "cv_diff", "spikes_diff", "optimizer_time_diff")


def same(x: Difference, y: Difference) -> bool:
    """The same verdict from the same interval on the same number of seeds."""
    ends = (x.estimate, x.low, x.high)
    return (x.n, x.n_max, x.method, x.detected) == (y.n, y.n_max, y.method, y.detected) and (
        ends == pytest.approx((y.estimate, y.low, y.high), nan_ok=True)
    )


@pytest.mark.parametrize("side", ["run", "baseline", "both"])
def test_copies_of_runs_change_nothing_in_compare(side):
    """Copies of a run under other names (same seed, same data): N, every interval and every
    verdict equal the un-copied comparison, and the page says what was merged."""
    rng = np.random.default_rng(11)
    for n in (3, 1):
        a, b = pair_of_groups(rng, n, shift=-0.01)
        base = compare.compare(a, b, "sgg", "adamw")
        ca = a + [compare.RunFacts(**{**a[0].__dict__, "name": f"copy{j}"}) for j in range(5)]
        cb = b + [compare.RunFacts(**{**b[0].__dict__, "name": f"copy{j}"}) for j in range(2)]
        got = compare.compare(
            ca if side != "baseline" else a, cb if side != "run" else b, "sgg", "adamw"
        )
        assert (got.n, got.n_base) == (base.n, base.n_base) == (n, n)
        for attr in DIFFS:
            assert same(getattr(got, attr), getattr(base, attr)), attr
        assert narrative.in_short(got) == narrative.in_short(base)
        assert "repeats of one seed" in narrative.seeds_sentence(got)


def test_repeats_of_a_seed_with_different_values_are_compared_by_their_mean():
    """A seed run twice (a non-deterministic rerun) counts once, by its mean: the baseline's
    loss in 'X vs Y' is then the target the steps sentence names (the mean of its seeds)."""
    rng = np.random.default_rng(12)
    sgg = [facts("sgg-s0", 0, "sgg", rng)]
    adamw = [facts("adamw-s0", 0, "adamw", rng), facts("adamw-s0-rerun", 0, "adamw", rng, luck=0.1)]
    c = compare.compare(sgg, adamw, "sgg", "adamw")
    assert c.n_base == 1
    assert c.base_loss == pytest.approx(c.target)
    assert c.loss_diff.base_mean == pytest.approx(c.target)


def test_one_seed_written_as_0_and_0_point_0_is_one_seed():
    """TensorBoard's hparams give a seed as 0.0; our runs write 0: the same seed, counted once
    and paired with the other side's seed 0."""
    rng = np.random.default_rng(13)
    a, b = pair_of_groups(rng, 3)
    for f in b:  # the baseline imported from TensorBoard: seeds as floats
        f.seed = float(f.seed)
        f.meta = {**f.meta, "config": {**f.meta["config"], "seed": float(f.seed)}}
    assert compare.n_seeds([a[0], compare.RunFacts(**{**b[0].__dict__, "name": "x"})]) == 1
    c = compare.compare(a, b, "sgg", "adamw")
    assert c.loss_diff.method == intervals.PAIRED


def test_runs_without_a_seed_are_never_counted_as_seeds():
    rng = np.random.default_rng(14)
    values = [(None, float(v)) for v in rng.normal(0, 1, 5)]
    out, notes = intervals.seed_values(values)
    assert list(out) == [None] and any("count as one" in x for x in notes)
    out, notes = intervals.seed_values([*values, (0, 1.0), (1, 2.0)])
    assert out == {0: 1.0, 1: 2.0} and any("left out" in x for x in notes)
    # five seedless runs against five: one value each side, never a verdict across seeds
    d = intervals.across_seeds(*(intervals.seed_values(values)[0] for _ in range(2)))
    assert d.n == 1 and not d.detected
    # seedless runs on both sides are never paired, whatever they hold
    d = intervals.across_seeds({None: 1.0}, {None: 0.0})
    assert d.method != intervals.PAIRED and not d.has_interval
    a = [facts(f"sgg-{i}", None, "sgg", rng, shift=-0.05) for i in range(4)]
    b = [facts(f"adamw-{i}", None, "adamw", rng) for i in range(4)]
    c = compare.compare(a, b, "sgg", "adamw")
    assert (c.n, c.n_base) == (1, 1)
    for attr in ("steps_diff", "cv_diff", "spikes_diff", "optimizer_time_diff"):
        assert not getattr(c, attr).has_interval, attr
    assert "(4 vs 4 runs)" in narrative.seeds_sentence(c)


# --------------------------------------------------------------------------- zero spread


def test_zero_spread_is_cannot_tell_never_a_verdict():
    cases = {
        "identical differences": intervals.across_seeds({0: 2.5, 1: 3.0}, {0: 2.0, 1: 2.5}),
        "identical values": intervals.across_seeds([3.0, 3.0, 3.0], [2.0, 2.0]),
        "one against an identical group": intervals.across_seeds([3.0], [2.0, 2.0, 2.0]),
        "no per-batch spread": intervals.from_spread(3.0, 0.0, 8, 2.0, 0.0, 8),
        "one each": intervals.across_seeds([3.0], [2.0]),
    }
    for what, d in cases.items():
        assert not d.detected, what
        text = verdicts.claim(d, "lower (better)", "higher (worse)")
        assert text.startswith(verdicts.CANNOT_TELL) and not DIRECTION.search(text), (what, text)
        assert verdicts.verdict_word(d, "lower", "higher").startswith(verdicts.CANNOT_TELL), what


def test_identical_differences_up_to_float_rounding_are_zero_spread():
    """2.3 - 2.2 and 2.1 - 2.0 are both 0.1, though not to the last bit: that is no spread,
    not an interval '+0.1 to +0.1'."""
    for a, b in (({0: 2.3, 1: 2.1}, {0: 2.2, 1: 2.0}), ({0: 1.3, 1: 7.9}, {0: 1.2, 1: 7.8})):
        d = intervals.across_seeds(a, b)
        text = verdicts.claim(d, "lower (better)", "higher (worse)")
        assert not d.detected, text
        assert text.startswith(verdicts.CANNOT_TELL), text


# --------------------------------------------------------------------------- steps, quantised


def test_steps_to_target_are_interpolated_not_quantised():
    """A straight line between two evaluations: the crossing is read exactly, not rounded to
    the evaluation grid."""
    f = facts("x", 0, "sgg", np.random.default_rng(0), noise=0.0)
    f.eval_step = np.array([25.0, 50.0, 75.0])
    f.eval_loss = np.array([3.0, 2.0, 1.0])
    assert compare.first_step_at_or_below(f, 2.4, "validation") == pytest.approx(40.0)
    assert math.isnan(compare.first_step_at_or_below(f, 0.5, "validation"))  # never reached


@pytest.mark.parametrize("ahead", [0.0, 5.0, 12.0, 20.0, 40.0])
def test_a_difference_below_the_evaluation_spacing_is_never_faster_or_slower(ahead):
    """The run side's true curve is the baseline's, `ahead` steps earlier; evaluations every 25
    steps. Its seeds agree to about a step, so the interval is narrow: still never a verdict
    with |estimate| <= 25 steps (none at all when the truth is less than one evaluation
    interval), never the wrong sign, and 'faster' for a true lead of 40 steps."""
    rng = np.random.default_rng(int(ahead) + 20)
    trials, claims = 30, 0
    for _ in range(trials):
        a = [facts(f"sgg-s{i}", i, "sgg", rng, delay=-ahead, noise=0.0005) for i in range(3)]
        b = [facts(f"adamw-s{i}", i, "adamw", rng, noise=0.0) for i in range(3)]
        c = compare.compare(a, b, "sgg", "adamw")
        d = c.steps_diff
        assert c.resolution == EVERY and c.base_reached_k == 3
        if abs(d.estimate) <= EVERY:
            assert not d.detected, d
            if d.has_interval:
                assert verdicts.verdict_word(d, "faster", "slower").endswith("(below resolution)")
        if d.detected:
            claims += 1
            assert d.estimate < 0, d  # only ever "faster", the truth's side
            text = narrative.reach_sentence(c)
            assert "faster by" in text and check_versus(text) == 1, text
    if ahead < EVERY:
        assert claims == 0
    else:
        assert claims >= trials * 0.8  # the test can see a real lead


def test_paired_steps_within_one_evaluation_say_below_resolution():
    d = intervals.across_seeds(
        {0: 110.0, 1: 131.0, 2: 152.0}, {0: 100.0, 1: 120.5, 2: 141.5}, resolution=25.0
    )
    assert d.has_interval and d.low > 0 and not d.detected
    assert verdicts.verdict_word(d, "faster", "slower") == "cannot tell (below resolution)"
    text = verdicts.claim(d, "faster", "slower", verdicts.steps_unit)
    assert text.startswith(verdicts.CANNOT_TELL) and "(25 steps)" in text, text


# --------------------------------------------------------------------------- like for like


def null_rate(make: Callable[[np.random.Generator], tuple[list, list]], trials: int = 150):
    """How often each compared measure claims a direction when the truth is equal; with the
    last comparison and its two sides."""
    rng = np.random.default_rng(30)
    hits = dict.fromkeys(("loss_diff", "steps_diff", "cv_diff", "spikes_diff"), 0)
    for _ in range(trials):
        a, b = make(rng)
        c = compare.compare(a, b, "sgg", "adamw")
        for attr in hits:
            hits[attr] += getattr(c, attr).detected
    return {k: v / trials for k, v in hits.items()}, c, (a, b)


def test_unequal_lengths_are_compared_at_the_step_both_reached_under_the_null():
    rates, c, (_, b) = null_rate(lambda rng: pair_of_groups(rng, 3, end=400))
    assert c.at_step == 400 and c.lengths == (400, 600)
    b_at_400 = [float(f.eval_loss[f.eval_step == 400][0]) for f in b]
    assert c.base_loss == pytest.approx(np.mean(b_at_400))
    assert all(r <= slack(150) for r in rates.values()), rates


@pytest.mark.parametrize("how", ["one evaluation missing", "every 50 steps against every 25"])
def test_a_missing_evaluation_is_not_read_at_an_earlier_step(how):
    """Equal truth; the baseline stops at step 575 and the run side has no evaluation there
    (one missing, or evaluated every 50 steps): its loss must not be read at step 550 and
    called worse."""
    kw = {"drop": (575,)} if how.startswith("one") else {"every": 50}

    def make(rng):
        luck = rng.normal(0, 0.02, 3)
        a = [facts(f"sgg-s{i}", i, "sgg", rng, luck=luck[i], **kw) for i in range(3)]
        b = [facts(f"adamw-s{i}", i, "adamw", rng, luck=luck[i], end=575) for i in range(3)]
        return a, b

    rates, c, _ = null_rate(make)
    assert rates["loss_diff"] <= slack(150), (rates, narrative.loss_sentence(c))


# --------------------------------------------------------------------------- single runs


def test_one_run_each_is_a_verdict_only_from_a_per_batch_spread():
    rng = np.random.default_rng(40)
    # other optimizer, other seed: only the per-batch noise of each evaluation is known
    a, b = [facts("sgg-s0", 0, "sgg", rng, shift=-0.3)], [facts("adamw-s1", 1, "adamw", rng)]
    c = compare.compare(a, b, "sgg", "adamw")
    assert c.loss_diff.method == intervals.WITHIN_RUN
    assert "one run each, from the per-batch spread" in narrative.loss_sentence(c)
    for attr in ("steps_diff", "cv_diff", "spikes_diff", "optimizer_time_diff"):
        assert not getattr(c, attr).has_interval, attr  # per-step times too: one run each
    for f in (a[0], b[0]):
        f.eval_std = np.full(f.eval_std.size, np.nan)  # no per-batch spread recorded
    c = compare.compare(a, b, "sgg", "adamw")
    assert not c.loss_diff.has_interval and not DIRECTION.search(narrative.in_short(c))
    assert verdicts.CANNOT_TELL in narrative.loss_sentence(c)


def test_one_run_against_a_group_uses_the_groups_spread():
    rng = np.random.default_rng(41)
    a, b = pair_of_groups(rng, 1, n_base=4)
    c = compare.compare(a, b, "sgg", "adamw")
    d = c.loss_diff
    assert d.method == intervals.ONE_VS_GROUP and (d.n, d.n_max) == (1, 4)
    assert "one run against 4 seeds" in narrative.loss_sentence(c)


# --------------------------------------------------------------------------- power


def true_difference(design: str, n: int, sd: float) -> Difference:
    """The Difference these seeds would show if their spread were exactly the true one."""
    rng = np.random.default_rng(0)
    if design == "paired":
        return intervals.across_seeds(
            dict(enumerate(exact_sd(rng, n, sd))), dict(enumerate(np.zeros(n)))
        )
    if design == "unpaired":
        return intervals.across_seeds(list(exact_sd(rng, n, sd)), list(exact_sd(rng, n, sd)))
    return intervals.across_seeds([0.0], list(exact_sd(rng, n, sd)))


@pytest.mark.parametrize("design", ["paired", "unpaired", "one vs group"])
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_a_shift_of_the_stated_detectable_size_is_detected_about_80_percent(design, n):
    """'these seeds can detect differences above X (80% power)': a true shift of X is found in
    70-90% of trials."""
    sd = 1.0
    mdd = true_difference(design, n, sd).detectable()
    rng = np.random.default_rng(200 + n)
    trials = 500
    # paired: the sd of the per-seed differences is `sd`
    hits = sum(draw(rng, design, n, mdd, sd).detected for _ in range(trials))
    assert 0.7 <= hits / trials <= 0.9, (design, n, mdd, hits / trials)


@pytest.mark.parametrize("design", ["paired", "unpaired", "one vs group"])
def test_seeds_needed_seeds_detect_the_size_about_80_percent(design):
    """'about N seeds would detect delta': N seeds (per side, or pairs) detect a true delta in
    70-90% of trials."""
    sd, delta = 1.0, 1.0
    d = true_difference(design, 3, sd)
    n = d.seeds_needed(delta)
    assert n is not None and n >= 2
    rng = np.random.default_rng(300)
    trials = 500
    new = "paired" if d.method == intervals.PAIRED else "unpaired"
    hits = sum(draw(rng, new, n, delta, sd).detected for _ in range(trials))
    assert 0.7 <= hits / trials <= 0.9, (design, n, hits / trials)
    fewer = sum(draw(rng, new, max(n - 3, 2), delta, sd).detected for _ in range(trials))
    assert fewer < hits  # fewer seeds: less power (the count is not padded for nothing)


# --------------------------------------------------------------------------- the words


def test_every_claim_has_a_direction_word_iff_detected_and_its_numbers_agree():
    rng = np.random.default_rng(50)
    seen = {True: 0, False: 0}
    for i in range(150):
        design = DESIGNS[i % 4]
        shift = (0.0, 0.5, 3.0, -3.0, -0.2)[i % 5]
        d = draw(rng, design, 2 + i % 4, shift, 1.0)
        for lower, higher, fmt in VOCABULARY:
            text = verdicts.claim(d, lower, higher, fmt, size=0.1)
            assert bool(DIRECTION.search(text)) == d.detected, text
            word = verdicts.verdict_word(d, lower, higher)
            assert bool(DIRECTION.search(word)) == d.detected, word
            c = claimed(text)
            assert c is not None, text
            value = d.estimate * (100 if fmt is verdicts.points else 1)
            assert abs(c["estimate"] - value) <= c["err"] * (1 + 1e-9) + 1e-12, (text, value)
            if d.detected:
                assert c["word"] == (lower if d.estimate < 0 else higher), text
        seen[d.detected] += 1
    assert seen[True] >= 20 and seen[False] >= 20, seen


def test_every_sentence_states_x_vs_y_equal_to_its_estimate():
    """Loss, steps, steadiness and time sentences: 'X vs Y: ...' with estimate = X - Y up to
    the digits shown, verdict words only beside an interval that excludes zero."""
    rng = np.random.default_rng(60)
    checked = 0
    for i in range(24):
        n = (1, 2, 3, 5)[i % 4]
        shift = (0.0, -0.05, 0.3)[i % 3]
        a, b = pair_of_groups(
            rng, n, shift=shift, delay=(0.0, 40.0)[i % 2], seconds=0.02 if i % 3 else 0.01
        )
        c = compare.compare(a, b, "sgg", "adamw")
        for s in narrative.comparison_sentences(c):
            checked += check_versus(s)
            if "**In short" in s:
                for part, d in (
                    ("loss", c.loss_diff),
                    ("steadiness", c.cv_diff),
                ):
                    got = re.search(rf"{part} \*\*([^*]*)\*\*", s).group(1)
                    assert bool(DIRECTION.search(got)) == d.detected, s
    assert checked >= 24 * 4


def test_a_group_just_above_the_target_is_never_shown_zero_percent_above_it():
    """Not reached, ending 0.002% above the baseline's loss: the sentence and the card show the
    gap with the digits that make it non-zero, never "0.0% above" beside "not reached"."""
    rng = np.random.default_rng(5)
    b = [facts(f"adamw-s{i}", i, "adamw", rng, noise=0.0) for i in range(3)]
    target = curve(np.array([600.0]))[0]
    a = [
        facts(f"sgg-s{i}", i, "sgg", rng, noise=0.0, shift=2e-5 * target + 1e-9 * i)
        for i in range(3)
    ]
    c = compare.compare(a, b, "sgg", "adamw")
    assert c.reached_k == 0 and 0 < c.end_gap < 0.0005
    text = narrative.reach_sentence(c)
    assert "0.0%" not in text and re.search(r"is 0\.00\d+% above the target", text), text
    card = next(x for x in cards.comparison_cards(c) if x.label == "Steps to match")
    assert card.delta["delta"].startswith("+0.00") and "0.0%" not in card.delta["delta"]

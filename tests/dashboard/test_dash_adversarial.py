"""Issue 16's reproductions, rendered: the Summary page of real recorded runs (copies of
`sample_runs/`), read as a suspicious reader reads it.

Each test builds the folder the issue describes, renders the app with AppTest and checks the
words on the page; every page also goes through `honest()`, the general check: a verdict word
only beside a 95% interval that excludes zero, numbers that agree with each other, and every
"no detectable difference" followed by what would decide it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dash_fixtures import SAMPLE_RUNS, copy_run
from test_dash_app import render, table_files
from test_dash_claim_rule import CLAIM, DIRECTION, QTY, check_versus, claimed, quantity

from dashboard import narrative, verdicts

pytestmark = pytest.mark.skipif(
    not (SAMPLE_RUNS / "adamw-lr4e-3-s0" / "run.json").exists(), reason="no sample runs"
)

INTERVAL = re.compile(rf"95% interval (?P<lo>{QTY}) to (?P<hi>{QTY})")
# each verdict says what its seeds can detect; "which is not the same as equal" is said once
# per comparison (at its first such verdict), so it may be absent from the others
DECIDED = re.compile(
    rf"{verdicts.NO_DIFFERENCE} \([^)]*\)(?:, which is not the same as equal)?: "
    r"(too few seeds to tell: [^;]*?|(?:these|one run against) [^;]*?|one run each: with 80% "
    r"power, the spread of their evaluation batches )"
    r"can detect differences above"
)
COUNTED = re.compile(rf"\d+ show {verdicts.NO_DIFFERENCE} \(which is not the same as equal\)")
VERDICT_COLUMNS = ("Verdict", "Speed", "Spikes", "Steadiness", "Optimizer time vs baseline")


# --------------------------------------------------------------------------- reading the page


def sentences(at) -> list[str]:
    """The Summary's verdict sentences (its bullets, not the definitions)."""
    defs = narrative.definitions_markdown()
    return [
        str(m.value)[2:]
        for m in at.main.markdown
        if str(m.value).startswith("- ") and str(m.value) != defs
    ]


def tables(at) -> list[pd.DataFrame]:
    return [t.value for t in at.main.table]


def cells(at, columns=VERDICT_COLUMNS) -> list[str]:
    """Every verdict cell of the Summary's tables."""
    return [str(v) for df in tables(at) for c in columns if c in df for v in df[c]]


def honest(at) -> None:
    """The general check (issue 16, f) on one rendered Summary."""
    said = sentences(at)
    prose = [s for s in said if not s.startswith("**In short")]
    overview = [str(m.value) for m in at.main.markdown if str(m.value).startswith("Against **")]
    assert said or overview, "no verdict sentences on the Summary"
    for s in prose + overview:
        check_versus(s)  # X vs Y = the estimate; a verdict only beside an interval without zero
        detected = [m.span() for m in CLAIM.finditer(s) if m.group("word")]
        for w in DIRECTION.finditer(s):
            if s.startswith("Against **") and re.match(r"lower loss|higher loss", s[w.start() :]):
                continue  # the overview's count of table verdicts, checked below
            assert any(a <= w.start() < b for a, b in detected), (w.group(), s)
        counted = len(COUNTED.findall(s))  # the overview's count: the table says the rest
        assert s.count(f"{verdicts.NO_DIFFERENCE} (") - counted == len(DECIDED.findall(s)), s
    for s in said:
        if s.startswith("**In short"):
            for bold in re.findall(r"\*\*([^*]+)\*\*", s)[1:]:
                word = bold.split(";")[0]
                if DIRECTION.search(word):
                    assert any(f"{word} by " in p for p in prose), (word, s)
    text = "\n".join(said + overview)
    for m in INTERVAL.finditer(text):
        lo, hi = quantity(m.group("lo"))[0], quantity(m.group("hi"))[0]
        assert lo < hi, f"an interval of zero width: {m.group()}"
    for df in tables(at):
        if "Verdict" not in df:
            continue
        for verdict, diff in zip(df["Verdict"], df["vs baseline"], strict=True):
            if not verdict:
                continue
            est, _, half = str(diff).partition(" ± ")
            if DIRECTION.search(str(verdict)):
                assert half and abs(quantity(est)[0]) > quantity(half)[0], (verdict, diff)
            elif str(verdict) == verdicts.NO_DIFFERENCE:
                assert half and abs(quantity(est)[0]) <= quantity(half)[0], (verdict, diff)
        for verdict, mdd in zip(df["Verdict"], df[narrative.DETECTABLE], strict=True):
            if str(verdict) == verdicts.NO_DIFFERENCE:  # what would decide it, in its row
                assert re.fullmatch(QTY, str(mdd)), (verdict, mdd)
        if overview:
            worse = sum(str(v) == "worse" for v in df["Verdict"])
            better = sum(str(v) == "better" for v in df["Verdict"])
            assert (f"{worse} reach a higher loss" in overview[0]) == bool(worse), overview
            assert (f"{better} reach a lower loss" in overview[0]) == bool(better), overview


def versus(said: list[str]) -> list[tuple[float, float, dict]]:
    """(X, Y, the claim) of every 'X vs Y: <claim>' in the sentences."""
    out = []
    for s in said:
        for m in re.finditer(rf"(?P<x>{QTY}) vs (?P<y>{QTY})[^:]*: ", s):
            c = claimed(s[m.end() :])
            if c and c["at"] == 0:
                out.append((quantity(m.group("x"))[0], quantity(m.group("y"))[0], c))
    return out


# --------------------------------------------------------------------------- the runs, read apart


def val_losses(run: Path) -> pd.DataFrame:
    """A run's validation evaluations (step, loss), read straight from its Parquet files."""
    files = table_files(run / "tables" / "evals")  # the live chunks, by the format's rule
    df = pd.concat([pq.read_table(f).to_pandas() for f in files])
    df = df[df["split"] == "val"] if "split" in df else df
    return df.sort_values("step").drop_duplicates("step", keep="last")[["step", "loss"]]


def crossing(ev: pd.DataFrame, target: float) -> float:
    """Where the loss first reaches `target`, read linearly between the evaluations around it."""
    x, y = ev["step"].to_numpy(float), ev["loss"].to_numpy(float)
    hit = np.flatnonzero(y <= target)
    if not hit.size:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (y[i - 1] - target) / (y[i - 1] - y[i]) * (x[i] - x[i - 1]))


def steps_truth(compared: str, baseline: str) -> dict:
    """Steps to the baseline's loss for seeds 0-2 of two sample groups, computed here from the
    Parquet files (the page's definition: the baseline's mean validation loss at the last
    evaluation all reached; seeds compared where both sides reached it)."""
    runs = {
        side: [val_losses(SAMPLE_RUNS / f"{stem}-s{s}") for s in range(3)]
        for side, stem in (("compared", compared), ("baseline", baseline))
    }
    at = min(int(ev["step"].max()) for evs in runs.values() for ev in evs)
    target = float(np.mean([ev.loc[ev["step"] == at, "loss"].iloc[0] for ev in runs["baseline"]]))
    steps = {side: [crossing(ev, target) for ev in evs] for side, evs in runs.items()}
    both = [s for s in range(3) if all(np.isfinite(steps[k][s]) for k in steps)]
    return {
        "steps": steps,
        "missed": {k: [s for s in range(3) if not np.isfinite(v[s])] for k, v in steps.items()},
        "mean": {k: float(np.mean([v[s] for s in both])) for k, v in steps.items()},
    }


# --------------------------------------------------------------------------- the reproductions


def test_a_one_seed_copied_under_two_names_is_one_seed(tmp_path, monkeypatch):
    """adamw-lr4e-3-s0 twice under two names against sgg-lr4e-3-T25-s0: one seed each, so no
    verdict, the page says the copies are repeats of one seed, no zero-width interval and no
    difference equal to minus the baseline."""
    copy_run(SAMPLE_RUNS / "adamw-lr4e-3-s0", tmp_path, "adamw-lr4e-3-s0")
    copy_run(SAMPLE_RUNS / "adamw-lr4e-3-s0", tmp_path, "adamw-lr4e-3-s0-again")
    copy_run(SAMPLE_RUNS / "sgg-lr4e-3-T25-s0", tmp_path, "sgg-lr4e-3-T25-s0")
    at = render(tmp_path, monkeypatch, baseline="adamw-lr4e-3-s0", compare=["sgg-lr4e-3-T25-s0"])
    honest(at)
    said = sentences(at)
    words = re.compile(r"\b(better|worse|steadier|less time|lower \(better\))\b")
    problems = [f"verdict word: {t}" for t in [*said, *cells(at)] if words.search(t)]
    if not any("repeats of one seed" in s for s in said):
        problems.append("the copies are not said to be repeats of one seed")
    problems += [f"two copies of one seed called 2 seeds: {s}" for s in said if "(2 seeds)" in s]
    for x, y, c in versus(said):
        if y and x and abs(c["estimate"] + y) <= c["err"] + 1e-9:
            problems.append(f"an estimate equal to minus the baseline: {x} vs {y}: {c}")
    assert not problems, problems


def test_b_six_copies_with_seed_0_count_as_one_seed(tmp_path, monkeypatch):
    """Six copies of one SGG run, imported the way foreign runs arrive (no machine recorded,
    each with config seed 0), against AdamW's three seeds: one seed, compared as one run
    against a group; never '(6 seeds)' in a verdict sentence or the tables' seed counts."""
    for s in range(3):
        copy_run(SAMPLE_RUNS / f"adamw-lr4e-3-s{s}", tmp_path, f"adamw-lr4e-3-s{s}")
    for i in range(1, 7):
        run = copy_run(SAMPLE_RUNS / "sgg-lr4e-3-T25-s1", tmp_path, f"imported-{i}")
        meta = json.loads((run / "run.json").read_text())
        meta = {k: v for k, v in meta.items() if k not in ("host", "hostname")}
        meta.update(seed=0, config={**meta["config"], "seed": 0})
        (run / "run.json").write_text(json.dumps(meta))
    at = render(tmp_path, monkeypatch, baseline="adamw-lr4e-3-s0", compare=["imported-1"])
    honest(at)
    said = sentences(at)
    problems = [f"6 seeds: {s}" for s in said if "6 seeds" in s]
    if not any("Seeds: 1 vs 3 distinct seeds (6 vs 3 runs)" in s for s in said):
        problems.append("no 'Seeds: 1 vs 3 distinct seeds (6 vs 3 runs)'")
    if not any("repeats of one seed" in s for s in said):
        problems.append("the copies are not said to be repeats of one seed")
    loss = next(s for s in said if s.startswith("Validation loss"))
    if "one run against 3 seeds" not in loss and verdicts.CANNOT_TELL not in loss:
        problems.append(f"not compared as one run against a group: {loss}")
    seeds = [int(v) for df in tables(at) if "Seeds" in df for v in df["Seeds"]]
    if not seeds or 6 in seeds or seeds[-1] != 1:
        problems.append(f"table seed counts {seeds}")
    assert not problems, problems


def test_c_steps_sentence_agrees_with_its_numbers_and_names_left_out_seeds(monkeypatch):
    """AdamW lr 4e-3 against SGG lr 1e-3 on the real sample runs: the steps sentence's
    'X vs Y' equals the steps computed here from the Parquet files and the difference it
    states, no 'slower by 25 steps' from the evaluation grid, every seed left out named."""
    at = render(SAMPLE_RUNS, monkeypatch, baseline="adamw-lr4e-3-s0", compare=["sgg-lr1e-3-T25-s0"])
    honest(at)
    said = sentences(at)
    steps = next(s for s in said if s.startswith("Steps to"))
    assert check_versus(steps) == 1, steps
    assert not re.search(r"(faster|slower) by 25 steps", " ".join(said)), steps
    truth = steps_truth("sgg-lr1e-3-T25", "adamw-lr4e-3")
    (x, y, _), *_ = versus([steps])
    assert (x, y) == (round(truth["mean"]["compared"]), round(truth["mean"]["baseline"])), steps
    for side, missed in truth["missed"].items():
        phrase = verdicts.reached_text(3 - len(missed), 3)
        assert phrase in steps, (side, phrase, steps)
        for s in missed:
            assert any(f"seed {s} ({side})" in t and "left out" in t for t in said), (side, s)


def test_d_reached_is_said_by_seeds_and_never_beside_a_contradicting_mean(monkeypatch):
    """AdamW lr 1e-3 against SGG lr 1e-3: 'reached' is 'k of n seeds', with k counted here from
    the Parquet files; a group never 'did not reach it' beside a mean below the target, nor
    'reached' beside a mean above it."""
    at = render(SAMPLE_RUNS, monkeypatch, baseline="adamw-lr1e-3-s0", compare=["sgg-lr1e-3-T25-s0"])
    honest(at)
    said = sentences(at)
    text = " ".join(said + cells(at, ("Steps to the baseline's loss", "Speed")))
    truth = steps_truth("sgg-lr1e-3-T25", "adamw-lr1e-3")
    steps = next(s for s in said if s.startswith("Steps to"))
    for side, missed in truth["missed"].items():
        assert verdicts.reached_text(3 - len(missed), 3) in steps, (side, steps)
    assert "did not reach it" not in text  # the phrase for one run, not for a group
    for m in re.finditer(r"reached it", text):
        before = text[: m.start()]
        assert re.search(r"((\d+ of \d+|all \d+|none of the \d+) seeds|seeds that) $", before)
    for m in re.finditer(r"its mean is [\d.]+% (above|below) the target", text):
        none = "none of the 3 seeds reached it" in text
        assert (m.group(1) == "above") == none, text


def test_e_two_seeds_of_one_setting_get_no_time_verdict(monkeypatch):
    """Pool off, adamw-lr4e-3-s0 against adamw-lr4e-3-s1 (the same setting, two seeds): any
    difference is chance; no 'less time' / 'more time', no verdict at all."""
    at = render(
        SAMPLE_RUNS,
        monkeypatch,
        pool=False,
        baseline="adamw-lr4e-3-s0",
        compare=["adamw-lr4e-3-s1"],
    )
    honest(at)
    said = sentences(at)
    assert any("differ only in the seed" in s for s in said), said
    for text in [*said, *cells(at)]:
        assert "less time" not in text and "more time" not in text, text
        assert not DIRECTION.search(text), text


def test_f_every_verdict_has_an_interval_without_zero(monkeypatch):
    """Against AdamW lr 4e-3: the lr 1.6e-2 groups (worse: sentences with verdict words), then
    four groups (the overview paragraph): every verdict word in a sentence beside an interval
    that excludes zero, every table verdict's 'estimate ± half width' excluding zero, every
    'no detectable difference' with what would decide it."""
    at = render(
        SAMPLE_RUNS,
        monkeypatch,
        baseline="adamw-lr4e-3-s0",
        compare=["sgg-lr1.6e-2-T25-s0", "adamw-lr1.6e-2-s0"],
    )
    honest(at)
    said = sentences(at)
    assert sum(bool(CLAIM.search(s) and CLAIM.search(s).group("word")) for s in said) >= 2, said
    at.session_state["compare"] = [
        "sgg-lr4e-3-T25-s0",
        "sgg-lr1e-3-T25-s0",
        "sgg-lr1.6e-2-T25-s0",
        "adamw-lr1.6e-2-s0",
    ]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    honest(at)
    overview = [str(m.value) for m in at.main.markdown if str(m.value).startswith("Against **")]
    assert overview, "no overview paragraph for four groups"
    verdict = next(df for df in tables(at) if "Verdict" in df)
    assert len(verdict) == 5 and verdict["Seeds"].tolist() == [3] * 5

"""The page is its controls (issue 16, item 7): the sidebar, the URL and the page show the same
selection; a link naming a run that is not here says so; long picker labels stay readable; the
live notice follows the runs' state; a new run folder reaches an open page.

Rendered by AppTest on real run folders (copies of sample_runs/ or runs written through the
fixtures); the last test drives the real server with headless Chromium (skipped without it).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dash_fixtures import REPO, SAMPLE_RUNS, copy_run, edit_meta, small_run
from streamlit.testing.v1 import AppTest

from dashboard import loader, sidebar
from dashboard.app import ENV_ROOT, live_banner
from dashboard.context import Ctx, page_state
from dashboard.views import runs as runs_view

APP = str(REPO / "dashboard" / "app.py")
BASE, SGG = "adamw-lr4e-3-s0", "sgg-lr4e-3-T25-s0"  # the default pair of the sample runs
DECAY09 = "sgg-lr4e-3-T25-decay0.9-s0"


def app_test(root: Path, monkeypatch, query: dict | None = None, **state) -> AppTest:
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in state.items():
        at.session_state[k] = v
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def summary_runs(at: AppTest) -> list[str]:
    """The runs the Summary compares (its per-run table)."""
    for df in at.dataframe:
        if "Final train loss" in df.value.columns:
            return list(df.value["Run"])
    raise AssertionError("no summary table")


def url(at: AppTest, key: str) -> list[str]:
    """The values of one URL parameter after the run."""
    v = at.query_params.get(key, [])
    return [v] if isinstance(v, str) else list(v)


def shown_label(box) -> str:
    """What the browser shows in a selectbox: the label the server sends with the value when it
    sets it (`set_value`), else the one the browser already holds (the formatted value)."""
    return box.proto.raw_value if box.proto.set_value else box.options[box.index]


def on_show(at: AppTest) -> str:
    """The selection in words below the pickers."""
    return "\n".join(str(c.value) for c in at.sidebar.caption if "**Baseline:**" in str(c.value))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """A copy of the 21 recorded sample runs (the sweep at sample_runs/'s top level; later
    additions in subfolders are left out, so that the default pair and labels are known)."""
    names = sorted(p.parent.name for p in SAMPLE_RUNS.glob("*/run.json"))
    if BASE not in names or DECAY09 not in names:
        pytest.skip("sample_runs/ does not hold the recorded sample set")
    root = tmp_path_factory.mktemp("controls") / "runs"
    for name in names:
        shutil.copytree(SAMPLE_RUNS / name, root / name, ignore=shutil.ignore_patterns(".*"))
    return root


# --------------------------------------------------------------------------- pooling


def test_switching_pooling_off_changes_the_pickers_the_url_and_the_page(samples, monkeypatch):
    at = run(app_test(samples, monkeypatch))
    box = at.selectbox(key="baseline")
    assert shown_label(box) == "adamw, lr 4e-3 (3 seeds)"
    assert len(summary_runs(at)) == 6  # two groups of three seeds
    assert "pool" not in at.query_params

    at.toggle(key="pool").set_value(False)
    run(at)
    box, picked = at.selectbox(key="baseline"), at.multiselect(key="compare")
    # the browser is told the new label (it kept "adamw, lr 4e-3 (3 seeds)" before)
    assert box.proto.set_value and shown_label(box) == BASE
    assert BASE in box.options and "adamw, lr 4e-3 (3 seeds)" not in box.options
    assert picked.label == "Runs to compare" and list(picked.proto.raw_values) == [SGG]
    assert summary_runs(at) == [BASE, SGG]  # the page compares the two runs, not groups
    assert url(at, "pool") == ["false"]
    assert on_show(at) == f"**Baseline:** {sidebar.md_escape(BASE)}  \n**Compared:** " + (
        sidebar.md_escape(SGG)
    )

    at.toggle(key="pool").set_value(True)  # and back
    run(at)
    box = at.selectbox(key="baseline")
    assert box.proto.set_value and shown_label(box) == "adamw, lr 4e-3 (3 seeds)"
    assert len(summary_runs(at)) == 6 and "pool" not in at.query_params


@pytest.mark.parametrize("value", ["0", "false", "no", "off"])
def test_pool_off_in_the_url_is_what_the_toggle_and_page_show(samples, monkeypatch, value):
    at = run(app_test(samples, monkeypatch, {"pool": value}))
    assert at.toggle(key="pool").value is False
    box = at.selectbox(key="baseline")
    assert shown_label(box) == BASE and SGG in at.multiselect(key="compare").options
    assert summary_runs(at) == [BASE, SGG]
    assert url(at, "pool") == ["false"]  # the URL says it the one way


@pytest.mark.parametrize("value", ["1", "true", "banana"])
def test_pool_on_in_the_url(samples, monkeypatch, value):
    at = run(app_test(samples, monkeypatch, {"pool": value}))
    assert at.toggle(key="pool").value is True
    assert shown_label(at.selectbox(key="baseline")) == "adamw, lr 4e-3 (3 seeds)"
    assert len(summary_runs(at)) == 6 and "pool" not in at.query_params


# --------------------------------------------------------------------------- links


DEFAULT_WORDS = "adamw, lr 4e-3 (3 seeds) against sgg, lr 4e-3, scale decay 0.99 (3 seeds)"


@pytest.mark.parametrize(
    "query",
    [
        {"baseline": "nosuchrun"},
        {"compare": "nosuchrun"},
        {"baseline": "nosuchrun", "compare": ["nosuchrun"]},
        {"baseline": BASE, "compare": ["nosuchrun"]},
    ],
)
def test_a_link_naming_a_missing_run_says_so(samples, monkeypatch, query):
    at = run(app_test(samples, monkeypatch, query))
    warnings = [str(w.value) for w in at.main.warning]
    expected = (
        "The link names a run that is not in this folder: nosuchrun. Showing "
        f"{DEFAULT_WORDS} instead."
    )
    assert warnings[:1] == [expected], warnings
    assert at.session_state["baseline"] == BASE and at.session_state["compare"] == [SGG]
    assert url(at, "baseline") == [BASE] and url(at, "compare") == [SGG]
    assert len(summary_runs(at)) == 6
    run(at)  # still true on the next run of the page...
    assert expected in [str(w.value) for w in at.main.warning]
    at.multiselect(key="compare").set_value([SGG, DECAY09])  # ...until the reader chooses
    run(at)
    assert not any("The link names" in str(w.value) for w in at.main.warning)


def test_a_link_naming_present_runs_shows_them_without_a_notice(samples, monkeypatch):
    at = run(app_test(samples, monkeypatch, {"baseline": SGG, "compare": [DECAY09]}))
    assert not any("The link names" in str(w.value) for w in at.main.warning)
    assert at.session_state["baseline"] == SGG and at.session_state["compare"] == [DECAY09]


def test_a_link_naming_an_unreadable_run_says_it_cannot_be_read(bad_root, monkeypatch):
    root, bad = bad_root("invalid_json")
    at = run(app_test(root, monkeypatch, {"baseline": bad}))
    warnings = [str(w.value) for w in at.main.warning]
    assert warnings[0].startswith(f"The link names a run that cannot be read: {bad}"), warnings
    assert "Showing baseline against intact instead." in warnings[0]


# --------------------------------------------------------------------------- labels


def test_picked_entries_differ_where_the_sidebar_cuts_them(samples, monkeypatch):
    at = run(app_test(samples, monkeypatch, {"baseline": BASE, "compare": [SGG, DECAY09]}))
    picked = at.multiselect(key="compare")
    shown = list(picked.proto.raw_values)  # the labels of the picked entries (pills)
    assert shown == ["sgg, lr 4e-3 (3 seeds)", "sgg, decay 0.9, lr 4e-3 (3 seeds)"]
    starts = [o[: sidebar.PILL_CHARS] for o in picked.options]
    assert len(set(starts)) == len(starts), picked.options
    # in full below the pickers, each setting that varies named
    assert on_show(at) == (
        "**Baseline:** adamw, lr 4e-3 (3 seeds)  \n**Compared:**\n- sgg, lr 4e-3, scale decay "
        "0.99 (3 seeds)\n- sgg, lr 4e-3, scale decay 0.9 (3 seeds)"
    )


def test_labels_that_would_start_alike_name_what_differs_first(samples, tmp_path, monkeypatch):
    """A third scale decay: 0.9 and 0.95 would both read 'sgg, lr 4e-3, scale de...'."""
    root = tmp_path / "runs"
    shutil.copytree(samples, root)
    for seed in range(3):
        dst = copy_run(root / f"sgg-lr4e-3-T25-decay0.9-s{seed}", root, f"decay95-s{seed}")
        meta = json.loads((dst / "run.json").read_text())
        meta["config"]["scale_decay"] = 0.95
        meta["optimizer"]["sgg"]["scale_decay"] = 0.95
        edit_meta(dst, config=meta["config"], optimizer=meta["optimizer"])
    at = run(app_test(root, monkeypatch, {"baseline": BASE, "compare": [DECAY09, "decay95-s0"]}))
    picked = at.multiselect(key="compare")
    assert list(picked.proto.raw_values) == [
        "sgg, decay 0.9, lr 4e-3 (3 seeds)",
        "sgg, decay 0.95, lr 4e-3 (3 seeds)",
    ]
    starts = [o[: sidebar.PILL_CHARS] for o in picked.options]
    assert len(set(starts)) == len(starts), picked.options
    assert "sgg, lr 4e-3 (3 seeds)" in picked.options  # the common setting needs no words
    words = on_show(at)
    assert "- sgg, lr 4e-3, scale decay 0.9 (3 seeds)\n- sgg, lr 4e-3, scale decay 0.95" in words


def test_labels_alike_up_to_the_learning_rate_name_it_first(samples):
    """Two longer runs at two learning rates: 'sgg, T 50, steps 600, ...' twice in the pills."""
    metas = {p.parent.name: json.loads(p.read_text()) for p in samples.glob("*/run.json")}
    for lr in (4e-3, 1e-3):
        for seed in (0, 1):
            meta = json.loads(json.dumps(metas[SGG]))
            meta["config"].update(
                lr=lr, seed=seed, steps=600, warmup_steps=50, recluster_interval=50
            )
            metas[f"long-{lr:g}-s{seed}"] = meta
    labels = sidebar.picker_group_labels(metas)
    assert labels["long-0.004-s0"] == "sgg, lr 4e-3, T 50, steps 600, warmup 50 (2 seeds)"
    assert labels["long-0.001-s0"] == "sgg, lr 1e-3, T 50, steps 600, warmup 50 (2 seeds)"
    assert labels[DECAY09] == "sgg, decay 0.9, lr 4e-3 (3 seeds)"
    assert labels[SGG] == "sgg, lr 4e-3 (3 seeds)" and labels[BASE] == "adamw, lr 4e-3 (3 seeds)"
    starts = [v[: sidebar.PILL_CHARS] for v in labels.values()]
    assert len(set(starts)) == len(starts), labels


# --------------------------------------------------------------------------- live notice


@pytest.fixture
def live_root(tmp_path):
    """A finished AdamW run and an SGG run whose training process (a sleeping child of this
    test, on this host) is alive: the live rule says running until it is killed."""
    root = tmp_path / "live"
    root.mkdir()
    small_run(root, "base", optimizer="adamw", seed=1)
    live = small_run(root, "live", optimizer="sgg", status="running", seed=2)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    edit_meta(live, hostname=socket.gethostname(), pid=proc.pid, updated_at=now)
    yield root, proc
    proc.kill()
    proc.wait()


def test_live_notice_goes_when_the_run_is_killed(live_root, monkeypatch):
    root, proc = live_root
    at = run(app_test(root, monkeypatch, {"baseline": "base", "compare": ["live"]}))
    notices = [str(c.value) for c in at.caption if str(c.value).startswith("Live:")]
    assert notices == [
        "Live: a run on show is still training (live); refreshing every 5 s (only new chunks "
        "are read)."
    ]
    assert any("still training" in str(w.value) for w in at.warning)
    # what the refreshed fragment sees when the process dies (run.json unchanged): its
    # statuses differ from the page's, so it redraws the page; its own notice is gone
    disc = loader.discover_runs(root)
    runs = [r for r in disc.runs if r.readable]
    ctx = Ctx(disc.root, runs, sidebar.run_labels(runs), "base", ["live"], {"pool": True})
    drawn = page_state(disc.runs, ctx.series_rels())
    proc.kill()
    proc.wait()
    fresh = loader.discover_runs(root).runs
    ctx.refresh(fresh)
    assert page_state(fresh, ctx.series_rels()) != drawn
    assert live_banner(ctx) == ""
    run(at)
    assert not any(str(c.value).startswith("Live:") for c in at.caption)
    assert any("was probably killed" in str(w.value) for w in at.warning)


# --------------------------------------------------------------------------- new runs


def test_a_new_run_folder_changes_what_the_page_was_drawn_from(samples, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    for name in (BASE, SGG):
        shutil.copytree(samples / name, root / name)
    at = run(app_test(root, monkeypatch))
    assert at.selectbox(key="baseline").options == [BASE, SGG] and summary_runs(at) == [BASE, SGG]
    drawn = page_state(loader.discover_runs(root).runs, [BASE, SGG])
    shutil.copytree(samples / DECAY09, root / DECAY09)  # a sweep starts a run
    assert page_state(loader.discover_runs(root).runs, [BASE, SGG]) != drawn
    run(at)
    assert DECAY09 in at.multiselect(key="compare").options
    assert any("3 run(s) found" in str(e.label) for e in at.expander)


def test_the_folder_check_stays_cheap_for_many_runs(samples, tmp_path):
    root = tmp_path / "many"
    for i in range(150):  # run.json and one table each: what the check walks past
        dst = root / f"run-{i:03d}"
        (dst / "tables").mkdir(parents=True)
        shutil.copy(samples / SGG / "run.json", dst / "run.json")
        shutil.copytree(samples / SGG / "tables" / "steps", dst / "tables" / "steps")
    page_state(loader.discover_runs(root).runs, [])  # the first look reads each run.json
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        state = page_state(loader.discover_runs(root).runs, [])
        times.append(time.perf_counter() - t0)
    assert len(state[0]) == 150
    assert statistics.median(times) < 0.25, times  # about 7 ms on a 2-core laptop


# --------------------------------------------------------------------------- Runs view lr


def _last_lr_from_parquet(run_dir: Path) -> tuple[int, float]:
    files = [p for p in (run_dir / "tables" / "lrs").glob("*.parquet")]
    names = sorted(set(p.name for p in files) - loader.superseded([p.name for p in files]))
    t = pa.concat_tables([pq.read_table(run_dir / "tables" / "lrs" / n) for n in names])
    df = t.to_pandas()
    last = df[df["step"] == df["step"].max()]
    return int(last["step"].iloc[0]), float(last[last["group"] == 0]["lr"].iloc[0])


def test_runs_view_shows_the_learning_rate_at_the_last_recorded_step(samples, monkeypatch):
    at = run(app_test(samples, monkeypatch, view="Runs"))
    cfg = next(
        d.value for d in at.dataframe if "optimizer: learning rate at the start" in d.value.index
    )
    row = cfg.loc["optimizer: learning rate at the last recorded step"]
    for name in (BASE, SGG):
        step, lr = _last_lr_from_parquet(samples / name)
        assert row[name] == f"{lr:.4g} (step {step:,})"
        # run.json's `lr` is the warm-up's first value (the recorder opened the run there)
        meta = json.loads((samples / name / "run.json").read_text())
        assert meta["optimizer"]["hyperparameters"]["lr"] != pytest.approx(lr)
    assert row[BASE] == "0.0004 (step 200)"  # cosine to 0.1 x 4e-3
    assert not any("at the last step" in str(k) for k in cfg.index)
    assert "optimizer: learning rate when the recorder opened the run" not in cfg.index


def test_a_run_without_an_lrs_table_keeps_run_json_value_under_its_honest_name(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    small_run(root, "a", optimizer="adamw", seed=1)
    b = small_run(root, "b", optimizer="sgg", seed=2)
    shutil.rmtree(b / "tables" / "lrs")
    disc = loader.discover_runs(root)
    metas = {r.name: r.meta for r in disc.runs}
    from dashboard.metrics import sweep

    cfg = sweep.config_table(metas)
    last = {r.name: runs_view.last_lr(loader.read_table(r, "lrs", disc.root).df) for r in disc.runs}
    assert last["b"] is None and last["a"].endswith("(step 600)")
    out = runs_view.with_last_lr(cfg, last)
    assert out.loc[runs_view.LAST_LR_KEY, "a"] == last["a"]
    assert out.loc[runs_view.LAST_LR_KEY, "differs"]
    assert runs_view.LR_KEY in out.index  # b's only learning rate, named for what it is
    assert runs_view.ROW_LABELS[runs_view.LR_KEY].endswith("when the recorder opened the run")
    assert out["differs"].dtype == bool and len(out) == len(cfg) + 1


# --------------------------------------------------------------------------- the real page

CHROMIUM = shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_an_open_page_follows_a_killed_run_and_shows_a_new_one(live_root, tmp_path):
    """In a browser, without a reload: the live notice goes when the training process dies,
    and a run folder written meanwhile is listed, each within a few refreshes."""
    from playwright.sync_api import sync_playwright

    root, proc = live_root
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port",
         str(port), "--server.headless", "true", "--", "--runs", str(root)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "no server"
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"http://localhost:{port}/?baseline=base&compare=live")
                page.get_by_text("Live: a run on show is still training").wait_for(timeout=60_000)
                proc.kill()
                proc.wait()
                page.wait_for_function(  # the page says killed, and the notice is gone
                    "() => document.body.innerText.includes('was probably killed')"
                    " && !document.body.innerText.includes('Live: a run on show')",
                    timeout=40_000,
                )
                small_run(root, "newcomer", optimizer="sgg", seed=3)
                page.get_by_text("3 run(s) found").wait_for(timeout=30_000)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

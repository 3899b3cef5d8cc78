"""End to end: the real Streamlit server, driven by headless Chromium (Debian's, via Playwright).

Never downloads a browser: skipped, with the reason, when `chromium` is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed "
        "(scripts/install_browser.sh installs it); the browser test needs it",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    from tests.fixtures.synthetic_run import make_demo_runs

    make_demo_runs(tmp_path / "runs", steps=600, n_layers=4)
    return tmp_path / "runs"


@pytest.fixture
def server(runs_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--",
            "--runs",
            str(runs_dir),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    pytest.fail(f"streamlit did not start: {err[-2000:]}")
                time.sleep(0.3)
        yield f"http://localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_renders_in_a_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            for query, shot in (("", "summary.png"), ("?view=Clusters", "clusters.png")):
                page.goto(server + "/" + query)
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=60_000,
                )
                page.screenshot(path=str(tmp_path / shot))
                assert page.locator(".js-plotly-plot").count() >= 1
                assert page.locator('[data-testid="stException"]').count() == 0
                body = page.inner_text("body")
                assert "Traceback" not in body
                assert "could not be drawn" not in body
            assert "Where the weights went" in body  # the Clusters view, opened from the URL
            assert (tmp_path / "summary.png").stat().st_size > 10_000
        finally:
            browser.close()

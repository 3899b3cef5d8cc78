"""Screenshot every view of the dashboard with headless Chromium (Debian's, via Playwright).

    .venv/bin/python docs/screenshots/take_screenshots.py [--runs DIR] [--out docs/screenshots]

Without --runs, uses sample_runs/ when it holds runs, else generates the synthetic demo set
into a temporary folder. Never downloads a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VIEWS = ["Summary", "Loss", "Gradient stability", "Clusters", "Sweep", "Runs"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path, port: int) -> subprocess.Popen:
    cmd = [
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
        str(runs),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the Streamlit server did not start")


def wait_rendered(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    # wait until the script has finished (no "running" indicator) and charts have drawn
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )
    with contextlib.suppress(Exception):  # a view without charts
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
    page.wait_for_timeout(1500)


def shrink(path: Path) -> None:
    """Keep the PNG modest: a 256-colour palette is plenty for charts and text."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--height", type=int, default=1700, help="viewport height (px)")
    ap.add_argument("--width", type=int, default=1280, help="viewport width (px)")
    ap.add_argument("--views", default="", help="comma-separated views (default: all)")
    ap.add_argument(
        "--tall",
        default="Clusters:9900,Gradient stability:2300",
        help="per-view heights, 'View:px,...' (views longer than --height)",
    )
    ap.add_argument("--query", default="", help="extra query string, e.g. 'compare=a&compare=b'")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = None
    runs = a.runs
    if runs is None:
        sample = REPO / "sample_runs"
        if any(sample.rglob("run.json")):
            runs = sample
        else:
            sys.path.insert(0, str(REPO))
            from tests.fixtures.synthetic_run import make_demo_runs

            tmp = tempfile.mkdtemp(prefix="dash-shots-")
            make_demo_runs(tmp)
            runs = Path(tmp)
    port = free_port()
    proc = start_server(runs, port)
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
            )
            tall = dict(kv.rsplit(":", 1) for kv in a.tall.split(",") if kv)
            for view in [v for v in VIEWS if not a.views or v in a.views.split(",")]:
                height = int(tall.get(view, a.height))
                page = browser.new_page(viewport={"width": a.width, "height": height})
                q = {"view": view} if view != VIEWS[0] else {}
                url = f"http://localhost:{port}/?{urllib.parse.urlencode(q)}"
                if a.query:
                    url += ("&" if q else "") + a.query
                page.goto(url)
                wait_rendered(page)
                name = view.lower().replace(" ", "_")
                path = a.out / f"{VIEWS.index(view) + 1}_{name}.png"
                page.screenshot(path=str(path), type="png")
                shrink(path)
                print(path, f"{path.stat().st_size // 1024} KiB")
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

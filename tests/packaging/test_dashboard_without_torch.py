"""A dashboard-only install has no torch: `pip install '.[dashboard]'` into a fresh virtual
environment (no system site-packages) installs no torch, and the installed dashboard renders
sample_runs/ there (Streamlit AppTest), importing no torch on the way."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# what a build of the project reads (the packages as pyproject.toml's packages.find includes them)
PACKAGE_PATTERN = re.compile(r"^include = \[(.*)\]$", re.MULTILINE)
# pip's words when it cannot reach a package index (then the test cannot tell, and is skipped)
OFFLINE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)

RENDER = textwrap.dedent(
    """
    import os, sys
    import dashboard.app
    from streamlit.testing.v1 import AppTest

    assert "site-packages" in dashboard.app.__file__, dashboard.app.__file__  # the installed one
    os.environ["SGG_DASHBOARD_RUNS"] = sys.argv[1]
    at = AppTest.from_file(dashboard.app.__file__, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    charts = len(at.get("plotly_chart"))
    assert charts >= 1, "no chart rendered"
    assert "torch" not in sys.modules and "sgg" not in sys.modules, "the dashboard imported torch"
    print(f"rendered: {charts} charts")
    """
)


def _copy_project(dest: Path) -> Path:
    """The files a build of the project reads, copied (a build writes into its source folder:
    not into the working tree)."""
    pyproject = (REPO / "pyproject.toml").read_text()
    includes = re.findall(r'"([^"*]+)\*?"', PACKAGE_PATTERN.search(pyproject).group(1))
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in sorted({p.rstrip("*") for p in includes}):
        if (REPO / package).is_dir():
            shutil.copytree(REPO / package, dest / package, ignore=ignore)
    return dest


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def test_dashboard_extra_installs_no_torch_and_renders_sample_runs(tmp_path):
    src = _copy_project(tmp_path / "src")
    env_dir = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(env_dir)], 120)  # no system site-packages
    assert made.returncode == 0, made.stderr
    python = str(env_dir / "bin" / "python")
    pip = _run([python, "-m", "pip", "install", "-q", f"{src}[dashboard]"], 900)
    if pip.returncode != 0 and any(word in pip.stderr for word in OFFLINE):
        pytest.skip(f"no package index reachable: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr[-3000:]

    no_torch = _run([python, "-c", "import torch"], 60)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    listed = _run([python, "-m", "pip", "list", "--format=freeze"], 60).stdout.lower()
    assert not re.search(r"^(torch|nvidia-[\w-]+)==", listed, re.MULTILINE), listed

    script = tmp_path / "render.py"
    script.write_text(RENDER)
    # run outside the checkout, so that only the installed packages can be imported
    shown = _run([python, str(script), str(REPO / "sample_runs")], 600, cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-3000:]
    assert "rendered:" in shown.stdout

"""Fixtures for the dashboard tests: small synthetic runs and every kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dash_fixtures import SAMPLE_RUNS, make_bad_root, small_run

from tests.fixtures.synthetic_run import make_demo_runs


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A snapshot of sample_runs/ when the recorder has put runs there (a copy: a run still
    being written must not change between the page and the test's own reading), else the
    synthetic demo set."""
    if any(SAMPLE_RUNS.rglob("run.json")):
        base = tmp_path_factory.mktemp("sample")
        for attempt in range(3):  # a chunk may vanish mid-copy (the recorder compacting)
            root = base / f"runs{attempt}"
            try:
                shutil.copytree(SAMPLE_RUNS, root, ignore=shutil.ignore_patterns(".*"))
                return root
            except (shutil.Error, OSError):
                continue
        pytest.skip("sample_runs/ kept changing while it was being copied")
    root = tmp_path_factory.mktemp("demo")
    make_demo_runs(root, steps=600, n_layers=4)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Always synthetic (for tests that need known contents)."""
    root = tmp_path_factory.mktemp("synthetic")
    small_run(root, "adamw-base", optimizer="adamw", shadow=True, seed=1)
    small_run(root, "sgg-k3", optimizer="sgg", seed=2)
    small_run(root, "adamw-plain", optimizer="adamw", seed=3)
    return root


@pytest.fixture(scope="session")
def good_run_template(tmp_path_factory) -> Path:
    return small_run(tmp_path_factory.mktemp("template"), "good", optimizer="sgg", seed=5)


@pytest.fixture
def bad_root(tmp_path, good_run_template):
    """`bad_root(case)` -> (root, name of the bad run); see dash_fixtures.BAD_CASES."""
    return lambda case: make_bad_root(tmp_path, good_run_template, case)

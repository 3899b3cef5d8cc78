"""Fixtures of the foreign-run tests: a cold cache per test, wandb offline, an MLflow file store."""

from __future__ import annotations

import pytest

from dashboard import foreign


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    """Every test starts cold: empty memory cache, its own disk cache."""
    monkeypatch.setenv("SGG_FOREIGN_CACHE", str(tmp_path / ".foreign-cache"))
    foreign.clear_cache()
    yield
    foreign.clear_cache()


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """wandb in offline mode, writing under tmp_path, never reaching the network."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb-cache"))
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    import wandb

    wandb.teardown()  # wandb keeps the settings of its first use: start afresh with these
    yield tmp_path
    wandb.teardown()


@pytest.fixture
def mlflow_file_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    store = tmp_path / "mlruns"
    return store

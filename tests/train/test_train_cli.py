"""`sgg-train` in an environment without the training extra says what to install, instead of
failing on `import torch` (the console script comes with the base package)."""

from __future__ import annotations

import importlib.util

import pytest

from sgg_train import cli


def test_without_the_training_stack_sgg_train_names_the_extra(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    assert cli.main(["--help"]) == 2
    said = capsys.readouterr().err
    assert "needs torch" in said and "transformers" not in said
    assert "pip install 'sgg-toolkit[train]'" in said


def test_with_the_training_stack_the_command_runs(capsys):
    assert cli.missing_packages() == []
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0 and "--out" in capsys.readouterr().out

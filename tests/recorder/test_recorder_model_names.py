"""`Recorder(model=...)` names the layers from the model: a model that is not the optimizer's is
said at once (warnings.warn, with how many parameters matched), never recorded silently as
group<g>.param<p>."""

from __future__ import annotations

import warnings

import pytest
import torch

from recorder import Recorder


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def test_a_model_that_is_not_the_optimizers_is_warned_about(tmp_path):
    trained, other = _net(0), _net(0)  # equal weights, other tensors
    opt = torch.optim.AdamW(trained.parameters(), lr=1e-3)
    with pytest.warns(UserWarning, match=r"0 of the optimizer's 4 parameters are parameters"):
        rec = Recorder(tmp_path / "r", optimizer=opt, model=other)
    assert rec.layers.names == ["group0.param0", "group0.param1", "group0.param2", "group0.param3"]
    rec.close()


def test_a_partly_matching_model_says_how_many_matched(tmp_path):
    net = _net(0)
    extra = torch.nn.Parameter(torch.ones(3))  # e.g. a learned temperature outside the model
    opt = torch.optim.SGD([*net.parameters(), extra], lr=0.1)
    with pytest.warns(UserWarning, match=r"4 of the optimizer's 5 parameters .* the other 1"):
        Recorder(tmp_path / "r", optimizer=opt, model=net).close()


def test_the_right_model_records_its_names_without_a_warning(tmp_path):
    net = _net(0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = Recorder(tmp_path / "r", optimizer=opt, model=net)
    assert rec.layers.names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    rec.close()

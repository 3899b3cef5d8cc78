"""Probes: the update norm read from the post-step optimizer state equals the one measured
from a copy of the parameters; compiled models record plain layer names; the split modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from recorder_helpers import read, tiny_model

from recorder import Recorder, update_norms
from sgg import SGG

ROOT = Path(__file__).resolve().parents[2]


def _train(model, opt, rec, steps=12, frozen=None):
    gen = torch.Generator().manual_seed(3)
    for _ in range(steps):
        loss = model(torch.randn(4, 8, generator=gen)).square().mean()
        loss.backward()
        if frozen is not None:
            frozen.grad = None  # a layer without a gradient on this step: not updated
        opt.step()
        opt.zero_grad()
        rec.log_step(loss=loss)


OPTIMIZERS = {
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adam-l2": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    "adamw-amsgrad": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, amsgrad=True),
    "sgg": lambda ps: SGG(
        torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        n_clusters=3,
        recluster_interval=3,
        update_impl="eager",
    ),
    "sgg-scaled-decay": lambda ps: SGG(
        torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        n_clusters=2,
        recluster_interval=2,
        scale_weight_decay=True,
        update_impl="eager",
    ),
}


@pytest.mark.parametrize(
    ("kind", "batch"),
    [(k, None) for k in sorted(OPTIMIZERS)] + [("adamw", 100), ("adam-l2", 100)],
)
def test_state_update_norm_equals_the_snapshot_measure(tmp_path, monkeypatch, kind, batch):
    if batch is not None:  # layers measured together in several multi-tensor batches
        monkeypatch.setattr(update_norms, "BATCH_ELEMENTS", batch)
    out = {}
    for mode in ("snapshot", "state"):
        model = tiny_model()
        opt = OPTIMIZERS[kind](model.parameters())
        run = tmp_path / mode
        with Recorder(run, optimizer=opt, model=model, update_norm=mode, layer_stride=1) as rec:
            _train(model, opt, rec, frozen=model[2].bias)
        out[mode] = (read(run, "steps"), read(run, "layers"))
    steps_snap, layers_snap = out["snapshot"]
    steps_state, layers_state = out["state"]
    assert steps_state["update_norm"].notna().all()
    torch.testing.assert_close(
        torch.tensor(steps_state["update_norm"].to_numpy()),
        torch.tensor(steps_snap["update_norm"].to_numpy()),
        rtol=2e-4,
        atol=1e-7,
    )
    torch.testing.assert_close(
        torch.tensor(layers_state["update_norm"].to_numpy()),
        torch.tensor(layers_snap["update_norm"].to_numpy()),
        rtol=2e-3,
        atol=1e-6,
    )
    frozen = layers_state[layers_state.layer == "2.bias"]["update_norm"]
    assert (frozen == 0).all()


def test_default_settings_keep_no_parameter_copy(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "r", optimizer=opt, model=model) as rec:
        _train(model, opt, rec, steps=20)
        assert rec.snapshot_bytes == 0
    with Recorder(tmp_path / "s", optimizer=opt, model=model, update_norm="snapshot") as rec:
        _train(model, opt, rec, steps=2)
        assert rec.snapshot_bytes == sum(p.numel() * 4 for p in model.parameters())
    with pytest.raises(ValueError, match="update_norm"):
        Recorder(tmp_path / "x", optimizer=opt, model=model, update_norm="sometimes")


def test_a_compiled_model_records_the_plain_layer_names(tmp_path):
    model = tiny_model()
    wrapped = torch.nn.Module()  # what torch.compile returns: the model under `_orig_mod`
    wrapped._orig_mod = model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "r", optimizer=opt, model=wrapped, layer_stride=1) as rec:
        _train(model, opt, rec, steps=1)
    names = [n for n, _ in model.named_parameters()]
    assert next(n for n, _ in wrapped.named_parameters()).startswith("_orig_mod.")
    assert read(tmp_path / "r", "layers")["layer"].tolist() == names


def test_a_real_compiled_model_records_the_plain_layer_names(tmp_path):
    model = tiny_model()
    compiled = torch.compile(model)  # named_parameters() say "_orig_mod.<name>"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "r", optimizer=opt, model=compiled, layer_stride=1) as rec:
        assert rec.layers.names == [n for n, _ in model.named_parameters()]


def test_every_recorder_module_states_its_one_idea_first():
    for path in sorted((ROOT / "recorder").glob("*.py")) + sorted(
        (ROOT / "runformat").glob("*.py")
    ):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.splitlines()[0].strip(), f"{path.name} has no first-line docstring"

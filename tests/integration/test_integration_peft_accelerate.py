"""LoRA (peft) and accelerate: SGG clusters only what trains; the recorder records it."""

from __future__ import annotations

import json

import pytest
import torch
from integration_helpers import SEQ, TokenData, read_table, tiny_llama

from recorder import Recorder
from recorder.distributed import rank_zero_recorder, unwrap_optimizer
from sgg import SGG

STEPS, RECLUSTER = 24, 6
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")


def lora_model():
    peft = pytest.importorskip("peft")
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    return peft.get_peft_model(tiny_llama(0), cfg)


def test_lora_clusters_and_records_only_trainable_params(tmp_path):
    model = lora_model()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    opt = SGG(
        torch.optim.AdamW(trainable.values(), lr=1e-2),
        recluster_interval=RECLUSTER,
        scale_decay=0.5,
        update_impl="eager",
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    run_dir = tmp_path / "lora"
    data = TokenData(4 * STEPS, seed=0)
    with Recorder(run_dir, optimizer=opt, model=model, seed=0, layer_stride=1) as rec:
        for step in range(1, STEPS + 1):
            ids = data.ids[4 * (step - 1) : 4 * step]
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=ids.numel())
    two_d = {id(p) for p in trainable.values() if p.dim() == 2}
    assert {id(p) for p in opt.clustered_params()} == two_d
    # LoRA A (r x in) and B (out x r) are clustered like any 2-D tensor: real factors
    for p in opt.clustered_params():
        st = opt.cluster_state(p)
        assert st.last_recluster_step == STEPS and st.sizes.sum() == p.numel()
        assert not torch.all(st.factors == 1)
    layers = read_table(run_dir, "layers")
    assert set(layers["layer"]) == set(trainable)
    assert sorted(set(read_table(run_dir, "clusters")["layer"])) == sorted(trainable)
    meta = json.loads((run_dir / "run.json").read_text())
    clustered = {lay["name"] for lay in meta["model"]["layers"] if lay["clustered"]}
    assert clustered == set(trainable)
    assert meta["model"]["num_trainable"] == sum(p.numel() for p in trainable.values())
    assert read_table(run_dir, "steps")["loss"].notna().all()
    for n, p in model.named_parameters():  # the frozen base received no update
        if n in frozen:
            assert torch.equal(p, frozen[n]), n


def test_sgg_over_all_parameters_still_clusters_only_trainable_ones():
    model = lora_model()  # users often pass model.parameters(): frozen ones are skipped
    opt = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), update_impl="eager")
    want = {id(p) for p in model.parameters() if p.requires_grad and p.dim() >= 2}
    assert {id(p) for p in opt.clustered_params()} == want
    frozen = next(p for p in model.parameters() if not p.requires_grad and p.dim() >= 2)
    assert opt.cluster_state(frozen) is None


def test_accelerate_prepare_with_sgg(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    acc = accelerate.Accelerator(cpu=True)
    model = tiny_llama(0)
    sgg = SGG(
        torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=4, update_impl="eager"
    )
    dl = torch.utils.data.DataLoader(TokenData(32, seed=0), batch_size=4)
    model, opt, dl = acc.prepare(model, sgg, dl)
    assert unwrap_optimizer(opt) is sgg
    with rank_zero_recorder(
        tmp_path / "acc", optimizer=opt, model=acc.unwrap_model(model), seed=0
    ) as rec:
        for step, batch in enumerate(dl, start=1):
            loss = model(**batch).loss
            acc.backward(loss)
            opt.step()
            opt.zero_grad()
            rec.log_step(step, loss=loss, tokens=batch["input_ids"].numel())
    assert sgg.sgg_step == 8 and sgg.last_recluster_step == 8
    steps = read_table(tmp_path / "acc", "steps")
    assert steps["step"].tolist() == list(range(1, 9))
    assert steps["reclustered"].tolist() == [False] * 3 + [True] + [False] * 3 + [True]
    assert steps["tokens"].iloc[-1] == 8 * 4 * SEQ


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_accelerate_prepare_with_sgg_on_cuda():
    # prepare() moves the optimizer's state_dict to the device and loads it back: SGG's
    # generator state must survive that (torch.Generator.set_state wants a CPU ByteTensor).
    accelerate = pytest.importorskip("accelerate")
    acc = accelerate.Accelerator()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    sgg = SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=2)
    model, opt = acc.prepare(model, sgg)
    for _ in range(4):
        x = torch.randn(4, 8, device=acc.device)
        acc.backward(model(x).square().mean())
        opt.step()
        opt.zero_grad()
    assert sgg.last_recluster_step == 4
    opt.load_state_dict(opt.state_dict())


def test_recorder_on_the_prepared_optimizer(tmp_path):
    # Recorder(optimizer=<AcceleratedOptimizer>) unwraps it: the wrapper has no step hooks.
    accelerate = pytest.importorskip("accelerate")
    acc = accelerate.Accelerator(cpu=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    sgg = SGG(
        torch.optim.AdamW(model.parameters(), lr=1e-2), recluster_interval=2, update_impl="eager"
    )
    model, opt = acc.prepare(model, sgg)
    assert opt is not sgg
    run_dir = tmp_path / "acc"
    with Recorder(run_dir, optimizer=opt, model=acc.unwrap_model(model), layer_stride=1) as rec:
        assert rec.optimizer is sgg
        for step in range(1, 5):
            acc.backward(model(torch.randn(4, 8)).square().mean())
            opt.step()
            opt.zero_grad()
            rec.log_step(step)
    steps = read_table(run_dir, "steps")
    assert steps["step"].tolist() == [1, 2, 3, 4]
    assert steps["grad_norm"].notna().all()
    assert steps["reclustered"].tolist() == [False, True, False, True]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_a_recorder_that_cannot_hook_leaves_no_run(tmp_path):
    class Unhookable(torch.optim.SGD):
        def register_step_post_hook(self, hook):
            raise AttributeError("no hooks here")

    model = torch.nn.Linear(4, 2)
    opt = Unhookable(model.parameters(), lr=0.1)
    with pytest.raises(AttributeError, match="no hooks"):
        Recorder(tmp_path / "runs" / "x", optimizer=opt, model=model)
    assert not (tmp_path / "runs" / "x").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AttributeError, match="no hooks"):
        Recorder(empty, optimizer=opt, model=model)
    assert empty.is_dir() and list(empty.iterdir()) == []  # its own directory is kept
    # the hooks registered before the failure are removed again
    assert not opt._optimizer_step_pre_hooks

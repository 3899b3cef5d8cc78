"""The recorder against the real SGG: SGG's introspection is the source of truth."""

from __future__ import annotations

import json

import pytest
import torch
from recorder_helpers import read, tiny_model, train_steps

from recorder import Recorder

sgg = pytest.importorskip("sgg")
if not hasattr(sgg, "SGG"):
    pytest.skip("sgg.SGG not available yet", allow_module_level=True)

OPTS = {"n_clusters": 3, "recluster_interval": 4, "update_impl": "eager"}


def _snapshot(opt, step, into, names):
    into[step] = {
        names[id(p)]: (opt.cluster_state(p), opt.global_mda.item()) for p in opt.clustered_params()
    }
    into[step] = {
        k: (
            {
                "sizes": st.sizes.tolist(),
                "factors": st.factors.tolist(),
                "raw": st.raw_factors.tolist(),
                "mda": st.mda.tolist(),
                "centers": st.centers.tolist(),
                "transitions": None if st.transitions is None else st.transitions.tolist(),
                "assignments": st.assignments.clone(),
            },
            gm,
        )
        for k, (st, gm) in into[step].items()
    }


def test_recorded_clusters_equal_sgg_introspection(tmp_path):
    model = tiny_model()
    opt = sgg.SGG(torch.optim.AdamW(model.parameters(), lr=1e-2), **OPTS)
    names = {id(p): n for n, p in model.named_parameters()}
    seen: dict = {}
    opt.register_recluster_hook(lambda o, s: _snapshot(o, s, seen, names))
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, seed=1, layer_stride=4) as rec:
        train_steps(model, opt, 13, rec)
    assert sorted(seen) == [4, 8, 12]
    clusters = read(run, "clusters")
    trans = read(run, "transitions")
    members = read(run, "membership")
    assert not clusters["shadow"].any()
    for step, layers in seen.items():
        for layer, (st, gm) in layers.items():
            rows = clusters[(clusters.step == step) & (clusters.layer == layer)]
            assert rows["cluster"].tolist() == [0, 1, 2]
            assert rows["size"].tolist() == st["sizes"]
            assert rows["factor"].tolist() == pytest.approx(st["factors"])
            assert rows["raw_factor"].tolist() == pytest.approx(st["raw"])
            assert rows["mda"].tolist() == pytest.approx(st["mda"])
            assert rows["center"].tolist() == pytest.approx(st["centers"])
            assert rows["global_mda"].tolist() == pytest.approx([gm] * 3)
            t = trans[(trans.step == step) & (trans.layer == layer)]
            if st["transitions"] is None:
                assert t.empty
            else:
                t = t.sort_values(["from_cluster", "to_cluster"])
                assert t["count"].tolist() == [c for row in st["transitions"] for c in row]
            mb = members[(members.step == step) & (members.layer == layer)]
            want = st["assignments"][torch.as_tensor(mb["position"].to_numpy().copy())]
            assert mb["cluster"].tolist() == want.tolist()
    steps = read(run, "steps")
    assert steps.loc[steps.reclustered, "step"].tolist() == [4, 8, 12]
    meta = json.loads((run / "run.json").read_text())
    assert meta["optimizer"]["name"] == "sgg"
    assert meta["optimizer"]["sgg"]["recluster_interval"] == 4
    clustered = {lay["name"] for lay in meta["model"]["layers"] if lay["clustered"]}
    assert clustered == {n for n, p in model.named_parameters() if p.dim() >= 2}
    layers = read(run, "layers")
    assert (layers.loc[layers.layer == "0.bias", "factor_mean"] == 1).all()


def test_shadow_clustering_leaves_adamw_bit_identical(tmp_path):
    ref = tiny_model()
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    train_steps(ref, ref_opt, 10)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run = tmp_path / "r"
    with Recorder(run, optimizer=opt, model=model, shadow=OPTS, layer_stride=1) as rec:
        train_steps(model, opt, 10, rec)
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    clusters = read(run, "clusters")
    assert clusters["shadow"].all() and sorted(clusters["step"].unique()) == [4, 8]
    assert read(run, "transitions")["shadow"].all()
    steps = read(run, "steps")
    assert steps.loc[steps.reclustered, "step"].tolist() == [4, 8]
    assert (read(run, "layers")["factor_mean"] == 1).all()  # shadow factors are not applied
    meta = json.loads((run / "run.json").read_text())
    assert meta["optimizer"]["name"] == "adamw"
    assert meta["optimizer"]["shadow"]["observe_only"] is True

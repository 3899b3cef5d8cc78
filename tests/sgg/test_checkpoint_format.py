"""SGG's state_dict format: its keys and types are pinned, and a checkpoint written by an
earlier version (tests/sgg/data/sgg_checkpoint_v1.pt, see make_checkpoint.py there) loads and
continues exactly where that version went."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from make_checkpoint import STEPS_AFTER, make_model, make_optimizer, train  # noqa: E402

SGG_KEYS = {
    "version",
    "sgg_step",
    "last_recluster_step",
    "reclustered_last_step",
    "global_mda",
    "generator",
    "config",
    "layers",
}
LAYER_KEYS = {"assignments", "sizes", "centers", "mda", "raw_factors", "factors", "transitions",
              "last_recluster_step"}  # fmt: skip
LAYER_DTYPES = {
    "assignments": torch.uint8,
    "sizes": torch.int64,
    "centers": torch.float32,
    "mda": torch.float32,
    "raw_factors": torch.float32,
    "factors": torch.float32,
    "transitions": torch.int64,
}
CONFIG_KEYS = {
    "n_clusters", "recluster_interval", "scale_decay", "scale_bounds", "mda_eps", "cluster_on",
    "global_mda", "clamp", "scale_weight_decay", "min_ndim", "backend", "assignment_device",
    "seed", "kmeans_sample_size", "kmeans_max_iter", "kmeans_n_init", "median_sample",
    "observe_only", "update_impl",
}  # fmt: skip


def _saved() -> dict:
    return torch.load(DATA / "sgg_checkpoint_v1.pt", weights_only=True)


def _check_format(sd: dict) -> None:
    assert set(sd) == {"state", "param_groups", "sgg"}
    sgg = sd["sgg"]
    assert set(sgg) == SGG_KEYS
    assert sgg["version"] == 1
    assert isinstance(sgg["sgg_step"], int) and isinstance(sgg["last_recluster_step"], int)
    assert isinstance(sgg["reclustered_last_step"], bool)
    assert sgg["global_mda"].dtype == torch.float32 and sgg["global_mda"].dim() == 0
    assert sgg["generator"].dtype == torch.uint8
    assert set(sgg["config"]) == CONFIG_KEYS
    assert set(sgg["layers"]) == {0, 2}  # the two weight matrices, by parameter index
    for fields in sgg["layers"].values():
        assert set(fields) == LAYER_KEYS
        for name, dtype in LAYER_DTYPES.items():
            assert fields[name].dtype == dtype, name
        assert isinstance(fields["last_recluster_step"], int)
    # the base's own state: AdamW's keys per parameter, unchanged by SGG
    assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in sd["state"].values())


def test_the_state_dict_format_is_unchanged():
    """Today's state_dict has the structure of the saved one, key for key and dtype for dtype."""
    old = _saved()["checkpoint"]["opt"]
    _check_format(old)
    model = make_model()
    opt = make_optimizer(model)
    train(model, opt, 10)
    new = opt.state_dict()
    _check_format(new)
    assert new["sgg"]["config"] == old["sgg"]["config"]
    for i, fields in new["sgg"]["layers"].items():
        for name, value in fields.items():
            want = old["sgg"]["layers"][i][name]
            if isinstance(value, torch.Tensor):
                assert value.shape == want.shape, name
            else:
                assert value == want, name


def test_a_checkpoint_saved_by_an_earlier_version_continues_exactly():
    saved = _saved()
    model = make_model()
    opt = make_optimizer(model)
    model.load_state_dict(saved["checkpoint"]["model"])
    opt.load_state_dict(copy.deepcopy(saved["checkpoint"]["opt"]))
    assert opt.sgg_step == 10 and opt.last_recluster_step == 8
    train(model, opt, STEPS_AFTER)
    assert opt.last_recluster_step == 20
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["after"][name], rtol=0, atol=1e-7)
    for p, want in zip(opt.clustered_params(), saved["factors_after"], strict=True):
        torch.testing.assert_close(opt.cluster_state(p).factors, want, rtol=0, atol=1e-7)

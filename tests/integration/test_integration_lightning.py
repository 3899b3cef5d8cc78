"""PyTorch Lightning: a tiny LightningModule returning SGG from configure_optimizers, recorded by
`recorder.lightning.RecorderCallback` — one fit, a fit resumed from a checkpoint, and DDP."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from recorder.lightning import RecorderCallback  # noqa: E402
from runformat.chunks import live_chunks, table_dir  # noqa: E402
from runformat.run_json import read as read_run_json  # noqa: E402
from sgg import SGG  # noqa: E402

BATCHES = 6  # per epoch
SGG_OPTIONS = dict(n_clusters=2, recluster_interval=4, scale_decay=0.5, update_impl="eager")


class Tiny(pl.LightningModule):
    def __init__(self, lr: float = 1e-2):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return SGG(torch.optim.AdamW(self.parameters(), lr=self.hparams.lr), **SGG_OPTIONS)


def loader():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCHES * 4, 8, generator=gen)
    y = torch.randn(BATCHES * 4, 4, generator=gen)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


def trainer(tmp_path, max_steps, callbacks, **kw):
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        num_sanity_val_steps=0,
        **kw,
    )


def table(run_dir, name):
    d = table_dir(run_dir, name)
    names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    parts = [pq.read_table(d / n) for n in live_chunks(names)]
    return pa.concat_tables(parts).to_pandas().sort_values("step", kind="stable")


def test_fit_is_recorded(tmp_path):
    rec = RecorderCallback(tmp_path / "run", tokens_per_batch=lambda b: b[0].shape[0])
    t = trainer(tmp_path, 2 * BATCHES, [rec], check_val_every_n_epoch=1)
    t.fit(Tiny(), loader(), loader())
    meta = read_run_json(tmp_path / "run")
    assert meta["status"] == "finished" and meta["optimizer"]["name"] == "sgg"
    assert meta["config"]["lr"] == pytest.approx(1e-2)  # the module's hparams
    steps = table(tmp_path / "run", "steps")
    assert steps["step"].tolist() == list(range(1, 2 * BATCHES + 1))
    assert steps["loss"].notna().all() and steps["grad_norm"].notna().all()
    assert steps["tokens"].tolist() == [4 * s for s in steps["step"]]
    assert steps.loc[steps["reclustered"], "step"].tolist() == [4, 8, 12]
    evals = table(tmp_path / "run", "evals")
    assert evals["step"].tolist() == [BATCHES, 2 * BATCHES] and set(evals["split"]) == {"val"}
    clusters = table(tmp_path / "run", "clusters")
    assert sorted(clusters["step"].unique()) == [4, 8, 12]
    t.validate(t.lightning_module, loader())  # after fit: the closed run is left alone
    assert table(tmp_path / "run", "evals")["step"].tolist() == [BATCHES, 2 * BATCHES]


def test_gradient_accumulation_logs_one_row_per_optimizer_step(tmp_path):
    rec = RecorderCallback(tmp_path / "run")
    trainer(tmp_path, 3, [rec], accumulate_grad_batches=2).fit(Tiny(), loader())
    steps = table(tmp_path / "run", "steps")
    assert steps["step"].tolist() == [1, 2, 3] and steps["loss"].notna().all()


def test_resume_from_a_checkpoint_continues_the_run(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    # uninterrupted reference
    trainer(tmp_path / "a", 2 * BATCHES, [RecorderCallback(tmp_path / "full")]).fit(
        Tiny(), loader()
    )
    # interrupted after one epoch (a checkpoint), then resumed from it by a new trainer
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=BATCHES, save_top_k=-1)
    t1 = trainer(
        tmp_path / "b",
        BATCHES,
        [RecorderCallback(tmp_path / "resumed"), ckpt],
        enable_checkpointing=True,
    )
    t1.fit(Tiny(), loader())
    (path,) = (tmp_path / "ckpt").glob("*.ckpt")
    t2 = trainer(tmp_path / "b", 2 * BATCHES, [RecorderCallback(tmp_path / "resumed")])
    t2.fit(Tiny(), loader(), ckpt_path=str(path))
    meta = read_run_json(tmp_path / "resumed")
    assert [s["resume_step"] for s in meta["segments"]][1:] == [BATCHES]  # one resume, at 6
    full, resumed = table(tmp_path / "full", "steps"), table(tmp_path / "resumed", "steps")
    assert resumed["step"].tolist() == list(range(1, 2 * BATCHES + 1))
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-6)
    np.testing.assert_allclose(resumed["grad_norm"], full["grad_norm"], rtol=1e-5)
    cf, cr = table(tmp_path / "full", "clusters"), table(tmp_path / "resumed", "clusters")
    cols = ["step", "layer", "cluster"]
    cf, cr = cf.sort_values(cols).reset_index(), cr.sort_values(cols).reset_index()
    assert cf[cols].equals(cr[cols])
    np.testing.assert_allclose(cr["factor"], cf["factor"], rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        RecorderCallback("x", mode="append")
    with pytest.raises(ValueError, match="eval_metrics"):
        RecorderCallback("x", eval_metrics="val_loss")
    with pytest.raises(ValueError, match="tokens_per_batch"):
        RecorderCallback("x", tokens_per_batch=3)


def test_ddp_two_cpu_processes_rank_zero_writes(tmp_path):
    rec = RecorderCallback(tmp_path / "run")
    t = pl.Trainer(
        max_steps=BATCHES,
        accelerator="cpu",
        devices=2,
        strategy="ddp_fork",  # forked workers: no re-import, a few seconds
        callbacks=[rec],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    t.fit(Tiny(), loader())
    meta = read_run_json(tmp_path / "run")
    assert meta["status"] == "finished"
    steps = table(tmp_path / "run", "steps")
    # each rank sees half the batches: BATCHES // 2 optimizer steps per epoch, max_steps total
    assert steps["step"].tolist() == list(range(1, BATCHES + 1))
    assert steps["loss"].notna().all() and steps["grad_norm"].notna().all()
    assert steps.loc[steps["reclustered"], "step"].tolist() == [4]
    assert not list(tmp_path.glob("run*/rank*"))  # one run directory, no per-rank copies

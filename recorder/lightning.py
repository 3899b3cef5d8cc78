"""`RecorderCallback` for PyTorch Lightning: record a `Trainer.fit` run into a run directory.

    import lightning.pytorch as pl
    from recorder.lightning import RecorderCallback

    class Module(pl.LightningModule):
        def configure_optimizers(self):
            return SGG(torch.optim.AdamW(self.parameters(), lr=3e-4), recluster_interval=500)

    trainer = pl.Trainer(max_steps=1000, callbacks=[RecorderCallback("runs/sgg")])
    trainer.fit(Module(), train_loader, val_loader)
    trainer.fit(Module(), train_loader, val_loader, ckpt_path="last")   # resumes the run too

What lands in the run (docs/run-format.md), as with the HF callback (recorder/hf.py):
- every optimizer step: norms, learning rates, layer statistics and SGG's clustering, measured by
  the Recorder's hooks on the optimizer that `configure_optimizers` returned;
- `loss`: the mean of the training losses of the batches of that optimizer step (one batch, or
  `accumulate_grad_batches`), kept on its device until the recorder flushes;
- `evals`: at the end of each validation run, the first of `eval_metrics` that the module logged
  (`self.log("val_loss", ...)`), split "val";
- `tokens`: `tokens_per_batch(batch)` summed over the step's batches, when given;
- `grad_norm`: the gradient the optimizer received, after Lightning's clipping
  (`gradient_clip_val`), as run.json's `description` says with the Trainer's settings.

Resume: `trainer.fit(..., ckpt_path=...)` restores the trainer's step before `on_train_start`;
the callback then resumes the run directory at that step (later rows are dropped and rewritten).
It flushes the run whenever Lightning saves a checkpoint, so the run always reaches it.
Multi-device (DDP, `ddp_spawn`, `ddp_fork`): every rank trains; global rank 0 writes
(`rank_zero_recorder`), and the loss is rank 0's local loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from recorder.distributed import NullRecorder, rank_zero_recorder
from recorder.recorder import Recorder, RecorderOptions

__all__ = ["EVAL_METRICS", "RecorderCallback"]

EVAL_METRICS = ("val_loss", "val/loss", "validation_loss", "valid_loss", "eval_loss")


class RecorderCallback(Callback):
    """A Lightning `Callback` that owns one `Recorder` for the duration of `trainer.fit()`.

    Args:
        run_dir: the run directory.
        config: JSON-able config saved in run.json (default: the module's `hparams`).
        mode: "new" or "overwrite" for a fresh fit; a fit resumed from a checkpoint always
            resumes the run.
        eval_metrics: logged metric names tried, in order, for the validation loss.
        tokens_per_batch: `batch -> number of tokens`, for the `tokens` column.
        name, seed, shadow, options, **kwargs: passed to `Recorder` (seed default: the one
            `lightning.seed_everything` set).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: object = None,
        *,
        mode: str = "new",
        eval_metrics: Sequence[str] = EVAL_METRICS,
        tokens_per_batch: Callable[[Any], int] | None = None,
        name: str | None = None,
        seed: int | None = None,
        shadow: Mapping[str, Any] | None = None,
        options: RecorderOptions | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in ("new", "overwrite"):
            raise ValueError(f"mode must be 'new' or 'overwrite', got {mode!r}")
        if isinstance(eval_metrics, str) or not all(isinstance(m, str) for m in eval_metrics):
            raise ValueError(f"eval_metrics must be a sequence of names, got {eval_metrics!r}")
        if tokens_per_batch is not None and not callable(tokens_per_batch):
            raise ValueError(f"tokens_per_batch must be callable, got {tokens_per_batch!r}")
        self.run_dir = run_dir
        self.config = config
        self.mode = mode
        self.eval_metrics = tuple(eval_metrics)
        self.tokens_per_batch = tokens_per_batch
        self.name = name
        self.seed = seed
        self.shadow = shadow
        self.options = options
        self.kwargs = kwargs
        self.recorder: Recorder | NullRecorder | None = None
        self._losses: list[torch.Tensor] = []  # the batches of the optimizer step in progress
        self._tokens = 0
        self._logged_step = 0

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the checkpoint (if any) is restored: global_step is the step to resume from.
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.close()
        optimizers = trainer.optimizers
        if not optimizers:
            raise ValueError("RecorderCallback needs the optimizer from configure_optimizers")
        step = int(trainer.global_step)
        resume = step > 0
        self.recorder = rank_zero_recorder(
            self.run_dir,
            optimizer=optimizers[0],
            model=pl_module,
            config=self.config if self.config is not None else _hparams(pl_module),
            mode="resume" if resume else self.mode,
            resume_step=step if resume else None,
            name=self.name,
            seed=self.seed if self.seed is not None else _global_seed(),
            shadow=self.shadow,
            options=self.options,
            source="lightning",
            settings=_trainer_settings(trainer),
            **self.kwargs,
        )
        self._losses, self._tokens, self._logged_step = [], 0, step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
    ) -> None:
        rec = self.recorder
        if rec is None or rec.closed:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss) and loss.numel() == 1:
            self._losses.append(loss.detach().reshape(()))
        if self.tokens_per_batch is not None:
            self._tokens += int(self.tokens_per_batch(batch))
        step = int(trainer.global_step)
        if step > self._logged_step:  # an optimizer step was taken with this batch
            mean = torch.stack(self._losses).float().mean() if self._losses else None
            tokens = self._tokens if self.tokens_per_batch is not None else None
            rec.log_step(step, loss=mean, tokens=tokens)
            self._losses, self._tokens, self._logged_step = [], 0, step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rec = self.recorder
        if rec is None or rec.closed or trainer.sanity_checking:  # closed: validate() after fit
            return
        metrics = trainer.callback_metrics
        for key in self.eval_metrics:
            value = metrics.get(key)
            if value is not None:
                rec.log_eval(loss=float(value), step=int(trainer.global_step), split="val")
                return

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.flush()  # the run on disk reaches the checkpoint: resumable from it

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.close("failed", exception)


def _hparams(pl_module: pl.LightningModule) -> dict[str, Any]:
    try:
        return dict(pl_module.hparams)
    except Exception:  # never fail a training over its metadata
        return {}


def _trainer_settings(trainer: pl.Trainer) -> dict[str, Any]:
    """What the Trainer knows of the training (run.json's `description`): gradient clipping
    (0: none; a clip by value is no max norm), precision, planned steps, accumulation and the
    train loader's batch size."""
    out: dict[str, Any] = {}
    try:
        clip = trainer.gradient_clip_val
        if clip is None or clip == 0:
            out["grad_clip"] = 0.0
        elif trainer.gradient_clip_algorithm in (None, "norm"):
            out["grad_clip"] = float(clip)
        out["precision"] = str(trainer.precision)
        if trainer.max_steps and trainer.max_steps > 0:
            out["max_steps"] = int(trainer.max_steps)
        if isinstance(trainer.accumulate_grad_batches, int):
            out["accumulate_grad_batches"] = trainer.accumulate_grad_batches
        loader = trainer.train_dataloader
        if getattr(loader, "batch_size", None):
            out["batch_size"] = int(loader.batch_size)
    except Exception:  # never fail a training over its metadata
        pass
    return out


def _global_seed() -> int | None:
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None and seed.lstrip("-").isdigit() else None

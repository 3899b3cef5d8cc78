"""`RecorderCallback`: record a Hugging Face `Trainer` run into a normal run directory.

    trainer = Trainer(
        model=model,
        args=TrainingArguments(..., logging_steps=1),
        optimizers=(opt, scheduler),   # opt = SGG(torch.optim.AdamW(...)) or any optimizer
        callbacks=[RecorderCallback("runs/hf", config=cfg)],
    )
    trainer.train()                                # or train(resume_from_checkpoint=...)

What lands in the run (docs/run-format.md):
- every optimizer step: norms, learning rates, per-layer statistics and SGG's clustering, measured
  by the Recorder's hooks on the optimizer (after the step, before `zero_grad`);
- `loss`: the Trainer's logged training loss, which is the mean over the steps since the previous
  log, written at the logging step only (`logging_steps=1` gives a loss on every step; with
  `logging_steps=10` the other steps' loss is null, "not logged", never NaN);
- `grad_norm`: the gradient the optimizer received, after the Trainer's clipping
  (`max_grad_norm`); the Trainer's own logged `grad_norm` is the norm before clipping. run.json's
  `description` says which (`grad_norm: "post_clip"`), with the TrainingArguments' settings;
- `evals`: `eval_loss` (split "val") or any `eval_<name>_loss` (split `<name>`) at evaluation;
- `tokens`: the Trainer's `num_input_tokens_seen` when `include_num_input_tokens_seen` is set.

Only the world's process zero writes. A resumed `trainer.train(resume_from_checkpoint=...)`
resumes the run directory at the checkpoint's step (rows after it are dropped and rewritten);
the run is flushed at every checkpoint so that it always covers the checkpoint's step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from recorder.distributed import (
    NullRecorder,
    has_sharded_params,
    rank_zero_recorder,
    unwrap_optimizer,
)
from recorder.recorder import Recorder, RecorderOptions

__all__ = ["RecorderCallback", "unwrap_optimizer"]


class RecorderCallback(TrainerCallback):
    """A `TrainerCallback` that owns one `Recorder` for the duration of `trainer.train()`.

    Args:
        run_dir: the run directory.
        config: JSON-able config saved in run.json (default: the `TrainingArguments` as a dict).
        mode: "new" or "overwrite" for a fresh training; a resumed training always resumes the run.
        name, seed, shadow, options, **kwargs: passed to `Recorder`.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: object = None,
        *,
        mode: str = "new",
        name: str | None = None,
        seed: int | None = None,
        shadow: Mapping[str, Any] | None = None,
        options: RecorderOptions | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in ("new", "overwrite"):
            raise ValueError(f"mode must be 'new' or 'overwrite', got {mode!r}")
        self.run_dir = run_dir
        self.config = config
        self.mode = mode
        self.name = name
        self.seed = seed
        self.shadow = shadow
        self.options = options
        self.kwargs = kwargs
        self.recorder: Recorder | NullRecorder | None = None
        self._tokens_seen = 0

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        # Process zero writes. Under FSDP2 every rank must run the recorder (its statistics are
        # combined across ranks with collectives; rank_zero_recorder makes only rank 0 write).
        if not state.is_world_process_zero and not has_sharded_params(unwrap_optimizer(optimizer)):
            return
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.close()
        resume = state.global_step > 0
        config = self.config if self.config is not None else _args_config(args)
        self.recorder = rank_zero_recorder(
            self.run_dir,
            optimizer=optimizer,
            model=model,
            config=config,
            mode="resume" if resume else self.mode,
            resume_step=state.global_step if resume else None,
            name=self.name,
            seed=self.seed if self.seed is not None else args.seed,
            shadow=self.shadow,
            options=self.options,
            source="hf",
            settings=_args_config(args).get("training_arguments"),
            **self.kwargs,
        )
        self._tokens_seen = int(state.num_input_tokens_seen or 0)

    def on_optimizer_step(self, args, state, control, **kwargs):
        # global_step is incremented after this event: this step's number is global_step + 1.
        # The Recorder's step hooks have normally measured it already (gradients are still
        # there); an optimizer without torch's step hooks is measured here instead.
        rec = self.recorder
        if rec is not None and rec.step < state.global_step + 1:
            rec.log_step(state.global_step + 1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        rec = self.recorder
        if rec is None or not logs:
            return
        step = state.global_step
        if "loss" in logs and step > 0:
            seen = int(state.num_input_tokens_seen or 0)
            tokens = seen - self._tokens_seen if seen else None
            self._tokens_seen = seen
            rec.log_step(step, loss=float(logs["loss"]), tokens=tokens)
        for key, value in logs.items():
            if key == "eval_loss":
                rec.log_eval(loss=value, step=step, split="val")
            elif key.startswith("eval_") and key.endswith("_loss"):
                rec.log_eval(loss=value, step=step, split=key[len("eval_") : -len("_loss")])

    def on_save(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.flush()  # the run on disk reaches the checkpoint: resumable from it

    def on_train_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.close()


def _args_config(args: TrainingArguments) -> dict[str, Any]:
    try:
        return {"training_arguments": args.to_dict()}
    except Exception:  # never fail a training over its metadata
        return {}

"""The training command (`sgg-train`) and its sweeps (`sgg-train sweep`), beside the recorder.

A small LLaMA-style byte-level LM trained on text that ships with Python, SGG or AdamW, recorded
through the recorder's public API: the project's own way to make runs (sample_runs/ is made with
it) and an example of recording a plain PyTorch loop.
"""

from sgg_train.config import TrainConfig

# `sgg_train.train.train(cfg)` trains one run (the module is not shadowed by the function)
__all__ = ["TrainConfig"]

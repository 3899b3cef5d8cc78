"""The training command's data: the bytes of the standard library's `pydoc_data.topics`.

No download: the text ships with Python. Batches are drawn from a generator of their own, so
the data order depends only on the seed (an SGG run and an AdamW run with one seed see the same
batches step by step).
"""

from __future__ import annotations

import torch

VOCAB_SIZE = 256  # bytes


def load_corpus() -> torch.Tensor:
    """The bytes of `pydoc_data.topics` (values joined in sorted key order) as uint8."""
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


def split_corpus(data: torch.Tensor, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    n_val = int(len(data) * val_fraction)
    return data[: len(data) - n_val], data[len(data) - n_val :]


def sample_batch(
    data: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator
) -> torch.Tensor:
    """(batch, seq_len + 1) int64 windows at random offsets drawn from `gen` only."""
    starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(seq_len + 1)
    return data[idx].long()


def eval_windows(data: torch.Tensor, n: int, seq_len: int) -> torch.Tensor:
    """n evenly spaced windows over the held-out data (the same at every evaluation)."""
    starts = torch.linspace(0, len(data) - seq_len - 2, n).long()
    return data[starts[:, None] + torch.arange(seq_len + 1)].long()

"""Tiny models and data shared by the integration tests (DDP, Trainer, PEFT, accelerate)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from recorder.schema import live_chunks

VOCAB = 64
SEQ = 8


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=SEQ,
    )
    return LlamaForCausalLM(cfg)


class TokenData(torch.utils.data.Dataset):
    """`n` fixed random token sequences (labels = inputs: causal LM loss)."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def read_table(run_dir: Path, table: str):
    """A table of a run directory read with pyarrow (every live chunk, in write order)."""
    d = Path(run_dir) / "tables" / table
    names = [p.name for p in d.iterdir()] if d.is_dir() else []
    files = [d / n for n in live_chunks(names)]  # compacted files supersede their chunks
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def render_every_view(root: Path, monkeypatch) -> set[str]:
    """Open `root` in the real dashboard script (Streamlit AppTest), visit every view, and
    return the run names its tables list; fails on any exception or error element."""
    from streamlit.testing.v1 import AppTest

    from dashboard.app import ENV_ROOT, VIEWS

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv(ENV_ROOT, str(root))
    at = AppTest.from_file(str(repo / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    listed: set[str] = set()
    for view in VIEWS:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
        assert not at.error, (view, [e.value for e in at.error])
        for df in at.dataframe:
            if "Run" in df.value.columns:
                listed |= set(df.value["Run"].astype(str))
    return listed

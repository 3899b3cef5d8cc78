"""Humane layer names and layer types from parameter names, for readers who do not know them.

`model.layers.3.self_attn.o_proj.weight` reads "layer 3 attention output"; its type is
"attention". The raw name stays available (hover, tooltips): the humane one is a translation, not
a replacement. Naming schemes covered: Hugging Face LLaMA/Mistral/Qwen, GPT-2/nanoGPT, BERT/RoBERTa,
and this project's synthetic runs; anything else keeps its raw name and the type "other".
"""

from __future__ import annotations

import re

EMBEDDINGS, ATTENTION, MLP, NORMS, HEAD, OTHER = (
    "embeddings",
    "attention",
    "MLP",
    "norm layers",
    "output head",
    "other",
)
TYPES = (EMBEDDINGS, ATTENTION, MLP, NORMS, HEAD, OTHER)  # model order, for tables and legends

# (pattern on the dotted name without its last part, what it is, its type); first match wins.
# Patterns match a whole dotted component (or a run of them) at the end of the module path.
_ROLES: list[tuple[str, str, str]] = [
    (r"(embed_tokens|wte|word_embeddings|tok_embeddings|embed_in|embedding)", "token embeddings",
     EMBEDDINGS),
    (r"(wpe|position_embeddings|pos_embed|embed_positions)", "position embeddings", EMBEDDINGS),
    (r"token_type_embeddings", "token-type embeddings", EMBEDDINGS),
    (r"(q_proj|query|wq|q)", "attention query", ATTENTION),
    (r"(k_proj|key|wk|k)", "attention key", ATTENTION),
    (r"(v_proj|value|wv|v)", "attention value", ATTENTION),
    (r"(qkv|c_attn|in_proj|wqkv|query_key_value|qkv_proj)", "attention query/key/value",
     ATTENTION),
    (r"(o_proj|out_proj|wo|attention\.output\.dense|(attn|attention|self_attn)\.(proj|c_proj|dense))",
     "attention output", ATTENTION),
    (r"(gate_proj|w1|gate)", "MLP gate", MLP),
    (r"(up_proj|w3)", "MLP up", MLP),
    (r"(down_proj|w2)", "MLP down", MLP),
    (r"(c_fc|fc1|fc|intermediate\.dense|dense_h_to_4h|fc_in)", "MLP in", MLP),
    (r"(mlp\.c_proj|fc2|(?<!attention\.)output\.dense|dense_4h_to_h|fc_out|mlp\.proj)", "MLP out",
     MLP),
    (r"(input_layernorm|ln_1|attention_norm|norm1)", "norm before attention", NORMS),
    (r"(post_attention_layernorm|ln_2|ffn_norm|norm2)", "norm before MLP", NORMS),
    (r"(ln_f|final_layernorm|final_layer_norm)", "final norm", NORMS),
    (r"(layernorm|layer_norm|ln|norm|rmsnorm)", "norm", NORMS),
    (r"(lm_head|head|classifier|output|score)", "output head", HEAD),
]  # fmt: skip
_COMPILED = [(re.compile(rf"(^|\.)(?:{p})$", re.IGNORECASE), w, t) for p, w, t in _ROLES]
_BLOCK = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")
_SUFFIXES = ("weight", "bias")


def _parts(name: str) -> tuple[str, str]:
    """(module path, 'weight'/'bias'/''), with torch.compile's `_orig_mod.` removed."""
    name = name.replace("_orig_mod.", "")
    head, _, last = name.rpartition(".")
    if last in _SUFFIXES and head:
        return head, last
    return name, ""


def _role(module: str) -> tuple[str, str] | None:
    # the block's own path ('model.layers.3.') is no part of the role; a top-level 'norm' is
    # the final norm
    inner = _BLOCK.split(module)[-1] if _BLOCK.search(module) else module
    if not _BLOCK.search(module) and re.search(r"(^|\.)norm$", inner):
        return "final norm", NORMS
    for pattern, what, kind in _COMPILED:
        if pattern.search(inner):
            return what, kind
    return None


def layer_type(name: str) -> str:
    """One of TYPES: what kind of weights this parameter holds."""
    module, _ = _parts(name)
    role = _role(module)
    if role:
        return role[1]
    low = module.lower()
    for words, kind in (
        (("attn", "attention"), ATTENTION),
        (("mlp", "ffn", "feed_forward", "feedforward"), MLP),
        (("norm",), NORMS),
        (("emb",), EMBEDDINGS),
        (("head", "classifier"), HEAD),
    ):
        if any(w in low for w in words):
            return kind
    return OTHER


def humane_name(name: str) -> str:
    """'layer 3 attention output' for `model.layers.3.self_attn.o_proj.weight`; names it does
    not know come back without `model.` and `.weight`."""
    module, suffix = _parts(name)
    block = _BLOCK.search(module)
    role = _role(module)
    if role is None:
        text = module.removeprefix("model.")
    else:
        text = role[0]
        if block:
            text = f"layer {block.group(1)} {text}"
    return f"{text} (bias)" if suffix == "bias" else text


def layer_kind(name: str) -> str:
    """What a layer is without its block number ('attention value' for layer 3's value
    projection): the layers of one kind across blocks are compared as one line; a name it does
    not know falls back to its type."""
    module, suffix = _parts(name)
    role = _role(module)
    text = role[0] if role else layer_type(name)
    return f"{text} (bias)" if suffix == "bias" else text


def humane_names(names: list[str]) -> dict[str, str]:
    """{raw: humane}, unique: two raw names that read the same keep their raw name beside."""
    out = {n: humane_name(n) for n in names}
    seen: dict[str, int] = {}
    for h in out.values():
        seen[h] = seen.get(h, 0) + 1
    return {n: (h if seen[h] == 1 else f"{h} [{n}]") for n, h in out.items()}

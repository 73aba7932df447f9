"""The encoder families of the architecture matrix: a tiny random-weight classifier per family, built from
a config in about a second (no weights to download), with the MiniLM WordPiece tokenizer cut to a small
vocabulary so the embedding tables stay small.

Which families there are, their transformers classes and what each is expected to refuse is the package's
table (`trt_edge.modeling.families`, its `matrix` rows); this module only says how to build each one tiny.

Every family has 4 layers (the students keep 2), hidden 64 in heads of 32 (a head size our kernel takes),
and weights initialised with a larger spread than the library default so attention is not near-uniform
and a wrong fusion moves the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trt_edge.modeling import families as table

LABELS = ["negative", "neutral", "positive"]
HIDDEN, HEADS, FFN, LAYERS = 64, 2, 128, 4
INIT_RANGE = 0.1


@dataclass(frozen=True)
class Family:
    """One row of the matrix: how to build it, and what it is expected not to do (with the reason)."""

    name: str
    config: str
    kwargs: dict[str, Any]


def _common(vocab: int) -> dict[str, Any]:
    return {"vocab_size": vocab, "num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
            "label2id": {n: i for i, n in enumerate(LABELS)}, "initializer_range": INIT_RANGE}


def _bert_like(vocab: int) -> dict[str, Any]:
    return {**_common(vocab), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": FFN, "max_position_embeddings": 160}


_BUILDERS: dict[str, Callable[[int], dict[str, Any]]] = {
    "bert": _bert_like,
    "roberta": lambda v: {**_bert_like(v), "pad_token_id": 0},
    "xlm-roberta": lambda v: {**_bert_like(v), "pad_token_id": 0},
    "distilbert": lambda v: {**_common(v), "dim": HIDDEN, "n_layers": LAYERS, "n_heads": HEADS, "hidden_dim": FFN,
                             "max_position_embeddings": 160},
    "electra": lambda v: {**_bert_like(v), "embedding_size": HIDDEN},
    "albert": lambda v: {**_bert_like(v), "embedding_size": 32, "num_hidden_groups": 1},
    "mpnet": _bert_like,
    "deberta-v2": lambda v: {**_bert_like(v), "relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                             "position_buckets": 16, "max_relative_positions": 32, "position_biased_input": False},
    "modernbert": lambda v: {**_common(v), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                             "num_attention_heads": HEADS, "intermediate_size": FFN, "max_position_embeddings": 160,
                             "local_attention": 8, "global_attn_every_n_layers": 2, "pad_token_id": 0,
                             "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2},
}
# model_type -> tiny config kwargs, in the package table's order; every matrix family has a builder.
FAMILIES: dict[str, Callable[[int], dict[str, Any]]] = {f.model_type: _BUILDERS[f.model_type]
                                                        for f in table.FAMILIES if f.matrix}
CLASSES = {name: table.BY_MODEL_TYPE[name].classes for name in FAMILIES}


def available() -> list[str]:
    """The families the installed transformers has (ModernBERT arrived in 4.48)."""
    import transformers

    return [f for f in FAMILIES if hasattr(transformers, f"{CLASSES[f]}Config")]


def build(family: str, tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    """A random-weight `family` classifier with the tokenizer in `tokenizer_dir`, saved to `out`."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = getattr(transformers, f"{CLASSES[family]}Config")(**FAMILIES[family](len(tokenizer)))
    model = getattr(transformers, f"{CLASSES[family]}ForSequenceClassification")(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out

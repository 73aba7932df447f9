"""Tokenizers and the sequence lengths a model folder takes.

A folder without vocabulary files gives a tokenizer with only special tokens, and a `max_length` past the
model's position table fails deep inside ONNX Runtime or torch: both are refused here in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.guard.bounded_json import load_json

_MIN_VOCAB = 32


def load_tokenizer(folder: str | os.PathLike[str], trust_remote_code: bool = False) -> Any:
    """`AutoTokenizer.from_pretrained(folder)` offline, refusing a tokenizer with no real vocabulary
    (transformers builds one from `config.json` alone, and every word then becomes [UNK])."""
    from transformers import AutoTokenizer

    path = Path(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TrtEdgeError(f"{path}: no usable tokenizer ({str(exc).splitlines()[0][:200]})") from exc
    specials = len(set(getattr(tokenizer, "all_special_tokens", []) or []))
    if len(tokenizer) - specials < _MIN_VOCAB:
        raise TrtEdgeError(f"{path}: the tokenizer has no vocabulary ({len(tokenizer)} tokens); the folder lacks its "
                           "tokenizer files (tokenizer.json or vocab.txt): copy them from the original model")
    return tokenizer


# ---------------------------------------------------------------------------------------------------
# Sequence lengths: a max_length past the model's position table fails deep inside ONNX Runtime or torch.

def model_positions(folder: str | os.PathLike[str], tokenizer: Any = None) -> int | None:
    """How many token positions a model folder takes: the smaller of config.json's
    `max_position_embeddings` and the tokenizer's `model_max_length` (RoBERTa's 514 vs 512); None if
    neither says."""
    limits: list[int] = []
    config = Path(folder) / "config.json"
    if config.is_file():
        try:
            data = load_json(config, "model config")
        except TrtEdgeError:
            data = None
        value = data.get("max_position_embeddings") if isinstance(data, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits.append(value)
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        limits.append(value)
    return min(limits) if limits else None


def check_positions(length: int, folder: str | os.PathLike[str], tokenizer: Any = None,
                    what: str = "task.max_length") -> None:
    """Refuse a sequence length longer than the model's position table, in one line."""
    positions = model_positions(folder, tokenizer)
    if positions is not None and length > positions:
        raise TrtEdgeError(f"{what} is {length} but the model in {folder} has {positions} positions; "
                           f"use at most {positions}")

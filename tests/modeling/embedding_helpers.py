"""Tiny random sentence-transformers folders, written by sentence-transformers itself (so the kit's reader is
tested against the real format, not against its own writer): a family's tiny random encoder from the
architecture matrix (`tests/matrix/families.build`), then Transformer -> Pooling -> Dense? -> Normalize?.

sentence-transformers is a test-only dependency: the kit never imports it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

TEXTS = ["the robot stops at the red light", "where is the charging dock?", "ok",
         "an operator's note about a slipping wheel on the left side of the vehicle", "hello world"]


def write_st_folder(family: str, tokenizer_dir: Path, out: Path, mode: str = "mean", dense: int | None = None,
                    normalize: bool = True, seed: int = 0) -> Path:
    """A sentence-transformers folder at `out` over a random `family` encoder; `mode` is
    sentence-transformers' pooling name, `dense` the output width of one Tanh Dense module (None: none)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from tests.matrix.families import build

    encoder = build(family, tokenizer_dir, out.with_name(out.name + "-encoder"), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformer = Transformer(str(encoder))
        width = transformer.get_embedding_dimension()
        modules: list[Any] = [transformer, Pooling(width, pooling_mode=mode)]
        if dense is not None:
            torch.manual_seed(seed + 1)
            modules.append(Dense(width, dense, activation_function=torch.nn.Tanh()))
        if normalize:
            modules.append(Normalize())
        SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


def st_encode(folder: Path, texts: list[str] = TEXTS) -> Any:
    """sentence-transformers' own vectors for `texts` from `folder` (CPU, numpy)."""
    from sentence_transformers import SentenceTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(str(folder), device="cpu")
        return model.encode(texts, convert_to_numpy=True, batch_size=len(texts))


def torch_encode(loaded: Any, texts: list[str] = TEXTS) -> Any:
    """The kit's EmbeddingModel vectors for `texts` (one padded batch)."""
    import torch

    enc = loaded.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return loaded.model(**enc).sentence_embedding.numpy()

"""Shared helpers of the export tests: PyTorch reference logits and ONNX Runtime runs at given shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["negative", "neutral", "positive"]


def random_feeds(batch: int, seq: int, names: list[str], dtype: Any = np.int64, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids with padding at the end of every second row (the mask covers it)."""
    rng = np.random.default_rng(seed + batch * 1000 + seq)
    ids = rng.integers(1000, 20000, size=(batch, seq))
    mask = np.ones_like(ids)
    for row in range(1, batch, 2):
        pad = min(seq - 1, 1 + row % 5)
        if pad > 0:
            mask[row, -pad:] = 0
            ids[row, -pad:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: feeds[n].astype(dtype) for n in names}


def torch_logits(model: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in feeds.items()})
    return out.logits.numpy()


def ort_logits(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], feeds)[0]

"""Text classification with PyTorch: tokenization, dynamic padding, batched prediction, evaluation.

Examples are tokenized once without padding and padded per batch to the batch's longest example;
prediction sorts by length so short tweets do not pay for long ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_edge.tasks.metrics import classification_metrics

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Encoded:
    """Token ids per example (unpadded) and which model inputs the tokenizer produces."""

    features: list[dict[str, list[int]]]
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> Encoded:
    out = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    names = [n for n in INPUT_NAMES if n in out]
    features = [{n: out[n][i] for n in names} for i in range(len(texts))]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(features, int(pad))


def collate(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Pad a batch to its longest example; extra keys (labels, teacher logits) are stacked."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, Any] = {}
    for name in INPUT_NAMES:
        if name not in features[0]:
            continue
        pad = pad_token_id if name == "input_ids" else 0
        batch[name] = torch.tensor([list(f[name]) + [pad] * (width - len(f[name])) for f in features],
                                   dtype=torch.long)
    for key in features[0]:
        if key in INPUT_NAMES:
            continue
        values = [f[key] for f in features]
        batch[key] = torch.stack([torch.as_tensor(v) for v in values])
    return batch


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k in INPUT_NAMES}


def predict_logits(model: Any, encoded: Encoded, batch_size: int = 64, device: Any = None) -> np.ndarray:
    """Logits for every example, in the original order."""
    import torch

    order = np.argsort(encoded.lengths(), kind="stable")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([encoded.features[i] for i in idx], encoded.pad_token_id)
            out = model(**{k: v.to(device) for k, v in batch.items()})
            chunks.append(out.logits.float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.concatenate(chunks)
    result = np.empty_like(logits)
    result[order] = logits
    return result


def evaluate(model: Any, encoded: Encoded, labels: Sequence[int], num_labels: int,
             batch_size: int = 64) -> tuple[dict[str, float], np.ndarray]:
    logits = predict_logits(model, encoded, batch_size)
    return classification_metrics(logits, labels, num_labels), logits

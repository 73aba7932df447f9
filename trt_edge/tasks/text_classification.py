"""Text classification with PyTorch: tokenization, dynamic padding, batched prediction, evaluation.

Examples are tokenized once without padding and padded per batch to the batch's longest example;
prediction sorts by length so short tweets do not pay for long ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.tasks.metrics import classification_metrics
from trt_edge.tasks.spec import TEXT_CLASSIFICATION as SPEC

INPUT_NAMES = SPEC.input_names
_FIRST = INPUT_NAMES[0]


def pad_value(name: str, pad_token_id: int) -> int:
    """What a padded position of input `name` holds (the spec says which input pads with the token id)."""
    return pad_token_id if SPEC.input(name).pad == "pad_token_id" else int(SPEC.input(name).pad)


@dataclass
class Encoded:
    """Token ids per example (unpadded) and which model inputs the tokenizer produces."""

    features: list[dict[str, list[int]]]
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> list[int]:
        return [len(f[_FIRST]) for f in self.features]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> Encoded:
    out = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    names = [n for n in INPUT_NAMES if n in out]
    features = [{n: out[n][i] for n in names} for i in range(len(texts))]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(features, int(pad))


def collate(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Pad a batch to its longest example; extra keys (labels, teacher logits) are stacked."""
    import torch

    width = max(len(f[_FIRST]) for f in features)
    batch: dict[str, Any] = {}
    for name in INPUT_NAMES:
        if name not in features[0]:
            continue
        pad = pad_value(name, pad_token_id)
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


def predict_logits(model: Any, encoded: Any, batch_size: int = 64, device: Any = None,
                   collate_fn: Any = None) -> np.ndarray:
    """Logits for every example, in the original order (batches of similar length; `collate_fn` batches
    another task's features: the image task's stacking)."""
    import torch

    order = np.argsort(encoded.lengths(), kind="stable")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = (collate_fn or collate)([encoded.features[i] for i in idx], encoded.pad_token_id)
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


# The example used for tracing: batch 2 and an odd sequence length that no other model dimension has,
# with padding in the second row so no exporter can specialise the attention mask away.
_EXAMPLE_BATCH, _EXAMPLE_SEQUENCE, _EXAMPLE_PAD = 2, 13, 4


def example_inputs(model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                   preprocessor: Any = None) -> dict[str, Any]:
    """Token ids, an attention mask with padding in the second row, zero token types (`preprocessor`
    is unused: a sequence axis is dynamic, so no size comes from the tokenizer)."""
    import torch

    del preprocessor

    vocab_size = int(model_config.vocab_size)
    dtype = torch.int32 if int32_inputs else torch.int64
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000 if vocab_size > 2000 else 1, max(vocab_size - 1, 2),
                        (_EXAMPLE_BATCH, _EXAMPLE_SEQUENCE), generator=generator, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, -_EXAMPLE_PAD:] = 0
    ids[1, -_EXAMPLE_PAD:] = 0
    first, second, *rest = INPUT_NAMES
    tensors = {first: ids, second: mask, **{n: torch.zeros_like(ids) for n in rest}}
    return {n: tensors[n].to(dtype) for n in names}


def fit_model(model: Any, preprocessor: Any, source: str = "the model") -> str | None:
    """Nothing to fit: a text model takes any sequence length its position table holds (the image
    adapter's `fit_model` sizes a vision model to its processor; every loader calls the task's)."""
    del model, preprocessor, source
    return None


def preflight_model(folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
    """Nothing to say before training (the preflight checks positions against max_length itself)."""
    del folder, preprocessor, trust_remote_code
    return None

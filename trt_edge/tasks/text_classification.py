"""Text classification: its data, tokenization, dynamic padding, batched prediction, evaluation, the ONNX
feeds (calibration, runtime), bound as `ADAPTER` (a `tasks.adapter.TaskAdapter`).

Examples are tokenized once without padding and padded per batch to the batch's longest example;
prediction sorts by length so short tweets do not pay for long ones. ONNX feeds are padded to a fixed
length (calibration, the CPU candidates' timed shapes) or to the batch's longest text (`trt-edge run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.classification import ClassificationOutputs
from trt_edge.tasks.config import DataConfig
from trt_edge.tasks.data import ClassificationData, load_data
from trt_edge.tasks.spec import TEXT_CLASSIFICATION as SPEC
from trt_edge.tasks.spec import TaskSpec

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
                   collate_fn: Any = None, output: str = "logits") -> np.ndarray:
    """Logits (or another task's `output`: a sentence embedding) for every example, in the original order
    (batches of similar length; `collate_fn` batches another task's features: the image task's stacking)."""
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
            chunks.append(getattr(out, output).float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.concatenate(chunks)
    result = np.empty_like(logits)
    result[order] = logits
    return result


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


def tokenize_padded(tokenizer: Any, texts: Sequence[str], max_length: int,
                    input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Token arrays [N, max_length] padded on the right, and each example's true length."""
    out = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length",
                    return_tensors="np")
    arrays: dict[str, np.ndarray] = {}
    for name in input_names:
        if name in out:
            arrays[name] = np.asarray(out[name], dtype=np.int64)
        elif SPEC.input(name).optional:  # token types the tokenizer does not make: all segment 0
            arrays[name] = np.zeros_like(np.asarray(out[_FIRST]), dtype=np.int64)
        else:
            raise TrtEdgeError(f"the tokenizer produces {sorted(out.keys())}, not the model input {name!r}")
    lengths = np.asarray(out[str(SPEC.length_input)]).sum(axis=1).astype(np.int64)
    if getattr(tokenizer, "padding_side", "right") != "right":
        raise TrtEdgeError("the tokenizer pads on the left; calibration batches assume right padding")
    return arrays, lengths


def runtime_feed(tokenizer: Any, texts: Sequence[str], runner_inputs: Sequence[Any], max_length: int,
                 runner_name: str = "the model") -> dict[str, np.ndarray]:
    """What a runner takes for `texts`: padded to the longest, cast to each declared input's dtype;
    token types the tokenizer does not make are all segment 0."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np")
    optional = {i.name for i in SPEC.inputs if i.optional}
    feed: dict[str, np.ndarray] = {}
    for meta in runner_inputs:
        if meta.name in enc:
            feed[meta.name] = np.asarray(enc[meta.name]).astype(meta.dtype)
        elif meta.name in optional:
            feed[meta.name] = np.zeros_like(np.asarray(enc[_FIRST]), dtype=meta.dtype)
        else:
            raise TrtEdgeError(f"{runner_name}: the model wants input {meta.name!r}, which the tokenizer "
                               f"does not produce (it gives {', '.join(enc.keys())})")
    return feed


class TextClassificationAdapter(ClassificationOutputs):
    """The text-classification task as a `TaskAdapter` (the module functions above, bound)."""

    spec: TaskSpec = SPEC
    text_examples = True
    builds_from_config = False  # a text model needs a trained tokenizer: no model from a bare config

    @property
    def has_sequence_axis(self) -> bool:
        return self.spec.has_sequence_axis

    def load_data(self, cfg: DataConfig) -> ClassificationData:
        return load_data(cfg)

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        return [str(t) for t in examples]

    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> Encoded:
        return encode(preprocessor, examples, max_length)

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        return collate(features, pad_token_id)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return model_inputs(batch)

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        return predict_logits(model, encoded, batch_size, device)

    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        return example_inputs(model_config, names, int32_inputs, seed, preprocessor)

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return tokenize_padded(preprocessor, examples, max_length, input_names)

    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        return fit_model(model, preprocessor, source)

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        return preflight_model(folder, preprocessor, trust_remote_code)

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        raise TrtEdgeError("a text model needs a tokenizer: it cannot be built from a bare config")

    def example_seconds(self, preprocessor: Any) -> float | None:
        """None: texts are not signals in time."""
        del preprocessor
        return None

    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        return runtime_feed(preprocessor, examples, runner_inputs, max_length, source)


ADAPTER: TaskAdapter = TextClassificationAdapter()

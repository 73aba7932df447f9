"""Text classification end to end over any runner: tokenize, run, softmax, label.

The tokenizer and the label names come from the preprocessor folder that travels with the model file
(`trt_edge.tasks.spec.preprocessor_dir`: the `preprocessor` artifact of the stage that wrote the file,
or `preprocessor/` / `tokenizer/` beside it) or given explicitly. The feed
follows the runner's declared inputs (names, int32/int64), so the same code classifies with ONNX
Runtime on a laptop and with TensorRT on a Jetson.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.base import Runner
from trt_edge.tasks.spec import TEXT_CLASSIFICATION

TOKENIZER_FILES = TEXT_CLASSIFICATION.preprocessor.files
_FIRST = TEXT_CLASSIFICATION.inputs[0].name
_OPTIONAL = {i.name for i in TEXT_CLASSIFICATION.inputs if i.optional}


@dataclass
class Prediction:
    """One classified text."""

    text: str
    label: str
    index: int
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "index": self.index, "probabilities": self.probabilities}


def label_names_for(folder: Path, num_labels: int) -> list[str]:
    """Label names from the folder's `config.json` `id2label`, else `LABEL_i`."""
    config = folder / "config.json"
    names: dict[int, str] = {}
    if config.is_file():
        try:
            id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
            names = {int(k): str(v) for k, v in id2label.items()}
        except (OSError, ValueError, AttributeError, TypeError, RecursionError):
            names = {}
    return [names.get(i, f"LABEL_{i}") for i in range(num_labels)]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return out


class TextClassifier:
    """Classify texts with a runner (active or not: it is activated for the call when needed).

    Args:
      runner: any `Runner` whose outputs include `logits` (or a single output).
      tokenizer: a Hugging Face tokenizer.
      label_names: class names in logit order; None reads them from the tokenizer folder or `LABEL_i`.
      max_length: truncation length. Defaults to 128.
      batch_size: texts per inference call (keep it within the engine's batch profile). Defaults to 32.
    """

    def __init__(self, runner: Runner, tokenizer: Any, label_names: Sequence[str] | None = None,
                 max_length: int = 128, batch_size: int = 32) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.label_names = list(label_names) if label_names is not None else None
        self.max_length = max_length
        self.batch_size = batch_size

    @classmethod
    def from_model_file(cls, runner: Runner, model_file: str | os.PathLike[str],
                        tokenizer_dir: str | os.PathLike[str] | None = None, max_length: int = 128,
                        batch_size: int = 32) -> TextClassifier:
        """Find the tokenizer (and the label names in its `config.json`) for `model_file`."""
        from trt_edge.tasks.spec import TEXT_CLASSIFICATION, preprocessor_dir

        folder = preprocessor_dir(model_file, tokenizer_dir)
        tokenizer = TEXT_CLASSIFICATION.preprocessor.load(folder)
        classifier = cls(runner, tokenizer, None, max_length, batch_size)
        classifier._label_folder = folder
        return classifier

    _label_folder: Path | None = None

    def _feed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np")
        feed: dict[str, np.ndarray] = {}
        for meta in self.runner.inputs():
            if meta.name in enc:
                feed[meta.name] = np.asarray(enc[meta.name]).astype(meta.dtype)
            elif meta.name in _OPTIONAL:  # token types the tokenizer does not make: all segment 0
                feed[meta.name] = np.zeros_like(np.asarray(enc[_FIRST]), dtype=meta.dtype)
            else:
                raise TrtEdgeError(f"{self.runner.name}: the model wants input {meta.name!r}, which the tokenizer "
                                   f"does not produce (it gives {', '.join(enc.keys())})")
        return feed

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, one row per text, in order."""
        if not texts:
            raise TrtEdgeError("no text to classify")
        was_active = self.runner.is_active
        if not was_active:
            self.runner.activate()
        try:
            outputs = [o.name for o in self.runner.outputs()]
            name = "logits" if "logits" in outputs else outputs[0]
            chunks = [self.runner.infer(self._feed(texts[i:i + self.batch_size]))[name]
                      for i in range(0, len(texts), self.batch_size)]
        finally:
            if not was_active:
                self.runner.deactivate()
        return np.concatenate(chunks).astype(np.float32)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        logits = self.logits(texts)
        if self.label_names is None:
            self.label_names = (label_names_for(self._label_folder, logits.shape[-1]) if self._label_folder
                                else [f"LABEL_{i}" for i in range(logits.shape[-1])])
        if len(self.label_names) != logits.shape[-1]:
            raise TrtEdgeError(f"the model has {logits.shape[-1]} classes but {len(self.label_names)} label names")
        probs = softmax(logits)
        out = []
        for text, row in zip(texts, probs, strict=True):
            index = int(row.argmax())
            out.append(Prediction(text, self.label_names[index], index,
                                  {n: round(float(p), 6) for n, p in zip(self.label_names, row, strict=True)}))
        return out

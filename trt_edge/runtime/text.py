"""Text classification end to end over any runner: tokenize, run, softmax, label.

The tokenizer and the label names come from the preprocessor folder that travels with the model file
(`trt_edge.tasks.spec.preprocessor_dir`: the `preprocessor` artifact of the stage that wrote the file,
or `preprocessor/` / `tokenizer/` beside it) or given explicitly. The feed is the text task adapter's
`runtime_feed`: it follows the runner's declared inputs (names, int32/int64), so the same code
classifies with ONNX Runtime on a laptop and with TensorRT on a Jetson.
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
from trt_edge.runtime.base import Runner, logits_in_chunks
from trt_edge.tasks.adapter import TaskAdapter
from trt_edge.tasks.text_classification import ADAPTER

TASK: TaskAdapter = ADAPTER  # the task this runtime classifies for


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


def class_names(given: list[str] | None, folder: Path | None, num_labels: int) -> list[str]:
    """`given`, else the folder's label names, else `LABEL_i`; refused when they do not fit the logits."""
    names = given if given is not None else (label_names_for(folder, num_labels) if folder is not None
                                             else [f"LABEL_{i}" for i in range(num_labels)])
    if len(names) != num_labels:
        raise TrtEdgeError(f"the model has {num_labels} classes but {len(names)} label names")
    return names


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
        from trt_edge.tasks.spec import preprocessor_dir

        folder = preprocessor_dir(model_file, tokenizer_dir)
        tokenizer = TASK.spec.preprocessor.load(folder)
        classifier = cls(runner, tokenizer, None, max_length, batch_size)
        classifier._label_folder = folder
        return classifier

    _label_folder: Path | None = None

    def _feed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return TASK.runtime_feed(self.tokenizer, texts, self.runner.inputs(), self.max_length, self.runner.name)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, one row per text, in order."""
        if not texts:
            raise TrtEdgeError("no text to classify")
        return logits_in_chunks(self.runner, list(texts), self.batch_size,
                                self._feed, TASK.spec.output)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        logits = self.logits(texts)
        self.label_names = class_names(self.label_names, self._label_folder, logits.shape[-1])
        probs = softmax(logits)
        out = []
        for text, row in zip(texts, probs, strict=True):
            index = int(row.argmax())
            out.append(Prediction(text, self.label_names[index], index,
                                  {n: round(float(p), 6) for n, p in zip(self.label_names, row, strict=True)}))
        return out

"""The typed task adapter: everything a stage asks of a task, as one interface every task implements.

Stages never compare a modality or task-type string: they get the adapter of the run's task
(`adapter_for(spec)`, or `task_adapter(name)`), call its methods, and read its declared capabilities
(`text_examples`, `builds_from_config`, `has_sequence_axis`) where a choice depends on the task. The
spec (`tasks/spec.py`) stays the one place input names, dtypes and axes are written; the adapter is
the code that reads data and makes those inputs.

Each adapter module (`tasks/text_classification.py`, `tasks/image_classification.py`) defines its
class and binds one instance as `ADAPTER`, annotated `TaskAdapter`, so mypy checks that the task
implements every member below; `adapter_for(spec)` returns that instance. This module sits above
`tasks/spec.py` (the spec names its adapter module as a string, so reading a spec never imports one).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trt_edge.tasks.spec import TaskSpec, task_spec

if TYPE_CHECKING:
    import numpy as np

    from trt_edge.tasks.config import DataConfig, TaskConfig
    from trt_edge.tasks.data import ClassificationData


class Encoded(Protocol):
    """Preprocessed examples: one feature dict per example (model inputs, unpadded for text), the value
    padded positions take, and each example's true length (1 for fixed-size inputs)."""

    features: Any
    pad_token_id: int

    def __len__(self) -> int: ...

    def lengths(self) -> list[int]: ...


class TaskAdapter(Protocol):
    """What every task implements in full (see the module docstring).

    Capabilities are declared, not inferred from names:
      text_examples: the examples are strings read by a tokenizer (the parity and transfer code show
        and deduplicate them as texts; the calibration feed pads them to a length).
      builds_from_config: a model of this task can be built from a bare config with random weights
        (`distill.teacher: {config: ...}`): its preprocessor can be written from the model config.
    """

    spec: TaskSpec
    text_examples: bool
    builds_from_config: bool

    @property
    def has_sequence_axis(self) -> bool:
        """Whether the inputs have a sequence axis (position tables to check against max_length)."""
        ...

    # --- data ---
    def load_data(self, cfg: DataConfig) -> ClassificationData:
        """The labelled examples of `task.data`, split (seeded, stratified)."""
        ...

    def display_examples(self, examples: Sequence[Any]) -> list[str] | None:
        """The examples as the report shows them (texts), or None when they are not shown (images)."""
        ...

    # --- batching and prediction (PyTorch) ---
    def encode(self, preprocessor: Any, examples: Sequence[Any], max_length: int) -> Encoded:
        ...

    def collate(self, features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
        ...

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        ...

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        ...

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[int], num_labels: int,
                 batch_size: int = 64) -> tuple[dict[str, float], np.ndarray]:
        """(metrics with the task's primary metric `spec.metric`, logits)."""
        ...

    def example_scores(self, logits: np.ndarray, labels: Sequence[int]) -> np.ndarray:
        """Per-example scores of the primary metric (1.0 correct, 0.0 wrong), for paired intervals."""
        ...

    # --- export and calibration ---
    def example_inputs(self, model_config: Any, names: Sequence[str], int32_inputs: bool, seed: int = 0,
                       preprocessor: Any = None) -> dict[str, Any]:
        """Traced example tensors by input name."""
        ...

    def feeds(self, preprocessor: Any, examples: Sequence[Any], max_length: int,
              input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """ONNX feeds (numpy) for `examples`, padded to `max_length` where the inputs have a sequence
        axis, and each example's true length (calibration, CPU candidates, comparisons)."""
        ...

    # --- models ---
    def fit_model(self, model: Any, preprocessor: Any, source: str = "the model") -> str | None:
        ...

    def preflight_model(self, folder: Path, preprocessor: Any, trust_remote_code: bool = False) -> str | None:
        ...

    def write_processor_config(self, folder: Path, model_config: Any) -> None:
        """Write the preprocessor of a model built from a config (only where `builds_from_config`)."""
        ...

    # --- runtime (`trt-edge run`) ---
    def runtime_feed(self, preprocessor: Any, examples: Sequence[Any], runner_inputs: Sequence[Any],
                     max_length: int, source: str = "the model") -> dict[str, np.ndarray]:
        """The feed a runner takes for raw examples (texts, decoded images), cast to the runner's
        declared input dtypes (`runner_inputs`: metas with `name` and `dtype`); `source` names the
        runner in errors."""
        ...


def load_task_data(task: TaskConfig) -> ClassificationData:
    """The labelled examples of `task`, loaded by its adapter's `load_data`."""
    return task_adapter(task.type).load_data(task.data)


def adapter_for(spec: TaskSpec) -> TaskAdapter:
    """The task's adapter (its module imported lazily: reading a spec never imports torch)."""
    adapter: TaskAdapter = importlib.import_module(spec.adapter_module).ADAPTER
    return adapter


def task_adapter(name: str | None) -> TaskAdapter:
    """The adapter of task `name` (None: the default task, for callers and records that name none)."""
    return adapter_for(task_spec(name))

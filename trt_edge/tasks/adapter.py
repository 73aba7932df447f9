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

    from trt_edge.stats import GateVerdict
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
      uses_labels: the task trains on labels and is judged against them (classification); False for a
        task judged against a reference model's outputs (sentence embedding: labels, where the data has
        them, only score a kNN classifier).

    Outputs: `predict_logits` gives the task's output per example (logits, or a sentence embedding);
    `score` turns outputs into metrics (`spec.metric` among them where it can be computed; a key `score`,
    where present, picks a training run's best epoch instead of `accuracy`); `judge` makes a stage's
    paired gate of a child model against its parent; `output_loss` is the task part of the distillation
    loss.
    """

    spec: TaskSpec
    text_examples: bool
    builds_from_config: bool
    uses_labels: bool

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

    def score(self, outputs: np.ndarray, labels: Sequence[int], num_labels: int,
              reference: np.ndarray | None = None) -> dict[str, float]:
        """Metrics of the outputs of a set of examples: against the labels (classification), or against
        `reference`, another model's outputs on the same examples (sentence embedding)."""
        ...

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[int], num_labels: int,
                 batch_size: int = 64, reference: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        """(`score` of the model's outputs, the outputs)."""
        ...

    def judge(self, gate: str, compares: str, ref_outputs: np.ndarray, new_outputs: np.ndarray,
              labels: Sequence[int], budget_points: float | None,
              default_budget_points: float | None = None, reference: np.ndarray | None = None) -> GateVerdict:
        """A child model (`new_outputs`) against its parent (`ref_outputs`) on the same examples: the drop
        in points of the task's metric with its 95% interval, judged against the budget (`reference`: the
        outputs both are scored against, for a task judged against a model: the teacher's)."""
        ...

    def output_loss(self, student_out: Any, labels: Any, teacher_outputs: Any, *, alpha: float,
                    temperature: float, neighbour_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
        """(loss, named parts) of the student's task output against the labels and the teacher's outputs;
        `neighbour_weight` weighs a task's in-batch neighbour term (sentence embedding; others ignore it)."""
        ...

    def example_scores(self, logits: np.ndarray, labels: Sequence[int],
                       reference: np.ndarray | None = None) -> np.ndarray:
        """Per-example scores of the primary metric, for paired intervals: 1.0 correct, 0.0 wrong
        (classification), or the recall@10 of `reference`'s neighbours per query (sentence embedding)."""
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

    def example_seconds(self, preprocessor: Any) -> float | None:
        """The seconds of signal one example holds (an audio clip as the feature extractor feeds it), for
        clips/s and the real-time factor (audio seconds per compute second); None where examples are not
        signals in time (texts, images)."""
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

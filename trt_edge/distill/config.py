"""The distill section: teacher, student construction, losses and the training budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trt_edge.configbase import ConfigBase


@dataclass
class TrainConfig(ConfigBase):
    """A training budget, shared by teacher fine-tuning, distillation and sparse recovery.

    epochs (int): passes over the training split. Defaults to 2.
    batch_size (int): examples per optimizer step, split among the processes under `accelerate launch`
        (a multiple of their number), so the trained student does not depend on it. Defaults to 32.
    learning_rate (float): peak AdamW learning rate. Defaults to 5e-5.
    weight_decay (float): AdamW decoupled weight decay (not on biases and LayerNorm). Defaults to 0.01.
    warmup_ratio (float): share of steps with a linear warm-up; then linear decay to 0. Defaults to 0.1.
    max_grad_norm (float): gradient clipping norm; 0 turns it off. Defaults to 1.0.
    early_stop_patience (int): epochs without a better validation accuracy before stopping; 0 is off.
    max_steps (int | None): stop after this many optimizer steps (for smoke runs). Defaults to None.
    group_by_length (bool): batch examples of similar length together (less padding). Defaults to True.
    freeze_embeddings (bool): keep the token embedding table fixed (faster, often as accurate on small
        data sets). Defaults to False.
    """

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    early_stop_patience: int = 0
    max_steps: int | None = None
    group_by_length: bool = True
    freeze_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm < 0 or self.weight_decay < 0 or self.early_stop_patience < 0:
            raise ValueError("max_grad_norm, weight_decay and early_stop_patience must not be negative")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")


@dataclass
class StudentConfig(ConfigBase):
    """How the student is made.

    layers (list[int] | None): teacher layers to keep (0-based). Defaults to every other layer
        (0, 2, 4, ...), as DistilBERT does. Ignored when `model` or `config` is given.
    model (str | None): a separate, smaller pretrained model folder (`demo:NAME` or a path). Its hidden
        width may differ from the teacher's: hidden-state losses then go through a learned projection.
    config (dict | None): a student of the teacher's family described by a config, `{model_type: segformer,
        depths: [1, 1], ...}`, built with random weights and trained by distillation alone: the smaller
        student of a teacher no layer subset can cut (SegFormer's hierarchical encoder) or of one trained
        from scratch (`teacher: {config: ...}`). It takes the teacher's preprocessor: `model_type` (default
        the teacher's), and the image size, channels, vocabulary or mel bins and labels where given, must
        equal the teacher's (each is refused in one line, before any training); those it leaves out are
        the teacher's. Any task. Defaults to None.
    """

    layers: list[int] | None = None
    model: str | None = None
    config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.model and self.config is not None:
            raise ValueError("give one of student.model (a folder) and student.config (an architecture), not both")


@dataclass
class TransferConfig(ConfigBase):
    """A transfer set: unlabelled in-domain texts or images the teacher scores, so the student learns from
    more examples than the labelled split holds (the labels are used only where they exist).

    source (str | None): `unused` takes the examples of the task's own data source that no labelled split
        uses (texts: every row, whatever its label or filter value; images: those beyond the split sizes);
        a CSV/TSV/JSONL file, a folder of `.txt` files, or `demo:NAME` takes that source's texts (labels
        ignored); for images, a folder of PNG/JPEG files (sub-folders and labels ignored). None turns it
        off. Defaults to None.
    text_column (str | None): the text column of a table source; None uses task.data.text_column.
    max_examples (int | None): cap on the transfer examples, drawn with the task's seed. Defaults to 20000.
    """

    source: str | None = None
    text_column: str | None = None
    max_examples: int | None = 20000

    def __post_init__(self) -> None:
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"transfer.max_examples must be at least 1, got {self.max_examples}")


def check_kd_weights(temperature: float, alpha: float) -> None:
    """The logit-KD settings every distillation loop shares (distill, 2:4 and width recovery)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


@dataclass
class DistillConfig(ConfigBase):
    """Knowledge distillation from a teacher into a student.

    teacher (str | dict): the teacher model folder, `demo:minilm` or a path; or, for image tasks,
        `{config: {model_type: vit, hidden_size: ..., ...}}`: that architecture with random weights,
        trained from scratch on the task (`teacher_train`) when no pretrained weights exist. Defaults to
        `demo:minilm`.
    teacher_finetune (str): `auto` fine-tunes the teacher when it has no trained head for the task,
        `always` fine-tunes anyway, `never` refuses an untrained head. Defaults to `auto`.
    teacher_train (TrainConfig): budget of that fine-tuning.
    student (StudentConfig): how the student is built.
    train (TrainConfig): budget of the distillation (and of the hard-label ablation).
    temperature (float): softening of both logit sets; the KL term is scaled by T². Defaults to 2.0.
    alpha (float): weight of the KL term; the hard-label cross-entropy gets 1 - alpha. A sentence-embedding
        task has no labels: its loss is the MSE + cosine to the teacher's vectors alone, and alpha is not
        used. Defaults to 0.5.
    neighbour_weight (float): sentence embedding only: weight of the in-batch neighbour term (relational
        KD: the KL between the teacher's and the student's softened cosine similarities over the batch)
        added to the vector loss. Defaults to 0 (off: on the demo tweets it lowered the student's recall,
        benchmarks/RESULTS.md).
    hidden_weight (float): weight of the hidden-state MSE on mapped layers. Defaults to 0 (off).
    attention_weight (float): weight of the attention-distribution KL on mapped layers (MiniLM-style;
        needs equal head counts). Defaults to 0 (off).
    transfer (TransferConfig): unlabelled in-domain texts scored by the teacher, added to the
        distillation data (off by default).
    ablation (bool): also train the same student on hard labels only, on the same labelled data and for
        the same number of optimizer steps, the figure that shows distillation pays. Defaults to True.
    cache_dir (str | None): where teacher logits are cached, keyed by model and data hashes. Defaults to
        `$TRT_EDGE_CACHE` or `~/.cache/trt-edge`.
    trust_remote_code (bool): let transformers run code shipped with a model folder. Defaults to False.
    seed (int): seed of initialisation and shuffling. Defaults to 0.
    """

    teacher: Any = "demo:minilm"
    teacher_finetune: Literal["auto", "always", "never"] = "auto"
    teacher_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, learning_rate=5e-5))
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, learning_rate=1e-4))
    temperature: float = 2.0
    alpha: float = 0.5
    neighbour_weight: float = 0.0
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    transfer: TransferConfig = field(default_factory=TransferConfig)
    ablation: bool = True
    cache_dir: str | None = None
    trust_remote_code: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_kd_weights(self.temperature, self.alpha)
        if self.hidden_weight < 0 or self.attention_weight < 0 or self.neighbour_weight < 0:
            raise ValueError("hidden_weight, attention_weight and neighbour_weight must not be negative")
        if isinstance(self.teacher, dict):
            if set(self.teacher) != {"config"} or not isinstance(self.teacher["config"], dict):
                raise ValueError("teacher must be a model folder or {config: {model_type: ..., ...}}, got "
                                 f"keys {sorted(self.teacher)}")
        elif not isinstance(self.teacher, str):
            raise ValueError(f"teacher must be a model folder or {{config: {{...}}}}, got {self.teacher!r}")

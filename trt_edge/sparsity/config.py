"""The prune section: which layers get 2:4, the permutation search, and the recovery fine-tuning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from trt_edge.configbase import ConfigBase
from trt_edge.distill.config import TrainConfig

# Linear layers inside a transformer block (`encoder.layer.3.`, `transformer.layer.0.`, `layers.11.`,
# ALBERT's shared `albert_layers.0.`):
# attention Q/K/V/output and the feed-forward pair. Heads, pooler and embeddings are outside any block.
DEFAULT_INCLUDE = [r"(^|[._])(layer|layers|block|blocks|h)\.\d+(\.|$)"]
DEFAULT_EXCLUDE = [r"(^|\.)(classifier|pooler|pre_classifier|score|lm_head|qa_outputs)(\.|$)", r"embeddings?"]


def _check_patterns(name: str, patterns: list[str]) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{name}: {pattern!r} is not a valid regular expression ({exc})") from exc


@dataclass
class PruneConfig(ConfigBase):
    """2:4 structured sparsity: magnitude masks, channel permutations, sparse recovery.

    method (str): how masks are chosen; `magnitude` keeps the 2 largest |w| of every 4. Defaults to
        `magnitude`.
    include (list[str]): regular expressions (searched in the module name); a Linear must match one.
        Defaults to every Linear inside a transformer block.
    exclude (list[str]): regular expressions that take a Linear out again. Defaults to the classifier
        head, pooler and embeddings.
    permute (bool): search channel permutations (FFN intermediate, value channels per head) that raise
        the kept magnitude, before pruning. Defaults to True.
    permutation_seconds (float): time budget of the search per layer. Defaults to 3.0.
    permutation_seed (int): seed of the search's random group pairings. Defaults to 0.
    recover (bool): fine-tune the pruned model with masks enforced. Defaults to True.
    schedule (str): `oneshot` prunes to 2:4 before training; `gradual` reaches 2:4 in `gradual_steps`
        steps over the first `gradual_fraction` of training (the cheapest groups first). Defaults to
        `oneshot`.
    gradual_steps (int): pruning steps of the gradual schedule. Defaults to 4.
    gradual_fraction (float): share of training (capped at the first epoch) over which the gradual
        schedule prunes. Defaults to 0.3.
    train (TrainConfig): budget of the recovery fine-tuning. Defaults to 2 epochs at 1e-4, embeddings frozen
        (they are not pruned; freezing them halves the optimizer's work).
    teacher (str | None): teacher for sparse distillation when `--model` is a bare model folder (a distill
        stage folder brings its own teacher). None turns distillation off there. Defaults to None.
    temperature (float): KD temperature. Defaults to 2.0.
    alpha (float): weight of the KD term; the task cross-entropy gets 1 - alpha. Defaults to 0.5.
    max_accuracy_drop (float | None): fail (exit 1) when the sparse model's test accuracy is more than
        this many points below the dense model's. Defaults to None (report only).
    cache_dir (str | None): cache of teacher logits (shared with distill). Defaults to the kit's cache.
    trust_remote_code (bool): let transformers run code shipped with a model folder. Defaults to False.
    seed (int): seed of the recovery training. Defaults to 0.
    """

    method: Literal["magnitude"] = "magnitude"
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    permute: bool = True
    permutation_seconds: float = 3.0
    permutation_seed: int = 0
    recover: bool = True
    schedule: Literal["oneshot", "gradual"] = "oneshot"
    gradual_steps: int = 4
    gradual_fraction: float = 0.3
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=2, learning_rate=1e-4, freeze_embeddings=True))
    teacher: str | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    max_accuracy_drop: float | None = None
    cache_dir: str | None = None
    trust_remote_code: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_patterns("include", self.include)
        _check_patterns("exclude", self.exclude)
        if not self.include:
            raise ValueError("include is empty: give at least one layer pattern")
        if self.permutation_seconds <= 0:
            raise ValueError(f"permutation_seconds must be positive, got {self.permutation_seconds}")
        if self.gradual_steps < 1:
            raise ValueError(f"gradual_steps must be at least 1, got {self.gradual_steps}")
        if not 0 < self.gradual_fraction <= 1:
            raise ValueError(f"gradual_fraction must be in (0, 1], got {self.gradual_fraction}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise ValueError(f"max_accuracy_drop must not be negative, got {self.max_accuracy_drop}")

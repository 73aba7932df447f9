"""The prune section: which layers get 2:4, the permutation search, and the recovery fine-tuning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from trt_edge.configbase import ConfigBase
from trt_edge.distill.config import TrainConfig, TransferConfig, check_kd_weights

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
class RecoveryConfig(ConfigBase):
    """What both prune methods share: the distillation that wins the accuracy back, and its gate.

    The fields are documented in the methods' configs (`PruneConfig`, `WidthConfig`)."""

    recover: bool = True
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=2, learning_rate=1e-4, freeze_embeddings=True))
    transfer: TransferConfig = field(default_factory=TransferConfig)
    teacher: str | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    neighbour_weight: float = 0.0
    max_accuracy_drop: float | None = None
    cache_dir: str | None = None
    trust_remote_code: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_kd_weights(self.temperature, self.alpha)
        if self.neighbour_weight < 0:
            raise ValueError(f"neighbour_weight must not be negative, got {self.neighbour_weight}")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise ValueError(f"max_accuracy_drop must not be negative, got {self.max_accuracy_drop}")


@dataclass
class PruneConfig(RecoveryConfig):
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
    transfer (TransferConfig): unlabelled in-domain examples scored by the teacher, added to the recovery
        (as `distill.transfer`; needs a teacher). Off by default.
    teacher (str | None): teacher for sparse distillation when `--model` is a bare model folder (a distill
        stage folder brings its own teacher). None turns distillation off there. Defaults to None.
    temperature (float): KD temperature. Defaults to 2.0.
    alpha (float): weight of the KD term; the task cross-entropy gets 1 - alpha. A sentence-embedding task
        has no labels: 0 recovers toward the dense student's own vectors, > 0 toward the teacher's (on the
        demo tweets the teacher's lost less of the teacher's neighbours: benchmarks/RESULTS.md). Defaults
        to 0.5.
    neighbour_weight (float): sentence embedding only: weight of the in-batch neighbour term (relational
        KD on the batch's cosine similarities) added to the recovery's vector loss. Defaults to 0 (off).
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
    schedule: Literal["oneshot", "gradual"] = "oneshot"
    gradual_steps: int = 4
    gradual_fraction: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
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


@dataclass
class WidthConfig(RecoveryConfig):
    """Structured width pruning: whole heads, feed-forward neurons and hidden channels removed, then recovered.

    keep_heads (float): share of each block's attention heads kept (rounded so the attention width stays
        a multiple of 8, at least one head). Defaults to 0.5.
    keep_ffn (float): share of each block's feed-forward neurons kept (rounded up to a multiple of 8).
        Defaults to 0.5.
    keep_hidden (float): share of the hidden size (the residual stream: embeddings, every LayerNorm, every
        block's input and output, the head's input) kept, ranked by LayerNorm output magnitude; rounded up
        to a multiple of 8 and of the head count where the family derives its head size from the hidden
        size. Changes the function more than heads or neurons do (every LayerNorm then normalizes over
        fewer channels), so recovery matters more. Defaults to 1.0 (the hidden size is kept).
    steps (int): iterations of the schedule: each removes its share of what is to go (importance measured
        again on the recovered model), then recovers by distillation. Defaults to 2.
    importance (str): `activation`: mean activation magnitude on calibration texts (see docs/sparsity.md
        for why not a Taylor score). Defaults to `activation`.
    calibration_samples (int): training texts the importance is measured on. Defaults to 512.
    target_speedup (float | None): pick `keep_heads`/`keep_ffn` instead: the least pruned of `candidates`
        whose exported fp32 ONNX is at least this many times faster than the teacher's, timed side by side
        in ONNX Runtime on this machine at `target_shapes`. None uses the fixed shares. Defaults to None.
    candidates (list[list[float]]): [keep_heads, keep_ffn] pairs, or [keep_heads, keep_ffn, keep_hidden]
        triples, the target mode measures (a pair keeps `keep_hidden`). Defaults to a grid from [1, 1] (the
        dense student) down to [0.25, 0.25].
    target_shapes (list[list[int]]): [batch, sequence] points the target must hold at (the slowest ratio
        counts). Defaults to [[1, 64], [1, 128]].
    target_rounds (int): interleaved timing rounds per candidate and shape. Defaults to 3.
    recover (bool): distill after every pruning step. Defaults to True.
    train (TrainConfig): budget of each step's recovery. Defaults to 2 epochs at 1e-4, embeddings frozen.
    transfer (TransferConfig): unlabelled in-domain examples scored by the teacher, added to each step's
        recovery (as `distill.transfer`; needs a teacher). Off by default.
    teacher (str | None): teacher when `--model` is a bare folder (a distill stage folder brings its own).
        Defaults to None.
    temperature (float): KD temperature. Defaults to 2.0.
    alpha (float): weight of the KD term; the task cross-entropy gets 1 - alpha. A sentence-embedding task
        has no labels: 0 recovers toward the dense student's own vectors, > 0 toward the teacher's (on the
        demo tweets the teacher's lost less of the teacher's neighbours: benchmarks/RESULTS.md). Defaults
        to 0.5.
    neighbour_weight (float): sentence embedding only: weight of the in-batch neighbour term (relational
        KD on the batch's cosine similarities) added to the recovery's vector loss. Defaults to 0 (off).
    max_accuracy_drop (float | None): fail (exit 1) when the pruned model's test accuracy is more than this
        many points below the dense model's. Defaults to None (report only).
    cache_dir (str | None): cache of teacher logits (shared with distill). Defaults to the kit's cache.
    trust_remote_code (bool): let transformers run code shipped with a model folder. Defaults to False.
    seed (int): seed of the recovery training. Defaults to 0.
    """

    keep_heads: float = 0.5
    keep_ffn: float = 0.5
    keep_hidden: float = 1.0
    steps: int = 2
    importance: Literal["activation"] = "activation"
    calibration_samples: int = 512
    target_speedup: float | None = None
    candidates: list[list[float]] = field(default_factory=lambda: [
        [1.0, 1.0], [1.0, 0.75], [0.75, 0.75], [0.75, 0.5], [0.5, 0.5], [0.5, 0.375], [0.5, 0.25],
        [0.25, 0.25]])
    target_shapes: list[list[int]] = field(default_factory=lambda: [[1, 64], [1, 128]])
    target_rounds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("keep_heads", "keep_ffn", "keep_hidden"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.calibration_samples < 1:
            raise ValueError(f"calibration_samples must be at least 1, got {self.calibration_samples}")
        if self.target_speedup is not None and self.target_speedup <= 0:
            raise ValueError(f"target_speedup must be positive, got {self.target_speedup}")
        if not self.candidates or any(len(c) not in (2, 3) or not all(0 < v <= 1 for v in c)
                                      for c in self.candidates):
            raise ValueError("candidates must be [keep_heads, keep_ffn] pairs or [keep_heads, keep_ffn, keep_hidden] "
                             "triples, each share in (0, 1]")
        if any(len(s) != 2 or min(s) < 1 for s in self.target_shapes) or not self.target_shapes:
            raise ValueError("target_shapes must be [batch, sequence] pairs of positive integers")
        if self.target_rounds < 1:
            raise ValueError(f"target_rounds must be at least 1, got {self.target_rounds}")


@dataclass(frozen=True)
class PruneMethod:
    """One prune method: the config section it reads, its config class and its stage ("module:function").

    The registry of methods of `trt-edge prune --method`; the pipeline runs `width` as its own stage
    (folder `width/`) before `prune` (2:4), so each step keeps its folder, metrics and report row."""

    section: str
    config: type[ConfigBase]
    stage: str


PRUNE_METHODS: dict[str, PruneMethod] = {
    "2:4": PruneMethod("prune", PruneConfig, "trt_edge.sparsity.stage:run"),
    "width": PruneMethod("width", WidthConfig, "trt_edge.sparsity.width_stage:run"),
}

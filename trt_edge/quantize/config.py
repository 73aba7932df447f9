"""The calibrate section: calibration-set recipe, calibrator, Q/DQ placement, accuracy gate, cache target.

One dataclass per concern, composed into `CalibrateConfig`; every key is validated here with
`ValueError` so a bad YAML value fails before a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trt_edge.configbase import ConfigBase
from trt_edge.distill.config import TrainConfig, check_kd_weights

# The CPU candidates `cpu_target` knows how to make, in the order it makes them. Written here, in the config
# module, so the config can check `cpu.candidates` without importing the stage code above it.
CANDIDATES = ("fp32", "fused", "dynamic-int8", "fused-dynamic-int8", "u8s8-qdq")

Method = Literal["entropy", "max", "percentile", "mse"]


@dataclass
class CalibrationDataConfig(ConfigBase):
    """How the calibration set is drawn (a recipe; the produced `.npz` is data, hashed in stage.json).

    samples (int): examples drawn from the split, stratified by label. Defaults to 512.
    split (str): the split they come from; never the test split the gate measures. Defaults to `train`.
    max_length (int | None): tokens per example after truncation; the stored arrays are padded to it.
        Defaults to None (the task's `max_length`).
    length_buckets (list[int]): sequence lengths calibration batches are trimmed to: an example runs
        padded to the smallest bucket that holds it, so activation ranges see the same length mix as
        the data instead of one padded width. Defaults to [16, 32, 64, 128] (capped by max_length).
    batch_size (int): examples per calibration batch (also the TensorRT calibrator's batch). Defaults to 32.
    seed (int | None): seed of the stratified draw. Defaults to None (the data config's seed).
    path (str | None): an existing calibration `.npz` (from an earlier run) to reuse instead of drawing
        one; it must hold at least `samples` examples with the model's input names. Defaults to None.
    """

    samples: int = 512
    split: Literal["train", "validation"] = "train"
    max_length: int | None = None
    length_buckets: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    batch_size: int = 32
    seed: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"data.samples must be at least 1, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be positive, got {self.batch_size}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"data.max_length must be at least 2, got {self.max_length}")
        if any(b < 2 for b in self.length_buckets):
            raise ValueError(f"data.length_buckets must be lengths >= 2, got {self.length_buckets}")


@dataclass
class CalibratorConfig(ConfigBase):
    """How an activation's range (amax) is chosen from what it took on the calibration set.

    method (str): `entropy` (KL divergence, TensorRT's EntropyCalibration2 semantics), `max`,
        `percentile` or `mse`. Defaults to `entropy`.
    num_bins (int): bins of the |x| histogram (entropy, percentile, mse). TensorRT uses 2048; ONNX
        Runtime's default of 128 makes entropy equal max. Defaults to 2048.
    percentile (float): the percentile of |x| kept by `percentile`. Defaults to 99.99.
    entropy_stride (int): step of the entropy threshold search in bins (1 = every bin, as TensorRT).
        Defaults to 1.
    """

    method: Method = "entropy"
    num_bins: int = 2048
    percentile: float = 99.99
    entropy_stride: int = 1

    def __post_init__(self) -> None:
        if self.num_bins < 256:
            raise ValueError(f"calibrator.num_bins must be at least 256 (128 quantized bins), got {self.num_bins}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"calibrator.percentile must be in (50, 100], got {self.percentile}")
        if self.entropy_stride < 1:
            raise ValueError(f"calibrator.entropy_stride must be at least 1, got {self.entropy_stride}")


@dataclass
class PlacementConfig(ConfigBase):
    """Where Q/DQ pairs go in `model.int8.onnx`.

    op_types (list[str]): weighted ops whose inputs are quantized. Defaults to MatMul and Gemm.
    quantize_bmm (bool): also quantize both inputs of the two attention batched matmuls (Q·Kᵀ and
        softmax·V), for TensorRT's fused INT8 attention. Defaults to False.
    exclude (list[str]): node names, or regular expressions matched in full against node names, left
        in float. Defaults to [].
    """

    op_types: list[str] = field(default_factory=lambda: ["MatMul", "Gemm"])
    quantize_bmm: bool = False
    exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [op for op in self.op_types if op not in ("MatMul", "Gemm")]
        if unknown:
            raise ValueError(f"placement.op_types supports MatMul and Gemm, got {unknown}")


@dataclass
class GateConfig(ConfigBase):
    """The accuracy gate and the mixed-precision fallback.

    budget (float): largest accepted loss of INT8 accuracy against fp32 on the test split, in points
        (1.0 = one percentage point). Defaults to 1.0.
    mixed_precision (bool): when the budget is exceeded, leave the most sensitive layers in float until
        it holds. Defaults to True.
    max_float_layers (int): most layers left in float before giving up. Defaults to 8.
    sensitivity_split (str): split the per-layer sensitivity is measured on (not the gated test split,
        so the choice does not fit the test set). Defaults to `validation`.
    fail (bool): raise a gate failure (exit 1) when the budget cannot be met; off records it only.
        Defaults to True.
    """

    budget: float = 1.0
    mixed_precision: bool = True
    max_float_layers: int = 8
    sensitivity_split: Literal["train", "validation", "test"] = "validation"
    fail: bool = True

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError(f"gate.budget must not be negative, got {self.budget}")
        if self.max_float_layers < 0:
            raise ValueError(f"gate.max_float_layers must not be negative, got {self.max_float_layers}")


@dataclass
class CpuTargetConfig(ConfigBase):
    """The CPU artifact (target `cpu`): candidates built from the same calibration set, the fastest within
    the accuracy budget kept (see `trt_edge/quantize/cpu_target.py`).

    candidates (list[str]): which to try, from `fp32`, `fused`, `dynamic-int8`, `fused-dynamic-int8`,
        `u8s8-qdq`. Defaults to all.
    budget (float): largest accuracy loss against the fp32 student on the test split, in points.
        Defaults to 1.0.
    runs (int): timed runs per candidate and shape (interleaved, batch 1, sequence 64 and 128).
        Defaults to 60.
    calibration_samples (int): calibration examples for the static U8S8 candidate (the first ones of the
        calibration set). Defaults to 128.
    """

    candidates: list[str] = field(default_factory=lambda: list(CANDIDATES))
    budget: float = 1.0
    runs: int = 60
    calibration_samples: int = 128

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown CPU candidate {unknown[0]!r}; known: {', '.join(CANDIDATES)}")
        if "fp32" not in self.candidates:
            raise ValueError("the CPU candidates must include fp32, the reference every other is measured against")
        if self.budget < 0 or self.runs < 1 or self.calibration_samples < 1:
            raise ValueError("cpu.budget must not be negative; cpu.runs and cpu.calibration_samples must be positive")


@dataclass
class CalibrateConfig(ConfigBase):
    """INT8 calibration of an exported ONNX model (section `calibrate`).

    data (CalibrationDataConfig): the calibration-set recipe.
    calibrator (CalibratorConfig): how activation ranges are chosen.
    placement (PlacementConfig): where Q/DQ pairs go.
    gate (GateConfig): the accuracy budget and mixed-precision fallback.
    trt_version (str | None): deprecated: set `target.trt_version` (the stage fills this key from the
        `target:` section). A calibration cache for implicit INT8 is written for 8.x-10.x only (TensorRT
        11 removed implicit calibration; `model.int8.onnx` serves every version). Defaults to None.
    cache_tensors (str): `all` writes a scale for every float activation of the fp32 graph (what
        implicit calibration needs), `quantized` only for the inputs the Q/DQ model quantizes.
        Defaults to `all`.
    tokenizer (str | None): the tokenizer folder; defaults to the one found next to the ONNX file or
        in the model folder the export stage recorded.
    latency_runs (int): timed ONNX Runtime runs per model for the latency metrics (0 = skip).
        Defaults to 60.
    targets (list[str]): artifacts to produce: `tensorrt` (the Q/DQ `model.int8.onnx` and the calibration
        cache) and/or `cpu` (`model.cpu.onnx`, the fastest ONNX Runtime CPU artifact within budget).
        Defaults to [tensorrt].
    cpu (CpuTargetConfig): how the CPU artifact is chosen.
    """

    data: CalibrationDataConfig = field(default_factory=CalibrationDataConfig)
    calibrator: CalibratorConfig = field(default_factory=CalibratorConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    trt_version: str | None = None
    cache_tensors: Literal["all", "quantized"] = "all"
    tokenizer: str | None = None
    latency_runs: int = 30
    targets: list[Literal["tensorrt", "cpu"]] = field(default_factory=lambda: ["tensorrt"])
    cpu: CpuTargetConfig = field(default_factory=CpuTargetConfig)

    def __post_init__(self) -> None:
        from trt_edge.trt_version import TrtVersion

        if self.trt_version is not None:
            TrtVersion.config_value(self.trt_version)
        if self.latency_runs < 0:
            raise ValueError(f"latency_runs must not be negative, got {self.latency_runs}")
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets must be distinct targets (tensorrt, cpu), at least one; got {self.targets}")


@dataclass
class QatTrainConfig(TrainConfig):
    """The QAT fine-tune's budget: `TrainConfig`'s keys, with defaults for a short fine-tune of a trained
    model.

    epochs (int): passes over the training split. Defaults to 1.
    batch_size (int): examples per optimizer step. Defaults to 32.
    learning_rate (float): peak AdamW learning rate, of the weights and of the learned scales. Defaults to 1e-5.
    weight_decay (float): AdamW decoupled weight decay (not on biases, LayerNorm and scales). Defaults to 0.01.
    warmup_ratio (float): share of steps with a linear warm-up; then linear decay to 0. Defaults to 0.
    max_grad_norm (float): gradient clipping norm; 0 turns it off. Defaults to 1.0.
    early_stop_patience (int): epochs without a better validation score before stopping; 0 is off.
    max_steps (int | None): stop after this many optimizer steps (for smoke runs). Defaults to None.
    group_by_length (bool): batch examples of similar length together (less padding). Defaults to True.
    freeze_embeddings (bool): keep the token embedding table fixed. Defaults to True.
    """

    epochs: int = 1
    learning_rate: float = 1e-5
    warmup_ratio: float = 0.0
    freeze_embeddings: bool = True


@dataclass
class QatConfig(ConfigBase):
    """Quantization-aware distillation after calibration (section `qat`, stage `qat`).

    The model is fake-quantized exactly where the calibrate stage put Q/DQ (every planned layer, no float
    fallback), starting from its ranges, and fine-tuned to match its own fp32 outputs (the fp32 model is
    the teacher: QAD); the result is exported as Q/DQ ONNX like PTQ's. See docs/quantize.md.

    when (str): `auto` runs it when post-training INT8 needs it: its drop against fp32 exceeds `trigger`,
        or it kept layers in float to pass its gate; `always` runs it; `never` passes PTQ's model on.
        Defaults to `auto`.
    trigger (float): PTQ drop, in points against its fp32 input (before the float fallback), above which
        `auto` runs QAT. Defaults to 0.5.
    learn_scales (bool): learn the activation scales (LSQ) from their PTQ values; off keeps PTQ's ranges
        and trains the weights only. Defaults to False: over 3 seeds frozen scales did as well on the text
        demo (+0.16 vs +0.13 points from fp32) and better on the vision demo (0.00 vs +0.08), see
        benchmarks/RESULTS.md (issue 31).
    train (TrainConfig): the fine-tuning budget: short and at a low learning rate, since it starts from a
        trained model. Defaults to 1 epoch at 1e-5, no warm-up, embeddings frozen.
    alpha (float): weight of the distillation term against the fp32 model's logits (the task loss on the
        labels gets 1 - alpha). Defaults to 1.0.
    temperature (float): distillation temperature. Defaults to 1.0.
    budget (float): largest accepted loss of the QAT INT8 model against its fp32 input on the test split,
        in points; the deployed model is QAT's when it passes with every layer INT8. Defaults to 1.0.
    seed (int): shuffling seed of the fine-tune. Defaults to 0.
    """

    when: Literal["auto", "always", "never"] = "auto"
    trigger: float = 0.5
    learn_scales: bool = False
    train: QatTrainConfig = field(default_factory=QatTrainConfig)
    alpha: float = 1.0
    temperature: float = 1.0
    budget: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_kd_weights(self.temperature, self.alpha)
        if self.trigger < 0 or self.budget < 0:
            raise ValueError("qat.trigger and qat.budget must not be negative")

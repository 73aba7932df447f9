"""The export section: how a Hugging Face folder becomes `model.onnx`, and how parity is judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from trt_edge.configbase import ConfigBase
from trt_edge.errors import TrtEdgeError

if TYPE_CHECKING:
    from trt_edge.target import TargetConfig

# The opsets the kit has checked end to end: TensorRT 8.5 reads opset <= 17, 10.x/11.x read newer ones,
# but 17 is the common floor every supported JetPack imports.
MIN_OPSET = 17
MAX_OPSET = 21


@dataclass
class ExportConfig(ConfigBase):
    """ONNX export, clean-up and the PyTorch-vs-ONNX Runtime parity gate.

    opset (int): ONNX opset of `model.onnx`. 17 is read by every TensorRT from 8.5 on. Defaults to 17.
    exporter (str): `auto` tries `torch.onnx.export(dynamo=True)` and falls back to the TorchScript
        exporter when it fails; `dynamo` or `torchscript` force one. Defaults to `auto`.
    int32_inputs (bool): declare the token inputs int32 (TensorRT prefers it and casts int64 anyway);
        the cast to int64 for the embedding lookup happens inside the graph. Defaults to False.
    simplify (bool): constant folding and simplification with onnxslim, then shape inference.
        Defaults to True.
    decompose_layernorm (bool | str): write LayerNormalization as primitive ops (ReduceMean, Sub, Sqrt,
        ...), which TensorRT 8.5 (JetPack 5.1) needs: it has no LayerNormalization importer. `auto` is on
        exactly where the `target:` TensorRT lacks that importer (per the lint tables), off with no target
        TensorRT; `false` for such a target is refused. stage.json records what it resolved to.
        Defaults to `auto`.
    fp16 (bool): also write `model.fp16.onnx` (weights and math in fp16, inputs and `logits` kept fp32
        at the boundary). Defaults to False.
    atol (float): largest absolute logit difference allowed between PyTorch and ONNX Runtime (fp32).
        Defaults to 1e-4.
    rtol (float | None): largest difference relative to the row's largest logit; None does not gate
        on it (it is still reported). Defaults to None.
    min_argmax_agreement (float): share of examples whose predicted class must agree. Defaults to 1.0.
    fp16_atol (float): the absolute tolerance of the fp16 variant. Defaults to 5e-2.
    fp16_min_argmax_agreement (float): the agreement the fp16 variant must reach. Defaults to 0.98.
    parity_split (str): the split whose examples parity runs on. Defaults to `test`.
    parity_max_examples (int | None): cap on those examples (None: the whole split). Defaults to None.
    parity_batch_sizes (list[int]): batch sizes checked with fixed-length padding, besides the whole
        split at its own lengths. Defaults to [1, 8].
    parity_sequence_lengths (list[int]): padded sequence lengths checked. Defaults to [16, 128].
    fuse_attention (bool): also write `model.fused.onnx` with the attention subgraphs replaced by the
        kit's fused attention plugin node (needs `trt_edge.plugins`). Layers the node cannot express
        (disentangled or rotary attention, sliding windows, ...) stay unfused and are listed with their
        cause in stage.json; when no layer can be fused the plain export is kept without
        `model.fused.onnx`. Defaults to False.
    fuse_attention_strict (bool): with `fuse_attention`, fail (exit 2) when any attention layer stays
        unfused, before the parity run. Defaults to False.
    lint (bool): lint the export against the `target:` TensorRT version (warnings are recorded in
        stage.json, errors are logged). Defaults to True.
    lint_trt (str | None): deprecated: set `target.trt_version` instead (still honoured, with a warning).
        Defaults to None.
    trust_remote_code (bool): let transformers run code shipped with the model folder. Defaults to False.
    """

    opset: int = 17
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto"
    int32_inputs: bool = False
    simplify: bool = True
    decompose_layernorm: bool | Literal["auto"] = "auto"
    fp16: bool = False
    atol: float = 1e-4
    rtol: float | None = None
    min_argmax_agreement: float = 1.0
    fp16_atol: float = 5e-2
    fp16_min_argmax_agreement: float = 0.98
    parity_split: Literal["train", "validation", "test"] = "test"
    parity_max_examples: int | None = None
    parity_batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    parity_sequence_lengths: list[int] = field(default_factory=lambda: [16, 128])
    fuse_attention: bool = False
    fuse_attention_strict: bool = False
    lint: bool = True
    lint_trt: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ValueError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {self.opset}")
        if self.atol <= 0 or self.fp16_atol <= 0:
            raise ValueError("atol and fp16_atol must be positive")
        if self.rtol is not None and self.rtol <= 0:
            raise ValueError(f"rtol must be positive or null, got {self.rtol}")
        for name in ("min_argmax_agreement", "fp16_min_argmax_agreement"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.parity_max_examples is not None and self.parity_max_examples < 1:
            raise ValueError(f"parity_max_examples must be at least 1, got {self.parity_max_examples}")
        if not self.parity_batch_sizes or any(b < 1 for b in self.parity_batch_sizes):
            raise ValueError(f"parity_batch_sizes must be positive integers, got {self.parity_batch_sizes}")
        if not self.parity_sequence_lengths or any(s < 2 for s in self.parity_sequence_lengths):
            raise ValueError(f"parity_sequence_lengths must be at least 2, got {self.parity_sequence_lengths}")

    def layernorm_decomposed(self, target: TargetConfig) -> bool:
        """`decompose_layernorm` for `target`: `auto` decomposes exactly where the target TensorRT's parser
        lacks a LayerNormalization importer (its lint table); an explicit `false` there is refused, since
        that ONNX would not import. With no target TensorRT (no version, no JetPack) auto keeps the op."""
        if self.decompose_layernorm is True:
            return True
        if not (target.trt_version or target.jetpack):
            return False
        from trt_edge.export.lint import imports_op

        trt = target.tensorrt_text()
        if imports_op(trt, "LayerNormalization"):
            return False
        if self.decompose_layernorm is False:
            raise TrtEdgeError(f"export.decompose_layernorm is false but the target TensorRT {trt} has no "
                               "LayerNormalization importer: set it to auto or true (or target a newer TensorRT)")
        return True

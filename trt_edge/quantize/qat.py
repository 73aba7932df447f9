"""Fake quantization in PyTorch exactly where the TensorRT Q/DQ placement puts Q/DQ, and back to Q/DQ ONNX.

Quantization-aware distillation (QAD) fine-tunes the model with the INT8 rounding in its forward pass, so
the weights learn to live with it. Its value depends on one thing: the fake-quantized PyTorch forward must
be the graph TensorRT (and ONNX Runtime) will run. So nothing here decides *where* to quantize: the
placement of `trt_edge.quantize.placement` (the one the calibrate stage applied) is read from the fp32
ONNX the model was exported to, and each planned node is bound to the PyTorch module whose weight it
holds (matched by value, so renamed or transposed initializers do not matter):

- every planned MatMul/Gemm's activation input gets a per-tensor symmetric quantizer (zero point 0,
  [-128, 127]), one per ONNX tensor: Q, K and V projections that read one tensor share one quantizer,
  as they share one Q/DQ pair in the graph;
- every planned weight is fake-quantized per output channel with scale max|W| / 127, recomputed from the
  weight at every step, which is what `placement.weight_scales` writes at export;
- activation scales start from the PTQ amax and are learned (LSQ, Esser et al. 2020: the gradient of the
  rounding w.r.t. the step size, `torch._fake_quantize_learnable_per_tensor_affine`) or frozen.

Why not NVIDIA ModelOpt or `torch.ao` QAT: ModelOpt inserts its quantizers by module type with its own
rules (input and output quantizers, BMM quantizers, its own ONNX export), so its Q/DQ graph is not the
placement the calibrate stage audits and the gate measured; mapping its choices back onto ours would be
more code than this module. `torch.ao.quantization`'s QAT flow is deprecated (moved to torchao) and its
observers and fused modules again pick their own placement. The ATen fake-quant kernels used here are
the ones both build on, with round-half-to-even like ONNX's QuantizeLinear.

After training, `remove` restores the plain float modules (parameter names never change, so the 2:4 masks
and `save_pretrained` keep working), the model is exported to fp32 ONNX as any student is, and
`qdq_model` inserts the Q/DQ pairs with the learned activation ranges through the same
`placement.quantize_model` the calibrate stage uses: one code path writes Q/DQ.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.calibrators import QMAX
from trt_edge.quantize.placement import Placement, constant_tensors, quantize_model

QMIN = -int(QMAX) - 1  # -128: ONNX QuantizeLinear saturates int8 to [-128, 127]
SUBMODULE = "trt_edge_qat"  # where the activation quantizers hang in the model (so training sees their scales)


class ActivationQuantizer(torch.nn.Module):
    """Per-tensor symmetric INT8 fake quantization of one ONNX activation tensor.

    The scale is kept positive by taking its absolute value (LSQ can push a step size through zero on a
    bad step; a negative scale would flip the tensor's sign).
    """

    def __init__(self, amax: float, learn: bool) -> None:
        super().__init__()
        if not np.isfinite(amax) or amax <= 0:
            raise TrtEdgeError(f"activation range {amax!r} cannot start quantization-aware training: it needs a "
                               "positive finite amax from calibration")
        scale = torch.tensor([float(amax) / QMAX], dtype=torch.float32)
        self.learn = learn
        if learn:
            self.scale = torch.nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        self.register_buffer("zero_point", torch.zeros(1, dtype=torch.float32))

    def step(self) -> float:
        return float(self.scale.detach().abs().clamp_min(1e-12))

    def amax(self) -> float:
        return self.step() * QMAX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.learn:
            scale = self.scale.abs().clamp_min(1e-12)
            zero = self.zero_point
            assert isinstance(zero, torch.Tensor)
            return torch._fake_quantize_learnable_per_tensor_affine(x, scale, zero, QMIN, int(QMAX), 1.0)
        return torch.fake_quantize_per_tensor_affine(x, self.step(), 0, QMIN, int(QMAX))


def fake_quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric INT8 fake quantization of a [out, in] weight, scale max|W| / 127
    (an all-zero row gets scale 1, as `placement.weight_scales` writes). The scale is a function of the
    weight, not a learned value: TensorRT and the exported graph compute it from the weight alone."""
    amax = weight.detach().abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax)).to(torch.float32)
    zero = torch.zeros(scale.shape, dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, QMIN, int(QMAX))


@dataclass
class Binding:
    """One planned ONNX node bound to its PyTorch module."""

    node: str  # ONNX node name
    module: str  # qualified module name in the model
    activation: str  # the ONNX activation tensor (the quantizer's key)
    transposed: bool  # the module stores [in, out] (transformers' Conv1D) rather than nn.Linear's [out, in]

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "module": self.module, "activation": self.activation,
                "transposed": self.transposed}


@dataclass
class FakeQuant:
    """The fake quantization attached to a model: which node is which module, and the quantizers."""

    model: torch.nn.Module
    bindings: list[Binding]
    quantizers: torch.nn.ModuleDict
    keys: dict[str, str] = field(default_factory=dict)  # ONNX activation tensor -> ModuleDict key
    learn_scales: bool = True
    attached: bool = True

    def quantizer(self, tensor: str) -> ActivationQuantizer:
        module = self.quantizers[self.keys[tensor]]
        assert isinstance(module, ActivationQuantizer)
        return module

    def amax_by_node(self) -> dict[str, float]:
        """The current activation amax of every bound ONNX node (its input tensor's quantizer)."""
        return {b.node: self.quantizer(b.activation).amax() for b in self.bindings}

    def amax_by_tensor(self) -> dict[str, float]:
        return {t: self.quantizer(t).amax() for t in self.keys}

    def scale_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.quantizers.parameters() if p.requires_grad]

    def remove(self) -> None:
        """Restore the float modules and detach the quantizers (idempotent)."""
        if not self.attached:
            return
        modules = dict(self.model.named_modules())
        for b in self.bindings:
            module = modules[b.module]
            if "forward" in vars(module):
                del module.forward
        if hasattr(self.model, SUBMODULE):
            delattr(self.model, SUBMODULE)
        self.attached = False


def _module_weights(model: torch.nn.Module) -> dict[bytes, list[tuple[str, bool]]]:
    """[out, in] weight bytes -> the modules holding exactly that weight (nn.Linear, and transformers'
    Conv1D whose weight is stored [in, out])."""
    found: dict[bytes, list[tuple[str, bool]]] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            continue
        if isinstance(module, torch.nn.Linear):
            w, transposed = weight, False
        elif type(module).__name__ == "Conv1D":  # GPT-2 style: y = x @ W + b, W [in, out]
            w, transposed = weight.t(), True
        else:
            continue
        key = np.ascontiguousarray(w.detach().cpu().to(torch.float32).numpy()).tobytes()
        found.setdefault(key, []).append((name, transposed))
    return found


def bind(model: torch.nn.Module, onnx_model: Any, plan: Placement) -> list[Binding]:
    """Bind every planned node of `plan` (made on `onnx_model`, the model's own fp32 export) to the module
    holding its weight. Refuses what fake quantization cannot mirror: attention BMMs (`quantize_bmm`), a
    node whose weight no module holds, a module used by several nodes (shared layers)."""
    from onnx import numpy_helper

    consts = constant_tensors(onnx_model)
    weights = _module_weights(model)
    bindings: list[Binding] = []
    used: dict[str, str] = {}
    for p in plan.nodes:
        if p.kind != "projection" or p.weight is None or p.weight_axis is None:
            raise TrtEdgeError(f"node {p.node} quantizes an attention batched matmul: quantization-aware "
                               "training mirrors projections only; turn calibrate.placement.quantize_bmm off")
        w = numpy_helper.to_array(consts[p.weight]).astype(np.float32)
        out_in = w if p.weight_axis == 0 else w.T  # the placement's channel axis is the output axis
        matches = weights.get(np.ascontiguousarray(out_in).tobytes(), [])
        if len(matches) != 1:
            why = "no module holds its weight" if not matches else \
                f"{len(matches)} modules hold the same weight ({', '.join(m for m, _ in matches)})"
            raise TrtEdgeError(f"cannot tell which PyTorch module ONNX node {p.node} is ({why}): the ONNX must be "
                               "this model's own export; or add the node to calibrate.placement.exclude")
        module, transposed = matches[0]
        if module in used:
            raise TrtEdgeError(f"module {module} runs as ONNX nodes {used[module]} and {p.node} (a shared layer): "
                               "one fake quantizer per call is not supported; exclude one in "
                               "calibrate.placement.exclude")
        used[module] = p.node
        bindings.append(Binding(p.node, module, p.activations[0], transposed))
    return bindings


def attach(model: torch.nn.Module, onnx_model: Any, plan: Placement, amax: Mapping[str, float], *,
           learn_scales: bool = True) -> FakeQuant:
    """Fake-quantize `model` in place where `plan` puts Q/DQ, starting from the activation ranges `amax`
    (ONNX tensor -> amax, the calibrate stage's). Returns the handle whose `remove` undoes it."""
    bindings = bind(model, onnx_model, plan)
    missing = sorted({b.activation for b in bindings if b.activation not in amax})
    if missing:
        raise TrtEdgeError(f"no calibrated range for {', '.join(missing[:3])}: give the ranges of the calibrate "
                           "stage that quantized this ONNX")
    keys: dict[str, str] = {}
    quantizers = torch.nn.ModuleDict()
    for b in bindings:
        if b.activation not in keys:
            keys[b.activation] = f"q{len(keys)}"
            quantizers[keys[b.activation]] = ActivationQuantizer(float(amax[b.activation]), learn_scales)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    quantizers.to(device)
    model.add_module(SUBMODULE, quantizers)
    modules = dict(model.named_modules())
    for b in bindings:
        _wrap(modules[b.module], quantizers[keys[b.activation]], b.transposed)
    return FakeQuant(model, bindings, quantizers, keys, learn_scales)


def _wrap(module: torch.nn.Module, quantizer: torch.nn.Module, transposed: bool) -> None:
    """Give this one module instance a fake-quantized forward (an instance attribute, so `remove` only
    deletes it and the class's forward is back; the parameters are untouched)."""

    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        xq = quantizer(x)
        if transposed:
            wq = fake_quantize_weight(self.weight.t())
            out = torch.matmul(xq, wq.t())
            return out + self.bias if self.bias is not None else out
        return torch.nn.functional.linear(xq, fake_quantize_weight(self.weight), self.bias)

    module.forward = types.MethodType(forward, module)


def qdq_model(float_onnx: Any, plan: Placement, amax_by_node: Mapping[str, float]) -> tuple[Any, dict[str, float]]:
    """The Q/DQ graph of a re-exported fp32 ONNX with the learned activation ranges: every planned node
    quantized (no float fallback). `plan` is the placement planned on `float_onnx`; `amax_by_node` comes
    from `FakeQuant.amax_by_node()` (node names are stable across exports of one architecture). Returns the
    model and the amax of each quantized activation tensor."""
    amax: dict[str, float] = {}
    missing = [p.node for p in plan.nodes if p.node not in amax_by_node]
    if missing:
        raise TrtEdgeError(f"the re-exported graph has nodes the trained model had no quantizer for "
                           f"({', '.join(missing[:3])}): export the QAT model with the export settings of the "
                           "calibrated ONNX")
    for p in plan.nodes:
        for tensor in p.activations:
            value = float(amax_by_node[p.node])
            if tensor in amax and not np.isclose(amax[tensor], value, rtol=1e-6, atol=0.0):
                raise TrtEdgeError(f"tensor {tensor} feeds nodes trained with different ranges ({amax[tensor]:.6g} "
                                   f"and {value:.6g}): the re-export shares a tensor the trained model did not")
            amax[tensor] = value
    return quantize_model(float_onnx, plan, amax), amax

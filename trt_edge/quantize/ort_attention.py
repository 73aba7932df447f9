"""Attention fusion for ONNX Runtime on the CPU: each attention block becomes one contrib op.

ONNX Runtime's own transformer optimizer (`onnxruntime.transformers.optimizer`) finds no attention block
in transformers-5 exports (the mask is `Where(mask, 0, -inf)`, the scale is split between Q and K, the
head split goes through dynamic shapes), so attention ran as a dozen small ops in every CPU candidate.
The ONNX graph library (`trt_edge.onnxgraph`) matches and numerically verifies these blocks, for our
TensorRT plugin (`trt_edge.plugins.onnx_rewrite`) and here; this emitter makes the same verified blocks

- `com.microsoft.Attention` when Q, K and V are `MatMul(x, W) + b` of one input with constant weights:
  the three projections are packed into one [hidden, 3·hidden] GEMM, and dynamic quantization turns the
  node into `QAttention` (int8 weights);
- `com.microsoft.MultiHeadAttention` otherwise (Q, K, V as computed by the graph).

Both take the raw `attention_mask` (cast to int32) as the key-padding mask when the block applies one
(none for a model without padding, e.g. ViT), and an additive position bias as `attention_bias`
(MPNet, T5-style relative position bias). A biased block always becomes `MultiHeadAttention`: dynamic
quantization's `QAttention` has no bias input and would silently drop it. A layer whose mask is causal
is fused only into `Attention` (`unidirectional=1`). The result is checked end to end against the
original in ONNX Runtime on the caller's feeds; it is refused if the logits move more than
`PARITY_TOLERANCE` or any arg-max changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.onnxgraph.attention_match import AttentionNotFused, find_attention_candidates, summarize
from trt_edge.onnxgraph.attention_verify import verify_candidates
from trt_edge.onnxgraph.graph import GraphIndex
from trt_edge.onnxgraph.runtime import compare_models
from trt_edge.onnxgraph.splice import bias_nodes, mask_cast, splice_nodes, surviving_softmaxes
from trt_edge.tasks.spec import padding_mask_input

log = get_logger("calibrate.cpu")

MS_DOMAIN = "com.microsoft"
MASK_INT32 = "trt_edge_ort_mask_i32"
PARITY_TOLERANCE = 1e-3


@dataclass
class OrtAttentionReport:
    """What was fused: per layer the op used, and the end-to-end check."""

    layers: list[dict[str, Any]]
    unfused: list[dict[str, str]]
    max_abs_diff: float
    argmax_agreement: float

    def summary(self) -> str:
        ops: dict[str, int] = {}
        for layer in self.layers:
            op = layer["op"] + (" with attention_bias" if layer.get("has_bias") else "")
            ops[op] = ops.get(op, 0) + 1
        return ", ".join(f"{op}×{n}" for op, n in sorted(ops.items()))


def _packable(g: GraphIndex, tensors: tuple[str, str, str]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(shared input, packed weight [in, 3·hidden], packed bias) if Q, K, V are MatMul + Add of constants
    on one input tensor; None otherwise."""
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []
    for tensor in tensors:
        node = g.producer.get(tensor)
        found = None
        weight = g.constant(node.input[1]) if node is not None and node.op_type == "MatMul" else None
        if node is not None and weight is not None:
            # No bias Add: onnxslim drops an Add of zeros (e.g. a freshly initialised model's biases).
            found = (node.input[0], weight, np.zeros(weight.shape[-1], np.float32))
        elif node is not None and node.op_type == "Add" and len(node.input) == 2:
            for mm_out, bias in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
                mm = g.producer.get(mm_out)
                mm_weight = g.constant(mm.input[1]) if mm is not None and mm.op_type == "MatMul" else None
                bias_value = g.constant(bias)
                if mm is not None and mm_weight is not None and bias_value is not None:
                    found = (mm.input[0], mm_weight, bias_value)
                    break
        if found is None:
            return None
        _, w, b = found
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[1] or w.dtype != np.float32:
            return None
        parts.append(found)
    if len({p[0] for p in parts}) != 1 or len({p[1].shape[0] for p in parts}) != 1:
        return None
    weight = np.concatenate([p[1] for p in parts], axis=1)
    bias = np.concatenate([p[2] for p in parts]).astype(np.float32)
    return parts[0][0], np.ascontiguousarray(weight), bias


def fuse_attention_ort(model: Any, feeds: list[dict[str, np.ndarray]],
                       pack_qkv: bool = True) -> tuple[Any, OrtAttentionReport]:
    """A copy of `model` (onnx.ModelProto) with every verified attention block as one ONNX Runtime op.

    Args:
        model: the exported fp32 model (not changed).
        feeds: input batches for the per-layer checks and the end-to-end parity (a few real batches).
        pack_qkv: use the packed `Attention` op where the projections allow it (False forces
            `MultiHeadAttention`, mainly for tests).

    Raises:
        TrtEdgeError: no block was recognised or verified, or the fused model does not match the original.
    """
    from onnx import helper, numpy_helper


    if not feeds:
        raise TrtEdgeError("attention fusion needs at least one input batch for its checks")
    candidates, rejected = find_attention_candidates(model)
    if not candidates:
        detail = summarize(rejected) or "the model has no Softmax"
        raise AttentionNotFused(f"no attention block recognised ({detail})", rejected)
    verified, unfused = verify_candidates(model, candidates, feeds, padding_mask_input)
    unfused = rejected + unfused
    g = GraphIndex(model.graph)
    initializers: list[Any] = []
    replacements: dict[str, list[Any]] = {}
    layers: list[dict[str, Any]] = []
    softmaxes: dict[str, str] = {}
    for i, layer in enumerate(verified):
        c = layer.candidate
        packed = _packable(g, (c.q_src, c.k_src, c.v_src)) if pack_qkv and not layer.has_bias else None
        name = f"trt_edge_ort_attention_{i}"
        mask = MASK_INT32 if layer.has_mask else ""
        nodes: list[Any] = []
        bias = ""
        if layer.has_bias:
            nodes, bias = bias_nodes(layer, name)
        if packed is not None:
            x, weight, qkv_bias = packed
            w_name, b_name = f"{name}_qkv_weight", f"{name}_qkv_bias"
            initializers += [numpy_helper.from_array(weight, w_name), numpy_helper.from_array(qkv_bias, b_name)]
            node = helper.make_node("Attention", [x, w_name, b_name, mask], [c.output], name=name,
                                    domain=MS_DOMAIN, num_heads=layer.num_heads, scale=float(layer.scale),
                                    unidirectional=int(layer.causal))
        elif layer.causal:
            unfused.append({"layer": c.layer, "reason": "causal mask with separate Q/K/V projections or a bias "
                                                        "(MultiHeadAttention gets no causal flag here)"})
            continue
        else:
            inputs = [c.q_src, c.k_src, c.v_src, "", mask] + ([bias] if bias else [])
            while inputs and inputs[-1] == "":
                inputs.pop()
            node = helper.make_node("MultiHeadAttention", inputs, [c.output], name=name, domain=MS_DOMAIN,
                                    num_heads=layer.num_heads, scale=float(layer.scale))
        replacements[c.output] = [*nodes, node]
        softmaxes[c.layer] = c.softmax
        layers.append({"layer": c.layer, "op": node.op_type, "num_heads": layer.num_heads,
                       "head_size": layer.head_size, "scale": layer.scale, "causal": layer.causal,
                       "has_mask": layer.has_mask, "has_bias": layer.has_bias})
    if not replacements:
        raise AttentionNotFused(f"attention blocks were found but none can be fused ({summarize(unfused)})",
                                unfused)
    prelude = []
    if any(layer["has_mask"] for layer in layers):
        prelude.append(mask_cast(model, padding_mask_input, MASK_INT32, "trt_edge_ort_mask_cast"))
    fused = splice_nodes(model, replacements, prelude, MS_DOMAIN, initializers)
    left = surviving_softmaxes(fused)
    stuck = [layer_name for layer_name, softmax in softmaxes.items() if softmax in left]
    if stuck:
        raise TrtEdgeError(f"attention tensors are used outside their block at {', '.join(stuck)}; "
                           "fusing would not remove the block")
    figures = compare_models(model, fused, feeds)
    diff, agreement = figures["max_abs_diff"], figures["argmax_agreement"]
    if diff > PARITY_TOLERANCE or agreement < 1.0:
        raise TrtEdgeError(f"the attention-fused model differs from the original (max |Δ| {diff:.3g}, "
                           f"arg-max agreement {agreement:.4f})")
    for item in unfused:
        log.warning("attention not fused for the CPU at %s: %s", item["layer"], item["reason"])
    return fused, OrtAttentionReport(layers=layers, unfused=unfused, max_abs_diff=diff, argmax_agreement=agreement)

"""The CPU reference for the fused attention node: its ONNX decomposition, and the plugin's names.

The numpy function, `attention_reference`, lives with the numeric checks that use it
(`trt_edge.onnxgraph.attention_verify`). The fused node (`TrtEdgeFusedAttention`) runs only inside
TensorRT, through our plugin. To check a rewritten model on a machine without a GPU,
`expand_fused_attention` replaces every fused node with standard ONNX operators that compute exactly what
the kernel computes (same inputs, same attributes, same semantics for padding and fully masked rows), so
ONNX Runtime can run the rewritten graph. The expansion is derived from the node's attributes alone, never
from the subgraph the rewrite removed: a parity check of "expanded fused model" against "original model"
therefore tests the rewrite's choice of inputs, num_heads, head_size, scale and causal. The expanded model
is used only for checking and never shipped.

Semantics (shared with plugins/fused_attention/fused_attention.h, see the node contract in
docs/plugins.md): inputs are q, k, v, then the key-padding mask if `has_mask` (default 1), then the
additive bias if `has_bias` (default 0). q, k, v are [batch, seq, heads * head_size]; mask is [batch, seq]
(nonzero = attend); bias is [1 or batch, heads, seq, seq] in the dtype of q. scores = scale * q.kᵀ + bias
per head; keys with mask 0 (and, when causal, keys after the query) are excluded; a row whose keys are all
excluded gives zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trt_edge.onnxgraph.graph import attr

PLUGIN_NAME = "TrtEdgeFusedAttention"
PLUGIN_VERSION = "1"
# The empty namespace, as TensorRT's own plugins use: REGISTER_TENSORRT_PLUGIN registers under "", so the
# creator is found whichever namespace the registry keys on. The node sets plugin_namespace explicitly.
PLUGIN_NAMESPACE = ""
# The custom-op domain of the fused node: ONNX needs a non-default domain for an unknown op.
PLUGIN_DOMAIN = "trt_edge"
SUPPORTED_HEAD_SIZES = (32, 64, 128)
MAX_SEQ_LEN = 16384  # trt_edge_attention_max_seq_len() in the kernel


def _element_type(graph: Any, tensor: str) -> int:
    """The ONNX element type of a fused node's input: a Cast's target, a graph input's type, else float."""
    from onnx import TensorProto

    for node in graph.node:
        if tensor in node.output and node.op_type == "Cast":
            return int(attr(node, "to"))
    for value in list(graph.input) + list(graph.value_info):
        if value.name == tensor and value.type.tensor_type.elem_type:
            return int(value.type.tensor_type.elem_type)
    return int(TensorProto.FLOAT)


def expand_fused_attention(model: Any) -> Any:
    """A copy of `model` with every fused attention node replaced by standard ONNX ops (ORT-runnable).

    The expansion computes in float32 from the node's (fp16 or fp32) inputs and casts the result to the
    inputs' type, so an fp16 node is checked with the same input and output rounding as the kernel.

    Args:
        model (onnx.ModelProto): a model written by `fuse_attention`.

    Returns:
        onnx.ModelProto: the checking variant; the input model is not modified.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    expanded = onnx.ModelProto()
    expanded.CopyFrom(model)
    graph = expanded.graph
    consts: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        consts.append(numpy_helper.from_array(value, name))
        return name

    new_nodes: list[Any] = []
    fused_count = 0
    for node in graph.node:
        if not (node.op_type == PLUGIN_NAME and node.domain == PLUGIN_DOMAIN):
            new_nodes.append(node)
            continue
        i = fused_count
        fused_count += 1
        p = f"trt_edge_ref{i}_"
        num_heads = int(attr(node, "num_heads"))
        head_size = int(attr(node, "head_size"))
        scale = float(attr(node, "scale"))
        causal = int(attr(node, "causal", 0))
        has_mask = int(attr(node, "has_mask", 1))
        has_bias = int(attr(node, "has_bias", 0))
        expected = 3 + has_mask + has_bias
        if len(node.input) != expected:
            raise ValueError(f"{node.name}: {len(node.input)} inputs, the contract wants {expected} "
                             f"(q, k, v{', mask' if has_mask else ''}{', bias' if has_bias else ''})")
        q_in, k_in, v_in = node.input[:3]
        mask = node.input[3] if has_mask else None
        bias = node.input[3 + has_mask] if has_bias else None
        (out,) = node.output
        out_type = _element_type(graph, q_in)
        new_nodes += [helper.make_node("Cast", [x], [p + name], to=TensorProto.FLOAT)
                      for x, name in ((q_in, "qf"), (k_in, "kf"), (v_in, "vf"))]
        q, k, v = p + "qf", p + "kf", p + "vf"
        split = const(p + "split_shape", np.array([0, 0, num_heads, head_size], dtype=np.int64))
        merge = const(p + "merge_shape", np.array([0, 0, -1], dtype=np.int64))
        neg_inf = const(p + "neg_inf", np.array(-np.inf, dtype=np.float32))
        zero = const(p + "zero", np.array(0.0, dtype=np.float32))
        scale_c = const(p + "scale", np.array(scale, dtype=np.float32))
        axes_12 = const(p + "axes_12", np.array([1, 2], dtype=np.int64))
        zero_i = const(p + "zero_i", np.array(0, dtype=np.int32))
        new_nodes += [
            helper.make_node("Reshape", [q, split], [p + "q4"]),
            helper.make_node("Transpose", [p + "q4"], [p + "qh"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [k, split], [p + "k4"]),
            helper.make_node("Transpose", [p + "k4"], [p + "kt"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [v, split], [p + "v4"]),
            helper.make_node("Transpose", [p + "v4"], [p + "vh"], perm=[0, 2, 1, 3]),
            helper.make_node("MatMul", [p + "qh", p + "kt"], [p + "qk"]),
            helper.make_node("Mul", [p + "qk", scale_c], [p + "scores0"]),
        ]
        scores = p + "scores0"
        if bias is not None:
            new_nodes += [helper.make_node("Cast", [bias], [p + "bias_f"], to=TensorProto.FLOAT),
                          helper.make_node("Add", [scores, p + "bias_f"], [p + "scores_b"])]
            scores = p + "scores_b"
        if mask is not None:
            new_nodes += [
                helper.make_node("Cast", [mask], [p + "mask_i"], to=TensorProto.INT32),
                helper.make_node("Equal", [p + "mask_i", zero_i], [p + "pad"]),
                helper.make_node("Unsqueeze", [p + "pad", axes_12], [p + "pad4"]),
                helper.make_node("Where", [p + "pad4", neg_inf, scores], [p + "scores1"]),
            ]
            scores = p + "scores1"
        if causal:
            one = const(p + "one", np.array(1, dtype=np.int64))
            zero_l = const(p + "zero_l", np.array(0, dtype=np.int64))
            ax0 = const(p + "ax0", np.array([0], dtype=np.int64))
            ax1 = const(p + "ax1", np.array([1], dtype=np.int64))
            idx1 = const(p + "idx1", np.array(1, dtype=np.int64))
            new_nodes += [
                helper.make_node("Shape", [q], [p + "qshape"]),
                helper.make_node("Gather", [p + "qshape", idx1], [p + "seq"], axis=0),
                helper.make_node("Range", [zero_l, p + "seq", one], [p + "pos"]),
                helper.make_node("Unsqueeze", [p + "pos", ax0], [p + "key_pos"]),
                helper.make_node("Unsqueeze", [p + "pos", ax1], [p + "query_pos"]),
                helper.make_node("Greater", [p + "key_pos", p + "query_pos"], [p + "future"]),
                helper.make_node("Where", [p + "future", neg_inf, scores], [p + "scores2"]),
            ]
            scores = p + "scores2"
        new_nodes += [
            helper.make_node("Softmax", [scores], [p + "probs0"], axis=-1),
            helper.make_node("IsNaN", [p + "probs0"], [p + "nan"]),
            helper.make_node("Where", [p + "nan", zero, p + "probs0"], [p + "probs"]),
            helper.make_node("MatMul", [p + "probs", p + "vh"], [p + "ctx"]),
            helper.make_node("Transpose", [p + "ctx"], [p + "ctx_t"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "ctx_t", merge], [p + "out_f"]),
            helper.make_node("Cast", [p + "out_f"], [out], to=out_type),  # the kernel's output type
        ]
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(consts)
    kept = [op for op in expanded.opset_import if op.domain != PLUGIN_DOMAIN]
    del expanded.opset_import[:]
    expanded.opset_import.extend(kept)
    return expanded

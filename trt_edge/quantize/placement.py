"""Q/DQ placement for TensorRT: which inputs of which nodes get QuantizeLinear/DequantizeLinear pairs.

The TensorRT contract (Developer Guide, "Explicit Quantization"), applied to transformer encoders:

- both inputs of every weighted MatMul/Gemm (projections and feed-forward layers) are quantized:
  the activation per-tensor, the weight per-channel on its output-channel axis (Gemm from `nn.Linear`,
  `transB=1`, weight [out, in]: axis 0; `transB=0` or MatMul with a [K, N] weight: axis 1);
- symmetric INT8, zero-point 0, scale = amax / 127;
- outputs of MatMul/Gemm are not quantized (feed-forward outputs carry outliers); LayerNorm, Softmax,
  GELU and the residual Adds stay float;
- the attention batched matmuls (Q·Kᵀ, softmax·V) only when asked (`quantize_bmm`);
- nothing on the attention-mask path (`Where(mask, 0, -inf)`: an infinite range);
- weights stay float initializers feeding Q -> DQ, so a 2:4 pattern in them is untouched and TensorRT
  quantizes (and can run sparse) them at build time.

We insert the pairs ourselves with `onnx` instead of calling onnxruntime's `quantize_static`: it cannot
take our histogram-based ranges with 2048 bins, quantizes a shared activation once per consumer type
rather than per the exact node list we pass after mixed-precision fallback, and its per-channel axis for
Gemm weights is not the TensorRT one unless configured per op; writing ~100 lines gives the exact
contract, and tests check it node by node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.onnxgraph.graph import attr
from trt_edge.quantize.calibrators import QMAX, scale_from_amax
from trt_edge.quantize.config import PlacementConfig


@dataclass
class NodePlan:
    """One node whose inputs get Q/DQ: its activation inputs and (for a projection) its weight."""

    node: str
    op_type: str
    kind: Literal["projection", "bmm"]
    activations: list[str]
    weight: str | None = None
    weight_axis: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "kind": self.kind, "activations": self.activations,
                "weight": self.weight, "weight_axis": self.weight_axis}


@dataclass
class Placement:
    """The nodes to quantize, and every MatMul/Gemm left float with the reason."""

    nodes: list[NodePlan] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def node_names(self) -> list[str]:
        return [n.node for n in self.nodes]

    def activation_tensors(self, float_nodes: Iterable[str] = ()) -> list[str]:
        keep = set(float_nodes)
        seen: dict[str, None] = {}
        for plan in self.nodes:
            if plan.node not in keep:
                for t in plan.activations:
                    seen.setdefault(t)
        return list(seen)


def node_name(node: Any, index: int) -> str:
    return str(node.name) if node.name else f"{node.op_type}_{index}"


def constant_tensors(model: Any) -> dict[str, Any]:
    """Initializers and outputs of Constant nodes: name -> TensorProto."""
    out: dict[str, Any] = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t is not None:
                    out[node.output[0]] = attr.t
    return out


def _forward_cone(model: Any, sources: Iterable[str], through_shapes: bool = True) -> set[str]:
    reached = set(sources)
    for node in model.graph.node:  # nodes are topologically sorted in a valid ONNX graph
        if not through_shapes and node.op_type in ("Shape", "Size"):
            continue
        if any(i in reached for i in node.input if i):
            reached.update(o for o in node.output if o)
    return reached


def mask_path_tensors(model: Any) -> set[str]:
    """Tensors computed from the attention mask and not from token values (casts, Where(mask, 0, -inf),
    expands). Shapes of the token inputs do not count as token values: exporters build the mask's
    broadcast from the shape of the token ids."""
    from trt_edge.tasks.spec import padding_mask_input, value_inputs

    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    mask = padding_mask_input(inputs)
    if mask is None:
        return set()
    tokens = _forward_cone(model, value_inputs(inputs), through_shapes=False)
    return _forward_cone(model, [mask]) - tokens


def _excluded(name: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if name == pattern:
            return pattern
        try:
            if re.fullmatch(pattern, name):
                return pattern
        except re.error:
            continue
    return None


def _broadcast_constant(node: Any, consts: dict[str, Any]) -> bool:
    """Whether `node` (a tensor's producer) only broadcasts a constant to a shape (Expand / Tile of a constant,
    ConstantOfShape): its values never depend on the input, so there is no activation range to calibrate
    (DETR's decoder starts from zeros of its queries' shape; a zero range is refused)."""
    if node is None:
        return False
    if node.op_type == "ConstantOfShape":
        return True
    return node.op_type in ("Expand", "Tile") and node.input[0] in consts


def plan_placement(model: Any, cfg: PlacementConfig) -> Placement:
    """Decide, for every MatMul/Gemm, whether and how it is quantized (nothing is changed yet)."""
    consts = constant_tensors(model)
    mask = mask_path_tensors(model)
    producers = {out: node for node in model.graph.node for out in node.output if out}
    plan = Placement()
    for index, node in enumerate(model.graph.node):
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        name = node_name(node, index)
        if node.op_type not in cfg.op_types:
            plan.skipped[name] = f"op type {node.op_type} not in placement.op_types"
            continue
        pattern = _excluded(name, cfg.exclude)
        if pattern is not None:
            plan.skipped[name] = f"excluded by placement.exclude ({pattern!r})"
            continue
        a, b = node.input[0], node.input[1]
        if a in consts:
            plan.skipped[name] = "first input is constant (not an activation x weight product)"
            continue
        if _broadcast_constant(producers.get(a), consts):
            plan.skipped[name] = ("first input is a constant broadcast to a shape (e.g. DETR's zero decoder "
                                  "queries): no activation range to calibrate")
            continue
        if any(t in mask for t in (a, b)):
            plan.skipped[name] = "on the attention-mask path"
            continue
        if b in consts:
            dims = list(consts[b].dims)
            if len(dims) != 2:
                plan.skipped[name] = f"weight of rank {len(dims)}; TensorRT quantizes 2-D weights per channel"
                continue
            if node.op_type == "Gemm":
                if attr(node, "transA", 0):
                    plan.skipped[name] = "Gemm with transA=1"
                    continue
                axis = 0 if attr(node, "transB", 0) else 1
            else:
                axis = 1
            plan.nodes.append(NodePlan(name, node.op_type, "projection", [a], b, axis))
        elif cfg.quantize_bmm:
            plan.nodes.append(NodePlan(name, node.op_type, "bmm", [a, b]))
        else:
            plan.skipped[name] = "attention BMM (placement.quantize_bmm is off)"
    return plan


def weight_scales(weight: np.ndarray, axis: int) -> np.ndarray:
    """Per-channel symmetric scales max|W| / 127 along `axis`; an all-zero channel gets scale 1."""
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    amax = np.abs(weight.astype(np.float32)).max(axis=reduce)
    return np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)


def quantize_model(model: Any, placement: Placement, amax: Mapping[str, float],
                   float_nodes: Iterable[str] = ()) -> Any:
    """A copy of `model` with Q/DQ pairs on the planned inputs of every node not in `float_nodes`.

    One Q/DQ pair per quantized tensor, shared by its quantized consumers; a consumer left float keeps
    the original float tensor.
    """
    import onnx
    from onnx import helper, numpy_helper

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        raise TrtEdgeError(f"the model has opset {opset}; per-channel Q/DQ needs opset 13 or later: re-export "
                           "with --opset 17")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    consts = constant_tensors(out)
    keep_float = set(float_nodes)
    plans = {p.node: p for p in placement.nodes if p.node not in keep_float}
    new_inits: list[Any] = []
    made: dict[tuple[str, int | None], tuple[str, list[Any]]] = {}

    def qdq(tensor: str, axis: int | None) -> tuple[str, list[Any]]:
        key = (tensor, axis)
        if key in made:
            return made[key][0], []
        base = tensor.replace(":", "_")
        if axis is None:
            scale = np.asarray(scale_from_amax(amax[tensor], tensor), dtype=np.float32)
            zero = np.asarray(0, dtype=np.int8)
        else:
            scale = weight_scales(numpy_helper.to_array(consts[tensor]), axis)
            zero = np.zeros(scale.shape, dtype=np.int8)
        s_name, z_name = f"{base}_scale", f"{base}_zero_point"
        new_inits.append(numpy_helper.from_array(scale, s_name))
        new_inits.append(numpy_helper.from_array(zero, z_name))
        kwargs: dict[str, Any] = {} if axis is None else {"axis": axis}
        q_out, dq_out = f"{base}_QuantizeLinear_Output", f"{base}_DequantizeLinear_Output"
        nodes = [
            helper.make_node("QuantizeLinear", [tensor, s_name, z_name], [q_out], name=f"{base}_QuantizeLinear",
                             **kwargs),
            helper.make_node("DequantizeLinear", [q_out, s_name, z_name], [dq_out],
                             name=f"{base}_DequantizeLinear", **kwargs),
        ]
        made[key] = (dq_out, nodes)
        return dq_out, nodes

    new_nodes: list[Any] = []
    # Pairs are emitted just before their first consumer: the source tensor (an earlier node's output,
    # an initializer or a Constant node's output) already exists there, so the graph stays sorted.
    for index, node in enumerate(graph.node):
        plan = plans.get(node_name(node, index))
        if plan is not None:
            for tensor in plan.activations:
                dq, nodes = qdq(tensor, None)
                new_nodes.extend(nodes)
                _rewire(node, tensor, dq)
            if plan.weight is not None:
                dq, nodes = qdq(plan.weight, plan.weight_axis)
                new_nodes.extend(nodes)
                _rewire(node, plan.weight, dq)
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    return out


def _rewire(node: Any, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def describe(model: Any) -> dict[str, Any]:
    """Counts and per-node facts of a Q/DQ model, for tests and stage.json."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    zero_points = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits:
            zero_points.append(numpy_helper.to_array(inits[n.input[2]]))
    return {
        "quantize_linear": len(q_nodes),
        "dequantize_linear": sum(1 for n in model.graph.node if n.op_type == "DequantizeLinear"),
        "all_zero_points_zero": all(bool(np.all(z == 0)) and z.dtype == np.int8 for z in zero_points),
    }

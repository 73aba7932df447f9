"""Prove the 2:4 pattern in an ONNX file, the way TensorRT will read it — without TensorRT.

For every MatMul, Gemm and Conv, the weight input is followed back to the stored tensor through
Transpose, Cast, Identity, Reshape, DequantizeLinear and QuantizeLinear (the chains PyTorch exporters
and Q/DQ calibration leave in front of a weight); the value the consumer actually receives is rebuilt
with numpy and tested along the axis TensorRT's SPARSE_WEIGHTS flag looks at: MatMul B axis -2 (K of
[K, N]), Gemm B axis 1 if transB else 0, Conv weight axis 1 (input channels). A Q→DQ pair on a float
weight is evaluated (rounding can only add zeros). The axis is mapped back through Transposes so the
report names it in the stored tensor's own layout.

Exporters fold `weight.T` into anonymous initializers (`onnx::MatMul_283`, `val_92`), so each weight is
tied back to its PyTorch parameter through the consumer's module scope: the TorchScript exporter's node
name (`/bert/encoder/layer.0/output/dense/MatMul`) or the dynamo exporter's `namespace` metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.onnxgraph.graph import GraphIndex, attr
from trt_edge.sparsity.report import (
    SparsityReport,
    TensorCheck,
    expected_tensors,
    find_sparsity_json,
    load_sparsity_json,
    pattern_stats,
)

CONSUMERS = ("MatMul", "Gemm", "Conv")
_PASS_THROUGH = ("Transpose", "Cast", "Identity", "Reshape", "DequantizeLinear", "QuantizeLinear")
_NAME_SUFFIXES = ("_quantized", "_DequantizeLinear", "_QuantizeLinear", "_transposed", "_fp16", "_scale")


@dataclass
class _Traced:
    """A weight as its consumer sees it, and how it got there from the stored tensor."""

    source: str
    stored_shape: list[int]
    value: np.ndarray
    steps: list[tuple[str, Any]] = field(default_factory=list)


def _load(onnx_path: Path) -> Any:
    import onnx
    from onnx import external_data_helper

    if not onnx_path.is_file():
        raise TrtEdgeError(f"ONNX file not found: {onnx_path}")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends without a common base
        raise TrtEdgeError(f"{onnx_path}: not a readable ONNX model ({str(exc).splitlines()[0] if str(exc) else exc})"
                           ) from exc
    base = onnx_path.parent
    missing: set[str] = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            info = {e.key: e.value for e in tensor.external_data}
            location = info.get("location", "")
            if not location or not (base / location).is_file():
                missing.add(location or "<no location>")
    if missing:
        raise TrtEdgeError(
            f"{onnx_path}: external weight data missing ({', '.join(sorted(missing))} not found next to the "
            "model); copy the .onnx file together with its data file(s)"
        )
    try:
        external_data_helper.load_external_data_for_model(model, str(base))
    except (OSError, ValueError) as exc:
        raise TrtEdgeError(f"{onnx_path}: cannot read its external weight data ({exc})") from exc
    return model


def _trace(g: GraphIndex, name: str, depth: int = 0) -> _Traced | None:
    """Follow `name` back to a stored tensor through pass-through ops; None for an activation."""
    if depth > 16:
        return None
    value = g.constant(name)
    if value is not None:
        return _Traced(name, list(value.shape), value)
    node = g.producer.get(name)
    if node is None or node.op_type not in _PASS_THROUGH:
        return None
    inner = _trace(g, node.input[0], depth + 1)
    if inner is None:
        return None
    op = node.op_type
    v = inner.value
    if op == "Transpose":
        perm = attr(node, "perm")
        perm = list(perm) if perm is not None else list(range(v.ndim))[::-1]
        inner.value, step = v.transpose(perm), perm
    elif op == "Cast":
        from onnx import helper

        inner.value, step = v.astype(helper.tensor_dtype_to_np_dtype(attr(node, "to"))), None
    elif op == "Identity":
        step = None
    elif op == "Reshape":
        shape = g.constant(node.input[1]) if len(node.input) > 1 else None
        if shape is None:
            return None
        target = [int(d) if (d != 0 or attr(node, "allowzero", 0)) else v.shape[i]
                  for i, d in enumerate(shape.tolist())]
        inner.value, step = v.reshape(target), list(v.shape)
    elif op == "DequantizeLinear":
        scale = g.constant(node.input[1])
        zero = g.constant(node.input[2]) if len(node.input) > 2 else None
        if scale is None:
            return None
        axis = int(attr(node, "axis", 1))
        x = v.astype(np.float64) - (_along(zero, axis, v) if zero is not None else 0.0)
        inner.value, step = (x * _along(scale, axis, v)).astype(np.float32), None
    else:  # QuantizeLinear on a stored float tensor: evaluate it, TensorRT folds it the same way
        scale = g.constant(node.input[1])
        zero = g.constant(node.input[2]) if len(node.input) > 2 else None
        if scale is None:
            return None
        axis = int(attr(node, "axis", 1))
        dtype = zero.dtype if zero is not None else np.dtype(np.uint8)
        info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
        q = np.rint(v.astype(np.float64) / _along(scale, axis, v))
        if zero is not None:
            q = q + _along(zero, axis, v)
        if info is not None:
            q = np.clip(q, info.min, info.max)
        inner.value, step = q.astype(dtype), None
    inner.steps.append((op, step))
    return inner


def _along(param: np.ndarray, axis: int, like: np.ndarray) -> np.ndarray:
    """Broadcast a per-tensor or per-axis Q/DQ parameter against `like`."""
    p = np.asarray(param).astype(np.float64)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    axis = axis % like.ndim
    if p.ndim == 1 and p.shape[0] == like.shape[axis]:
        shape = [1] * like.ndim
        shape[axis] = p.shape[0]
        return p.reshape(shape)
    if p.ndim == like.ndim:  # blocked quantization: repeat each block's parameter over the block
        for ax in range(like.ndim):
            if p.shape[ax] != like.shape[ax]:
                p = np.repeat(p, like.shape[ax] // p.shape[ax], axis=ax)
        return p
    raise TrtEdgeError(f"Q/DQ parameter of shape {list(p.shape)} does not fit a weight of shape {list(like.shape)}")


def _consumer_axis(node: Any, weight: np.ndarray) -> int:
    if node.op_type == "Gemm":
        return 1 if int(attr(node, "transB", 0)) else 0
    if node.op_type == "Conv":
        return 1
    return weight.ndim - 2 if weight.ndim >= 2 else 0


def _source_axis(axis: int, traced: _Traced) -> int | None:
    """The consumer's axis in the stored tensor's layout (None when a Reshape changed the shape)."""
    a: int | None = axis
    for op, step in reversed(traced.steps):
        if a is None:
            return None
        if op == "Transpose":
            a = int(step[a])
        elif op == "Reshape":
            a = a if list(step) == list(traced.value.shape) else None
    return a


def module_scope(node: Any) -> str | None:
    """The PyTorch module an exported node came from, e.g. `bert.encoder.layer.0.output.dense`."""
    for prop in node.metadata_props:
        if prop.key == "namespace" and "/" in str(prop.value):
            # ": Root/bert: BertModel/.../bert.encoder.layer.0.output.dense: Linear/linear_5: aten.linear"
            value = str(prop.value)
            names = [str(seg.split(": ")[0]).strip() for seg in value.split("/")[:-1]]
            names = [n for n in names if n]
            if names:
                return names[-1]
    name = node.name or ""
    if name.startswith("/") and name.count("/") >= 2:
        return ".".join(part for part in name.strip("/").split("/")[:-1] if part)
    return None


def _candidates(source: str, node: Any) -> list[str]:
    names = [source]
    stripped = source
    for suffix in _NAME_SUFFIXES:
        stripped = stripped.removesuffix(suffix)
    if stripped != source:
        names.append(stripped)
    scope = module_scope(node)
    if scope:
        names.append(f"{scope}.weight")
    return names


def check_onnx_sparsity(onnx_path: str | Path, sparsity_json: str | Path | None = None) -> SparsityReport:
    """Test every MatMul/Gemm/Conv weight of an ONNX file for 2:4 along the axis TensorRT reads.

    Args:
      onnx_path (str | Path): the ONNX file (external data, if any, next to it).
      sparsity_json (str | Path | None): the prune stage's `sparsity.json` (or a folder holding one) naming
        the tensors that must carry the pattern. Defaults to a `sparsity.json` next to the ONNX file, if any.

    Returns:
      SparsityReport: one row per weight and consumer; `violations` lists the tensors named in
      sparsity.json that lost the pattern or cannot be found.

    Raises:
      TrtEdgeError: unreadable ONNX, missing external data, malformed sparsity.json.
    """
    path = Path(onnx_path)
    sparsity_path = Path(sparsity_json) if sparsity_json is not None else find_sparsity_json(path.parent)
    doc = load_sparsity_json(sparsity_path) if sparsity_path is not None else {"tensors": {}}
    expected = expected_tensors(doc) if sparsity_path is not None else []
    # The exporter names weights by module path, which transformers 5 may save under another name
    # (sparsity.json keeps the module path as `module_name`): either name finds the tensor.
    alias = {str(info["module_name"]): name for name, info in doc["tensors"].items()
             if isinstance(info, dict) and info.get("module_name")}
    wanted = set(expected) | set(alias)
    model = _load(path)
    graph = GraphIndex(model.graph)
    report = SparsityReport(source=str(path), expected=expected,
                            sparsity_json=str(find_sparsity_json(sparsity_path)) if sparsity_path else None)
    for node in graph.nodes:
        if node.op_type not in CONSUMERS or len(node.input) < 2:
            continue
        traced = _trace(graph, node.input[1])
        if traced is None:
            continue
        weight = traced.value
        axis = _consumer_axis(node, weight)
        stats = pattern_stats(weight, axis)
        names = _candidates(traced.source, node)
        model_name = next((n for n in names if n in wanted), None)
        if model_name is None and wanted:  # a wrapper's prefix (`inner.bert...`): match a dotted suffix
            suffix = {alias.get(w, w) for n in names for w in wanted if n.endswith("." + w)}
            model_name = suffix.pop() if len(suffix) == 1 else None
        if model_name is None:  # the module scope names it best (initializers may carry a wrapper's prefix)
            model_name = next((n for n in reversed(names) if n.endswith(".weight")), None)
        model_name = alias.get(model_name or "", model_name)
        note = "" if stats.eligible else f"reduction axis length {weight.shape[axis] if weight.ndim else 0} " \
                                         "is not a multiple of 4"
        report.rows.append(TensorCheck(
            name=traced.source, consumer=node.name or node.output[0], op=node.op_type,
            axis=_source_axis(axis, traced), shape=traced.stored_shape, is_2to4=stats.holds,
            fraction_ok=stats.fraction_ok, zero_fraction=stats.zero_fraction, model_name=model_name,
            path=[op for op, _ in traced.steps], note=note,
        ))
    for name in expected:
        rows = [r for r in report.rows if r.model_name == name]
        if not rows:
            report.violations.append(name)
            report.problems[name] = "not found in the ONNX graph (no MatMul/Gemm/Conv weight maps to it)"
        elif not all(r.is_2to4 for r in rows):
            worst = min(rows, key=lambda r: r.fraction_ok)
            report.violations.append(name)
            report.problems[name] = (f"lost the 2:4 pattern at {worst.consumer} ({worst.op}): "
                                     f"{100 * worst.fraction_ok:.1f}% of groups hold it")
    return report

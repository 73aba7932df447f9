"""What TensorRT on the device will refuse or slow down, found on the laptop without TensorRT.

The facts live in data, one table per TensorRT version (`trt_edge/data/trt_onnx_<version>.json`: the ops
its ONNX parser imports, the ones it refuses, attribute and input restrictions, how it treats INT64, the
newest opset it reads) and one for the Orin DLA (`dla_orin.json`). This module only reads a graph and
applies a table; supporting a new TensorRT release is a new JSON file, not a code branch.

Where things live: `tables` (finding and loading the version tables), `findings` (what is reported),
`rules` (the op, restriction, INT64, opset and data-dependent-shape checks), `attention` (TensorRT's MHA
fusion and our plugin's pattern), `dla` (DLA fallback). This package runs them in order (`lint_model`).

Findings have a severity: `error` (the parser will refuse the model: an op it does not import, a
restriction it enforces), `warning` (it will import but something costs accuracy or speed: INT64
casts, data-dependent shapes, attention that misses the MHA fusion, layers that fall back from the
DLA), `info` (worth knowing).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from trt_edge.export.lint.attention import check_attention, check_plugin_attention
from trt_edge.export.lint.dla import check_dla
from trt_edge.export.lint.findings import Finding, LintResult, Severity
from trt_edge.export.lint.rules import (
    DEFAULT_DOMAINS,
    check_data_dependent,
    check_int64,
    check_ops,
    check_opset,
    check_restrictions,
)
from trt_edge.export.lint.tables import (
    available_versions,
    imports_op,
    is_exact,
    load_dla_table,
    load_table,
    resolve_version,
)
from trt_edge.onnxgraph.graph import GraphIndex

__all__ = ["Finding", "LintResult", "Severity", "available_versions", "imports_op", "lint_file", "lint_model",
           "load_dla_table", "load_table", "resolve_version"]


def lint_model(model: Any, trt: str = "10.3", dla: bool = False, onnx_path: str = "<model>") -> LintResult:
    """Lint an in-memory ONNX model against TensorRT `trt` (and its DLA when `dla`)."""
    import onnx

    version = resolve_version(trt)
    table = load_table(version)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shapes are a help, not a requirement: lint the graph as it is
        inferred = model
    g = GraphIndex(inferred.graph)
    opset = next((int(o.version) for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)
    result = LintResult(onnx_path=onnx_path, tensorrt=str(trt), table=version, dla=dla, opset=opset,
                        op_counts=dict(sorted(Counter(n.op_type for n in g.nodes).items())))
    if any(len(n.attribute) and any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute) for n in g.nodes):
        result.findings.append(Finding("info", "subgraphs", "If/Loop/Scan subgraphs are not linted inside"))
    check_ops(g, table, version, result.findings)
    check_restrictions(g, table.get("restrictions", []), result.findings, "error", "restriction")
    check_opset(opset, table, version, result.findings)
    check_int64(g, table, version, result.findings)
    check_data_dependent(g, table, result.findings)
    result.attention = check_attention(g, result.findings)
    check_plugin_attention(model, result.attention, result.findings)
    if dla:
        result.dla_fallback = check_dla(g, table, version, result.findings)
    if not is_exact(version, trt):
        result.findings.append(Finding("info", "table", f"no table for TensorRT {trt}; used the {version} table"))
    return result


def lint_file(onnx_path: str | Path, trt: str = "10.3", dla: bool = False) -> LintResult:
    """Lint an ONNX file; a file that fails `onnx.checker` is a one-line `TrtEdgeError`."""
    from trt_edge.export.exporter import check_onnx_file

    model = check_onnx_file(onnx_path)
    return lint_model(model, trt, dla, str(onnx_path))

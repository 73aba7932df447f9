"""The lint's op rules: what a TensorRT version's ONNX parser imports, the restrictions it enforces on
attributes and inputs, how it treats INT64, the newest opset it reads, and ops with data-dependent shapes.

Each check reads the graph through `GraphIndex` and one version's table, and appends `Finding`s.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from trt_edge.export.lint.findings import Finding, Severity
from trt_edge.onnxgraph.graph import GraphIndex, attr

DEFAULT_DOMAINS = ("", "ai.onnx")
NON_TRT_DOMAINS = ("com.microsoft", "ai.onnx.ml", "com.microsoft.nchwc", "ai.onnx.training")


def violates(rule: dict[str, Any], node: Any, g: GraphIndex) -> bool:
    """Whether `node` breaks one restriction of a lint table (the TensorRT and the DLA tables share the kinds)."""
    kind = rule["kind"]
    if kind == "attribute_in":
        return attr(node, rule["attribute"], rule.get("default")) not in rule["allowed"]
    if kind == "attribute_equals":
        return bool(attr(node, rule["attribute"], rule.get("default")) != rule["value"])
    if kind == "attribute_absent":
        present = {a.name for a in node.attribute}
        return any(a in present for a in rule["attributes"])
    index = int(rule.get("input", rule.get("output", 0)))
    if kind == "input_constant":
        return len(node.input) > index and bool(node.input[index]) and not g.is_constant(node.input[index])
    if kind == "output_unused":
        return len(node.output) > index and g.is_used(node.output[index])
    if kind == "zero_point_zero":
        if len(node.input) <= index or not node.input[index]:
            return False
        value = g.constant(node.input[index])
        if value is None:
            return True
        return bool(np.any(np.asarray(value) != 0))
    raise ValueError(f"unknown restriction kind {kind!r} in a lint table")


def check_ops(g: GraphIndex, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    """Each op the parser does not import is an error (a custom-domain op a warning: it needs a plugin)."""
    supported = set(table["supported"])
    unsupported: dict[str, str] = table["unsupported"]
    uncertain: dict[str, str] = table.get("uncertain", {})
    by_op: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in g.nodes:
        by_op[(node.domain, node.op_type)].append(node.name or node.output[0])
    for (domain, op), names in sorted(by_op.items()):
        if domain not in DEFAULT_DOMAINS:
            if domain in NON_TRT_DOMAINS:
                findings.append(Finding("error", "unsupported-op", f"{domain}.{op} (x{len(names)}) is an ONNX "
                                        "Runtime/ML op the TensorRT parser does not import", names))
            else:
                findings.append(Finding("warning", "custom-op", f"{op} (domain {domain!r}, x{len(names)}) needs a "
                                        "TensorRT plugin of that name loaded before parsing", names))
            continue
        if op in supported:
            continue
        if op in uncertain:
            findings.append(Finding("warning", "uncertain-op", f"{op} (x{len(names)}): {uncertain[op]}", names))
        elif op in unsupported:
            findings.append(Finding("error", "unsupported-op", f"{op} (x{len(names)}): {unsupported[op]}", names))
        else:
            findings.append(Finding("error", "unsupported-op", f"{op} (x{len(names)}) is not in TensorRT {version}'s "
                                    "ONNX operator table", names))


def check_restrictions(g: GraphIndex, rules: list[dict[str, Any]], findings: list[Finding], severity: Severity,
                        code: str) -> None:
    """Nodes breaking one of the table's attribute/input restrictions, one finding per rule."""
    hits: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        for node in g.nodes:
            if node.op_type == rule["op"] and node.domain in DEFAULT_DOMAINS and violates(rule, node, g):
                hits[rule["message"]].append(node.name or node.output[0])
    for message, names in hits.items():
        findings.append(Finding(severity, code, f"{message} (x{len(names)})", names))


def check_int64(g: GraphIndex, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    """INT64 inputs and tensors: cast to INT32 (values clamped) or kept, as the version does."""
    import onnx

    int64 = onnx.TensorProto.INT64
    inputs = [i.name for i in g.graph_inputs if i.type.tensor_type.elem_type == int64]
    inner = sorted(n for n, (t, _) in g.types.items() if t == int64 and n not in inputs)
    if table["int64"] == "cast":
        if inputs:
            findings.append(Finding("warning", "int64", f"INT64 inputs {inputs}: TensorRT {version} casts INT64 to "
                                    "INT32 (values clamped to +-2^31); bind int32 buffers, or export with "
                                    "int32_inputs", inputs))
        if inner:
            findings.append(Finding("warning", "int64", f"{len(inner)} INT64 tensors/initializers inside the graph "
                                    f"will be cast to INT32 by TensorRT {version}", inner))
    elif inputs:
        findings.append(Finding("info", "int64", f"INT64 inputs {inputs}: TensorRT {version} keeps INT64 (bind int64 "
                                "buffers); int32 inputs (export.int32_inputs) are the cheaper contract", inputs))


def check_opset(opset: int, table: dict[str, Any], version: str, findings: list[Finding]) -> None:
    """An opset newer than the version documents is a warning with the opset to re-export at."""
    limit = int(table["opset_max"])
    if opset > limit:
        verified = "" if table.get("opset_max_verified") else " [limit UNVERIFIED]"
        findings.append(Finding("warning", "opset", f"opset {opset} is newer than the {limit} TensorRT {version} "
                                f"documents{verified}; re-export with export.opset={min(limit, 17)}"))


def check_data_dependent(g: GraphIndex, table: dict[str, Any], findings: list[Finding]) -> None:
    """Ops whose output shape depends on the data: TensorRT needs an output allocator."""
    reasons: dict[str, str] = table.get("data_dependent", {})
    for op, why in reasons.items():
        names = [n.name or n.output[0] for n in g.nodes if n.op_type == op]
        if names:
            findings.append(Finding("warning", "data-dependent-shape", f"{op} (x{len(names)}): {why}; TensorRT "
                                    "needs an output allocator for it and cannot run it on the DLA", names))
    # TopK with a K computed at run time has a data-dependent output length too.
    dyn_topk = [n.name for n in g.nodes if n.op_type == "TopK" and len(n.input) > 1 and not g.is_constant(n.input[1])]
    if dyn_topk:
        findings.append(Finding("warning", "data-dependent-shape", f"TopK with a run-time K (x{len(dyn_topk)})",
                                dyn_topk))

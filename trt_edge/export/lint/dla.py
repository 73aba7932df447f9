"""The lint's DLA check: which layers the Orin DLA cannot run and would hand back to the GPU."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trt_edge.export.lint.findings import Finding
from trt_edge.export.lint.rules import violates
from trt_edge.export.lint.tables import load_dla_table
from trt_edge.onnxgraph.graph import GraphIndex


def shape_tensors(g: GraphIndex) -> set[str]:
    """Tensors computed only from shapes and constants (TensorRT folds or evaluates them as shape
    tensors; they are not device layers)."""
    shape: set[str] = set()
    for node in g.nodes:  # graph order is topological
        if node.op_type == "Shape":
            shape.update(o for o in node.output if o)
            continue
        inputs = [i for i in node.input if i]
        live = [i for i in inputs if not g.is_constant(i)]
        if node.op_type == "Constant" or (live and all(i in shape for i in live)):
            shape.update(o for o in node.output if o)
    return shape


def check_dla(g: GraphIndex, table: dict[str, Any], version: str, findings: list[Finding]) -> dict[str, int]:
    """Layers the DLA cannot run (not native, or a restriction broken) fall back to the GPU."""
    name = table.get("dla")
    if not name:
        note = next((n for n in table.get("notes", []) if "DLA" in n), "no DLA target for this release")
        findings.append(Finding("warning", "dla", f"TensorRT {version}: {note}"))
        return {}
    dla = load_dla_table(str(name))
    native = set(dla["native"])
    build_time = set(dla["build_time"])
    shape = shape_tensors(g)
    fallback: Counter[str] = Counter()
    nodes: list[str] = []
    restricted: dict[str, str] = {}
    for node in g.nodes:
        if node.op_type in build_time or all(o in shape for o in node.output if o):
            continue
        reason = None
        if node.op_type not in native:
            reason = f"{node.op_type} (not DLA-native)"
        else:
            for rule in dla.get("restrictions", []):
                if rule["op"] == node.op_type and violates(rule, node, g):
                    reason = f"{node.op_type} ({rule['message'].split('(')[0].strip()})"
                    restricted[reason] = rule["message"]
                    break
        if reason:
            fallback[reason] += 1
            nodes.append(node.name or node.output[0])
    layers = sum(1 for n in g.nodes if not (n.op_type in build_time or all(o in shape for o in n.output if o)))
    if fallback:
        top = ", ".join(f"{k} x{v}" for k, v in fallback.most_common())
        findings.append(Finding("warning", "dla", f"{sum(fallback.values())} of {layers} layers cannot run on the DLA "
                                f"and fall back to the GPU (build with GPU_FALLBACK / --allowGPUFallback): {top}",
                                nodes))
    else:
        findings.append(Finding("info", "dla", f"all {layers} layers are DLA-capable (per {name})"))
    findings.append(Finding("info", "dla", "the DLA runs FP16 or INT8 only; build with --fp16 or --int8"))
    return dict(fallback)

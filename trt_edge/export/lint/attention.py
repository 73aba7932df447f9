"""The lint's attention checks: does each attention block match TensorRT's MHA fusion, and can it take our
fused-attention plugin (in the matcher's own words, `trt_edge.onnxgraph.attention_match`)?
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trt_edge.export.lint.findings import Finding
from trt_edge.onnxgraph.attention_match import find_attention_candidates, summarize
from trt_edge.onnxgraph.graph import GraphIndex, attr

# Ops allowed between the attention scores and Softmax (mask and scale), and between Softmax and BMM2.
_SCORE_OPS = ("Add", "Sub", "Mul", "Div", "Where", "Cast", "Identity")
_PROB_OPS = ("Cast", "Where", "Dropout", "Identity")
_QKV_PASS = ("Mul", "Div", "Cast", "Identity")

# The lint code of the fused-attention findings (the report lists its warnings: blocks left unfused and why).
FUSION_LINT_CODE = "plugin-fusion"


def _walk_up(g: GraphIndex, name: str, allowed: tuple[str, ...], limit: int = 8) -> tuple[Any, list[Any]]:
    """Follow the non-constant input upwards through `allowed` ops; return (first other node, path)."""
    path: list[Any] = []
    node = g.producer.get(name)
    while node is not None and node.op_type in allowed and len(path) < limit:
        path.append(node)
        live = [i for i in node.input if i and not g.is_constant(i)]
        if node.op_type == "Where":
            live = [node.input[2]] if len(node.input) > 2 and not g.is_constant(node.input[2]) else live[-1:]
        if not live:
            return None, path
        # Prefer the input that leads to a MatMul (the scores) over masks.
        nxt = None
        for cand in live:
            prod = g.producer.get(cand)
            if prod is not None and (prod.op_type == "MatMul" or prod.op_type in allowed):
                nxt = cand
                break
        node = g.producer.get(nxt or live[0])
    return node, path


def _scalar_operand(g: GraphIndex, node: Any) -> bool:
    """A Mul/Div with a constant scalar operand (an attention scale)."""
    if node.op_type not in ("Mul", "Div"):
        return False
    for inp in node.input:
        if inp and g.is_constant(inp):
            value = g.constant(inp)
            if value is not None and np.asarray(value).size == 1:
                return True
    return False


def _operand_origin(g: GraphIndex, name: str) -> tuple[bool, Any]:
    """(pre-scaled?, the first node above the scale/cast chain) for a BMM1 operand."""
    node = g.producer.get(name)
    scaled = False
    steps = 0
    while node is not None and node.op_type in _QKV_PASS and steps < 6:
        scaled = scaled or _scalar_operand(g, node)
        live = [i for i in node.input if i and not g.is_constant(i)]
        if not live:
            break
        node = g.producer.get(live[0])
        steps += 1
    return scaled, node


def check_attention(g: GraphIndex, findings: list[Finding]) -> list[dict[str, Any]]:
    """Each Softmax fed by an activation x activation MatMul is an attention block; does it match
    TensorRT's MHA fusion (Q or K scaled before BMM1, [B, N, S, H] layout, Softmax straight into BMM2)?"""
    blocks = []
    for sm in g.nodes:
        if sm.op_type != "Softmax":
            continue
        bmm1, between = _walk_up(g, sm.input[0], _SCORE_OPS)
        if bmm1 is None or bmm1.op_type != "MatMul" or any(g.is_constant(i) for i in bmm1.input):
            continue
        scale_after = [n.name for n in between if _scalar_operand(g, n)]
        q_scaled, q_origin = _operand_origin(g, bmm1.input[0])
        k_scaled, _ = _operand_origin(g, bmm1.input[1])
        ranks = [g.rank(i) for i in bmm1.input]
        perm = list(attr(q_origin, "perm", [])) if q_origin is not None and q_origin.op_type == "Transpose" else None
        if all(r == 4 for r in ranks if r is not None) and any(r == 4 for r in ranks):
            layout_ok: bool | None = perm in (None, [0, 2, 1, 3])
        elif any(r is not None for r in ranks):
            layout_ok = False
        else:
            layout_ok = None if perm is None else perm == [0, 2, 1, 3]
        # Down: Softmax -> (Cast/Where/Dropout) -> BMM2.
        after: list[str] = []
        node = sm
        bmm2 = None
        for _ in range(6):
            users = g.consumers.get(node.output[0], [])
            guards = [u for u in users if u.op_type == "IsNaN"]  # the exporter's fully-masked-row guard
            users = [u for u in users if u.op_type != "IsNaN"]
            if guards:
                after.append("IsNaN")
            if len(users) != 1:
                break
            user = users[0]
            if user.op_type == "MatMul":
                bmm2 = user
                break
            if user.op_type not in _PROB_OPS:
                break
            after.append(user.op_type)
            node = user
        reasons = []
        if bmm2 is None:
            reasons.append("Softmax does not feed a second MatMul")
        if scale_after:
            reasons.append("the scale is applied to the scores after BMM1, not to Q or K before it")
        elif not (q_scaled or k_scaled):
            reasons.append("no scale on Q or K before BMM1")
        if layout_ok is False:
            reasons.append(f"Q/K are not in [B, N, S, H] layout (ranks {ranks})")
        block = {"softmax": sm.name, "bmm1": bmm1.name, "bmm2": bmm2.name if bmm2 is not None else None,
                 "q_prescaled": q_scaled, "k_prescaled": k_scaled, "scale_after_bmm1": bool(scale_after),
                 "layout_bnsh": layout_ok, "between_softmax_and_bmm2": after, "matches": not reasons,
                 "reasons": reasons}
        blocks.append(block)
    mismatched = [b for b in blocks if not b["matches"]]
    if mismatched:
        reasons = sorted({r for b in mismatched for r in b["reasons"]})
        findings.append(Finding("warning", "mha-fusion", f"{len(mismatched)} of {len(blocks)} attention blocks miss "
                                f"TensorRT's MHA fusion pattern ({'; '.join(reasons)}): they run as separate "
                                "MatMul/Softmax layers", [b["softmax"] for b in mismatched]))
    elif blocks:
        findings.append(Finding("info", "mha-fusion", f"all {len(blocks)} attention blocks match TensorRT's MHA fusion "
                                "pattern (Q/K pre-scaled before BMM1, [B, N, S, H])", [b["softmax"] for b in blocks]))
    extra = [b for b in blocks if b["between_softmax_and_bmm2"]]
    if extra:
        ops = sorted({op for b in extra for op in b["between_softmax_and_bmm2"]})
        findings.append(Finding("info", "mha-fusion", f"{len(extra)} attention blocks have {ops} between Softmax and "
                                "BMM2 (the exporter's guard for fully masked rows); whether TensorRT still fuses "
                                "them is not documented [UNVERIFIED]: check the engine's layer list",
                                [b["softmax"] for b in extra]))
    return blocks


def check_plugin_attention(model: Any, blocks: list[dict[str, Any]], findings: list[Finding]) -> None:
    """Our fused-attention plugin's structural verdict on each block, in the matcher's own words.

    TensorRT's MHA fusion (above) and our plugin accept different shapes: MPNet's relative position bias
    misses the first ("scale after BMM1") and is fused by the second. The reasons come from
    `onnxgraph.attention_match.find_attention_candidates`, the same code `export --fuse-attention` runs, so
    lint and export never disagree about why a block is not fused; the numeric checks (mask semantics,
    head size) run only at export, on real feeds."""
    candidates, rejected = find_attention_candidates(model)
    verdict = {c.layer: "" for c in candidates}
    verdict.update({r["layer"]: r["reason"] for r in rejected})
    for block in blocks:
        reason = verdict.get(block["softmax"], "not examined")
        block["plugin_candidate"] = not reason
        block["plugin_reason"] = reason
    if rejected:
        findings.append(Finding("warning", FUSION_LINT_CODE, f"{len(rejected)} attention blocks cannot take the fused "
                                f"attention plugin: {summarize(rejected)}", [r["layer"] for r in rejected]))
    if candidates:
        findings.append(Finding("info", FUSION_LINT_CODE, f"{len(candidates)} attention blocks match the fused "
                                "attention plugin's pattern (scores + additive terms); `export --fuse-attention` "
                                "checks each numerically", [c.layer for c in candidates]))

"""The structural half of attention fusion: find each attention block of an exported encoder.

What is matched (anchored on each Softmax; both the dynamo and the TorchScript exports of transformers 5):

    q_src ─ Reshape ─ Transpose ─ [Mul c] ──────────────────┐
    k_src ─ Reshape ─ Transpose/Reshape chain ─ [Mul c] ─ MatMul ─ [Mul/Div c] ─ [Add term]* ─ Softmax ─┐
    v_src ─ Reshape ─ Transpose ───────────────────────┐            [IsNaN ─ Where] (NaN guard) ──────┘
                                                        └─ MatMul(probs, V) ─ Transpose ─ Reshape ─ out

`q_src`, `k_src`, `v_src` are the [batch, seq, hidden] outputs of the Q/K/V projections and `out` the
[batch, seq, hidden] input of the output projection. A match is only a candidate: which additive term is a
mask or a bias, the head split and the scale are decided numerically by `attention_verify`, and what
replaces the block is each emitter's choice (`plugins.onnx_rewrite` for TensorRT,
`quantize.ort_attention` for ONNX Runtime). The TensorRT lint reports the same reasons, from this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trt_edge.errors import TrtEdgeError
from trt_edge.onnxgraph.graph import GraphIndex, attr


class AttentionNotFused(TrtEdgeError):
    """No attention block could be fused; `unfused` holds each block's [{"layer", "reason"}]."""

    def __init__(self, message: str, unfused: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.unfused = unfused


@dataclass
class ScaleFactor:
    """One scalar the scores are multiplied (or divided, `divide`) by, named by its tensor."""

    tensor: str
    divide: bool


@dataclass
class AttentionCandidate:
    """One structurally matched attention block, before the numeric checks."""

    layer: str
    softmax: str
    q_src: str
    k_src: str
    v_src: str
    q_heads: str
    output: str
    # Additive terms between Q.Kᵀ and the Softmax (masks and position biases, classified numerically).
    terms: list[str] = field(default_factory=list)
    factors: list[ScaleFactor] = field(default_factory=list)



def _walk_scale(g: GraphIndex, tensor: str, factors: list[ScaleFactor]) -> str:
    """Follow Mul/Div by a scalar upwards, recording the factors; return the first non-scaled tensor."""
    while True:
        node = g.producer.get(tensor)
        if node is None or node.op_type not in ("Mul", "Div") or len(node.input) != 2:
            return tensor
        a, b = node.input
        if node.op_type == "Div":
            if not g.is_scalar_constant(b) and g.op(b) not in ("Sqrt", "Cast", "Constant"):
                return tensor
            factors.append(ScaleFactor(b, divide=True))
            tensor = a
            continue
        if g.is_scalar_constant(b) or (not g.is_scalar_constant(a) and g.op(b) in ("Sqrt", "Cast")):
            factors.append(ScaleFactor(b, divide=False))
            tensor = a
        elif g.is_scalar_constant(a) or g.op(a) in ("Sqrt", "Cast"):
            factors.append(ScaleFactor(a, divide=False))
            tensor = b
        else:
            return tensor


def _walk_heads(g: GraphIndex, tensor: str) -> tuple[str, int]:
    """Follow Transpose/Reshape upwards to the projection output; return it and the number of Reshapes."""
    reshapes = 0
    while True:
        node = g.producer.get(tensor)
        if node is None or node.op_type not in ("Transpose", "Reshape"):
            return tensor, reshapes
        reshapes += node.op_type == "Reshape"
        tensor = node.input[0]


def _single_consumer(g: GraphIndex, tensor: str, op_type: str) -> Any | None:
    nodes = [n for n in g.consumers.get(tensor, []) if n.op_type == op_type]
    return nodes[0] if len(nodes) == 1 else None


def _reaches_qk(g: GraphIndex, tensor: str, depth: int = 0) -> bool:
    """Whether `tensor` is (a scaled, possibly biased) activation x activation MatMul: the Q.Kᵀ scores."""
    base = _walk_scale(g, tensor, [])
    node = g.producer.get(base)
    if node is None:
        return False
    if node.op_type == "MatMul":
        return not any(g.constant(i) is not None for i in node.input)
    if node.op_type == "Add" and depth < 4:
        return any(_reaches_qk(g, i, depth + 1) for i in node.input)
    return False


def _ancestors(g: GraphIndex, tensor: str, limit: int = 400) -> set[str]:
    """Tensor names above `tensor` (bounded breadth-first walk), itself included."""
    seen = {tensor}
    todo = [tensor]
    while todo and len(seen) < limit:
        node = g.producer.get(todo.pop())
        if node is None:
            continue
        for inp in node.input:
            if inp and inp not in seen:
                seen.add(inp)
                todo.append(inp)
    return seen


def _ancestor_ops(g: GraphIndex, tensor: str, stop: set[str], limit: int = 400) -> set[str]:
    """Op types above `tensor`, not walking past the tensors in `stop` (the projections)."""
    ops: set[str] = set()
    seen = {tensor}
    todo = [tensor]
    while todo and len(seen) < limit:
        t = todo.pop()
        if t in stop:
            continue
        node = g.producer.get(t)
        if node is None:
            continue
        ops.add(str(node.op_type))
        for inp in node.input:
            if inp and inp not in seen:
                seen.add(inp)
                todo.append(inp)
    return ops


ROTARY_REASON = ("rotary position embedding (Sin/Cos applied to Q and K between the projection and Q.Kᵀ); "
                 "the fused kernel takes Q and K as projected")


def _match(g: GraphIndex, softmax: Any) -> tuple[AttentionCandidate | None, str]:
    """Match the block around one Softmax; return (candidate, "") or (None, reason).

    The scores may carry any number of additive terms (`Add` nodes between Q.Kᵀ and the Softmax): which
    of them is a key-padding mask, a position bias or neither is decided numerically in `verify_candidates`.
    """
    axis = attr(softmax, "axis", -1)
    if axis not in (-1, 3):
        return None, f"Softmax axis {axis} is not the last axis"
    # Output side: [IsNaN -> Where] -> MatMul(., V) -> Transpose -> Reshape.
    probs = softmax.output[0]
    guard = _single_consumer(g, probs, "Where")
    if guard is not None and guard.input[2] == probs and g.op(guard.input[0]) == "IsNaN":
        probs = guard.output[0]
    pv = _single_consumer(g, probs, "MatMul")
    if pv is None or pv.input[0] != probs:
        return None, "softmax output does not feed a MatMul with V"
    # Head merge: a chain of Transpose/Reshape (shape-only consumers aside) ending in a Reshape.
    chain: list[Any] = []
    tensor = pv.output[0]
    while True:
        data_users = [n for n in g.consumers.get(tensor, []) if n.op_type != "Shape"]
        if len(data_users) != 1 or data_users[0].op_type not in ("Transpose", "Reshape"):
            break
        if data_users[0].input[0] != tensor:
            break
        chain.append(data_users[0])
        tensor = data_users[0].output[0]
    if not any(n.op_type == "Transpose" for n in chain) or chain[-1].op_type != "Reshape":
        return None, "attention output is not transposed and reshaped back to [batch, seq, hidden]"
    merge_r = chain[-1]
    # Input side: [Add term]* <- [Mul/Div scale] <- MatMul(q, kᵀ).
    factors: list[ScaleFactor] = []
    scores = softmax.input[0]
    terms: list[str] = []
    while True:
        node = g.producer.get(scores)
        if node is None:
            break
        if node.op_type == "Add" and len(node.input) == 2:
            a, b = node.input
            a_qk, b_qk = _reaches_qk(g, a), _reaches_qk(g, b)
            if a_qk and b_qk:
                return None, ("an additive attention term is itself a product of activations "
                              "(content-dependent position scores, e.g. DeBERTa's disentangled attention); "
                              "the kernel takes only a fixed additive bias")
            if not (a_qk or b_qk):
                return None, "the softmax input is an Add without a Q.Kᵀ MatMul"
            scores, term = (a, b) if a_qk else (b, a)
            terms.append(term)
            continue
        break
    qk_out = _walk_scale(g, scores, factors)
    qk = g.producer.get(qk_out)
    if qk is not None and qk.op_type == "Add" and _reaches_qk(g, qk_out):
        return None, "the scores are scaled after an additive term was added (scale · (Q.Kᵀ + bias))"
    if qk is None or qk.op_type != "MatMul":
        return None, "no Q.Kᵀ MatMul before the softmax"
    q_heads = _walk_scale(g, qk.input[0], factors)
    k_heads = _walk_scale(g, qk.input[1], factors)
    q_src, q_reshapes = _walk_heads(g, q_heads)
    k_src, k_reshapes = _walk_heads(g, k_heads)
    v_src, v_reshapes = _walk_heads(g, pv.input[1])
    if min(q_reshapes, k_reshapes, v_reshapes) < 1:
        if {"Sin", "Cos"} & (_ancestor_ops(g, qk.input[0], {v_src}) | _ancestor_ops(g, qk.input[1], {v_src})):
            return None, ROTARY_REASON
        return None, "Q, K or V does not come from a head-splitting Reshape"
    if len({q_src, k_src, v_src}) != 3:
        return None, "Q, K and V do not come from three separate projections"
    for term in terms:
        if {q_src, k_src} & _ancestors(g, term):
            return None, ("an additive attention term is computed from Q or K (content-dependent position "
                          "scores, e.g. DeBERTa's disentangled attention); the kernel takes only a fixed bias")
    layer = softmax.name or softmax.output[0]
    return AttentionCandidate(layer=layer, softmax=softmax.output[0], q_src=q_src, k_src=k_src, v_src=v_src,
                              q_heads=q_heads, terms=terms, output=merge_r.output[0], factors=factors), ""


REDUCED_KEYS_REASON = ("keys and values from a spatially reduced sequence (a strided Conv before the K/V "
                       "projections, SegFormer's efficient attention): the query and key lengths differ, which the "
                       "fused kernel does not take")


CROSS_ATTENTION_REASON = ("keys and values from another sequence than the queries (an encoder-decoder's "
                          "cross-attention: DETR's decoder queries read the encoder's image tokens): the query and "
                          "key lengths differ, which the fused kernel does not take")


def _static_lengths(model: Any, names: set[str]) -> dict[str, int]:
    """The sequence length (the second-to-last axis) of each tensor in `names` that ONNX shape inference
    gives a fixed size ({} when inference fails: a model too large to infer in memory)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError):
        return {}
    out: dict[str, int] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name in names and len(dims) >= 2 and dims[-2].HasField("dim_value"):
            out[value.name] = int(dims[-2].dim_value)
    return out


def _weight(g: GraphIndex, name: str) -> bool:
    """A constant, or (a Q/DQ model) a DequantizeLinear of a constant or of a QuantizeLinear of one."""
    if g.constant(name) is not None:
        return True
    node = g.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear":
        return False
    source = g.producer.get(node.input[0])
    return g.constant(node.input[0]) is not None or (
        source is not None and source.op_type == "QuantizeLinear" and g.constant(source.input[0]) is not None)


def _reduced_keys(g: GraphIndex, qk: Any) -> bool:
    """Whether K of the Q.Kᵀ MatMul `qk` is projected from a Conv's output through only reshapes, a norm, the
    projection and its bias (SegFormer's spatial reduction); a residual Add (two activations) ends the walk."""
    return _from_conv(g, qk.input[1])


def _from_conv(g: GraphIndex, name: str) -> bool:
    """Whether the tensor `name` comes from a Conv's output through only reshapes, a norm, a projection and
    its bias (`_reduced_keys`' walk, from any tensor on the key path)."""
    steps = 0
    while steps < 16:
        node = g.producer.get(name)
        if node is None:
            return False
        if node.op_type == "Conv":
            return True
        shaping = node.op_type in ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")  # shape operands aside
        moving = [node.input[0]] if shaping else [i for i in node.input if i and not _weight(g, i)]
        if node.op_type not in ("Transpose", "Reshape", "LayerNormalization", "MatMul", "Gemm", "Add", "Mul", "Div",
                                "Flatten", "Squeeze", "Unsqueeze", "DequantizeLinear", "QuantizeLinear") \
                or len(moving) != 1:
            return False
        name, steps = moving[0], steps + 1
    return False


def _real_cause(g: GraphIndex, softmax: Any) -> str:
    """The attention variant behind a structural mismatch, named when it is one the kernel cannot express.

    Walks up from the Softmax input through the block (stopping at weight projections, normalisations and
    embedding lookups): more than one activation x activation MatMul means content-dependent position
    scores (DeBERTa's disentangled attention); Sin/Cos means rotary position embedding; keys projected
    from a Conv's output mean a spatially reduced key sequence (SegFormer; asked first). "" otherwise."""
    products = 0
    first: Any = None
    ops: set[str] = set()
    seen = {softmax.input[0]}
    todo = [softmax.input[0]]
    while todo and len(seen) < 600:
        node = g.producer.get(todo.pop())
        if node is None or node.op_type in ("LayerNormalization", "Gather", "Softmax", "SimplifiedLayerNormalization"):
            continue
        ops.add(str(node.op_type))
        if node.op_type in ("MatMul", "Gemm"):
            if any(g.constant(i) is not None for i in node.input):
                continue
            products += 1
            first = first or node  # the nearest product to the softmax: Q.Kᵀ
        for inp in node.input:
            if inp and inp not in seen:
                seen.add(inp)
                todo.append(inp)
    if first is not None and len(first.input) > 1 and _reduced_keys(g, first):
        return REDUCED_KEYS_REASON  # first: a Q/DQ model's dequantized projections would count as products below
    if products > 1:
        return ("content-dependent position scores (more than one Q/K product feeds the softmax, e.g. DeBERTa's "
                "disentangled attention); the kernel takes one Q.Kᵀ plus a fixed additive bias")
    if {"Sin", "Cos"} & ops:
        return ROTARY_REASON
    return ""


def find_attention_candidates(model: Any) -> tuple[list[AttentionCandidate], list[dict[str, str]]]:
    """Structural pass: every Softmax is a potential attention block; return matches and rejects."""
    g = GraphIndex(model.graph)
    found: list[AttentionCandidate] = []
    rejected: list[dict[str, str]] = []
    for node in model.graph.node:
        if node.op_type != "Softmax":
            continue
        cand, reason = _match(g, node)
        if cand is None:
            reason = _real_cause(g, node) or reason
            rejected.append({"layer": node.name or node.output[0], "reason": reason})
        else:
            found.append(cand)
    # Cross-attention matches the pattern, but its keys are another sequence of another length (known once
    # the image size is fixed): refused with its reason, as reduced keys are.
    lengths = _static_lengths(model, {n for c in found for n in (c.q_src, c.k_src)}) if found else {}
    crossed = [c for c in found if c.q_src in lengths and c.k_src in lengths and lengths[c.q_src] != lengths[c.k_src]]
    for cand in crossed:  # keys from a Conv-reduced sequence of the same tokens are SegFormer's, not a decoder's
        reason = REDUCED_KEYS_REASON if _from_conv(g, cand.k_src) else CROSS_ATTENTION_REASON
        rejected.append({"layer": cand.layer, "reason": reason})
    return [c for c in found if c not in crossed], rejected



def summarize(unfused: list[dict[str, str]]) -> str:
    """Per-layer reasons grouped by reason: "reason (layers a, b, c)"; one line for logs and errors."""
    by_reason: dict[str, list[str]] = {}
    for item in unfused:
        by_reason.setdefault(item["reason"], []).append(item["layer"])
    return "; ".join(f"{reason} ({len(layers)} layer{'s' if len(layers) > 1 else ''}: {', '.join(layers[:3])}"
                     f"{', ...' if len(layers) > 3 else ''})" for reason, layers in by_reason.items())

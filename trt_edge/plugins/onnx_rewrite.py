"""Replace each attention block of an exported BERT-family ONNX model with one fused-attention node.

What is matched (anchored on each Softmax; both the dynamo and the TorchScript exports of transformers 5):

    q_src ─ Reshape ─ Transpose ─ [Mul c] ──────────────────┐
    k_src ─ Reshape ─ Transpose/Reshape chain ─ [Mul c] ─ MatMul ─ [Mul/Div c] ─ [Add mask] ─ Softmax ─┐
    v_src ─ Reshape ─ Transpose ───────────────────────┐            [IsNaN ─ Where] (NaN guard) ──────┘
                                                        └─ MatMul(probs, V) ─ Transpose ─ Reshape ─ out

`q_src`, `k_src`, `v_src` are the [batch, seq, hidden] outputs of the Q/K/V projections (MatMul + Add) and
`out` the [batch, seq, hidden] input of the output projection. Everything in between is replaced by

    Cast<fp32>(TrtEdgeFusedAttention(Cast<fp16>(q_src), Cast<fp16>(k_src), Cast<fp16>(v_src),
                                     Cast<int32>(attention_mask))) -> out
        domain "trt_edge"; attributes plugin_version ("1" IPluginV3 for TensorRT 10+, "2"
        IPluginV2DynamicExt for 8.5/8.6: `generation.plugin_generation`), plugin_namespace "",
        num_heads, head_size, scale, causal

which TensorRT's ONNX parser hands to our IPluginV3 (op_type = plugin name, see
reference/tensorrt-jetson-facts.md §5.3). The structure is only the first filter: every candidate is then
*evaluated* with ONNX Runtime on the caller's feeds, and is fused only if

- the head split gives a head size the kernel supports (32, 64, 128),
- the scale factors are scalars, constant across feeds,
- the additive mask is exactly a key-padding mask of `attention_mask` (optionally with a causal part),
  checked on the feeds plus one feed with padding added, so an unpadded batch cannot hide a wrong mask,
- the fused computation (numpy reference) reproduces the block's output on the feeds.

Any layer that fails a check is left as it is and reported with the reason. The rewritten model is then
checked end to end: every fused node is expanded back into standard ONNX ops from its attributes alone
(`ort_reference.expand_fused_attention`) and run in ONNX Runtime against the original model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.plugins.ort_reference import (
    MAX_SEQ_LEN,
    PLUGIN_DOMAIN,
    PLUGIN_NAME,
    PLUGIN_NAMESPACE,
    SUPPORTED_HEAD_SIZES,
    attention_reference,
    expand_fused_attention,
)
from trt_edge.tasks.spec import padding_mask_input

log = get_logger("export")

MASK_INT32 = "trt_edge_attention_mask_i32"
# A mask value at or below this counts as "excluded" (exports use -inf or float32 min).
MASKED_BELOW = -1.0e4
# Per-layer agreement required between the block's own output and the fused computation (float32 both).
LAYER_TOLERANCE = 1e-3


class AttentionNotFused(TrtEdgeError):
    """No attention block could be fused; `unfused` holds each block's [{"layer", "reason"}]."""

    def __init__(self, message: str, unfused: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.unfused = unfused


@dataclass
class _Factor:
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
    factors: list[_Factor] = field(default_factory=list)


@dataclass
class FusedLayer:
    """A block that passed every check: what the fused node gets."""

    candidate: AttentionCandidate
    num_heads: int
    head_size: int
    scale: float
    causal: bool
    max_abs_diff: float
    # Whether the node takes the key-padding mask, and the additive position-bias terms it takes (summed).
    has_mask: bool = True
    bias_terms: list[str] = field(default_factory=list)
    # Whether each bias term needs broadcasting to [1|batch, num_heads, seq, seq] for the kernel.
    bias_expand: bool = False

    @property
    def has_bias(self) -> bool:
        return bool(self.bias_terms)


class _Graph:
    """Producer/consumer maps and constant lookup over an onnx.GraphProto."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and len(node.output) == 1:
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attr.t)
                    elif attr.name == "value_float":
                        self.constants[node.output[0]] = np.array(attr.f, dtype=np.float32)

    def op(self, tensor: str) -> str | None:
        node = self.producer.get(tensor)
        return None if node is None else str(node.op_type)

    def is_scalar_constant(self, tensor: str) -> bool:
        value = self.constants.get(tensor)
        return value is not None and value.size == 1


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _walk_scale(g: _Graph, tensor: str, factors: list[_Factor]) -> str:
    """Follow Mul/Div by a scalar upwards, recording the factors; return the first non-scaled tensor."""
    while True:
        node = g.producer.get(tensor)
        if node is None or node.op_type not in ("Mul", "Div") or len(node.input) != 2:
            return tensor
        a, b = node.input
        if node.op_type == "Div":
            if not g.is_scalar_constant(b) and g.op(b) not in ("Sqrt", "Cast", "Constant"):
                return tensor
            factors.append(_Factor(b, divide=True))
            tensor = a
            continue
        if g.is_scalar_constant(b) or (not g.is_scalar_constant(a) and g.op(b) in ("Sqrt", "Cast")):
            factors.append(_Factor(b, divide=False))
            tensor = a
        elif g.is_scalar_constant(a) or g.op(a) in ("Sqrt", "Cast"):
            factors.append(_Factor(a, divide=False))
            tensor = b
        else:
            return tensor


def _walk_heads(g: _Graph, tensor: str) -> tuple[str, int]:
    """Follow Transpose/Reshape upwards to the projection output; return it and the number of Reshapes."""
    reshapes = 0
    while True:
        node = g.producer.get(tensor)
        if node is None or node.op_type not in ("Transpose", "Reshape"):
            return tensor, reshapes
        reshapes += node.op_type == "Reshape"
        tensor = node.input[0]


def _single_consumer(g: _Graph, tensor: str, op_type: str) -> Any | None:
    nodes = [n for n in g.consumers.get(tensor, []) if n.op_type == op_type]
    return nodes[0] if len(nodes) == 1 else None


def _reaches_qk(g: _Graph, tensor: str, depth: int = 0) -> bool:
    """Whether `tensor` is (a scaled, possibly biased) activation x activation MatMul: the Q.Kᵀ scores."""
    base = _walk_scale(g, tensor, [])
    node = g.producer.get(base)
    if node is None:
        return False
    if node.op_type == "MatMul":
        return not any(i in g.constants for i in node.input)
    if node.op_type == "Add" and depth < 4:
        return any(_reaches_qk(g, i, depth + 1) for i in node.input)
    return False


def _ancestors(g: _Graph, tensor: str, limit: int = 400) -> set[str]:
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


def _ancestor_ops(g: _Graph, tensor: str, stop: set[str], limit: int = 400) -> set[str]:
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


def _match(g: _Graph, softmax: Any) -> tuple[AttentionCandidate | None, str]:
    """Match the block around one Softmax; return (candidate, "") or (None, reason).

    The scores may carry any number of additive terms (`Add` nodes between Q.Kᵀ and the Softmax): which
    of them is a key-padding mask, a position bias or neither is decided numerically in `verify_candidates`.
    """
    axis = _attr(softmax, "axis", -1)
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
    factors: list[_Factor] = []
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


def _real_cause(g: _Graph, softmax: Any) -> str:
    """The attention variant behind a structural mismatch, named when it is one the kernel cannot express.

    Walks up from the Softmax input through the block (stopping at weight projections, normalisations and
    embedding lookups): more than one activation x activation MatMul means content-dependent position
    scores (DeBERTa's disentangled attention); Sin/Cos means rotary position embedding. "" otherwise."""
    products = 0
    ops: set[str] = set()
    seen = {softmax.input[0]}
    todo = [softmax.input[0]]
    while todo and len(seen) < 600:
        node = g.producer.get(todo.pop())
        if node is None or node.op_type in ("LayerNormalization", "Gather", "Softmax", "SimplifiedLayerNormalization"):
            continue
        ops.add(str(node.op_type))
        if node.op_type in ("MatMul", "Gemm"):
            if any(i in g.constants for i in node.input):
                continue
            products += 1
        for inp in node.input:
            if inp and inp not in seen:
                seen.add(inp)
                todo.append(inp)
    if products > 1:
        return ("content-dependent position scores (more than one Q/K product feeds the softmax, e.g. DeBERTa's "
                "disentangled attention); the kernel takes one Q.Kᵀ plus a fixed additive bias")
    if {"Sin", "Cos"} & ops:
        return ROTARY_REASON
    return ""


def find_attention_candidates(model: Any) -> tuple[list[AttentionCandidate], list[dict[str, str]]]:
    """Structural pass: every Softmax is a potential attention block; return matches and rejects."""
    g = _Graph(model.graph)
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
    return found, rejected


def _with_padding(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """A copy of a feed whose first row has its last key padded, so mask checks always see padding."""
    name = padding_mask_input(feed)
    mask = feed.get(name) if name is not None else None
    if name is None or mask is None or mask.ndim != 2 or mask.shape[1] < 2:
        return None
    padded = {k: v.copy() for k, v in feed.items()}
    padded[name][0, -1] = 0
    return padded


def _run_with_intermediates(model: Any, names: list[str], feeds: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    results = []
    for feed in feeds:
        values = session.run(names, feed)
        results.append(dict(zip(names, values, strict=True)))
    return results


def _full(value: np.ndarray, batch: int, seq: int) -> np.ndarray | None:
    """An additive term broadcast to [batch, heads|1, seq, seq], or None when it does not broadcast."""
    heads = value.shape[1] if value.ndim == 4 else (value.shape[0] if value.ndim == 3 else 1)
    try:
        return np.broadcast_to(value, (batch, heads, seq, seq))
    except ValueError:
        return None


def _classify_mask(values: list[np.ndarray], masks: list[np.ndarray]) -> tuple[bool | None, str]:
    """Whether an additive mask equals key padding of attention_mask (causal False) or padding + causal."""
    causal_ok = True
    padding_ok = True
    for value, am in zip(values, masks, strict=True):
        b, s = am.shape
        full = _full(value, b, s)
        if full is None:
            return None, f"mask shape {list(value.shape)} does not broadcast to [batch, heads, seq, seq]"
        excluded = full <= MASKED_BELOW
        if not np.all(excluded | (np.abs(full) <= 1e-6)):
            return None, "mask holds values other than 0 and a large negative number (not a boolean mask)"
        pad = np.broadcast_to((am == 0)[:, None, None, :], excluded.shape)
        future = np.broadcast_to(np.triu(np.ones((s, s), dtype=bool), k=1)[None, None], excluded.shape)
        padding_ok &= bool(np.array_equal(excluded, pad))
        causal_ok &= bool(np.array_equal(excluded, pad | future))
    if padding_ok:
        return False, ""
    if causal_ok:
        return True, ""
    for value, am in zip(values, masks, strict=True):
        b, s = am.shape
        full = _full(value, b, s)
        if full is None:
            continue
        kept = ~(full <= MASKED_BELOW) & np.broadcast_to((am != 0)[:, None, None, :], full.shape)
        distance = np.abs(np.arange(s)[:, None] - np.arange(s)[None, :])
        band = np.broadcast_to((distance < s - 1)[None, None], full.shape)
        if s > 2 and not np.any(kept & ~band) and np.all(full[..., np.arange(s), np.arange(s)] > MASKED_BELOW):
            return None, ("the mask excludes keys by distance from the query (sliding-window / local "
                          "attention); the kernel has no window")
    return None, "mask is not a key-padding (or padding + causal) mask of attention_mask"


def _sum(values: list[np.ndarray]) -> np.ndarray:
    """The float64 sum of broadcastable arrays (several mask or bias terms of one block)."""
    total = np.asarray(values[0], np.float64)
    for value in values[1:]:
        total = total + np.asarray(value, np.float64)
    return total


def _classify_term(values: list[np.ndarray]) -> str:
    """'zero' (adds nothing), 'mask' (0 or very negative), 'bias' (finite, moderate) or 'mixed'."""
    kinds = set()
    for value in values:
        v = np.asarray(value, dtype=np.float64)
        excluded = v <= MASKED_BELOW
        if np.all(np.abs(v) <= 1e-6):
            kinds.add("zero")
        elif np.all(excluded | (np.abs(v) <= 1e-6)):
            kinds.add("mask")
        elif not np.any(excluded) and np.all(np.isfinite(v)):
            kinds.add("bias")
        else:
            kinds.add("mixed")
    if "mixed" in kinds or {"mask", "bias"} <= kinds:
        return "mixed"
    for kind in ("bias", "mask"):
        if kind in kinds:
            return kind
    return "zero"


def verify_candidates(model: Any, candidates: list[AttentionCandidate], feeds: list[dict[str, np.ndarray]],
                      kernel_limits: bool = True) -> tuple[list[FusedLayer], list[dict[str, str]]]:
    """Numeric pass: evaluate each candidate's tensors with ONNX Runtime and keep those that check out.

    `kernel_limits` applies our CUDA kernel's head sizes and sequence limit; ONNX Runtime's CPU attention
    ops (the CPU target) have neither, so that caller turns them off."""
    if not candidates:
        return [], []
    check_feeds = list(feeds)
    extra = _with_padding(feeds[0]) if feeds else None
    if extra is not None:
        check_feeds.append(extra)
    names: list[str] = []
    for c in candidates:
        names += [c.q_src, c.k_src, c.v_src, c.q_heads, c.output, *c.terms]
        names += [f.tensor for f in c.factors]
    names = list(dict.fromkeys(names))
    results = _run_with_intermediates(model, names, check_feeds)
    fused: list[FusedLayer] = []
    unfused: list[dict[str, str]] = []
    for c in candidates:
        reason, layer = _verify_one(c, results, check_feeds, kernel_limits)
        if layer is None:
            unfused.append({"layer": c.layer, "reason": reason})
        else:
            fused.append(layer)
    return fused, unfused


def _verify_one(c: AttentionCandidate, results: list[dict[str, Any]], feeds: list[dict[str, np.ndarray]],
                kernel_limits: bool = True) -> tuple[str, FusedLayer | None]:
    q_heads = results[0][c.q_heads]
    if q_heads.ndim != 4:
        return f"Q heads tensor has rank {q_heads.ndim}, expected [batch, heads, seq, head_size]", None
    _, num_heads, _, head_size = (int(d) for d in q_heads.shape)
    if kernel_limits and head_size not in SUPPORTED_HEAD_SIZES:
        return f"head size {head_size} is not supported by the kernel (supported: {list(SUPPORTED_HEAD_SIZES)})", None
    longest = max(int(r[c.q_src].shape[1]) for r in results)
    if kernel_limits and longest > MAX_SEQ_LEN:
        return f"sequence {longest} exceeds the kernel limit {MAX_SEQ_LEN}", None
    scale = 1.0
    for factor in c.factors:
        values = [np.asarray(r[factor.tensor]) for r in results]
        if any(v.size != 1 for v in values) or len({float(v.reshape(-1)[0]) for v in values}) != 1:
            return f"scale factor {factor.tensor!r} is not one constant scalar", None
        value = float(values[0].reshape(-1)[0])
        scale = scale / value if factor.divide else scale * value
    if not (scale > 0 and math.isfinite(scale)):
        return f"attention scale {scale} is not a positive number", None
    mask_name = padding_mask_input(feeds[0]) if feeds else None
    has_mask_input = mask_name is not None and all(mask_name in f for f in feeds)
    shapes = [(int(r[c.q_src].shape[0]), int(r[c.q_src].shape[1])) for r in results]
    masks = [f[mask_name] if has_mask_input and mask_name is not None else np.ones(shape, np.int64)
             for f, shape in zip(feeds, shapes, strict=True)]
    mask_terms: list[str] = []
    bias_terms: list[str] = []
    for term in c.terms:
        values = [np.asarray(r[term]) for r in results]
        kind = _classify_term(values)
        if kind == "mixed":
            return (f"additive term {term!r} mixes a position bias with mask values (a pre-combined mask); "
                    "the kernel takes them as separate inputs"), None
        if any(_full(v, b, s) is None for v, (b, s) in zip(values, shapes, strict=True)):
            return f"additive term {term!r} of shape {list(values[0].shape)} does not broadcast to the scores", None
        if kind == "mask":
            mask_terms.append(term)
        elif kind == "bias":
            if any(v.ndim == 4 and v.shape[1] not in (1, num_heads) for v in values):
                return f"bias {term!r} has {values[0].shape[1]} heads, the block {num_heads}", None
            bias_terms.append(term)
    causal = False
    if mask_terms:
        combined = [_sum([r[t] for t in mask_terms]) for r in results]
        verdict, why = _classify_mask(combined, masks)
        if verdict is None:
            return why, None
        causal = verdict
    # No mask term: the block ignores attention_mask (or the model has none), and so does the fused node.
    has_mask = has_mask_input and bool(mask_terms)
    bias_expand = False
    for r in results:
        for t in bias_terms:
            v = np.asarray(r[t])
            if not (v.ndim == 4 and v.shape[1] == num_heads and v.shape[2] == v.shape[3] == r[c.q_src].shape[1]):
                bias_expand = True
    worst = 0.0
    for r, mask in zip(results, masks, strict=True):
        expected = r[c.output]
        bias = _sum([r[t] for t in bias_terms]) if bias_terms else None
        got = attention_reference(r[c.q_src], r[c.k_src], r[c.v_src], mask if has_mask else None, num_heads,
                                  head_size, scale, causal, bias=bias)
        if got.shape != expected.shape:
            return f"block output shape {list(expected.shape)} != fused shape {list(got.shape)}", None
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if worst > LAYER_TOLERANCE:
        return f"the fused computation differs from the block by {worst:.3g} (> {LAYER_TOLERANCE})", None
    return "", FusedLayer(candidate=c, num_heads=num_heads, head_size=head_size, scale=scale, causal=causal,
                          max_abs_diff=worst, has_mask=has_mask, bias_terms=bias_terms, bias_expand=bias_expand)


def _eliminate_dead_nodes(graph: Any) -> None:
    """Drop nodes whose outputs nobody reads (repeat until stable), then unused initializers/value_info."""
    outputs = {o.name for o in graph.output}
    while True:
        used = set(outputs)
        for node in graph.node:
            used.update(node.input)
        keep = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = set(outputs)
    for node in graph.node:
        used.update(node.input)
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def graph_padding_mask(model: Any) -> str:
    """The graph input a masked fused node reads (cast to int32): the task's key-padding mask."""
    inits = {i.name for i in model.graph.initializer}
    name = padding_mask_input(i.name for i in model.graph.input if i.name not in inits)
    if name is None:
        raise TrtEdgeError("an attention block applies a padding mask but the graph has no padding-mask input")
    return name


def splice_nodes(model: Any, replacements: dict[str, list[Any]], prelude: list[Any], domain: str,
                 initializers: list[Any] | None = None) -> Any:
    """A copy of `model` where every node whose single output is a key of `replacements` becomes those
    nodes; `prelude` goes first, `initializers` are added, nodes nobody reads any more are dropped, and
    the opset of `domain` is declared. The input model is untouched.

    The one splicing step of both attention rewrites (our TensorRT plugin node, ONNX Runtime's CPU ops).
    """
    import onnx
    from onnx import helper

    spliced = onnx.ModelProto()
    spliced.CopyFrom(model)
    graph = spliced.graph
    if initializers:
        graph.initializer.extend(initializers)
    nodes: list[Any] = list(prelude)
    for node in graph.node:
        hit = replacements.get(node.output[0]) if len(node.output) == 1 else None
        nodes.extend(hit if hit is not None else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    _eliminate_dead_nodes(graph)
    if not any(op.domain == domain for op in spliced.opset_import):
        spliced.opset_import.append(helper.make_opsetid(domain, 1))
    return spliced


def bias_nodes(layer: FusedLayer, prefix: str) -> tuple[list[Any], str]:
    """Nodes computing a layer's additive bias as one float tensor [1|batch, heads, seq, seq] (the shape
    both our plugin and ONNX Runtime's attention ops take); returns (nodes, tensor name).

    Several bias terms are summed; a term that broadcasts (e.g. [1, 1, seq, seq] or [heads, seq, seq]) is
    expanded against [1, heads, seq, seq], with seq read from the Q projection at run time."""
    from onnx import helper, numpy_helper

    c = layer.candidate
    nodes: list[Any] = []
    tensor = layer.bias_terms[0]
    for i, term in enumerate(layer.bias_terms[1:]):
        nodes.append(helper.make_node("Add", [tensor, term], [f"{prefix}_bias_sum{i}"], name=f"{prefix}_bias_sum{i}"))
        tensor = f"{prefix}_bias_sum{i}"
    if layer.bias_expand:
        head_dims = numpy_helper.from_array(np.array([1, layer.num_heads], np.int64), f"{prefix}_bias_heads")
        nodes += [
            helper.make_node("Constant", [], [f"{prefix}_bias_heads"], value=head_dims),
            helper.make_node("Shape", [c.q_src], [f"{prefix}_bias_seq"], start=1, end=2),
            helper.make_node("Concat", [f"{prefix}_bias_heads", f"{prefix}_bias_seq", f"{prefix}_bias_seq"],
                             [f"{prefix}_bias_shape"], axis=0),
            helper.make_node("Expand", [tensor, f"{prefix}_bias_shape"], [f"{prefix}_bias_full"]),
        ]
        tensor = f"{prefix}_bias_full"
    return nodes, tensor


def rewrite_model(model: Any, layers: list[FusedLayer], trt_version: str | None = None) -> Any:
    """A copy of `model` where each verified block is one fused node; the input model is untouched.

    Node inputs follow the contract (docs/plugins.md): q, k, v, the int32 key-padding mask when
    `has_mask`, the fp16 additive bias when `has_bias`; both flags are always written. `trt_version` is
    the target TensorRT: the node names the plugin generation that version's ONNX parser resolves (None:
    TensorRT 10+, IPluginV3).
    """
    from onnx import TensorProto, helper

    from trt_edge.plugins.generation import node_attributes

    plugin_attributes = node_attributes(trt_version)
    replacements: dict[str, list[Any]] = {}
    for i, layer in enumerate(layers):
        c = layer.candidate
        name = f"{PLUGIN_NAME}_{i}"
        # The kernel is fp16 in, fp16 out: explicit Casts make the node's I/O types part of the graph, so
        # a strongly typed TensorRT network sees exactly what the plugin supports (weakly typed builds
        # fold the casts into reformats).
        halves = [f"{name}_{t}_fp16" for t in ("q", "k", "v")]
        nodes = [helper.make_node("Cast", [src], [half], name=f"{half}_cast", to=TensorProto.FLOAT16)
                 for src, half in zip((c.q_src, c.k_src, c.v_src), halves, strict=True)]
        inputs = [*halves]
        if layer.has_mask:
            inputs.append(MASK_INT32)
        if layer.has_bias:
            extra, bias = bias_nodes(layer, name)
            nodes += extra
            nodes.append(helper.make_node("Cast", [bias], [f"{name}_bias_fp16"], name=f"{name}_bias_cast",
                                          to=TensorProto.FLOAT16))
            inputs.append(f"{name}_bias_fp16")
        nodes.append(helper.make_node(
            PLUGIN_NAME, inputs, [f"{name}_out_fp16"], name=name,
            domain=PLUGIN_DOMAIN, **plugin_attributes,
            num_heads=layer.num_heads, head_size=layer.head_size, scale=float(layer.scale),
            causal=int(layer.causal), has_mask=int(layer.has_mask), has_bias=int(layer.has_bias)))
        nodes.append(helper.make_node("Cast", [f"{name}_out_fp16"], [c.output], name=f"{name}_out_cast",
                                      to=TensorProto.FLOAT))
        replacements[c.output] = nodes
    prelude = []
    if any(layer.has_mask for layer in layers):
        prelude.append(helper.make_node("Cast", [graph_padding_mask(model)], [MASK_INT32],
                                        name="trt_edge_attention_mask_cast", to=TensorProto.INT32))
    return splice_nodes(model, replacements, prelude, PLUGIN_DOMAIN)


def fuse_attention(model: Any, feeds: list[dict[str, np.ndarray]], trt_version: str | None = None
                   ) -> tuple[Any, list[FusedLayer], list[dict[str, str]]]:
    """Find, verify and fuse every attention block of `model` (onnx.ModelProto) for TensorRT `trt_version`
    (None: 10+; see `rewrite_model`).

    Returns:
        tuple: (fused model, fused layers, unfused [{"layer", "reason"}]).

    Raises:
        TrtEdgeError: no attention block was recognised, or none passed its checks.
    """
    if not feeds:
        raise TrtEdgeError("fuse_attention needs at least one feed (dict of input arrays) for its checks")
    candidates, rejected = find_attention_candidates(model)
    if not candidates:
        detail = summarize(rejected) or "the model has no Softmax"
        raise AttentionNotFused(f"no attention pattern recognised in the ONNX model ({detail}); "
                                "run without attention fusion", rejected)
    layers, unfused = verify_candidates(model, candidates, feeds)
    unfused = rejected + unfused
    while layers:
        fused = rewrite_model(model, layers, trt_version)
        left = {n.output[0] for n in fused.graph.node if n.op_type == "Softmax"}
        stuck = [layer for layer in layers if layer.candidate.softmax in left]
        if not stuck:
            break
        for layer in stuck:
            unfused.append({"layer": layer.candidate.layer,
                            "reason": "tensors inside the block are used outside it; fusing would not remove it"})
        layers = [layer for layer in layers if layer not in stuck]
    if not layers:
        raise AttentionNotFused(f"attention blocks were found but none can be fused ({summarize(unfused)})",
                                unfused)
    for item in unfused:
        log.warning("attention not fused at %s: %s", item["layer"], item["reason"])
    return fused, layers, unfused


def summarize(unfused: list[dict[str, str]]) -> str:
    """Per-layer reasons grouped by reason: "reason (layers a, b, c)"; one line for logs and errors."""
    by_reason: dict[str, list[str]] = {}
    for item in unfused:
        by_reason.setdefault(item["reason"], []).append(item["layer"])
    return "; ".join(f"{reason} ({len(layers)} layer{'s' if len(layers) > 1 else ''}: {', '.join(layers[:3])}"
                     f"{', ...' if len(layers) > 3 else ''})" for reason, layers in by_reason.items())


def _run(model: Any, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [list(session.run(None, feed)) for feed in feeds]


def compare_models(reference: Any, candidate: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Two ONNX models in ONNX Runtime on the same feeds: max |diff| over all outputs, and the share of
    rows whose arg-max of the first output agrees."""
    max_abs = 0.0
    agree = 0
    rows = 0
    for ref_outs, got_outs in zip(_run(reference, feeds), _run(candidate, feeds), strict=True):
        for ref, got in zip(ref_outs, got_outs, strict=True):
            max_abs = max(max_abs, float(np.max(np.abs(np.asarray(ref, np.float64) - np.asarray(got, np.float64)))))
        ref0 = np.asarray(ref_outs[0])
        got0 = np.asarray(got_outs[0])
        agree += int(np.sum(ref0.argmax(axis=-1) == got0.argmax(axis=-1)))
        rows += int(ref0.argmax(axis=-1).size)
    return {"max_abs_diff": max_abs, "argmax_agreement": agree / rows if rows else 1.0}


def parity(original: Any, fused: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Fused (expanded to standard ops) vs original on the feeds (see `compare_models`)."""
    return compare_models(original, expand_fused_attention(fused), feeds)


def fuse_attention_file(onnx_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]],
                        trt_version: str | None = None) -> dict[str, Any]:
    """Fuse the attention blocks of an ONNX file, write the result, and check it against the original.

    Args:
        onnx_path (Path): the exported (unfused) model.
        out_path (Path): where the fused model goes (written atomically).
        feeds (list[dict[str, np.ndarray]]): input batches used for the per-layer checks and the parity.
        trt_version (str | None): the target TensorRT, which picks the plugin generation. Defaults to None
            (TensorRT 10+, IPluginV3).

    Returns:
        dict: {"fused_layers": [...], "unfused": [{"layer", "reason"}], "max_abs_diff": float,
        "argmax_agreement": float, plus "layers" (per fused layer: heads, head size, scale, causal,
        check error) and "plugin" (name, version, namespace, generation)}.

    Raises:
        TrtEdgeError: the file is missing or unreadable, or no attention pattern was recognised/fusable.
    """
    import onnx

    from trt_edge.files import atomic_write_bytes
    from trt_edge.plugins.generation import plugin_generation

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TrtEdgeError(f"ONNX model not found: {onnx_path}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises several types for a bad file
        raise TrtEdgeError(f"cannot read ONNX model {onnx_path}: {exc}") from exc
    generation = plugin_generation(trt_version)  # checked before the expensive work
    fused, layers, unfused = fuse_attention(model, feeds, trt_version)
    onnx.checker.check_model(fused)
    atomic_write_bytes(out_path, fused.SerializeToString())
    figures = parity(model, fused, feeds)
    log.info("fused %d attention layers (%d not fused); parity max |diff| %.3g, arg-max agreement %.4f",
             len(layers), len(unfused), figures["max_abs_diff"], figures["argmax_agreement"])
    return {
        "fused_layers": [layer.candidate.layer for layer in layers],
        "unfused": unfused,
        "max_abs_diff": figures["max_abs_diff"],
        "argmax_agreement": figures["argmax_agreement"],
        "layers": [{"layer": layer.candidate.layer, "num_heads": layer.num_heads, "head_size": layer.head_size,
                    "scale": layer.scale, "causal": layer.causal, "has_mask": layer.has_mask,
                    "has_bias": layer.has_bias, "check_max_abs_diff": layer.max_abs_diff}
                   for layer in layers],
        "plugin": {"name": PLUGIN_NAME, "version": generation.plugin_version, "namespace": PLUGIN_NAMESPACE,
                   "generation": generation.interface},
    }

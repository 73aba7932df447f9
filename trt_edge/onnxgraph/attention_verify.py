"""The numeric half of attention fusion: decide, on real feeds, whether a matched block can be fused.

Each candidate from `attention_match` is evaluated with ONNX Runtime on the caller's feeds (plus one feed
with padding added, so an unpadded batch cannot hide a wrong mask), and is kept only if

- the head split gives a head size the target kernel supports (when the caller names its limits),
- the scale factors are scalars, constant across feeds,
- every additive term is either exactly a key-padding mask of the padding-mask input (optionally with a
  causal part) or a finite position bias,
- `attention_reference` (what a fused node computes) reproduces the block's output on the feeds.

Which graph input is the key-padding mask is the task layer's knowledge: callers pass it in as
`padding_mask` (a function of input names, `trt_edge.tasks.spec.padding_mask_input`), so this library
stays below the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trt_edge.onnxgraph.attention_match import AttentionCandidate
from trt_edge.onnxgraph.runtime import run_with_intermediates

# Names the key-padding mask among a graph's (or a feed's) input names, None when there is none.
PaddingMask = Callable[[Iterable[str]], "str | None"]


@dataclass(frozen=True)
class KernelLimits:
    """What the target fused kernel supports; a block outside it stays unfused. ONNX Runtime's CPU ops
    have no such limits (the caller passes None)."""

    head_sizes: tuple[int, ...]
    max_seq_len: int

# A mask value at or below this counts as "excluded" (exports use -inf or float32 min).
MASKED_BELOW = -1.0e4
# Per-layer agreement required between the block's own output and the fused computation (float32 both).
LAYER_TOLERANCE = 1e-3


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


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, num_heads: int,
                        head_size: int, scale: float, causal: bool = False,
                        bias: np.ndarray | None = None) -> np.ndarray:
    """What the kernel computes, in float64 numpy (the yardstick for the rewrite's numeric checks).

    Args:
        q (np.ndarray): [batch, seq, num_heads * head_size]. k, v (np.ndarray): same shape.
        mask (np.ndarray | None): [batch, seq], nonzero = attend; None = no padding.
        num_heads (int), head_size (int): the head split. scale (float): multiplies q.kᵀ.
        causal (bool): also exclude keys after the query. Defaults to False.
        bias (np.ndarray | None): additive bias broadcastable to [batch, num_heads, seq, seq], added to the
            scaled scores before the mask (relative position bias). Defaults to None.

    Returns:
        np.ndarray: [batch, seq, num_heads * head_size] in float32.
    """
    batch, seq, hidden = q.shape
    if hidden != num_heads * head_size:
        raise ValueError(f"hidden size {hidden} != num_heads {num_heads} * head_size {head_size}")

    def heads(x: np.ndarray) -> np.ndarray:
        split: np.ndarray = x.astype(np.float64).reshape(batch, seq, num_heads, head_size)
        moved: np.ndarray = split.transpose(0, 2, 1, 3)
        return moved

    scores = heads(q) @ heads(k).transpose(0, 1, 3, 2) * scale
    if bias is not None:
        scores = scores + np.asarray(bias, dtype=np.float64)
    excluded = np.zeros((batch, 1, seq, seq), dtype=bool)
    if mask is not None:
        excluded |= (np.asarray(mask) == 0)[:, None, None, :]
    if causal:
        excluded |= np.triu(np.ones((seq, seq), dtype=bool), k=1)[None, None]
    scores = np.where(excluded, -np.inf, scores)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(scores - row_max)
    total = weights.sum(axis=-1, keepdims=True)
    probs = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    out: np.ndarray = (probs @ heads(v)).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    return out.astype(np.float32)


def _with_padding(feed: dict[str, np.ndarray], padding_mask: PaddingMask) -> dict[str, np.ndarray] | None:
    """A copy of a feed whose first row has its last key padded, so mask checks always see padding."""
    name = padding_mask(feed)
    mask = feed.get(name) if name is not None else None
    if name is None or mask is None or mask.ndim != 2 or mask.shape[1] < 2:
        return None
    padded = {k: v.copy() for k, v in feed.items()}
    padded[name][0, -1] = 0
    return padded


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
                      padding_mask: PaddingMask, limits: KernelLimits | None = None
                      ) -> tuple[list[FusedLayer], list[dict[str, str]]]:
    """Numeric pass: evaluate each candidate's tensors with ONNX Runtime and keep those that check out.

    `padding_mask` names the key-padding mask among the feed's inputs (the task layer knows it);
    `limits` are the target kernel's head sizes and sequence limit (our CUDA kernel has them, ONNX
    Runtime's CPU attention ops do not: that caller passes None).

    Returns:
        tuple: (fused layers, unfused [{"layer", "reason"}]).
    """
    if not candidates:
        return [], []
    check_feeds = list(feeds)
    extra = _with_padding(feeds[0], padding_mask) if feeds else None
    if extra is not None:
        check_feeds.append(extra)
    names: list[str] = []
    for c in candidates:
        names += [c.q_src, c.k_src, c.v_src, c.q_heads, c.output, *c.terms]
        names += [f.tensor for f in c.factors]
    names = list(dict.fromkeys(names))
    results = run_with_intermediates(model, names, check_feeds)
    fused: list[FusedLayer] = []
    unfused: list[dict[str, str]] = []
    for c in candidates:
        reason, layer = _verify_one(c, results, check_feeds, padding_mask, limits)
        if layer is None:
            unfused.append({"layer": c.layer, "reason": reason})
        else:
            fused.append(layer)
    return fused, unfused


def _verify_one(c: AttentionCandidate, results: list[dict[str, Any]], feeds: list[dict[str, np.ndarray]],
                padding_mask: PaddingMask, limits: KernelLimits | None) -> tuple[str, FusedLayer | None]:
    q_heads = results[0][c.q_heads]
    if q_heads.ndim != 4:
        return f"Q heads tensor has rank {q_heads.ndim}, expected [batch, heads, seq, head_size]", None
    _, num_heads, _, head_size = (int(d) for d in q_heads.shape)
    if limits is not None and head_size not in limits.head_sizes:
        return f"head size {head_size} is not supported by the kernel (supported: {list(limits.head_sizes)})", None
    longest = max(int(r[c.q_src].shape[1]) for r in results)
    if limits is not None and longest > limits.max_seq_len:
        return f"sequence {longest} exceeds the kernel limit {limits.max_seq_len}", None
    scale = 1.0
    for factor in c.factors:
        values = [np.asarray(r[factor.tensor]) for r in results]
        if any(v.size != 1 for v in values) or len({float(v.reshape(-1)[0]) for v in values}) != 1:
            return f"scale factor {factor.tensor!r} is not one constant scalar", None
        value = float(values[0].reshape(-1)[0])
        scale = scale / value if factor.divide else scale * value
    if not (scale > 0 and math.isfinite(scale)):
        return f"attention scale {scale} is not a positive number", None
    mask_name = padding_mask(feeds[0]) if feeds else None
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

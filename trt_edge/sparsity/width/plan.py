"""How wide to keep: widths rounded to what the hardware tiles (multiples of 8) and the family's config
accepts, and which heads, neurons and hidden channels to keep (`plan_width`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from trt_edge.modeling.anatomy import head_count
from trt_edge.sparsity.width.importance import HiddenTrace, Importance
from trt_edge.sparsity.width.structure import Structure, reads_head_dim

MULTIPLE = 8


def round_heads(heads: int, head_dim: int, fraction: float) -> int:
    """Heads kept for `fraction`: at least one, and a count whose total width is a multiple of 8."""
    want = max(1, round(heads * fraction))
    for k in range(want, heads + 1):
        if (k * head_dim) % MULTIPLE == 0:
            return k
    return heads


def round_ffn(width: int, fraction: float) -> int:
    """Feed-forward neurons kept for `fraction`, rounded up to a multiple of 8 (at least 8, at most all)."""
    want = max(MULTIPLE, -(-round(width * fraction) // MULTIPLE) * MULTIPLE)
    return min(width, want)


def hidden_multiple(model: Any) -> int:
    """What a pruned hidden size must be a multiple of: 8, and the config's head count where the family
    derives the head size from `hidden_size / num_attention_heads` (its constructor refuses a hidden size
    the head count does not divide)."""
    if reads_head_dim(model):
        return MULTIPLE
    heads = head_count(model.config)
    return math.lcm(MULTIPLE, heads) if heads else MULTIPLE


def round_hidden(width: int, fraction: float, multiple: int = MULTIPLE) -> int:
    """Hidden channels kept for `fraction`, rounded up to `multiple` (at least one multiple, at most all)."""
    if fraction >= 1:
        return width
    want = max(multiple, -(-round(width * fraction) // multiple) * multiple)
    return min(width, want)


@dataclass
class WidthPlan:
    """Which heads and neurons each block keeps (sorted indices into the current widths), and which
    hidden channels the whole model keeps (None: all)."""

    heads: list[list[int]]
    neurons: list[list[int]]
    hidden: list[int] | None = None
    trace: HiddenTrace | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heads": self.heads, "neurons_kept": [len(n) for n in self.neurons]}
        if self.hidden is not None:
            out["hidden_kept"] = len(self.hidden)
        return out


def plan_width(structure: Structure, importance: Importance, keep_heads: int, keep_ffn: int,
               keep_hidden: int | None = None) -> WidthPlan:
    """Keep the `keep_heads` most important heads and `keep_ffn` neurons of every block, and the
    `keep_hidden` most important hidden channels (None or the full size: all).

    With a per-head table outside the blocks (shared by every layer) one head set is kept for all
    blocks, ranked by the summed importance."""
    def top(scores: torch.Tensor, k: int) -> list[int]:
        order = torch.sort(-scores, stable=True).indices[:k]
        return sorted(int(i) for i in order)

    if structure.head_tables:
        shared = top(torch.stack([s / max(float(s.sum()), 1e-30) for s in importance.heads]).sum(0), keep_heads)
        heads = [list(shared) for _ in structure.blocks]
    else:
        heads = [top(s, keep_heads) for s in importance.heads]
    hidden = None
    if keep_hidden is not None and keep_hidden < structure.hidden:
        if importance.hidden is None or importance.trace is None:
            raise RuntimeError("plan_width: hidden-size pruning needs activation_importance(..., hidden=True)")
        hidden = top(importance.hidden, keep_hidden)
    return WidthPlan(heads, [top(s, keep_ffn) for s in importance.neurons], hidden, importance.trace)

"""Structured width pruning: whole attention heads and feed-forward neurons removed for real.

2:4 sparsity and INT8 pay only where the hardware has sparse tensor cores or integer dot-product units;
a model with fewer heads and a narrower feed-forward is faster on every chip (Volta Jetsons, an AVX2
laptop, DLA, ONNX Runtime on any CPU). This module is the torch half of the `width` prune method:

- `find_blocks` finds every transformer block's attention (Q/K/V or one fused QKV, output projection,
  any further per-head projections such as DeBERTa's position projections) and feed-forward (up, down;
  a gated up holding input and gate) Linear layers from the module graph (shapes and order, not class
  names), so BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, ALBERT (its one shared block), MPNet,
  DeBERTa-v2/v3, ModernBERT, ViT, DeiT and DINOv2 go through the same code;
- `activation_importance` scores heads and neurons (and, when asked, hidden channels) on calibration
  batches by activation magnitude;
- `shrink_` slices the Linear layers (and any per-head table such as MPNet's relative position bias)
  to the kept heads and neurons, and updates the attention modules' head counts and the config;
- hidden-size pruning (optional) removes channels of the residual stream everywhere it lives: every
  block's projections, every LayerNorm, the embeddings (and ViT's patch projection, [CLS] token and
  position table), and the head's Linear layers that read the stream. Which head layers read the stream
  and which embedding layers write it is traced on a real forward pass (storage identity), not named;
- `save_pruned` / `load_pruned` write and read the Hugging Face folder. Transformers 5 has no
  `prune_heads` and most text families derive the head size from `hidden_size / num_attention_heads`,
  so fewer heads cannot be said in their config.json alone: `save_pruned` writes the shapes that differ
  from what the config builds under `trt_edge_width` in config.json, and `load_pruned` (which every
  trt-edge stage uses through `tasks.models.load_classifier`) rebuilds them, then loads the weights
  through transformers' own `from_pretrained` (its checkpoint key conversions included) and refuses any
  body weight that is missing or of another shape. A folder whose config already builds the right
  shapes (FFN-only pruning, ViT with `head_dim`) carries no such key and loads with plain
  `from_pretrained`.

Widths are uniform across layers (one head count, one feed-forward width), so the config's
`intermediate_size` stays truthful, and kept widths are multiples of 8 (TensorRT's tensor-core tiles
and the 2:4 pattern's groups of 4 both still apply). A pruned hidden size is also a multiple of the head
count where the family derives the head size from `hidden_size / num_attention_heads` (BERT, RoBERTa,
DistilBERT, MPNet refuse any other config); ViT, which reads `head_dim`, only needs the multiple of 8.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.log import get_logger
from trt_edge.tasks.spec import padding_mask_input

log = get_logger("prune.width")

WIDTH_KEY = "trt_edge_width"
# 2: attributes may be floats (attention scaling after hidden-size pruning); 3: LayerNorm modules (a head's
# own norm that keeps its width while the stream narrows)
WIDTH_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
MULTIPLE = 8
# Attributes through which attention modules remember their head count / total head width.
HEAD_COUNT_ATTRS = ("num_attention_heads", "n_heads", "num_heads")
HEAD_WIDTH_ATTRS = ("all_head_size", "inner_dim")
HEAD_DIM_ATTRS = ("attention_head_size", "head_dim", "head_size")
# Config keys of the feed-forward width and the head count, per family.
FFN_CONFIG_KEYS = ("intermediate_size", "hidden_dim", "ffn_dim", "d_ff")
HIDDEN_CONFIG_KEYS = ("hidden_size", "dim", "d_model")
EMBEDDING_CONFIG_KEYS = ("embedding_size",)
# Module names of classification heads: a re-shaped head there is the loader's to judge, not an edit; a
# missing one may also be DistilBERT's pre-classifier (a folder saved without its head).
HEAD_PREFIXES = ("classifier", "score")
MISSING_HEAD_PREFIXES = (*HEAD_PREFIXES, "pre_classifier")
HEAD_CONFIG_KEYS = ("num_attention_heads", "n_heads")


@dataclass
class Block:
    """One transformer block's prunable Linear layers, by module name.

    qkv (tuple[str, ...]): the projections whose output rows are the heads: Q, K and V, or one fused
        projection holding `qkv_chunks` of them stacked (ModernBERT's `Wqkv`: Q, K, V, each heads x head_dim).
    out (str): the attention output projection (its input columns are the heads).
    up (str), down (str): the feed-forward pair (up's output rows, down's input columns are the neurons).
    attention (str): the module holding the head count (the parent of the Q/K/V projections).
    heads (int), head_dim (int), ffn (int), hidden (int): current widths.
    prefix (str): the block's module name.
    extra (tuple[str, ...]): more projections of the stream into the heads' space, beside Q/K/V in the
        same attention module (DeBERTa's `pos_key_proj`/`pos_query_proj`, which project the relative
        position embeddings per head): sliced like Q/K/V.
    qkv_chunks (int): head sets stacked in each `qkv` projection's rows (3 when fused, else 1).
    up_chunks (int): neuron sets stacked in `up`'s rows (2 for a gated unit, ModernBERT's `Wi`: the input
        and its gate, chunked in two; else 1).
    """

    index: int
    qkv: tuple[str, ...]
    out: str
    up: str
    down: str
    attention: str
    heads: int
    head_dim: int
    ffn: int
    hidden: int = 0
    prefix: str = ""
    extra: tuple[str, ...] = ()
    qkv_chunks: int = 1
    up_chunks: int = 1

    @property
    def head_projections(self) -> tuple[str, ...]:
        """Every Linear whose output rows are the heads (Q, K, V and any `extra`)."""
        return (*self.qkv, *self.extra)


@dataclass
class Structure:
    """Every block, plus per-head tables outside the blocks (MPNet's relative position bias), which
    force one shared head set for all layers."""

    blocks: list[Block]
    head_tables: list[str] = field(default_factory=list)

    @property
    def heads(self) -> int:
        return self.blocks[0].heads

    @property
    def head_dim(self) -> int:
        return self.blocks[0].head_dim

    @property
    def ffn(self) -> int:
        return self.blocks[0].ffn

    @property
    def hidden(self) -> int:
        return self.blocks[0].hidden


def _linears(module: torch.nn.Module, prefix: str) -> list[tuple[str, torch.nn.Linear]]:
    return [(f"{prefix}.{n}" if n else prefix, m) for n, m in module.named_modules()
            if isinstance(m, torch.nn.Linear)]


def _block_tail(rest: list[tuple[str, torch.nn.Linear]], width: int, hidden: int,
                immediate: bool) -> tuple[str, str, str, int, int] | str | None:
    """(output projection, up, down, feed-forward width, up's chunks) among the Linear layers after the
    head projections, or what is missing. `immediate`: the output projection must be the first of them
    (None when it is not, or when the rest does not parse)."""
    out_i = next((i for i, (_, m) in enumerate(rest) if m.in_features == width and m.out_features == hidden), None)
    if out_i is None or (immediate and out_i):
        return None if immediate else f"no attention output projection [{width} -> {hidden}]"
    tail = rest[out_i + 1:]
    up_i = next((i for i, (_, m) in enumerate(tail) if m.in_features == hidden), None)
    if up_i is None:
        return None if immediate else f"no feed-forward Linear [{hidden} -> ...]"
    up_name, up_mod = tail[up_i]
    after = tail[up_i + 1:]
    for up_chunks in (1, 2):  # 2: a gated unit, up holds the input and the gate
        down = next((n for n, m in after if m.in_features * up_chunks == up_mod.out_features
                     and m.out_features == hidden), None)
        if down is not None:
            return rest[out_i][0], up_name, down, up_mod.out_features // up_chunks, up_chunks
    return None if immediate else f"no feed-forward Linear [{up_mod.out_features} -> {hidden}] after {up_name}"


def _head_count(module: torch.nn.Module) -> int | None:
    for attr in HEAD_COUNT_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _block_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The ModuleList of the blocks and its name: the encoder's list of layers, as distillation finds it;
    for a model that applies one shared block at every depth (ALBERT, `num_hidden_groups: 1`), the list
    holding that block's own weights (pruning it once prunes every application)."""
    from trt_edge.distill.student import _layer_list

    groups = getattr(getattr(model, "config", None), "num_hidden_groups", None)
    if isinstance(groups, int) and groups > 1:
        raise TrtEdgeError(f"{type(model).__name__} shares its blocks in {groups} groups (num_hidden_groups: "
                           f"{groups}); width pruning keeps one width for every block and supports one shared "
                           "group (num_hidden_groups: 1) or one block per layer")
    if groups == 1:
        inner = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m)
                 and not any(isinstance(c, torch.nn.ModuleList) for e in m for c in e.modules())
                 and any(isinstance(c, torch.nn.Linear) for c in m.modules())]
        if len(inner) == 1:
            return inner[0]
    parent, list_name, layers = _layer_list(model)
    base = next(n for n, m in model.named_modules() if m is parent)
    return (f"{base}.{list_name}" if base else list_name), layers


def _parse_block(model: torch.nn.Module, index: int, prefix: str, linears: list[tuple[str, torch.nn.Linear]],
                 modules: Mapping[str, torch.nn.Module]) -> Block:
    """One block's structure from its Linear layers in module order (see `find_blocks`)."""
    def parent(name: str) -> str:
        return name.rsplit(".", 1)[0]

    qkv: tuple[str, ...] | None = None
    chunks = 1
    for i in range(len(linears) - 2):
        names = [linears[i + j][0] for j in range(3)]
        mods = [linears[i + j][1] for j in range(3)]
        if len({parent(n) for n in names}) == 1 and len({(m.in_features, m.out_features) for m in mods}) == 1:
            qkv, rest = tuple(names), linears[i + 3:]
            hidden, width = mods[0].in_features, mods[0].out_features
            break
    if qkv is None:  # fused: [hidden -> 3A] then its sibling [A -> hidden]
        for i in range(len(linears) - 1):
            (name, m), (next_name, n) = linears[i], linears[i + 1]
            if m.out_features % 3 == 0 and parent(name) == parent(next_name) and \
                    (n.in_features, n.out_features) == (m.out_features // 3, m.in_features):
                qkv, rest, chunks = (name,), linears[i + 1:], 3
                hidden, width = m.in_features, m.out_features // 3
                break
    if qkv is None:
        raise TrtEdgeError(f"{type(model).__name__} block {index} ({prefix}): no attention found (three "
                           "sibling Linear layers of one shape for Q, K and V, or one fused [hidden -> 3 x width] "
                           "beside its output projection)")
    # Further siblings of Q/K/V's shape may project the stream into the heads' space too (DeBERTa's
    # position projections, whose output projection lives in another module), or one of them may be the
    # output projection itself (DistilBERT's out_lin when the widths are equal): the siblings are extra
    # projections only when the rest of the block then parses with the output projection right after them.
    run = 0
    if chunks == 1:
        while run < len(rest) and parent(rest[run][0]) == parent(qkv[0]) and \
                (rest[run][1].in_features, rest[run][1].out_features) == (hidden, width):
            run += 1
    parsed = _block_tail(rest[run:], width, hidden, immediate=True) if run else None
    extra = tuple(name for name, _ in rest[:run]) if parsed else ()
    if parsed is None:
        parsed = _block_tail(rest, width, hidden, immediate=False)
    if not isinstance(parsed, tuple):
        raise TrtEdgeError(f"{type(model).__name__} block {index}: {parsed} after {qkv[-1]}")
    out_name, up_name, down_name, ffn, up_chunks = parsed
    attention = parent(qkv[0])
    heads = _head_count(modules[attention])
    if heads is None:  # a module that infers the count from its head size (ModernBERT)
        head_dim = next((v for a in HEAD_DIM_ATTRS if isinstance(v := getattr(modules[attention], a, None), int)
                         and v > 0 and width % v == 0), None)
        heads = width // head_dim if head_dim else None
    if heads is None or width % heads:
        raise TrtEdgeError(f"{type(model).__name__} block {index}: {attention} has no head count "
                           f"({'/'.join(HEAD_COUNT_ATTRS)}) or head size ({'/'.join(HEAD_DIM_ATTRS)}) dividing "
                           f"its width {width}")
    return Block(index, qkv, out_name, up_name, down_name, attention, heads, width // heads, ffn, hidden, prefix,
                 extra, chunks, up_chunks)


def find_blocks(model: torch.nn.Module) -> Structure:
    """The prunable structure of every transformer block, found from shapes and module order.

    In each block (the encoder's ModuleList, found as distillation finds it) the attention is three
    sibling Linear layers of equal shape [hidden -> A] (Q, K, V), or one [hidden -> 3A] Linear followed by a
    sibling [A -> hidden] (fused, ModernBERT); the output projection is the next Linear [A -> hidden]; the
    feed-forward is the next Linear [hidden -> I] and the one after it that maps I back to hidden (or I/2:
    a gated unit whose up projection holds the input and the gate). Raises TrtEdgeError naming the block
    when one of them is missing.
    """
    list_path, layers = _block_list(model)
    blocks: list[Block] = []
    modules = dict(model.named_modules())
    for index, layer in enumerate(layers):
        prefix = f"{list_path}.{index}"
        blocks.append(_parse_block(model, index, prefix, _linears(layer, prefix), modules))
    if len({(b.heads, b.head_dim, b.ffn) for b in blocks}) > 1:
        raise TrtEdgeError(f"{type(model).__name__}: its blocks differ in width already (heads, head size, "
                           "feed-forward); width pruning keeps one width for every block and needs a uniform model")
    hidden = modules[blocks[0].up].in_features
    tables = [name for name, m in model.named_modules()
              if isinstance(m, torch.nn.Embedding) and m.embedding_dim == blocks[0].heads != hidden
              and not name.startswith(list_path + ".")]
    return Structure(blocks, tables)


@dataclass
class HiddenTrace:
    """Layers outside the blocks that touch the residual stream, found on a real forward pass.

    writers: Linear layers that run before the first block and write hidden-size outputs (an embedding
        projection): they lose rows.
    readers: Linear layers that run after the last block and read the stream itself (BERT's pooler,
        RoBERTa's and DistilBERT's pre-classifier, ViT's classifier): they lose input columns; their own
        outputs are a new space and keep their width.
    head_norms: LayerNorms of the hidden size that run after the last block on something other than the
        stream (ModernBERT's prediction head normalizes its own dense layer's output): the head's space,
        kept whole and not counted in the channel scores.
    """

    writers: list[str]
    readers: list[str]
    head_norms: list[str] = field(default_factory=list)


@dataclass
class Importance:
    """Activation-magnitude scores: per block, one per head and one per feed-forward neuron; one per
    hidden channel (summed over every LayerNorm) when hidden-size pruning asked for it."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]
    tokens: int
    hidden: torch.Tensor | None = None
    trace: HiddenTrace | None = None


def _hidden_norms(model: torch.nn.Module, hidden: int) -> list[tuple[str, torch.nn.LayerNorm]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.LayerNorm) and tuple(m.normalized_shape) == (hidden,)]


def _outer_linears(model: torch.nn.Module, structure: Structure) -> list[tuple[str, torch.nn.Linear]]:
    prefixes = tuple(b.prefix + "." for b in structure.blocks)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not n.startswith(prefixes)]


def _check_blocks_for_hidden(model: torch.nn.Module, structure: Structure) -> None:
    """Refuse a block with a hidden-size Linear the structure does not know (it could not be sliced)."""
    known = {n for b in structure.blocks for n in (*b.head_projections, b.out, b.up, b.down)}
    for block in structure.blocks:
        for name, m in _linears(model.get_submodule(block.prefix), block.prefix):
            if name not in known and block.hidden in (m.in_features, m.out_features):
                raise TrtEdgeError(f"hidden-size pruning: {name} [{m.in_features} -> {m.out_features}] in block "
                                   f"{block.index} is not a projection trt-edge knows how to slice; set "
                                   "width.keep_hidden: 1")
    if not _hidden_norms(model, structure.hidden):
        raise TrtEdgeError(f"hidden-size pruning: {type(model).__name__} has no LayerNorm over its hidden size "
                           f"{structure.hidden} (the importance is measured there); set width.keep_hidden: 1")


def activation_importance(model: torch.nn.Module, structure: Structure,
                          batches: Iterable[Mapping[str, torch.Tensor]], hidden: bool = False) -> Importance:
    """Score heads and neurons by how much they put into the model on real inputs.

    A head's score is the mean L2 norm of its slice of the attention output projection's input (its
    context vector), a neuron's the mean |activation| at the feed-forward down projection's input, both
    over the real (unpadded) tokens of `batches`. With `hidden`, a hidden channel's score is its mean
    |output| summed over every LayerNorm of the hidden size (Minitron's embedding-channel score: the
    normalized stream is what every block reads), and the layers outside the blocks that read or write the
    stream are traced (`HiddenTrace`). Forward passes only: no labels, no gradients.
    """
    modules = dict(model.named_modules())
    heads = [torch.zeros(b.heads, dtype=torch.float64) for b in structure.blocks]
    neurons = [torch.zeros(b.ffn, dtype=torch.float64) for b in structure.blocks]
    channels = torch.zeros(structure.hidden, dtype=torch.float64)
    # "alive" holds the stream tensors until the batch ends, so no later tensor reuses their memory and is
    # mistaken for the stream by its storage address.
    state: dict[str, Any] = {"mask": None, "tokens": 0, "phase": "before", "stream": set(), "alive": []}
    seen: dict[str, tuple[str, bool]] = {}
    head_norms: set[str] = set()
    outer = dict(_outer_linears(model, structure)) if hidden else {}

    def weights(x: torch.Tensor) -> torch.Tensor:
        mask: torch.Tensor | None = state["mask"]
        if mask is None or mask.shape != x.shape[:-1]:
            return torch.ones(x.shape[:-1], dtype=x.dtype)
        return mask.to(x.dtype)

    def abs_sum(x: torch.Tensor) -> torch.Tensor:
        """Sum of |x| over the real tokens, per channel of the last axis."""
        return (x.abs() * weights(x)[..., None]).reshape(-1, x.shape[-1]).sum(0).double()

    def head_hook(i: int, block: Block) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().float()
            norms = x.reshape(*x.shape[:-1], block.heads, block.head_dim).norm(dim=-1)
            w = weights(x)
            heads[i] += (norms * w[..., None]).reshape(-1, block.heads).sum(0).double()
            if i == 0:  # tokens as the blocks see them (patches for ViT), padding excluded
                state["tokens"] += int(w.sum())
        return hook

    def neuron_hook(i: int) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            neurons[i] += abs_sum(args[0].detach().float())
        return hook

    def storage(x: Any) -> int | None:
        return int(x.untyped_storage().data_ptr()) if isinstance(x, torch.Tensor) else None

    def norm_hook(name: str) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if state["phase"] == "after" and storage(args[0]) not in state["stream"]:
                head_norms.add(name)  # the head's own space, not the stream
                return
            state["stream"].add(storage(out))
            state["alive"].append(out)
            channels.add_(abs_sum(out.detach().float()))
        return hook

    def phase_hook(phase: str) -> Any:
        def hook(_: torch.nn.Module, *args: Any) -> None:
            state["phase"] = phase
            if phase == "after":  # the last block's output is the stream the head reads
                out = args[-1]
                out = out[0] if isinstance(out, tuple) else out
                state["stream"].add(storage(out))
                state["alive"].append(out)
        return hook

    def outer_hook(name: str) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen.setdefault(name, (state["phase"], storage(args[0]) in state["stream"]))
        return hook

    handles = []
    for i, block in enumerate(structure.blocks):
        handles.append(modules[block.out].register_forward_pre_hook(head_hook(i, block)))
        handles.append(modules[block.down].register_forward_pre_hook(neuron_hook(i)))
    if hidden:
        _check_blocks_for_hidden(model, structure)
        for name, norm in _hidden_norms(model, structure.hidden):
            handles.append(norm.register_forward_hook(norm_hook(name)))
        handles.append(modules[structure.blocks[0].prefix].register_forward_pre_hook(phase_hook("blocks")))
        handles.append(modules[structure.blocks[-1].prefix].register_forward_hook(phase_hook("after")))
        for name, linear in outer.items():
            handles.append(linear.register_forward_pre_hook(outer_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                mask_name = padding_mask_input(batch)
                state["mask"] = batch.get(mask_name) if mask_name is not None else None
                state["phase"], state["stream"], state["alive"] = "before", set(), []
                model(**batch)
        state["alive"] = []
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if state["tokens"] == 0:
        raise TrtEdgeError("width pruning: the calibration batches hold no tokens to measure importance on")
    scale = 1.0 / state["tokens"]
    trace = None
    if hidden:
        size = structure.hidden
        writers = [n for n, (phase, _) in seen.items() if phase == "before" and outer[n].out_features == size]
        readers = [n for n, (phase, reads) in seen.items() if phase == "after" and reads
                   and outer[n].in_features == size]
        early = [n for n, (phase, _) in seen.items() if phase == "before" and outer[n].in_features == size]
        if early:
            raise TrtEdgeError(f"hidden-size pruning: {early[0]} reads a hidden-size input before the first block; "
                               "trt-edge does not know how to slice it. Set width.keep_hidden: 1")
        trace = HiddenTrace(sorted(writers), sorted(readers), sorted(head_norms))
    return Importance([h * scale for h in heads], [n * scale for n in neurons], int(state["tokens"]),
                      channels * scale if hidden else None, trace)


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
    config = model.config
    if _reads_head_dim(model):
        return MULTIPLE
    heads = next((getattr(config, k) for k in HEAD_CONFIG_KEYS if isinstance(getattr(config, k, None), int)), None)
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


def _sliced(linear: torch.nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.nn.Linear:
    weight = linear.weight.detach()
    rows = rows.to(weight.device) if rows is not None else None
    cols = cols.to(weight.device) if cols is not None else None
    if rows is not None:
        weight = weight.index_select(0, rows)
    if cols is not None:
        weight = weight.index_select(1, cols)
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None,
                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            bias = linear.bias.detach()
            new.bias.copy_(bias.index_select(0, rows) if rows is not None else bias)
    new.train(linear.training)
    return new


def _sliced_embedding(table: torch.nn.Embedding, cols: torch.Tensor) -> torch.nn.Embedding:
    """`table` keeping only the embedding channels `cols` (every row kept)."""
    new = torch.nn.Embedding(table.num_embeddings, len(cols), padding_idx=table.padding_idx,
                             device=table.weight.device, dtype=table.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(table.weight.detach().index_select(1, cols.to(table.weight.device)))
    return new


def _set_module(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _channels(indices: list[int], size: int) -> torch.Tensor:
    return torch.tensor([i * size + j for i in indices for j in range(size)], dtype=torch.long)


def shrink_(model: Any, structure: Structure, plan: WidthPlan) -> Structure:
    """Slice `model` in place to the plan's heads and neurons; return the new structure.

    Q/K/V lose the rows of the dropped heads, the output projection the matching columns; the
    feed-forward up projection loses rows, down loses columns. Attention modules' head counts, per-head
    tables and the config (`intermediate_size` and kin; `num_attention_heads` and `head_dim` where the
    family reads `head_dim`) follow. The function computed by the kept heads and neurons is unchanged.
    """
    modules = dict(model.named_modules())
    new_blocks = []
    for block, heads, neurons in zip(structure.blocks, plan.heads, plan.neurons, strict=True):
        rows = _channels(heads, block.head_dim)
        width = block.heads * block.head_dim
        stacked = torch.cat([rows + k * width for k in range(block.qkv_chunks)])
        for name in block.qkv:
            _set_module(model, name, _sliced(modules[name], stacked, None))
        for name in block.extra:
            _set_module(model, name, _sliced(modules[name], rows, None))
        _set_module(model, block.out, _sliced(modules[block.out], None, rows))
        keep = torch.tensor(neurons, dtype=torch.long)
        up_rows = torch.cat([keep + k * block.ffn for k in range(block.up_chunks)])
        _set_module(model, block.up, _sliced(modules[block.up], up_rows, None))
        _set_module(model, block.down, _sliced(modules[block.down], None, keep))
        attention = modules[block.attention]
        for attr in HEAD_COUNT_ATTRS:
            if getattr(attention, attr, None) == block.heads:
                setattr(attention, attr, len(heads))
        for attr in HEAD_WIDTH_ATTRS:
            if getattr(attention, attr, None) == block.heads * block.head_dim:
                setattr(attention, attr, len(heads) * block.head_dim)
        new_blocks.append(dataclasses.replace(block, heads=len(heads), ffn=len(neurons)))
    for name in structure.head_tables:
        table = modules[name]
        assert isinstance(table, torch.nn.Embedding)
        keep = torch.tensor(plan.heads[0], dtype=torch.long)
        _set_module(model, name, _sliced_embedding(table, keep))
        owner = modules[name.rpartition(".")[0]] if "." in name else model
        for attr in HEAD_COUNT_ATTRS:
            if getattr(owner, attr, None) == structure.heads:
                setattr(owner, attr, len(keep))
    config = model.config
    for key in FFN_CONFIG_KEYS:
        if getattr(config, key, None) == structure.ffn:
            setattr(config, key, new_blocks[0].ffn)
            break
    if _reads_head_dim(model):
        for key in HEAD_CONFIG_KEYS:
            if getattr(config, key, None) == structure.heads:
                setattr(config, key, new_blocks[0].heads)
        config.head_dim = structure.head_dim
    result = Structure(new_blocks, list(structure.head_tables))
    if plan.hidden is not None:
        assert plan.trace is not None
        _shrink_hidden_(model, result, plan.hidden, plan.trace)
        for block in result.blocks:
            block.hidden = len(plan.hidden)
    return result


def _logits(output: Any) -> torch.Tensor:
    logits: torch.Tensor = output.logits if hasattr(output, "logits") else output[0]
    return logits


def check_hidden_shrink(model: Any, structure: Structure, importance: Importance,
                        batch: Mapping[str, torch.Tensor], keep_hidden: int) -> None:
    """Cut a copy of `model` to `keep_hidden` channels, run `batch` through it, rebuild it from its config
    and the width recipe as `load_pruned` will, and compare the two: a family whose stream is read in a
    way the trace does not see (a head that concatenates pooled tokens, say), or whose config cannot say
    the new size (a table computed from it, such as rotary frequencies), fails here in one line, before
    any timing or training."""
    import copy

    trial = copy.deepcopy(model)
    try:
        plan = plan_width(structure, importance, structure.heads, structure.ffn, keep_hidden)
        shrink_(trial, structure, plan)
        trial.eval()
        with torch.inference_mode():
            got = _logits(trial(**batch))
        config = copy.deepcopy(trial.config)
        config.__dict__.pop(WIDTH_KEY, None)
        rebuilt = type(trial)(config)  # the config, with the new hidden size, must still build the family
        apply_recipe(rebuilt, shape_recipe(trial) or {"format": WIDTH_FORMAT})
        rebuilt.load_state_dict(trial.state_dict(), strict=True)
        rebuilt.eval()
        with torch.inference_mode():
            again = _logits(rebuilt(**batch))
        if not torch.allclose(again, got, atol=1e-4, rtol=1e-3):
            raise RuntimeError(f"rebuilt from its config it computes other outputs (max |diff| "
                               f"{float((again - got).abs().max()):.3g})")
    except TrtEdgeError:
        raise
    except Exception as exc:  # any failure means the family is not supported
        # One line: torch's load_state_dict puts the useful part (which keys) on the lines after the first.
        first = " ".join(line.strip() for line in str(exc).splitlines()[:3])[:300] if str(exc) else \
            type(exc).__name__
        raise TrtEdgeError(f"hidden-size pruning does not support {type(model).__name__} ({first}) at a hidden "
                           f"size of {keep_hidden}; try another width.keep_hidden, or 1 to prune heads and neurons only"
                           ) from exc
    finally:
        del trial


def _shrink_hidden_(model: Any, structure: Structure, keep: list[int], trace: HiddenTrace) -> None:
    """Remove the hidden channels not in `keep` from everything that carries the residual stream.

    The blocks' Q/K/V and feed-forward up projections lose input columns, their output and down
    projections lose rows; every LayerNorm of the hidden size, every Embedding of that width (the per-head
    tables excepted), a Conv2d producing it (ViT's patch projection), and raw parameters and float buffers
    whose last axis is the hidden size ([CLS], mask token, ViT's position table, layer scales) are sliced
    on that axis; the traced writers lose rows and readers lose columns. Unlike heads and neurons this
    changes the function (each LayerNorm now normalizes over fewer channels): recovery is what repairs it.
    """
    size = structure.hidden
    index = torch.tensor(keep, dtype=torch.long)
    modules = dict(model.named_modules())

    def pick(t: torch.Tensor, dim: int) -> torch.Tensor:
        return t.detach().index_select(dim, index.to(t.device)).clone()

    for block in structure.blocks:
        for name in (*block.head_projections, block.up):
            _set_module(model, name, _sliced(modules[name], None, index))
        for name in (block.out, block.down):
            _set_module(model, name, _sliced(modules[name], index, None))
    for name in trace.writers:
        _set_module(model, name, _sliced(modules[name], index, None))
    for name in trace.readers:
        _set_module(model, name, _sliced(modules[name], None, index))
    handled = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.Conv2d)
    for name, module in modules.items():
        if isinstance(module, torch.nn.LayerNorm) and tuple(module.normalized_shape) == (size,) \
                and name not in trace.head_norms:
            norm = torch.nn.LayerNorm(len(keep), eps=module.eps, elementwise_affine=module.elementwise_affine,
                                      bias=module.bias is not None,
                                      device=index.device if module.weight is None else module.weight.device,
                                      dtype=None if module.weight is None else module.weight.dtype)
            with torch.no_grad():
                if module.weight is not None:
                    norm.weight.copy_(pick(module.weight, 0))
                if module.bias is not None:
                    norm.bias.copy_(pick(module.bias, 0))
            norm.train(module.training)
            _set_module(model, name, norm)
        elif (isinstance(module, torch.nn.Embedding) and module.embedding_dim == size
              and name not in structure.head_tables):
            _set_module(model, name, _sliced_embedding(module, index))
        elif isinstance(module, torch.nn.Conv2d) and module.out_channels == size:
            conv = torch.nn.Conv2d(module.in_channels, len(keep), module.kernel_size,  # type: ignore[arg-type]
                                   stride=module.stride, padding=module.padding,  # type: ignore[arg-type]
                                   dilation=module.dilation, groups=module.groups,  # type: ignore[arg-type]
                                   bias=module.bias is not None, padding_mode=module.padding_mode,
                                   device=module.weight.device, dtype=module.weight.dtype)
            with torch.no_grad():
                conv.weight.copy_(pick(module.weight, 0))
                if module.bias is not None:
                    conv.bias.copy_(pick(module.bias, 0))  # type: ignore[union-attr]
            _set_module(model, name, conv)
        elif not isinstance(module, handled):
            for pname, param in list(module._parameters.items()):
                if param is not None and param.dim() >= 1 and param.shape[-1] == size:
                    module._parameters[pname] = torch.nn.Parameter(
                        pick(param, param.dim() - 1), requires_grad=param.requires_grad)
            for bname, buf in list(module._buffers.items()):
                if buf is not None and buf.is_floating_point() and buf.dim() >= 1 and buf.shape[-1] == size:
                    module._buffers[bname] = pick(buf, buf.dim() - 1)
    config = model.config
    for key in HIDDEN_CONFIG_KEYS:
        if getattr(config, key, None) == size:
            setattr(config, key, len(keep))
            break
    for key in EMBEDDING_CONFIG_KEYS:
        # An embedding as wide as the stream was sliced with it (ELECTRA builds its embedding projection
        # only when `embedding_size` differs from `hidden_size`): the config must say its new width too.
        if getattr(config, key, None) == size:
            setattr(config, key, len(keep))
    if any(b.endswith("inv_freq") for m in model.modules() for b in m._buffers) and \
            getattr(config, "head_dim", None) is None:
        # Rotary tables (transformers' `inv_freq`, ModernBERT) take their size from `config.head_dim`, else
        # from hidden_size / num_attention_heads, which no longer is the head size: say it.
        config.head_dim = structure.head_dim


def _reads_head_dim(model: Any) -> bool:
    """Whether the family builds its attention from `config.head_dim` (ViT in transformers 5 does):
    checked by building one model with a changed head count and fixed head_dim."""
    import copy

    config = copy.deepcopy(model.config)
    heads = next((getattr(config, k) for k in HEAD_CONFIG_KEYS if isinstance(getattr(config, k, None), int)), None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    if not heads or not hidden or heads < 2 or hidden % heads:
        return False
    head_dim = hidden // heads
    config.head_dim = head_dim
    for key in HEAD_CONFIG_KEYS:
        if getattr(config, key, None) == heads:
            setattr(config, key, heads - 1)
    config.num_hidden_layers = 1
    try:
        probe = type(model)(config)
    except Exception:
        return False
    try:
        structure = find_blocks(probe)
    except TrtEdgeError:
        return False
    return bool(structure.heads == heads - 1 and structure.head_dim == head_dim)


_SHAPED = (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.Conv2d)


def shape_recipe(model: Any) -> dict[str, Any]:
    """What `type(model)(model.config)` would build differently from `model`: the Linear and Embedding
    shapes and the scalar attributes (head counts, head sizes, attention scaling: any int or float a
    module computed from the config) that `load_pruned` must set before loading the weights."""
    import copy

    config = copy.deepcopy(model.config)
    config.__dict__.pop(WIDTH_KEY, None)
    with torch.device("meta"):
        fresh = type(model)(config)
    fresh_modules = dict(fresh.named_modules())
    modules: dict[str, Any] = {}
    attrs: dict[str, dict[str, int | float]] = {}
    for name, module in model.named_modules():
        other = fresh_modules.get(name)
        if other is None:
            raise RuntimeError(f"{name} has no counterpart in a model built from the config: a bug in trt-edge")
        if isinstance(module, torch.nn.Linear) and tuple(module.weight.shape) != tuple(other.weight.shape):
            modules[name] = {"type": "Linear", "in": module.in_features, "out": module.out_features,
                             "bias": module.bias is not None}
        elif isinstance(module, torch.nn.Embedding) and tuple(module.weight.shape) != tuple(other.weight.shape):
            modules[name] = {"type": "Embedding", "num": module.num_embeddings, "dim": module.embedding_dim,
                             "padding_idx": module.padding_idx}
        elif isinstance(module, torch.nn.LayerNorm) and tuple(module.normalized_shape) != tuple(other.normalized_shape):
            # A head-space norm the config sizes from the hidden size (ModernBERT's prediction head) keeps its
            # width while the stream narrows.
            modules[name] = {"type": "LayerNorm", "shape": list(module.normalized_shape), "eps": module.eps,
                             "affine": module.elementwise_affine, "bias": module.bias is not None}
        elif isinstance(module, torch.nn.Conv2d) and tuple(module.weight.shape) != tuple(other.weight.shape):
            raise RuntimeError(f"{name}: a {type(module).__name__} the config does not build; hidden-size pruning "
                               "must update the config's hidden size (a bug in trt-edge)")
        if isinstance(module, _SHAPED):
            continue  # replaced whole by their module spec
        changed = {a: v for a, v in vars(module).items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and v != getattr(other, a, None)}
        if changed:
            attrs[name] = changed
    return {"format": WIDTH_FORMAT, "modules": modules, "attributes": attrs} if modules or attrs else {}


def apply_recipe(model: Any, recipe: Mapping[str, Any]) -> None:
    """Give a freshly built model the shapes and head counts a width-pruned folder records."""
    if recipe.get("format") not in READABLE_FORMATS:
        raise TrtEdgeError(f"config.json {WIDTH_KEY} has format {recipe.get('format')!r}; this trt-edge reads "
                           f"formats {', '.join(map(str, READABLE_FORMATS))}: upgrade trt-edge")
    for name, spec in dict(recipe.get("modules", {})).items():
        if spec.get("type") == "Linear":
            new: torch.nn.Module = torch.nn.Linear(int(spec["in"]), int(spec["out"]), bias=bool(spec["bias"]))
        elif spec.get("type") == "Embedding":
            new = torch.nn.Embedding(int(spec["num"]), int(spec["dim"]), padding_idx=spec.get("padding_idx"))
        elif spec.get("type") == "LayerNorm":
            new = torch.nn.LayerNorm([int(v) for v in spec["shape"]], eps=float(spec["eps"]),
                                     elementwise_affine=bool(spec["affine"]), bias=bool(spec["bias"]))
        else:
            raise TrtEdgeError(f"config.json {WIDTH_KEY}: unknown module type {spec.get('type')!r} for {name}")
        try:
            model.get_submodule(name)
        except AttributeError as exc:
            raise TrtEdgeError(f"config.json {WIDTH_KEY} names {name}, which this model does not have") from exc
        _set_module(model, name, new)
    for name, values in dict(recipe.get("attributes", {})).items():
        module = model.get_submodule(name) if name else model
        for attr, value in dict(values).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TrtEdgeError(f"config.json {WIDTH_KEY}: {name}.{attr} is {value!r}, not a number")
            setattr(module, attr, value)


def save_pruned(model: Any, tokenizer: Any, folder: Path) -> dict[str, Any]:
    """Save a width-pruned model; returns the recipe written to config.json ({} when the config alone
    builds the right shapes)."""
    from trt_edge.tasks.models import save_classifier

    model.config.__dict__.pop(WIDTH_KEY, None)
    recipe = shape_recipe(model)
    if recipe:
        setattr(model.config, WIDTH_KEY, recipe)
    save_classifier(model, tokenizer, folder)
    return recipe


def width_recipe(config: Any) -> dict[str, Any] | None:
    recipe = getattr(config, WIDTH_KEY, None)
    return dict(recipe) if isinstance(recipe, Mapping) and recipe else None


def load_pruned(path: Path, config: Any, model_cls: Any, trust_remote_code: bool = False) -> tuple[Any, dict[str, Any]]:
    """Load a width-pruned folder: transformers' own `from_pretrained`, on a model class that applies the
    width recipe right after building from the config.

    Loading through transformers (not a hand-written state-dict load) keeps its checkpoint key
    conversions: transformers 5 renames some families' weights in memory and back on save (DINOv2's
    `attention.attention.query` is `attention.q_proj` in memory), so the saved names are not the module
    names. Returns the model and transformers' loading info; a body weight whose shape differs from the
    recipe's is refused (the folder was edited), a head that differs is the caller's to judge.
    """
    recipe = width_recipe(config)
    if recipe is None:
        raise RuntimeError(f"{path}: load_pruned called on a folder without {WIDTH_KEY}")
    if not any(path.glob("*.safetensors")):
        raise TrtEdgeError(f"{path}: no model.safetensors")
    with torch.device("meta"):  # only the concrete class is wanted: no memory, no initialisation
        concrete = type(model_cls.from_config(config, trust_remote_code=trust_remote_code))

    def init(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        concrete.__init__(self, config, *args, **kwargs)
        apply_recipe(self, recipe)

    # The same name and module: transformers looks conversions up by class name, then model type.
    pruned_cls: Any = type(concrete.__name__, (concrete,), {"__init__": init, "__module__": concrete.__module__})
    model, info = pruned_cls.from_pretrained(
        path, config=config, local_files_only=True, trust_remote_code=trust_remote_code, use_safetensors=True,
        ignore_mismatched_sizes=True, output_loading_info=True)
    # transformers 5 reports each as (name, shape in the folder, shape the model expects)
    entries = [k if isinstance(k, tuple) else (k,) for k in info.get("mismatched_keys", [])]
    mismatched = [str(e[0]) for e in entries]
    wrong = [e for e in entries if not str(e[0]).startswith(HEAD_PREFIXES)]
    if wrong:
        shapes = f": {tuple(wrong[0][1])} vs {tuple(wrong[0][2])}" if len(wrong[0]) == 3 else ""
        raise TrtEdgeError(f"{path}: weights do not match the width recorded in config.json ({wrong[0][0]}{shapes}); "
                           "the folder was edited")
    unexpected = list(info.get("unexpected_keys", []))
    if unexpected:
        raise TrtEdgeError(f"{path}: weights the model does not have: {', '.join(unexpected[:3])}")
    parameters = {name for name, _ in model.named_parameters()}
    missing = [k for k in info.get("missing_keys", []) if k in parameters]
    body_missing = [k for k in missing if not k.startswith(MISSING_HEAD_PREFIXES)]
    if body_missing:
        raise TrtEdgeError(f"{path}: weights missing from model.safetensors: {', '.join(body_missing[:3])}")
    model.eval()
    return model, {"missing_keys": missing, "mismatched_keys": mismatched}


def describe(structure: Structure) -> dict[str, Any]:
    """Widths for stage.json."""
    return {"layers": len(structure.blocks), "heads": structure.heads, "head_dim": structure.head_dim,
            "attention_width": structure.heads * structure.head_dim, "ffn": structure.ffn,
            "hidden": structure.hidden,
            "shared_head_set": bool(structure.head_tables)}


def read_config(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}

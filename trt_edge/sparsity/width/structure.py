"""Where a model's width lives: every transformer block's attention and feed-forward Linear layers,
found from the module graph (shapes and order, not class names), so BERT, RoBERTa, XLM-R, DistilBERT,
ELECTRA, ALBERT (its one shared block), MPNet, DeBERTa-v2/v3, ModernBERT, ViT, DeiT and DINOv2 go through
the same code (`find_blocks`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.modeling.anatomy import block_list, config_key, config_value, head_count
from trt_edge.modeling.anatomy import names as config_names


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


def block_linears(module: torch.nn.Module, prefix: str) -> list[tuple[str, torch.nn.Linear]]:
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
    heads = head_count(modules[attention])
    if heads is None:  # a module that infers the count from its head size (ModernBERT)
        head_dim = next((v for a in config_names("head_dim")
                         if isinstance(v := getattr(modules[attention], a, None), int) and v > 0 and width % v == 0),
                        None)
        heads = width // head_dim if head_dim else None
    if heads is None or width % heads:
        raise TrtEdgeError(f"{type(model).__name__} block {index}: {attention} has no head count "
                           f"({'/'.join(config_names('heads'))}) or head size "
                           f"({'/'.join(config_names('head_dim'))}) dividing its width {width}")
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
    list_path, layers = block_list(model)
    blocks: list[Block] = []
    modules = dict(model.named_modules())
    for index, layer in enumerate(layers):
        prefix = f"{list_path}.{index}"
        blocks.append(_parse_block(model, index, prefix, block_linears(layer, prefix), modules))
    if len({(b.heads, b.head_dim, b.ffn) for b in blocks}) > 1:
        raise TrtEdgeError(f"{type(model).__name__}: its blocks differ in width already (heads, head size, "
                           "feed-forward); width pruning keeps one width for every block and needs a uniform model")
    hidden = modules[blocks[0].up].in_features
    tables = [name for name, m in model.named_modules()
              if isinstance(m, torch.nn.Embedding) and m.embedding_dim == blocks[0].heads != hidden
              and not name.startswith(list_path + ".")]
    return Structure(blocks, tables)


def reads_head_dim(model: Any) -> bool:
    """Whether the family builds its attention from `config.head_dim` (ViT in transformers 5 does):
    checked by building one model with a changed head count and fixed head_dim."""
    config = copy.deepcopy(model.config)
    heads = head_count(config)
    hidden = config_value(config, "hidden")
    if not heads or not hidden or heads < 2 or hidden % heads:
        return False
    head_dim = hidden // heads
    config.head_dim = head_dim
    for key in config_names("heads"):
        if getattr(config, key, None) == heads:
            setattr(config, key, heads - 1)
    setattr(config, config_key(config, "layers"), 1)
    try:
        probe = type(model)(config)
    except Exception:
        return False
    try:
        structure = find_blocks(probe)
    except TrtEdgeError:
        return False
    return bool(structure.heads == heads - 1 and structure.head_dim == head_dim)


def describe(structure: Structure) -> dict[str, Any]:
    """Widths for stage.json."""
    return {"layers": len(structure.blocks), "heads": structure.heads, "head_dim": structure.head_dim,
            "attention_width": structure.heads * structure.head_dim, "ffn": structure.ffn,
            "hidden": structure.hidden,
            "shared_head_set": bool(structure.head_tables)}

"""How much each head, feed-forward neuron and hidden channel puts into the model: activation
magnitudes on calibration batches (`activation_importance`), and, for hidden-size pruning, which layers
outside the blocks read or write the residual stream (`HiddenTrace`, traced on a real forward pass)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.sparsity.width.structure import Block, Structure, block_linears
from trt_edge.tasks.spec import padding_mask_input


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
        for name, m in block_linears(model.get_submodule(block.prefix), block.prefix):
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

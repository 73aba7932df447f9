"""Channel permutations that raise the magnitude 2:4 pruning keeps, without changing the function.

A Linear's 2:4 groups are 4 consecutive *input* channels. Which channels share a group is free wherever
the layer that produces those channels can be permuted with them: permuting the producer's output rows
(and bias) and the consumer's input columns by the same permutation leaves the model's function exactly
as it was. In a BERT-family block there are two such pairs:

* the feed-forward intermediate: `intermediate.dense` rows ↔ `output.dense` columns (the activation
  between them is elementwise);
* the value channels of each head: `attention.self.value` rows ↔ `attention.output.dense` columns,
  permuted only within a head (attention weights mix positions per head, never channels across heads).

The search (after Pool & Yu, "Channel Permutations for N:M Sparsity", the method of Apex ASP) improves a
grouping by exhaustive re-partition of group pairs: each round pairs every group with a random partner
in its block, tries all 35 ways to split the pair's 8 channels into two groups of 4, and keeps the best.
All pairs of a round are evaluated in one batched tensor operation, rounds stop when they stop paying or
the time budget is spent; each accepted move only ever raises the kept magnitude, so the result is never
worse than no permutation. Unlike Apex's exhaustive stripe search, the time is bounded per layer.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from trt_edge.log import get_logger

log = get_logger("prune")


@dataclass(frozen=True)
class PermutablePair:
    """A producer whose output rows feed a consumer's input columns, permutable together.

    kind (str): `ffn` or `value`.
    producer (str): module name of the producer Linear (rows and bias permuted).
    consumer (str): module name of the consumer Linear (input columns permuted; the layer it helps).
    block (int): channels move only within consecutive blocks of this size (the head size for `value`).
    """

    kind: str
    producer: str
    consumer: str
    block: int


@dataclass
class PermutationResult:
    """What the search did for one pair: kept magnitude of the consumer's 2:4 mask before and after."""

    pair: PermutablePair
    permutation: list[int]
    kept_magnitude_without: float
    kept_magnitude_with: float
    rounds: int
    seconds: float
    moves: int = 0

    @property
    def changed(self) -> bool:
        return self.permutation != list(range(len(self.permutation)))

    def to_dict(self, with_permutation: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.pair.kind, "producer": self.pair.producer, "consumer": self.pair.consumer,
            "block": self.pair.block, "kept_magnitude_without_permutation": self.kept_magnitude_without,
            "kept_magnitude": self.kept_magnitude_with, "rounds": self.rounds, "moves": self.moves,
            "seconds": round(self.seconds, 3),
        }
        if with_permutation:
            out["permutation"] = list(self.permutation)
        return out


@dataclass
class PairDiscovery:
    """Permutable pairs found by module structure, and blocks that were not recognised (name -> why)."""

    pairs: list[PermutablePair] = field(default_factory=list)
    unrecognised: dict[str, str] = field(default_factory=dict)


def _linear(module: Any, path: str) -> torch.nn.Linear | None:
    node = module
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node if isinstance(node, torch.nn.Linear) else None


def find_pairs(model: torch.nn.Module) -> PairDiscovery:
    """The permutable (producer, consumer) pairs of every transformer block, found by module structure.

    Recognised: BERT-family blocks (`BertLayer` and the RoBERTa/ELECTRA/XLM-R/MiniLM copies of it:
    `intermediate.dense` → `output.dense`, `attention.self.value` → `attention.output.dense`) and
    DistilBERT's `TransformerBlock` (`ffn.lin1` → `ffn.lin2`, `attention.v_lin` → `attention.out_lin`), and
    the ViT/DeiT/DINOv2 blocks (`mlp.fc1` → `mlp.fc2`, `attention.v_proj` → `attention.o_proj`).
    A block of any other shape is reported in `unrecognised` and left unpermuted.
    """
    found = PairDiscovery()
    blocks = _transformer_blocks(model)
    for name, block in blocks:
        prefix = f"{name}." if name else ""
        ffn = value = None
        heads = None
        if _linear(block, "intermediate.dense") and _linear(block, "output.dense") and _linear(
                block, "attention.self.value") and _linear(block, "attention.output.dense"):
            ffn = ("intermediate.dense", "output.dense")
            value = ("attention.self.value", "attention.output.dense")
            heads = getattr(getattr(getattr(block, "attention", None), "self", None), "num_attention_heads", None)
        elif _linear(block, "ffn.lin1") and _linear(block, "ffn.lin2") and _linear(
                block, "attention.v_lin") and _linear(block, "attention.out_lin"):
            ffn = ("ffn.lin1", "ffn.lin2")
            value = ("attention.v_lin", "attention.out_lin")
            heads = getattr(getattr(block, "attention", None), "n_heads", None)
        elif _linear(block, "mlp.fc1") and _linear(block, "mlp.fc2") and _linear(
                block, "attention.v_proj") and _linear(block, "attention.o_proj"):
            # ViT, DeiT and DINOv2 blocks as transformers 5 writes them (DINOv2's layer scales act on the
            # consumers' outputs, which a permutation of their inputs leaves alone).
            ffn = ("mlp.fc1", "mlp.fc2")
            value = ("attention.v_proj", "attention.o_proj")
            heads = getattr(getattr(block, "attention", None), "num_attention_heads", None)
        if ffn is None or value is None:
            found.unrecognised[name] = (f"{type(block).__name__}: not a BERT-family, DistilBERT or ViT-family block; "
                                        "channel permutation skipped, plain magnitude masks used")
            continue
        p, c = _linear(block, ffn[0]), _linear(block, ffn[1])
        assert p is not None and c is not None
        if p.out_features == c.in_features:
            found.pairs.append(PermutablePair("ffn", prefix + ffn[0], prefix + ffn[1], c.in_features))
        v, o = _linear(block, value[0]), _linear(block, value[1])
        assert v is not None and o is not None
        if isinstance(heads, int) and heads > 0 and v.out_features == o.in_features and v.out_features % heads == 0:
            found.pairs.append(PermutablePair("value", prefix + value[0], prefix + value[1], v.out_features // heads))
        else:
            found.unrecognised[f"{prefix}{value[0]}"] = "head count unknown: value channels not permuted"
    if not blocks:
        found.unrecognised[type(model).__name__] = "no transformer block list found: channel permutation skipped"
    return found


def _transformer_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The blocks of the outermost ModuleList whose items contain Linear layers (the encoder's layers)."""
    best: tuple[str, torch.nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.ModuleList) and len(module) > 0
                and all(any(isinstance(m, torch.nn.Linear) for m in item.modules()) for item in module)
                and (best is None or name.count(".") < best[0].count("."))):
            best = (name, module)
    if best is None:
        return []
    return [(f"{best[0]}.{i}", item) for i, item in enumerate(best[1])]


_SPLITS: torch.Tensor | None = None


def _splits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 35 ways to split 8 channels into two groups of 4, the current split first."""
    global _SPLITS
    if _SPLITS is None:
        a = [c for c in itertools.combinations(range(8), 4) if 0 in c]  # (0,1,2,3) comes first
        _SPLITS = torch.tensor([list(c) + [i for i in range(8) if i not in c] for c in a], dtype=torch.long)
    return _SPLITS[:, :4], _SPLITS[:, 4:]


def pruned_magnitude(columns: torch.Tensor) -> torch.Tensor:
    """For groups given as [..., 4, rows] of |w|, the magnitude 2:4 drops: the 2 smallest of each row.

    A 4-input sorting network instead of `topk`: a handful of elementwise min/max, several times faster
    on the search's large batches.
    """
    a, b, c, d = columns.unbind(dim=-2)
    lo1, hi1 = torch.minimum(a, b), torch.maximum(a, b)
    lo2, hi2 = torch.minimum(c, d), torch.maximum(c, d)
    smallest = torch.minimum(lo1, lo2)
    second = torch.minimum(torch.maximum(lo1, lo2), torch.minimum(hi1, hi2))
    return (smallest + second).sum(dim=-1)


def kept_fraction(weight: torch.Tensor, perm: torch.Tensor | None = None) -> float:
    """Kept magnitude of 2:4 along the input dimension of `weight` [out, in], optionally after `perm`."""
    w = weight.detach().abs().double()
    if perm is not None:
        w = w[:, perm]
    total = float(w.sum())
    if total == 0:
        return 1.0
    groups = w.T.reshape(-1, 4, w.shape[0])
    return 1.0 - float(pruned_magnitude(groups).sum()) / total


def search_permutation(weight: torch.Tensor, block: int, seconds: float = 3.0, seed: int = 0,
                       patience: int = 12) -> tuple[torch.Tensor, int, int]:
    """A permutation of the input channels of `weight` [out, in] that raises its 2:4 kept magnitude.

    Channels move only within consecutive blocks of `block` channels. Returns (permutation, rounds,
    accepted moves); `weight[:, permutation]` is the permuted weight.
    """
    _out_f, in_f = weight.shape
    if in_f % block or block % 4:
        raise ValueError(f"block {block} must divide the width {in_f} and be a multiple of 4")
    a_idx, b_idx = _splits()
    cols = weight.detach().abs().float().T.contiguous()  # [in, rows]
    perm = torch.arange(in_f)
    groups_per_block = block // 4
    blocks = in_f // block
    if groups_per_block < 2:
        return perm, 0, 0
    gen = torch.Generator().manual_seed(seed)
    deadline = time.perf_counter() + seconds
    rounds = moves = stale = 0
    while time.perf_counter() < deadline and stale < patience:
        rounds += 1
        # Pair every group with a random partner inside its block.
        order = torch.stack([torch.randperm(groups_per_block, generator=gen) for _ in range(blocks)])
        order = order + (torch.arange(blocks) * groups_per_block)[:, None]
        usable = groups_per_block - groups_per_block % 2
        pairs = order[:, :usable].reshape(-1, 2)                           # [P, 2] group ids
        grouped = perm.view(-1, 4)                                         # [G, 4] channel ids
        chans = torch.cat([grouped[pairs[:, 0]], grouped[pairs[:, 1]]], 1)  # [P, 8]
        x = cols[chans]                                                    # [P, 8, rows]
        cost = pruned_magnitude(x[:, a_idx]) + pruned_magnitude(x[:, b_idx])  # [P, 35]
        best = cost.argmin(dim=1)
        gain = cost[:, 0] - cost.gather(1, best[:, None]).squeeze(1)
        better = gain > 1e-6 * cost[:, 0].clamp_min(1e-12)
        if not bool(better.any()):
            stale += 1
            continue
        stale = 0
        idx = better.nonzero().squeeze(1)
        moves += int(idx.numel())
        new_a = chans[idx[:, None], a_idx[best[idx]]]
        new_b = chans[idx[:, None], b_idx[best[idx]]]
        grouped = grouped.clone()
        grouped[pairs[idx, 0]] = new_a
        grouped[pairs[idx, 1]] = new_b
        perm = grouped.reshape(-1)
    return perm, rounds, moves


def apply_permutation(producer: torch.nn.Linear, consumer: torch.nn.Linear, perm: torch.Tensor) -> None:
    """Permute the producer's output rows and bias and the consumer's input columns the same way."""
    with torch.no_grad():
        p = perm.to(producer.weight.device)
        producer.weight.copy_(producer.weight[p])
        if producer.bias is not None:
            producer.bias.copy_(producer.bias[p])
        consumer.weight.copy_(consumer.weight[:, p.to(consumer.weight.device)])


def permute_model_(model: torch.nn.Module, consumers: set[str] | None = None, seconds: float = 3.0,
                   seed: int = 0) -> tuple[list[PermutationResult], dict[str, str]]:
    """Search and apply channel permutations for every recognised pair whose consumer is in `consumers`.

    Returns the per-pair results and the blocks or layers left unpermuted (name -> reason). The model's
    function is unchanged (check it with `max_output_change`).
    """
    modules = dict(model.named_modules())
    discovery = find_pairs(model)
    results: list[PermutationResult] = []
    skipped = dict(discovery.unrecognised)
    for pair in discovery.pairs:
        if consumers is not None and f"{pair.consumer}.weight" not in consumers:
            continue
        producer, consumer = modules[pair.producer], modules[pair.consumer]
        assert isinstance(producer, torch.nn.Linear) and isinstance(consumer, torch.nn.Linear)
        if pair.block % 4:
            skipped[pair.consumer] = f"block of {pair.block} channels is not a multiple of 4"
            continue
        started = time.perf_counter()
        before = kept_fraction(consumer.weight)
        perm, rounds, moves = search_permutation(consumer.weight, pair.block, seconds, seed)
        after = kept_fraction(consumer.weight, perm)
        if after < before:  # cannot happen (moves only ever raise it); keep the identity to be safe
            perm = torch.arange(consumer.in_features)
            after = before
        apply_permutation(producer, consumer, perm)
        result = PermutationResult(pair, perm.tolist(), before, after, rounds, time.perf_counter() - started, moves)
        results.append(result)
        log.info("permutation %s -> %s (%s): kept magnitude %.4f -> %.4f in %.1fs (%d rounds)", pair.producer,
                 pair.consumer, pair.kind, before, after, result.seconds, rounds)
    return results, skipped


def random_inputs(model: torch.nn.Module, batch: int = 4, length: int = 24, seed: int = 0,
                  task: str = "text-classification") -> dict[str, torch.Tensor]:
    """Random inputs (token ids with some padding; pixels) to compare a model before and after a rewrite."""
    from trt_edge.tasks.spec import get_task

    spec = get_task(task)
    config = getattr(model, "config", None)
    if spec.modality != "text":
        example: dict[str, torch.Tensor] = spec.module().example_inputs(config, spec.required_inputs, False)
        return example
    vocab = int(getattr(config, "vocab_size", 1000))
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    for i in range(batch):
        mask[i, length - i * (length // (2 * batch)):] = 0
    ids_name, mask_name = spec.required_inputs
    return {ids_name: ids, mask_name: mask}


def model_outputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The last hidden state and logits of `model` on `inputs`, flattened into one tensor."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in inputs.items()}, output_hidden_states=True)
    model.train(was)
    parts = [out.hidden_states[-1].float().flatten()]
    if getattr(out, "logits", None) is not None:
        parts.append(out.logits.float().flatten())
    return torch.cat(parts).cpu()


def max_output_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Largest absolute difference between two `model_outputs` results."""
    return float((before - after).abs().max())

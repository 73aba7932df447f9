"""Channel permutations that raise the magnitude 2:4 pruning keeps, without changing the function.

A Linear's 2:4 groups are 4 consecutive *input* channels. Which channels share a group is free wherever
the layer that produces those channels can be permuted with them: permuting the producer's output rows
(and bias) and the consumer's input columns by the same permutation leaves the model's function exactly
as it was. A transformer block usually has two such pairs:

* the feed-forward intermediate: FFN-in rows ↔ FFN-out columns (the activation between them is
  elementwise);
* the value channels of each head: V rows ↔ attention-output columns, permuted only within a head
  (attention weights mix positions per head, never channels across heads).

The pairs are found from the model's computation, not from class or attribute names (BERT's
`intermediate.dense`, DistilBERT's `ffn.lin1`, MPNet's `attention.attn.v`, ...): within each block, every
Linear pair (P, C) where P runs before C and P's outputs are as many as C's inputs is *tried*: a
permutation of P's rows and C's columns (over all channels, then within heads) is applied, the model is
run on random tokens, and the pair is kept only if the outputs did not move. What does not pass (a gated
FFN whose producer is twice as wide, a normalisation between the two, shared K/V) is reported per block.

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
from trt_edge.modeling.anatomy import head_count

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


# A tried permutation "keeps the function" when neither the consumer's own output nor the model's outputs
# move by more than this, relative to their largest magnitude (a reordered float32 sum moves them ~1e-7;
# a wrong pair moves the consumer's output by a large fraction of itself, even in a random-weight model
# whose nearly uniform attention hides most of it from the model's outputs).
PAIR_TOLERANCE = 1e-5


def _call_order(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[list[str], dict[str, int]]:
    """Names of the Linear modules in the order the forward pass first calls them, and an id of the
    tensor each one read first (siblings such as Q, K and V read the same tensor)."""
    order: list[str] = []
    read: dict[str, int] = {}
    hooks = []

    def record(name: str, args: tuple[Any, ...]) -> None:
        if name not in read:
            order.append(name)
            read[name] = int(args[0].data_ptr()) if args and isinstance(args[0], torch.Tensor) else -len(read) - 1

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_pre_hook(lambda _m, args, name=name: record(name, args)))
    try:
        model_outputs(model, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return order, read


def _block_permutation(width: int, block: int) -> torch.Tensor:
    """A permutation that moves every channel but stays inside consecutive blocks (a cyclic shift)."""
    idx = torch.arange(width).view(-1, block)
    return torch.roll(idx, shifts=1, dims=1).reshape(-1)


def find_pairs(model: torch.nn.Module, consumers: set[str] | None = None) -> PairDiscovery:
    """The permutable (producer, consumer) pairs of every transformer block, found by trying them.

    `consumers`: only pairs whose consumer's weight (`<module>.weight`) is in this set are looked for
    (the layers that get 2:4 masks). A block where no pair keeps the model's function is reported in
    `unrecognised` with the reason and left unpermuted.
    """
    found = PairDiscovery()
    blocks = _transformer_blocks(model)
    if not blocks:
        found.unrecognised[type(model).__name__] = "no transformer block list found: channel permutation skipped"
        return found
    try:
        inputs = random_inputs(model, batch=2, length=12)
        order, read = _call_order(model, inputs)
        baseline = model_outputs(model, inputs)
    except Exception as exc:  # a model our random token probe cannot run: nothing can be proven
        for name, _ in blocks:
            found.unrecognised[name] = f"cannot run the model on random tokens to test pairs ({exc}); not permuted"
        return found
    tolerance = PAIR_TOLERANCE * max(1.0, float(baseline.abs().max()))
    heads = head_count(getattr(model, "config", None))
    position = {name: i for i, name in enumerate(order)}
    modules = dict(model.named_modules())

    def consumer_output(consumer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        hook = consumer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone())
                                              if not seen else None)
        try:
            outputs = model_outputs(model, inputs)
        finally:
            hook.remove()
        return seen[0], outputs

    def keeps_function(producer: torch.nn.Linear, consumer: torch.nn.Linear, block: int,
                       reference: torch.Tensor) -> bool:
        perm = _block_permutation(producer.out_features, block)
        apply_permutation(producer, consumer, perm)
        try:
            local, outputs = consumer_output(consumer)
        finally:
            apply_permutation(producer, consumer, torch.argsort(perm))  # exact: a reindexing undone
        local_tolerance = PAIR_TOLERANCE * max(1e-6, float(reference.abs().max()))
        return (float((local - reference).abs().max()) <= local_tolerance
                and max_output_change(baseline, outputs) <= tolerance)

    for name, block in blocks:
        prefix = f"{name}." if name else ""
        linears = sorted((n for n in (f"{prefix}{m}" for m, mod in block.named_modules()
                                      if isinstance(mod, torch.nn.Linear)) if n in position),
                         key=position.__getitem__)
        used: set[str] = set()
        kinds: list[str] = []
        for consumer_name in linears:
            if consumers is not None and f"{consumer_name}.weight" not in consumers:
                continue
            consumer = modules[consumer_name]
            assert isinstance(consumer, torch.nn.Linear)
            reference: torch.Tensor | None = None
            for producer_name in reversed(linears[:linears.index(consumer_name)]):
                producer = modules[producer_name]
                assert isinstance(producer, torch.nn.Linear)
                if (producer_name in used or producer.out_features != consumer.in_features
                        or read[producer_name] == read[consumer_name]):  # siblings: C does not read P
                    continue
                width = producer.out_features
                head = width // heads if heads and width % heads == 0 else None
                if reference is None:
                    reference = consumer_output(consumer)[0]
                if keeps_function(producer, consumer, width, reference):
                    pair = PermutablePair("ffn", producer_name, consumer_name, width)
                elif head is not None and head < width and keeps_function(producer, consumer, head, reference):
                    pair = PermutablePair("value", producer_name, consumer_name, head)
                else:
                    continue
                found.pairs.append(pair)
                used.add(producer_name)
                kinds.append(pair.kind)
                log.debug("permutable pair %s -> %s (%s, blocks of %d)", producer_name, consumer_name, pair.kind,
                          pair.block)
                break
        if not kinds:
            found.unrecognised[name] = (f"{type(block).__name__}: no Linear pair in the block keeps the model's "
                                        "function when permuted together (e.g. a gated FFN or a normalisation "
                                        "between them); plain magnitude masks used")
        elif "ffn" not in kinds or "value" not in kinds:
            missing = "FFN in->out" if "ffn" not in kinds else "V->O (per head)"
            found.unrecognised[f"{name} ({missing})"] = (f"{type(block).__name__}: no {missing} pair keeps the "
                                                         "model's function; only the other pair is permuted")
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
    discovery = find_pairs(model, consumers)
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
                  task: str | None = None) -> dict[str, torch.Tensor]:
    """Random inputs (token ids with some padding; pixels) to compare a model before and after a rewrite."""
    from trt_edge.tasks.adapter import adapter_for
    from trt_edge.tasks.spec import get_task, task_for_model_config

    config = getattr(model, "config", None)
    spec = get_task(task) if task is not None else task_for_model_config(config)  # callers that do not say
    if not spec.has_sequence_axis:
        # seeded: two draws must differ, or every layer looks token-independent (masks.token_independent_linears)
        example: dict[str, torch.Tensor] = adapter_for(spec).example_inputs(config, spec.input_names, False,
                                                                        seed=seed)  # the model's own among them
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
    """The last hidden state (an encoder-decoder detector's: the decoder's, and the encoder's last) and the task
    output (logits, a detector's boxes, a sentence embedding) of `model` on `inputs`, flattened into one
    tensor."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in inputs.items()}, output_hidden_states=True)
    model.train(was)
    states = getattr(out, "hidden_states", None) or getattr(out, "decoder_hidden_states", None)
    if states is None:
        raise TypeError(f"{type(out).__name__} has no hidden states to compare")
    parts = [states[-1].float().flatten()]
    for name in ("encoder_last_hidden_state", "logits", "pred_boxes", "sentence_embedding"):
        if getattr(out, name, None) is not None:
            parts.append(getattr(out, name).float().flatten())
    return torch.cat(parts).cpu()


def max_output_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Largest absolute difference between two `model_outputs` results."""
    return float((before - after).abs().max())

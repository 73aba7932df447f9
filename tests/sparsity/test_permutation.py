"""Channel permutations: the model's function is unchanged (1e-5) and the kept magnitude never drops."""

from __future__ import annotations

from pathlib import Path

import torch

from trt_edge.sparsity.masks import Sparse24Config, compute_masks
from trt_edge.sparsity.permutation import (
    find_pairs,
    kept_fraction,
    max_output_change,
    model_outputs,
    permute_model_,
    random_inputs,
    search_permutation,
)


def _load(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def test_finds_ffn_and_per_head_value_pairs(tiny_bert_dir: Path) -> None:
    found = find_pairs(_load(tiny_bert_dir))
    assert not found.unrecognised
    pairs = {(p.kind, p.producer, p.consumer, p.block) for p in found.pairs}
    assert ("ffn", "bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense", 64) in pairs
    assert ("value", "bert.encoder.layer.1.attention.self.value", "bert.encoder.layer.1.attention.output.dense",
            8) in pairs  # hidden 32 / 4 heads
    assert len(pairs) == 4


def test_pairs_come_from_the_computation_not_the_names(tiny_bert_dir: Path) -> None:
    """A BERT whose FFN activation mixes channels (a cumulative sum) has the same module names but no
    permutable FFN pair: it is reported per block, the value pairs are still found."""
    class CumSum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=-1)

    model = _load(tiny_bert_dir)
    for layer in model.bert.encoder.layer:
        layer.intermediate.intermediate_act_fn = CumSum()
    found = find_pairs(model)
    assert {p.kind for p in found.pairs} == {"value"}
    assert set(found.unrecognised) == {"bert.encoder.layer.0 (FFN in->out)", "bert.encoder.layer.1 (FFN in->out)"}
    assert "keeps the model's function" in found.unrecognised["bert.encoder.layer.0 (FFN in->out)"]


def test_search_stays_in_blocks_and_never_loses_magnitude() -> None:
    torch.manual_seed(0)
    w = torch.randn(24, 64) * torch.rand(1, 64) * 3  # channels of different scales: room to regroup
    perm, rounds, moves = search_permutation(w, block=16, seconds=2.0, seed=1)
    assert sorted(perm.tolist()) == list(range(64))
    for b in range(4):  # every channel stays inside its block of 16
        assert set(perm[16 * b:16 * (b + 1)].tolist()) == set(range(16 * b, 16 * (b + 1)))
    assert rounds > 0 and moves > 0
    assert kept_fraction(w, perm) > kept_fraction(w) + 1e-3


def _check_equivalence_and_gain(model: torch.nn.Module, seconds: float) -> None:
    inputs = random_inputs(model, batch=3, length=20, seed=3)
    before = model_outputs(model, inputs)
    plain = compute_masks(model, Sparse24Config())
    results, skipped = permute_model_(model, set(plain), seconds=seconds, seed=0)
    after = model_outputs(model, inputs)
    assert not skipped
    assert max_output_change(before, after) <= 1e-5 * max(1.0, float(before.abs().max()))
    assert results and any(r.changed for r in results)
    permuted = compute_masks(model, Sparse24Config())
    for r in results:
        key = f"{r.pair.consumer}.weight"
        assert r.kept_magnitude_with >= r.kept_magnitude_without
        assert abs(r.kept_magnitude_without - plain.kept_magnitude[key]) < 1e-6
        assert abs(r.kept_magnitude_with - permuted.kept_magnitude[key]) < 1e-6
    assert permuted.overall_kept_magnitude() > plain.overall_kept_magnitude()


def test_permutation_preserves_tiny_bert(tiny_bert_dir: Path) -> None:
    _check_equivalence_and_gain(_load(tiny_bert_dir), seconds=0.5)


def test_permutation_preserves_real_minilm_student(minilm_student_dir: Path) -> None:
    model = _load(minilm_student_dir)
    _check_equivalence_and_gain(model, seconds=0.4)

"""Sparse recovery: masks stay applied through optimizer steps; the gradual schedule reaches 2:4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trt_edge.distill.config import TrainConfig
from trt_edge.sparsity.masks import Masks, prune_
from trt_edge.sparsity.recovery import MaskEnforcer, gradual_schedule, recover
from trt_edge.sparsity.report import pattern_stats


def _load(path: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def _features(n: int, vocab: int, seed: int = 0) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = 6 + i % 7
        out.append({"input_ids": torch.randint(5, vocab, (length,), generator=gen).tolist(),
                    "attention_mask": [1] * length, "labels": torch.tensor(i % 3)})
    return out


def _masked_are_zero(model: torch.nn.Module, masks: Masks) -> bool:
    params = dict(model.named_parameters())
    return all(bool((params[n].detach()[~m] == 0).all()) for n, m in masks.items())


def test_optimizer_steps_revive_pruned_weights_unless_enforced(tiny_bert_dir: Path) -> None:
    model = _load(tiny_bert_dir)
    masks = prune_(model)
    enforcer = MaskEnforcer(masks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = {"input_ids": torch.randint(5, 1000, (4, 12)), "labels": torch.tensor([0, 1, 2, 0])}
    for enforce in (False, True):
        model.train()
        for _ in range(2):
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
            if enforce:
                enforcer(model)
        # Without the hook the step moves pruned weights off zero: that is what the hook is for.
        assert _masked_are_zero(model, masks) is enforce


def test_recover_keeps_2to4_through_training(tiny_bert_dir: Path) -> None:
    model = _load(tiny_bert_dir)
    masks = prune_(model)
    features = _features(48, model.config.vocab_size)
    teacher_logits = torch.randn(48, 3).numpy()
    result = recover(model, masks, features, 0, TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, max_steps=8),
                     eval_fn=lambda m: {"accuracy": 0.5}, teacher_logits=teacher_logits, alpha=0.5, temperature=2.0)
    assert result.steps == 8 and result.distilled
    assert _masked_are_zero(model, masks)
    for name in masks:
        assert pattern_stats(dict(model.named_parameters())[name].detach().numpy(), axis=1).holds, name


def test_gradual_schedule_shape() -> None:
    assert gradual_schedule(100, 50, 4, 0.3) == [(0, 0.25), (10, 0.5), (20, 0.75), (30, 1.0)]
    assert gradual_schedule(100, 20, 3, 0.5)[-1] == (20, 1.0)  # capped at the end of the first epoch
    assert gradual_schedule(100, 50, 1, 0.3) == [(0, 1.0)]


def test_gradual_recovery_prunes_in_steps_and_ends_at_2to4(tiny_bert_dir: Path) -> None:
    model = _load(tiny_bert_dir)
    masks = prune_(model)
    with torch.no_grad():  # start dense again: the gradual schedule prunes during training
        for p in model.parameters():
            p.add_(0.01)
    features = _features(64, model.config.vocab_size, seed=1)
    result = recover(model, masks, features, 0, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3),
                     eval_fn=lambda m: {"accuracy": 0.5}, teacher_logits=None, alpha=0.5, temperature=2.0,
                     schedule="gradual", gradual_steps=4, gradual_fraction=0.5)
    pruned = [h["groups_pruned"] for h in result.schedule]
    kept = [h["weights_kept"] for h in result.schedule]
    assert pruned == [0.25, 0.5, 0.75, 1.0]
    assert kept == sorted(kept, reverse=True) and abs(kept[-1] - 0.5) < 1e-6
    assert not result.distilled
    params = dict(model.named_parameters())
    for name in masks:
        assert pattern_stats(params[name].detach().numpy(), axis=1).holds, name

"""The training loop's reported loss: what the progress bar and the epoch history show."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from trt_edge.distill.config import TrainConfig
from trt_edge.distill.train import RunningLoss, train


def test_running_loss_is_a_mean_from_the_first_step() -> None:
    running = RunningLoss()
    assert running.update(2.0) == pytest.approx(2.0)  # no pull towards 0 at the start
    for _ in range(50):
        running.update(1.0)
    assert running.value == pytest.approx(1.0, abs=1e-2)


def test_reported_loss_carries_across_epochs() -> None:
    """Each epoch's reported loss stays inside the range of the losses seen in that run (a loss reset
    to 0 at an epoch start reads far below every real loss for the first steps of the epoch)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    features = [{"x": torch.randn(4), "y": torch.randn(1)} for _ in range(24)]
    seen: list[float] = []

    def loss_fn(m: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        loss = torch.nn.functional.mse_loss(m(batch["x"]), batch["y"]) + 5.0  # far from 0 on purpose
        seen.append(float(loss.detach()))
        return loss, {}

    def collate(items: list[dict[str, Any]], pad: int) -> dict[str, Any]:
        del pad
        return {k: torch.stack([f[k] for f in items]) for k in items[0]}

    cfg = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-3, group_by_length=False)
    result = train(model, features, 0, loss_fn, cfg, eval_fn=lambda m: {"accuracy": 0.0}, seed=0,
                   show_progress=False, collate_fn=collate)
    assert len(result.history) == 3 and len(seen) == 9
    for epoch in result.history:
        assert min(seen) - 1e-6 <= epoch["train_loss"] <= max(seen) + 1e-6


def test_embedding_freeze_skips_a_model_without_a_token_table() -> None:
    """transformers raises NotImplementedError from `get_input_embeddings` for wav2vec2, SegFormer and DETR
    (no token table); `freeze_embeddings` (on by default for QAT) must then freeze nothing, not stop."""
    from trt_edge.distill.train import _freeze_word_embeddings

    class NoTable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def get_input_embeddings(self) -> torch.nn.Module:
            raise NotImplementedError("not auto-handled")

    class Table(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)

        def get_input_embeddings(self) -> torch.nn.Module:
            return self.embed

    assert _freeze_word_embeddings(NoTable()) == []
    table = Table()
    assert _freeze_word_embeddings(table) == [table.embed.weight] and not table.embed.weight.requires_grad

"""2:4 masks: exactly 2 of 4 kept, the largest, ties resolved the same way every time, layer selection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from trt_edge.errors import TrtEdgeError
from trt_edge.sparsity.masks import (
    Sparse24Config,
    SparsityMethodConfig,
    compute_masks,
    nm_mask,
    prune_,
    register_method,
)


def test_keeps_exactly_the_two_largest_of_every_four() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    mask = nm_mask(w)
    groups = mask.reshape(16, 8, 4)
    assert bool((groups.sum(-1) == 2).all())
    mag = w.abs().reshape(16, 8, 4)
    kept_min = torch.where(groups, mag, torch.inf).amin(-1)
    dropped_max = torch.where(~groups, mag, -torch.inf).amax(-1)
    assert bool((kept_min >= dropped_max).all())


def test_ties_are_deterministic_lowest_index_first() -> None:
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0, -2.0, 2.0, 0.5, 2.0, 0.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    for _ in range(3):
        assert torch.equal(nm_mask(w), expected)
    assert torch.equal(nm_mask(w.repeat(64, 1)), expected.repeat(64, 1))


def test_width_not_multiple_of_four_is_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple of 4"):
        nm_mask(torch.ones(2, 6))


def _load_tiny(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def test_prune_tiny_bert_default_layers(tiny_bert_dir: Path) -> None:
    model = _load_tiny(tiny_bert_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = prune_(model, Sparse24Config())
    assert len(masks) == 12  # 2 blocks x (query, key, value, attention output, FFN in, FFN out)
    assert not any("classifier" in n or "pooler" in n or "embeddings" in n for n in masks)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        w = params[name].detach()
        assert bool((w[~mask] == 0).all()) and torch.equal(w[mask], before[name][mask])
        assert 0.5 < masks.kept_magnitude[name] < 1.0
    assert torch.equal(params["classifier.weight"], before["classifier.weight"])
    assert 0.5 < masks.overall_kept_magnitude() < 1.0


def test_include_exclude_and_filter_fn(tiny_bert_dir: Path) -> None:
    model = _load_tiny(tiny_bert_dir)
    masks = compute_masks(model, Sparse24Config(include=[r"\.intermediate\.dense$", r"attention\.self\.query"],
                                                exclude=[r"layer\.1\."]))
    assert sorted(masks) == ["bert.encoder.layer.0.attention.self.query.weight",
                             "bert.encoder.layer.0.intermediate.dense.weight"]
    only_ffn = compute_masks(model, Sparse24Config(), filter_fn=lambda mod, name: mod.out_features == 64)
    assert sorted(only_ffn) == ["bert.encoder.layer.0.intermediate.dense.weight",
                                "bert.encoder.layer.1.intermediate.dense.weight"]


def test_bad_patterns_and_no_eligible_layer_are_user_errors(tiny_bert_dir: Path) -> None:
    from trt_edge.sparsity.config import PruneConfig

    model = _load_tiny(tiny_bert_dir)
    with pytest.raises(TrtEdgeError, match="matches no Linear layer"):
        compute_masks(model, Sparse24Config(include=[r"attention\.selff\.query"]))
    with pytest.raises(TrtEdgeError, match="no Linear layer is eligible"):
        compute_masks(model, Sparse24Config(include=["classifier"], exclude=["classifier"]))
    with pytest.raises(TrtEdgeError, match="not a valid regular expression"):
        PruneConfig.from_dict({"include": ["layer.(0"]}, "prune")


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.narrow = torch.nn.Linear(6, 8)   # input width 6: cannot carry 2:4
        self.wide = torch.nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wide(self.narrow(x))


def test_width_not_multiple_of_four_is_skipped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    model = torch.nn.Sequential()
    model.layer = torch.nn.ModuleList([_Block()])
    masks = prune_(model)
    assert list(masks) == ["layer.0.wide.weight"]
    assert masks.skipped == {"layer.0.narrow.weight": "input width 6 is not a multiple of 4"}
    only_narrow = torch.nn.Sequential()
    only_narrow.layer = torch.nn.ModuleList([torch.nn.Linear(6, 8)])
    with pytest.raises(TrtEdgeError, match="input width 6 is not a multiple of 4"):
        prune_(only_narrow)


@dataclass
class _KeepFirstTwo(SparsityMethodConfig):
    """A second method, to show that adding one is a dataclass and a registered function."""


@register_method(_KeepFirstTwo)
def _keep_first_two(weight: torch.Tensor, config: _KeepFirstTwo) -> torch.Tensor:
    return torch.tensor([True, True, False, False]).repeat(weight.shape[0], weight.shape[1] // 4)


def test_registry_dispatches_on_config_type(tiny_bert_dir: Path) -> None:
    model = _load_tiny(tiny_bert_dir)
    masks = prune_(model, _KeepFirstTwo())
    w = dict(model.named_parameters())["bert.encoder.layer.0.output.dense.weight"]
    assert bool((w[:, 2::4] == 0).all()) and bool((w[:, 0::4] != 0).all())
    assert len(masks) == 12

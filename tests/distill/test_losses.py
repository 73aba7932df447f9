"""Distillation losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trt_edge.distill.losses import attention_kl_loss, hidden_mse_loss, kd_kl_loss


def test_kd_kl_matches_hand_computation() -> None:
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0]])
    temperature = 2.0
    ps = torch.softmax(s / temperature, -1)[0].tolist()
    pt = torch.softmax(t / temperature, -1)[0].tolist()
    expected = sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True)) * temperature**2
    assert kd_kl_loss(s, t, temperature).item() == pytest.approx(expected, rel=1e-6)
    assert kd_kl_loss(t, t, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_kl_gradient_scale_is_temperature_invariant_in_the_limit() -> None:
    # The T² factor keeps gradient magnitudes comparable across temperatures (Hinton et al.).
    t = torch.tensor([[0.3, -0.2, 0.1]])
    grads = []
    for temperature in (4.0, 8.0):
        s = torch.tensor([[0.1, 0.2, -0.1]], requires_grad=True)
        kd_kl_loss(s, t, temperature).backward()
        grads.append(s.grad.norm().item())
    assert grads[0] == pytest.approx(grads[1], rel=0.1)


def test_hidden_mse_ignores_padding_and_uses_projection() -> None:
    student = torch.zeros(1, 3, 2)
    teacher = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert hidden_mse_loss(student, teacher, mask).item() == pytest.approx((1 + 1 + 9 + 9) / 4)
    proj = torch.nn.Linear(2, 2)
    with torch.no_grad():
        proj.weight.zero_()
        proj.bias.fill_(1.0)
    assert hidden_mse_loss(student, teacher, mask, proj).item() == pytest.approx((0 + 0 + 4 + 4) / 4)


def test_attention_kl_zero_for_equal_and_positive_otherwise() -> None:
    a = torch.softmax(torch.randn(2, 3, 4, 4), -1)
    b = torch.softmax(torch.randn(2, 3, 4, 4), -1)
    mask = torch.ones(2, 4)
    assert attention_kl_loss(a, a, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_kl_loss(a, b, mask).item() > 0

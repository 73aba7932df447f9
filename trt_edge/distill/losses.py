"""Distillation losses.

The KL term follows Hinton et al.: both logit sets are softened by the temperature T and the KL is
scaled by T² so its gradients keep their size as T changes. Hidden-state MSE (TinyBERT) and
attention-distribution KL (MiniLM) are optional and computed only over real (unpadded) tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from trt_edge.tasks.classification import UNLABELLED as UNLABELLED  # re-exported: the stages' import
from trt_edge.tasks.classification import kd_kl_loss as kd_kl_loss


def hidden_mse_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor,
                    projection: torch.nn.Module | None = None) -> torch.Tensor:
    """Mean squared error between hidden states of real tokens ([B, S, H]); `projection` maps the
    student's width to the teacher's when they differ."""
    s = projection(student_hidden) if projection is not None else student_hidden
    m = mask.unsqueeze(-1).to(s.dtype)
    diff = (s.float() - teacher_hidden.float()) ** 2 * m
    return diff.sum() / (m.sum() * s.shape[-1]).clamp_min(1.0)


def attention_kl_loss(student_attn: torch.Tensor, teacher_attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL between attention distributions ([B, heads, S, S]) over query rows of real tokens."""
    eps = 1e-12
    kl = (teacher_attn * ((teacher_attn + eps).log() - (student_attn + eps).log())).sum(-1)  # [B, H, S]
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / rows.sum().clamp_min(1.0)




def combined_loss(student_out: Any, labels: torch.Tensor, teacher_logits: torch.Tensor | None, *,
                  alpha: float, temperature: float, teacher_out: Any = None, mask: torch.Tensor | None = None,
                  layer_map: list[tuple[int, int]] | None = None, hidden_weight: float = 0.0,
                  attention_weight: float = 0.0, projection: torch.nn.Module | None = None,
                  task: str | None = None, neighbour_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The task's output loss (its adapter's `output_loss`: for classification (1 - alpha) * CE(hard labels)
    + alpha * KD, rows labelled `UNLABELLED` left out of the CE; for embeddings MSE + cosine to the
    teacher's vectors, + neighbour_weight x the in-batch neighbour term) + hidden_weight * MSE +
    attention_weight * attn-KL. `task` None: the default task."""
    from trt_edge.tasks.adapter import task_adapter

    loss, parts = task_adapter(task).output_loss(student_out, labels, teacher_logits, alpha=alpha,
                                                 temperature=temperature, neighbour_weight=neighbour_weight)
    if layer_map and teacher_out is not None and mask is not None:
        if hidden_weight > 0:
            mse = torch.stack([
                hidden_mse_loss(student_out.hidden_states[s + 1], teacher_out.hidden_states[t + 1], mask, projection)
                for s, t in layer_map
            ]).mean()
            parts["hidden"] = float(mse.detach())
            loss = loss + hidden_weight * mse
        if attention_weight > 0:
            att = torch.stack([
                attention_kl_loss(student_out.attentions[s], teacher_out.attentions[t], mask) for s, t in layer_map
            ]).mean()
            parts["attention"] = float(att.detach())
            loss = loss + attention_weight * att
    return loss, parts

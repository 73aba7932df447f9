"""What every classification task scores and trains the same way, text or images: accuracy and macro-F1
on labels, the paired Newcombe gate on per-example correctness, and Hinton's loss (cross-entropy on the
labels plus the softened KL to the teacher's logits). The text and image adapters inherit it, so the
stages ask an adapter, never a modality, and the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trt_edge.tasks.metrics import classification_metrics, example_correct

UNLABELLED = -100  # the label of a transfer-set example (torch's ignore_index)


def kd_kl_loss(student_logits: Any, teacher_logits: Any, temperature: float) -> Any:
    """KL(teacher_T || student_T) * T², averaged over the batch (Hinton et al.: both logit sets softened by
    the temperature T, the KL scaled by T² so its gradients keep their size as T changes)."""
    import torch.nn.functional as F

    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
    return kl.mean() * (t * t)


class ClassificationOutputs:
    """Scoring, gates and the task part of the distillation loss, for tasks whose output is logits."""

    uses_labels = True  # trains on labels and is judged against them

    def predict_logits(self, model: Any, encoded: Any, batch_size: int = 64, device: Any = None) -> np.ndarray:
        raise NotImplementedError

    def score(self, outputs: np.ndarray, labels: Sequence[int], num_labels: int,
              reference: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy and macro-F1 against the labels (`reference` is for tasks judged against a model)."""
        del reference
        return classification_metrics(outputs, labels, num_labels)

    def evaluate(self, model: Any, encoded: Any, labels: Sequence[int], num_labels: int,
                 batch_size: int = 64, reference: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        logits = self.predict_logits(model, encoded, batch_size)
        return self.score(logits, labels, num_labels, reference), logits

    def example_scores(self, logits: np.ndarray, labels: Sequence[int],
                       reference: np.ndarray | None = None) -> np.ndarray:
        """1.0 where an example's argmax is its label, else 0.0 (`reference` is for tasks judged against a
        model)."""
        del reference
        return example_correct(logits, labels)

    def judge(self, gate: str, compares: str, ref_outputs: np.ndarray, new_outputs: np.ndarray,
              labels: Sequence[int], budget_points: float | None, default_budget_points: float | None = None,
              reference: np.ndarray | None = None) -> Any:
        """The paired accuracy gate (Newcombe's interval on the 2x2 table of correct examples); `reference`
        is for tasks judged against a model."""
        from trt_edge import stats

        del reference
        return stats.judge_predictions(gate, compares, ref_outputs, new_outputs, labels, budget_points,
                                       default_budget_points)

    def output_loss(self, student_out: Any, labels: Any, teacher_outputs: Any, *, alpha: float,
                    temperature: float, neighbour_weight: float = 0.0) -> tuple[Any, dict[str, float]]:
        """(1 - alpha) * CE(labels) + alpha * KD(teacher logits, T); rows labelled `UNLABELLED` (transfer-set
        examples) take no part in the cross-entropy. Classes have no neighbour term: `neighbour_weight` is
        not used."""
        import torch.nn.functional as F

        del neighbour_weight

        logits = student_out.logits.float()
        labelled = labels != UNLABELLED
        if bool(labelled.all()):
            ce = F.cross_entropy(logits, labels)
        elif bool(labelled.any()):
            ce = F.cross_entropy(logits[labelled], labels[labelled])
        else:
            ce = logits.sum() * 0.0
        parts = {"ce": float(ce.detach())}
        loss = (1 - alpha) * ce
        if teacher_outputs is not None and alpha > 0:
            kd = kd_kl_loss(student_out.logits, teacher_outputs, temperature)
            parts["kd"] = float(kd.detach())
            loss = loss + alpha * kd
        return loss, parts

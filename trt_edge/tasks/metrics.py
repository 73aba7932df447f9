"""Task metrics on integer labels: accuracy and macro-F1 (every class weighs the same)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray) -> float:
    p, g = np.asarray(pred), np.asarray(gold)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != label shape {g.shape}")
    return float((p == g).mean()) if g.size else 0.0


def macro_f1(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray, num_labels: int) -> float:
    """Mean over classes of F1; a class absent from both prediction and gold counts as F1 = 0."""
    p, g = np.asarray(pred), np.asarray(gold)
    scores = []
    for c in range(num_labels):
        tp = int(((p == c) & (g == c)).sum())
        fp = int(((p == c) & (g != c)).sum())
        fn = int(((p != c) & (g == c)).sum())
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def classification_metrics(logits: np.ndarray, gold: Sequence[int], num_labels: int) -> dict[str, float]:
    pred = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": accuracy(pred, gold), "macro_f1": macro_f1(pred, gold, num_labels)}


def argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of examples where two models' logits pick the same class."""
    return accuracy(np.asarray(a).argmax(-1), np.asarray(b).argmax(-1))


def example_correct(logits: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """1.0 where the argmax of an example's logits is its label, else 0.0: the per-example scores of
    accuracy that the paired intervals compare."""
    pred = np.asarray(logits).argmax(axis=-1) if len(labels) else np.zeros(0, dtype=np.int64)
    scores: np.ndarray = (pred == np.asarray(labels)).astype(np.float64)
    return scores


# Keys a task's metrics carry for bookkeeping, not as figures of the model: the adapter's epoch-picking
# `score`, the number of examples and the neighbours used (`k`). Neither recorded nor logged as metrics.
BOOKKEEPING = ("score", "examples", "k")


def prefixed(prefix: str, metrics: dict[str, float], suffix: str = "") -> dict[str, float]:
    """A model's metrics as a stage records them: `dense_accuracy`, `pruned_accuracy_before_recovery`,
    `sparse_recall_at_10` (the adapter's `score` key, which only picks epochs, is left out)."""
    return {f"{prefix}_{k}{suffix}" if prefix else f"{k}{suffix}": v for k, v in metrics.items()
            if k not in BOOKKEEPING}

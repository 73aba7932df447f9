"""Per-layer sensitivity and the mixed-precision fallback of the accuracy gate.

Sensitivity is measured by removal: with every other layer quantized, leave one layer in float and see
how much closer the logits come to fp32 (mean squared logit error, a finer signal than accuracy on a
few hundred examples). It is measured on a split other than the gated one, so the choice does not fit
the test set. Layers are then left in float in that order until the gate holds on the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_edge.log import get_logger
from trt_edge.tasks.metrics import argmax_agreement

log = get_logger("calibrate")


@dataclass
class LayerSensitivity:
    """How much leaving `node` in float (all else INT8) reduces the logit error against fp32."""

    node: str
    error_without: float
    gain: float
    agreement_without: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "logit_mse_when_float": self.error_without, "gain": self.gain,
                "agreement_when_float": self.agreement_without}


def logit_mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))


def rank_layers(predict: Callable[[set[str]], np.ndarray], reference: np.ndarray,
                nodes: Sequence[str]) -> tuple[float, list[LayerSensitivity]]:
    """Logit error of the fully quantized model, and every node ranked by the error it removes when
    left float (most sensitive first). `predict(float_nodes)` returns logits on the ranking split."""
    error_all = logit_mse(predict(set()), reference)
    ranked = []
    for node in nodes:
        logits = predict({node})
        err = logit_mse(logits, reference)
        ranked.append(LayerSensitivity(node, err, error_all - err, argmax_agreement(logits, reference)))
        log.debug("sensitivity %s: mse %.5f (all int8 %.5f)", node, err, error_all)
    ranked.sort(key=lambda s: s.gain, reverse=True)
    return error_all, ranked


def fallback(ranked: Sequence[LayerSensitivity], drop_with: Callable[[set[str]], float], budget: float,
             max_layers: int) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Leave the most sensitive layers float, one more at a time, until `drop_with(float_nodes)` (the
    accuracy loss in points on the gated split) is within `budget`. Returns the float layers, the steps
    taken, and whether the budget holds."""
    chosen: list[str] = []
    steps: list[dict[str, Any]] = []
    for layer in ranked[:max_layers]:
        if layer.gain <= 0:
            break
        chosen.append(layer.node)
        drop = drop_with(set(chosen))
        steps.append({"float_layers": len(chosen), "added": layer.node, "accuracy_drop": drop})
        log.info("mixed precision: %s left float -> accuracy drop %.2f points", layer.node, drop)
        if drop <= budget:
            return chosen, steps, True
    return chosen, steps, False

"""The mixed-precision fallback: ranking by removal, then layers left float until the budget holds."""

from __future__ import annotations

import numpy as np

from trt_edge.quantize.sensitivity import fallback, rank_layers


def test_rank_by_removal_and_fallback_until_budget() -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((50, 3))
    noise = {"a": 0.05, "b": 0.6, "c": 0.2}  # b hurts most, then c

    def predict(float_nodes: set[str]) -> np.ndarray:
        scale = sum(v for k, v in noise.items() if k not in float_nodes)
        return reference + scale * np.sin(np.arange(reference.size)).reshape(reference.shape)

    error_all, ranked = rank_layers(predict, reference, ["a", "b", "c"])
    assert [r.node for r in ranked] == ["b", "c", "a"]
    assert error_all > ranked[0].error_without and ranked[0].gain > ranked[1].gain > ranked[2].gain > 0

    drops = {frozenset(): 3.0, frozenset({"b"}): 1.5, frozenset({"b", "c"}): 0.5}
    chosen, steps, ok = fallback(ranked, lambda f: drops[frozenset(f)], budget=1.0, max_layers=3)
    assert ok and chosen == ["b", "c"] and [s["added"] for s in steps] == ["b", "c"]
    chosen, steps, ok = fallback(ranked, lambda f: drops[frozenset(f)], budget=1.0, max_layers=1)
    assert not ok and chosen == ["b"] and steps[0]["accuracy_drop"] == 1.5

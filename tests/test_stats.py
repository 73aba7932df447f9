"""Paired gate statistics: the interval against a published value, its coverage, and the verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_edge import stats


def test_interval_matches_the_published_example() -> None:
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, ch. 8 (Cavo et al. 2012):
    # table [[59, 6], [16, 80]], Newcombe square-and-add: -0.0621 (95% CI -0.1186 to -0.0046).
    table = stats.PairedTable(both=59, ref_only=6, new_only=16, neither=80)
    lo, hi = stats.drop_interval(table)
    assert table.drop_points == pytest.approx(-6.21, abs=0.01)
    assert lo == pytest.approx(-11.86, abs=0.01)
    assert hi == pytest.approx(-0.46, abs=0.01)


def test_no_disagreement_still_has_a_width() -> None:
    lo, hi = stats.drop_interval(stats.PairedTable(1300, 0, 0, 200))
    assert lo < 0 < hi and hi - lo > 0.1  # a bootstrap would say [0, 0]


def test_coverage_is_near_nominal() -> None:
    """Simulated paired models with a known true drop: the 95% interval holds it ~95% of the time."""
    rng = np.random.default_rng(0)
    n, reps = 400, 1500
    # true table probabilities: both, ref_only, new_only, neither
    probs = np.array([0.78, 0.06, 0.04, 0.12])
    true_drop = 100 * (probs[1] - probs[2])
    counts = rng.multinomial(n, probs, size=reps)
    hits = 0
    for row in counts:
        lo, hi = stats.drop_interval(stats.PairedTable(*(int(v) for v in row)))
        hits += lo <= true_drop <= hi
    assert 0.93 <= hits / reps <= 0.975


def test_table_from_logits_and_classes() -> None:
    labels = np.array([0, 1, 1, 0, 2])
    ref = np.array([0, 1, 0, 0, 1])                # right on 0, 1, 3
    new_logits = np.eye(3)[[0, 0, 1, 1, 2]]         # right on 0, 2, 4
    table = stats.PairedTable.from_predictions(ref, new_logits, labels)
    assert table == stats.PairedTable(both=1, ref_only=2, new_only=2, neither=0)
    assert table.ref_accuracy == table.new_accuracy == 0.6
    with pytest.raises(ValueError, match="same examples"):
        stats.PairedTable.from_predictions(ref[:4], new_logits, labels)


def test_verdicts_conclusive_inconclusive_and_loosened() -> None:
    clear_pass = stats.judge("calibrate", "INT8 vs fp32", stats.PairedTable(1400, 3, 2, 95), 1.0, 1.0)
    assert clear_pass.passed and clear_pass.conclusive and clear_pass.status == "pass"
    assert clear_pass.examples_to_resolve is None

    close = stats.PairedTable(1250, 40, 20, 190)  # drop 1.33 points, budget 1.0
    verdict = stats.judge("calibrate", "INT8 vs fp32", close, 1.0, 1.0)
    assert not verdict.passed and not verdict.conclusive
    assert "inconclusive at this n" in verdict.status
    need = verdict.examples_to_resolve
    assert need is not None and need > close.n
    factor = need / close.n  # at that size, the same rates give an interval clear of the budget
    scaled = stats.PairedTable(*(round(v * factor) + 1 for v in (1250, 40, 20, 190)))
    assert stats.drop_interval(scaled)[0] > 1.0 - 0.02

    loose = stats.judge("calibrate", "INT8 vs fp32", close, 3.0, 1.0)
    assert loose.passed and loose.loosened and "loosened from 1" in loose.status
    tight = stats.judge("calibrate", "INT8 vs fp32", close, 0.5, 1.0)
    assert not tight.loosened
    recorded = stats.judge("distill", "student vs teacher", close, None)
    assert recorded.passed and recorded.budget_points is None
    again = stats.rejudge(recorded.to_dict(), 1.0, 3.0)
    assert again.drop_points == pytest.approx(verdict.drop_points) and not again.passed


def test_drop_equal_to_budget_has_no_resolving_size() -> None:
    table = stats.PairedTable(1000, 30, 15, 155)  # drop exactly 1.25 points
    verdict = stats.judge("prune", "sparse vs dense", table, 1.25, 1.5)
    assert verdict.passed and not verdict.conclusive and verdict.examples_to_resolve is None
    assert "no test size resolves it" in verdict.status


def test_predictions_round_trip_without_pickle(tmp_path: Path) -> None:
    logits = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    name = stats.save_predictions(tmp_path, [0, 1, 2, 1, 0], teacher=logits, cpu=np.array([0, 1, 2, 2, 0]))
    loaded = stats.load_predictions(tmp_path / name)
    assert loaded["labels"].dtype == np.int64 and loaded["labels"].tolist() == [0, 1, 2, 1, 0]
    np.testing.assert_array_equal(loaded["teacher"], logits)
    assert loaded["cpu"].tolist() == [0, 1, 2, 2, 0]

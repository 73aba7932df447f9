"""The continuous-score gate: a paired bootstrap interval over examples, its verdicts, and its stored form
that the pipeline re-judges (gates.py), warns on (verdict.py) and prints with its method (report.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trt_edge import stats
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.pipeline.gates import stage_verdict
from trt_edge.pipeline.verdict import gate_warnings

VALUES = np.array([1.0, 0.9, 0.8, 0.5])


def _recalls(n: int, probs: tuple[float, ...], seed: int = 0) -> np.ndarray:
    """Per-query recall@10 of a child model: mostly 1.0, sometimes a neighbour or more lost."""
    return np.random.default_rng(seed).choice(VALUES, size=n, p=probs)


def test_same_inputs_same_interval_and_it_holds_the_observed_drop() -> None:
    new = _recalls(500, (0.7, 0.2, 0.07, 0.03))
    a = stats.judge_scores("g", "x vs y", np.ones(500), new, 3.0)
    b = stats.judge_scores("g", "x vs y", np.ones(500), new.copy(), 3.0)
    assert a.to_dict() == b.to_dict()
    lo, hi = a.interval_points
    assert a.drop_points == pytest.approx(100 * (1 - new.mean()))
    assert lo < a.drop_points < hi
    other = stats.judge_scores("g", "x vs y", np.ones(500), new, 3.0, seed=1)
    assert other.interval_points != a.interval_points  # the seed is the only source of randomness
    assert abs(other.interval_points[0] - lo) < 0.5 and "seed 1" in other.method


def test_interval_narrows_as_one_over_root_n() -> None:
    probs = (0.8, 0.12, 0.06, 0.02)
    widths = {}
    for n in (200, 3200):
        lo, hi = stats.judge_scores("g", "x vs y", np.ones(n), _recalls(n, probs, seed=n), None).interval_points
        widths[n] = hi - lo
    assert 2.5 < widths[200] / widths[3200] < 6.5  # sqrt(16) = 4


def test_coverage_is_near_nominal() -> None:
    """Skewed per-query losses with a known mean: the 95% interval holds it about 95% of the time."""
    rng = np.random.default_rng(0)
    probs = np.array([0.85, 0.1, 0.04, 0.01])
    true_drop = 100 * float((1 - VALUES) @ probs)
    hits, reps = 0, 200
    for rep in range(reps):
        new = rng.choice(VALUES, size=150, p=probs)
        lo, hi = stats.bootstrap_interval(100 * (1 - new), resamples=1000, seed=rep)
        hits += lo <= true_drop <= hi
    assert 0.88 <= hits / reps <= 0.99


def test_pass_fail_inconclusive_and_the_size_that_resolves() -> None:
    new = _recalls(800, (0.7, 0.2, 0.07, 0.03))  # drop about 4.6 points, interval about +-0.7
    clear_pass = stats.judge_scores("g", "x vs y", np.ones(800), new, 10.0, 3.0)
    assert clear_pass.passed and clear_pass.conclusive and clear_pass.status.startswith("pass")
    assert clear_pass.loosened and "loosened from 3" in clear_pass.status
    clear_fail = stats.judge_scores("g", "x vs y", np.ones(800), new, 1.0, 3.0)
    assert not clear_fail.passed and clear_fail.conclusive and clear_fail.status == "fail"
    drop, (lo, hi) = clear_pass.drop_points, clear_pass.interval_points
    close = stats.judge_scores("g", "x vs y", np.ones(800), new, drop + 0.5 * (hi - drop), drop + 1)
    assert close.passed and not close.conclusive and "inconclusive at this n (800;" in close.status
    # the upper half-width scaled by sqrt(n/n') meets the budget at n' = n * (half / gap)^2 = 4n
    assert close.examples_to_resolve == pytest.approx(3200, rel=0.01)
    under = stats.judge_scores("g", "x vs y", np.ones(800), new, drop - 0.5 * (drop - lo))
    assert not under.passed and not under.conclusive
    assert under.examples_to_resolve == pytest.approx(3200, rel=0.01)
    at = stats.judge_scores("g", "x vs y", np.ones(800), new, drop)
    assert at.passed and at.examples_to_resolve is None and "no test size resolves it" in at.status
    recorded = stats.judge_scores("g", "x vs y", np.ones(800), new, None)
    assert recorded.passed and recorded.status == "recorded (no budget)"


def test_no_difference_is_a_zero_width_pass() -> None:
    verdict = stats.judge_scores("g", "x vs y", np.ones(50), np.ones(50), 0.0)
    assert verdict.interval_points == (0.0, 0.0) and verdict.passed and verdict.conclusive


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="same examples"):
        stats.judge_scores("g", "x vs y", np.ones(5), np.ones(4), 1.0)
    with pytest.raises(ValueError, match="no examples"):
        stats.judge_scores("g", "x vs y", [], [], 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        stats.judge_scores("g", "x vs y", np.ones(2), [1.0, np.nan], 1.0)


def test_the_stored_record_is_json_and_rejudges_without_the_scores() -> None:
    new = _recalls(800, (0.7, 0.2, 0.07, 0.03))
    verdict = stats.judge_scores("prune", "sparse vs dense", np.ones(800), new, None, unit="recall@10 points")
    record = json.loads(json.dumps(verdict.to_dict()))
    assert "table" not in record and stats.is_bootstrap(record) and stats.is_gate_record(record)
    assert record["method"] == stats.bootstrap_method(2000, 0)
    same = stats.rejudge(record, None, None)
    assert same.to_dict() == verdict.to_dict()  # the round trip is exact
    for budget in (1.0, verdict.drop_points + 0.3, 10.0):
        fresh = stats.judge_scores("prune", "sparse vs dense", np.ones(800), new, budget, 3.0,
                                   unit="recall@10 points")
        again = stats.rejudge(record, budget, 3.0)
        assert again.to_dict() == fresh.to_dict()
    assert "recall@10 points" in again.line() and "bootstrap" in again.line()
    # a Newcombe record is still judged from its table, and stays as it was (no bootstrap key)
    table = stats.judge("calibrate", "INT8 vs fp32", stats.PairedTable(1250, 40, 20, 190), None).to_dict()
    assert "bootstrap" not in table and not stats.is_bootstrap(table) and stats.is_gate_record(table)
    assert stats.rejudge(table, 1.0, 1.0).table == table["table"]


def test_pipeline_rejudges_and_warns_on_a_bootstrap_gate() -> None:
    new = _recalls(800, (0.7, 0.2, 0.07, 0.03))
    stored = stats.judge_scores("prune", "sparse vs dense", np.ones(800), new, None).to_dict()
    loose = stage_verdict("prune", {"gate": stored}, PipelineConfig(gates={"prune": 10.0}))
    assert loose is not None and loose.passed and loose.loosened and stats.is_bootstrap(loose)
    strict = stage_verdict("prune", {"gate": stored}, PipelineConfig())  # default budget 1.5
    assert strict is not None and not strict.passed
    hi = loose.interval_points[1]
    close = stage_verdict("prune", {"gate": stored}, PipelineConfig(gates={"prune": (loose.drop_points + hi) / 2}))
    assert close is not None
    texts = gate_warnings([close.to_dict()])  # loosened from the default 1.5, and inconclusive
    assert any("its 95% bootstrap interval" in t and "inconclusive at n=800" in t for t in texts), texts


def test_a_failed_bootstrap_gate_stops_the_pipeline_with_its_figures() -> None:
    from trt_edge.errors import GateError
    from trt_edge.pipeline import runner

    new = _recalls(800, (0.7, 0.2, 0.07, 0.03))
    stored = stats.judge_scores("prune", "sparse vs dense", np.ones(800), new, None).to_dict()
    # the stage recorded only its verdict, not the classification keys (dense_accuracy, sparse_accuracy)
    with pytest.raises(GateError, match=r"stage 'prune'.*\(1\.0000 -> 0\.9\d+, 95% CI") as caught:
        runner._gate("prune", {"gate": stored}, PipelineConfig())
    assert caught.value.figures["n"] == 800 and caught.value.figures["sparse_accuracy"] == pytest.approx(new.mean())
    assert runner._gate("prune", {"gate": stored}, PipelineConfig(gates={"prune": 10.0})) is not None

"""The verdict: headline on failure and on old runs, the collapse warning, gates judged from stored tables."""

from __future__ import annotations

import numpy as np

from trt_edge import stats
from trt_edge.pipeline.config import PipelineConfig
from trt_edge.pipeline.gates import stage_verdict
from trt_edge.pipeline.verdict import (
    HARD_LABEL,
    TEACHER,
    Target,
    gate_warnings,
    headline,
    model_warnings,
    teacher_warnings,
)


def _gate(drop_table: stats.PairedTable, budget: float | None, default: float | None = None) -> dict:
    return stats.judge("g", "x vs y", drop_table, budget, default).to_dict()


def test_headline_names_a_failed_gate_first() -> None:
    target = Target("CPU (ONNX Runtime)", "calibrate/model.cpu.onnx", 1, "")
    failed = _gate(stats.PairedTable(1200, 60, 10, 230), 1.0, 1.0)
    text, ready = headline([failed], [target])
    assert not ready and text.startswith("Not ready: gate g failed")
    text, ready = headline([], [target])
    assert not ready and "older trt-edge" in text
    ok = _gate(stats.PairedTable(1400, 2, 3, 95), 1.0, 1.0)
    text, ready = headline([ok], [target])
    assert ready and text == "Deploy calibrate/model.cpu.onnx: all 1 gates with a budget passed."


def test_collapsed_model_is_named_and_a_balanced_one_is_not() -> None:
    labels = np.array([0] * 40 + [1] * 30 + [2] * 30)
    warnings = model_warnings({"student": np.zeros(100, dtype=np.int64), "teacher": labels.copy()}, labels,
                              ["neg", "neu", "pos"])
    assert len(warnings) == 1 and "student predicts class 'neg' for 100%" in warnings[0]


def test_a_teacher_beaten_by_the_label_trained_student_is_called_undertrained() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    wrong = (labels + 1) % 3

    def right_on(share: float) -> np.ndarray:
        return np.where(rng.random(2000) < share, labels, wrong)

    weak, strong = right_on(0.80), right_on(0.90)
    texts = teacher_warnings({TEACHER: weak, HARD_LABEL: strong}, labels)
    assert len(texts) == 1 and "teacher is weaker than the student trained on the labels alone" in texts[0]
    assert "distill.teacher_train.epochs" in texts[0]
    assert teacher_warnings({TEACHER: strong, HARD_LABEL: weak}, labels) == []
    assert teacher_warnings({TEACHER: strong, HARD_LABEL: strong.copy()}, labels) == []  # a tie is no finding
    assert teacher_warnings({TEACHER: weak}, labels) == []  # no ablation in the run


def test_loosened_pass_and_inconclusive_are_warned() -> None:
    loose = _gate(stats.PairedTable(1250, 40, 20, 190), 3.0, 1.0)  # drop 1.33 > default 1.0
    texts = gate_warnings([loose])
    assert len(texts) == 1 and "passed only because its budget was loosened from 1 to 3" in texts[0]
    close = _gate(stats.PairedTable(1250, 40, 20, 190), 2.0, 2.0)  # drop 1.33, interval [0.31, 2.38]
    texts = gate_warnings([close])
    assert len(texts) == 1 and "inconclusive at n=1,500" in texts[0] and "straddles the budget 2" in texts[0]


def test_pipeline_rejudges_a_stored_table_with_its_own_budget() -> None:
    stored = _gate(stats.PairedTable(1250, 40, 20, 190), None)
    verdict = stage_verdict("calibrate", {"gate": stored}, PipelineConfig(gates={"calibrate": 2.0}))
    assert verdict is not None and verdict.passed and verdict.loosened and verdict.default_budget_points == 1.0
    strict = stage_verdict("calibrate", {"gate": stored}, PipelineConfig())
    assert strict is not None and not strict.passed

"""Distilling a sentence-embedding student of another width: a projection maps its vectors in the loss
only; the saved student keeps its own width and is judged by its neighbours (cosine needs one space)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.modeling.embedding_helpers import write_st_folder
from trt_edge.config import RunConfig
from trt_edge.distill.stage import run
from trt_edge.stage import read_stage


def test_a_student_of_another_width_distils_through_a_projection(minilm_dir: Path, demo_data_config: Any,
                                                                tmp_path: Path) -> None:
    teacher = write_st_folder("bert", minilm_dir, tmp_path / "teacher", mode="mean", dense=16)
    student = write_st_folder("bert", minilm_dir, tmp_path / "student", mode="mean", seed=3)
    data = demo_data_config.replace(max_examples=120, train_size=80, validation_size=20, test_size=20).to_dict()
    raw = {"version": 1, "task": {"type": "sentence-embedding", "max_length": 32, "data": data},
           "distill": {"teacher": str(teacher), "student": {"model": str(student)},
                       "train": {"epochs": 1, "batch_size": 16}, "cache_dir": str(tmp_path / "cache")}}
    record = run(RunConfig(raw), tmp_path / "distill")
    metrics = read_stage(tmp_path / "distill")["metrics"]
    assert record.metrics["student_source"] == str(student)
    assert 0.0 <= metrics["student_recall_at_10"] <= 1.0
    assert "student_mean_cosine" not in metrics  # a wider student than the 16-dim teacher: no cosine
    assert metrics["gate"]["bootstrap"] is not None
    saved = np.load(tmp_path / "distill" / "test_predictions.npz")
    assert saved["teacher"].shape == (20, 16) and saved["student"].shape[0] == 20
    assert saved["student"].shape[1] not in (16, 0)  # its own width, not the projection's
    with pytest.raises(KeyError):
        saved["hard_label"]

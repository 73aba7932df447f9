"""stage.json, hashing, atomic writes and the all-or-nothing stage folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.files import atomic_write_text, sha256_tree
from trt_edge.stage import StageRecord, is_up_to_date, read_stage, stage_artifact, stage_output


def _write_stage(out: Path, config: dict, inputs: dict) -> StageRecord:
    record = StageRecord(stage="demo", config=config, inputs=inputs, artifacts={"model": "model"},
                         metrics={"accuracy": 0.5})
    with stage_output(out) as tmp:
        (tmp / "model").mkdir()
        (tmp / "model" / "w.bin").write_bytes(b"weights")
        record.write(tmp)
    return record


def test_stage_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "s"
    _write_stage(out, {"a": 1}, {"data": "abc"})
    data = read_stage(out, "demo")
    for key in ("stage", "trt_edge_version", "config", "inputs", "metrics", "artifacts", "started", "finished",
                "environment", "outputs_sha256", "config_sha256"):
        assert key in data
    assert data["environment"]["tensorrt"] is None  # the stubs installed here are not TensorRT
    assert stage_artifact(out, "model").name == "model"
    with pytest.raises(TrtEdgeError, match="no 'onnx' artifact"):
        stage_artifact(out, "onnx")
    with pytest.raises(TrtEdgeError, match="expected 'export'"):
        read_stage(out, "export")


def test_failed_stage_leaves_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "s"
    _write_stage(out, {"a": 1}, {})
    before = sha256_tree(out, exclude=())
    with pytest.raises(RuntimeError), stage_output(out) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert sha256_tree(out, exclude=()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".s.partial")]


def test_up_to_date_detects_config_input_and_hand_edits(tmp_path: Path) -> None:
    out = tmp_path / "s"
    _write_stage(out, {"a": 1}, {"data": "abc"})
    assert is_up_to_date(out, "demo", {"a": 1}, {"data": "abc"})
    assert not is_up_to_date(out, "demo", {"a": 2}, {"data": "abc"})
    assert not is_up_to_date(out, "demo", {"a": 1}, {"data": "abd"})
    (out / "model" / "w.bin").write_bytes(b"edited")
    assert not is_up_to_date(out, "demo", {"a": 1}, {"data": "abc"})


def test_missing_artifact_is_a_bug_not_a_stage(tmp_path: Path) -> None:
    record = StageRecord(stage="demo", config={}, artifacts={"model": "nope"})
    with pytest.raises(RuntimeError, match="was not written"):
        record.write(tmp_path)


def test_read_stage_errors(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="no such folder"):
        read_stage(tmp_path / "none")
    with pytest.raises(TrtEdgeError, match="not the output of a finished"):
        read_stage(tmp_path)
    atomic_write_text(tmp_path / "stage.json", "{not json")
    with pytest.raises(TrtEdgeError, match="unreadable"):
        read_stage(tmp_path)
    (tmp_path / "stage.json").write_text(json.dumps([1, 2]))
    with pytest.raises(TrtEdgeError, match="not a trt-edge stage record"):
        read_stage(tmp_path)

"""Real TensorRT builds (skipped with a reason where TensorRT or a GPU is absent: CI, laptops).

Nothing here is simulated: without TensorRT these tests do not run, and the bundle tests in
test_build_stage.py cover what this machine can do."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_edge.config import load_config
from trt_edge.engine.manifest import check_manifest, detect_runtime_env, read_manifest
from trt_edge.engine.stage import run
from trt_edge.errors import TrtEdgeError

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


def test_stage_builds_plan_manifest_and_reports(tiny_onnx_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "engine"
    config = load_config(None, {"device": None, "sparse_weights": True, "batch": [1, 2, 4],
                                "sequence": [1, 16, 32]}, "build")
    record = run(config, tiny_onnx_dir / "model.onnx", out)
    assert record.metrics["built"] is True
    assert set(record.artifacts) >= {"plan", "manifest", "build_log"}
    manifest = read_manifest(out / "model.plan.json")
    assert manifest["status"] == "built" and manifest["io"][0]["profile"]["max"] == [4, 32]
    assert check_manifest(out / "model.plan", None, detect_runtime_env()) == []
    # random (dense) weights: sparsity was asked for and cannot have been applied, and the report says so
    assert manifest["sparsity"]["requested"] is True
    assert manifest["sparsity"]["sparse_layers"] == [] and manifest["sparsity"]["warning"]
    assert manifest["precisions"]["available"] is True and manifest["precisions"]["layers"]
    assert (out / "model.layers.json").is_file() and (out / "tokenizer").is_dir()


def test_parser_errors_name_the_node(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], name="weird_node", domain="made.up")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("made.up", 1)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    from trt_edge.engine.builder import build_engine
    from trt_edge.engine.plan import BuildPlan

    with pytest.raises(TrtEdgeError, match="cannot parse it: node 0"):
        build_engine(BuildPlan(precision="fp32", trt_version="10.3", device=None, timing_cache=None), path,
                     tmp_path / "out")

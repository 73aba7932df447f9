"""The TensorRT runner: the manifest is checked before TensorRT is touched (so a bad plan is refused on
any machine), and, where TensorRT is installed, a real build runs and agrees with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_edge.engine.manifest import finalize_manifest, manifest_path_for, new_manifest, write_manifest
from trt_edge.engine.plan import BuildPlan
from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.tensorrt import TensorRTRunner


def _plan_with_manifest(tmp_path: Path, **kw: object) -> Path:
    plan = BuildPlan(precision="fp16", trt_version="10.3", device="agx-orin-64gb", **kw)  # type: ignore[arg-type]
    path = tmp_path / "model.plan"
    path.write_bytes(b"arbitrary bytes: never deserialized by these tests")
    manifest = new_manifest(plan, status="built", device_key="agx-orin-64gb")
    finalize_manifest(manifest, path)
    write_manifest(manifest_path_for(path), manifest)
    return path


def test_missing_plan_and_empty_plan(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="no such plan file"):
        TensorRTRunner(tmp_path / "none.plan").activate()
    (tmp_path / "empty.plan").write_bytes(b"")
    with pytest.raises(TrtEdgeError, match="empty plan file"):
        TensorRTRunner(tmp_path / "empty.plan").activate()


def test_manifest_is_checked_before_tensorrt(tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"some plan")
    with pytest.raises(TrtEdgeError, match="manifest missing"):
        TensorRTRunner(plan).activate()
    plan = _plan_with_manifest(tmp_path)
    plan.write_bytes(b"truncated")
    with pytest.raises(TrtEdgeError, match="plan file changed"):
        TensorRTRunner(plan).activate()


def test_host_code_plan_refused_before_tensorrt(tmp_path: Path) -> None:
    plan = _plan_with_manifest(tmp_path, version_compatible=True)
    with pytest.raises(TrtEdgeError, match="embeds host code"):
        TensorRTRunner(plan).activate()


def test_without_tensorrt_the_install_hint(tmp_path: Path) -> None:
    from trt_edge.lazy import has_module

    if has_module("tensorrt"):
        pytest.skip("TensorRT is installed here")
    plan = _plan_with_manifest(tmp_path)
    runner = TensorRTRunner(plan)
    with pytest.raises(TrtEdgeError, match="TensorRT is not installed"):
        runner.activate()
    assert not runner.is_active


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_build_and_run_matches_onnxruntime(tiny_onnx: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Build the tiny model for this GPU (fp32, so the comparison is tight) and compare with ONNX Runtime."""
    from transformers import AutoTokenizer

    from trt_edge.engine.builder import build_engine
    from trt_edge.engine.onnxinfo import onnx_inputs
    from trt_edge.engine.plan import profiles_for_inputs
    from trt_edge.runtime.ort import OnnxRuntimeRunner

    plan = BuildPlan(precision="fp32", trt_version="10.3", device=None,
                     profiles=profiles_for_inputs(onnx_inputs(tiny_onnx),
                                                  {"batch": [1, 2, 4], "sequence": [1, 16, 32]}),
                     timing_cache=None)
    result = build_engine(plan, tiny_onnx, tmp_path)
    assert result.plan_path.is_file() and result.manifest["status"] == "built"
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    enc = tok(["a test sentence", "another"], padding=True, return_tensors="np")
    feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
    with OnnxRuntimeRunner(tiny_onnx) as ort_runner:
        ref = ort_runner.infer(feed)["logits"]
    for graph in (False, True):
        with TensorRTRunner(result.plan_path, cuda_graph=graph) as runner:
            got = runner.infer({m.name: feed[m.name].astype(m.dtype) for m in runner.inputs()})["logits"]
            got2 = runner.infer({m.name: feed[m.name].astype(m.dtype) for m in runner.inputs()})["logits"]
        np.testing.assert_allclose(got, ref, atol=1e-3)
        np.testing.assert_allclose(got2, ref, atol=1e-3)

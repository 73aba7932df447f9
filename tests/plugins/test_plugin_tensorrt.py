"""On a machine with TensorRT and a GPU (a Jetson): build the plugin with CMake, parse the fused student
ONNX (the parser maps TrtEdgeFusedAttention to our IPluginV3), build an fp16 engine, and compare its
logits with the unfused model in ONNX Runtime. Skipped with a reason everywhere else: no stand-in for
TensorRT exists in this suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


def _feeds(tokenizer: Any, names: list[str]) -> list[dict[str, np.ndarray]]:
    texts = ["I love this so much!", "worst day ever, the bus never came and it rained", "ok",
             "not sure how I feel about the new update, some parts are fine"]
    enc = tokenizer(texts, padding=True, return_tensors="np")
    return [{n: np.asarray(enc[n]).astype(np.int64) for n in names}]


def test_fused_student_runs_in_tensorrt(student_onnx: Path, minilm_student_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer

    from trt_edge.lazy import lazy_import
    from trt_edge.plugins.library import load_plugin_library, plugin_library_path
    from trt_edge.plugins.onnx_rewrite import fuse_attention_file

    trt = lazy_import("tensorrt")
    names = [i.name for i in ort.InferenceSession(str(student_onnx)).get_inputs()]
    feeds = _feeds(AutoTokenizer.from_pretrained(minilm_student_dir), names)
    fused_path = tmp_path / "model.fused.onnx"
    fuse_attention_file(student_onnx, fused_path, feeds)
    load_plugin_library(plugin_library_path(build=True))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(fused_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        pytest.fail("TensorRT could not parse the fused model: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name in names:
        profile.set_shape(name, (1, 1), (4, 32), (8, 128))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "engine build failed (see the TensorRT log)"
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()

    feed = feeds[0]
    tensors = {n: torch.from_numpy(feed[n]).cuda() for n in names}
    for n in names:
        context.set_input_shape(n, tuple(feed[n].shape))
        context.set_tensor_address(n, tensors[n].data_ptr())
    out_name = next(engine.get_tensor_name(i) for i in range(engine.num_io_tensors)
                    if engine.get_tensor_mode(engine.get_tensor_name(i)) == trt.TensorIOMode.OUTPUT)
    logits = torch.empty(tuple(context.get_tensor_shape(out_name)), dtype=torch.float32, device="cuda")
    context.set_tensor_address(out_name, logits.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()

    (expected,) = ort.InferenceSession(str(student_onnx)).run(None, feed)
    got = logits.cpu().numpy()
    assert np.max(np.abs(got - expected)) < 5e-2
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) == 1.0

"""The ONNX Runtime runner: interface, input checking, profiling, and parity with PyTorch on real weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.base import Runner
from trt_edge.runtime.ort import OnnxRuntimeRunner, resolve_providers

from .texts import DEMO_TEXTS


def _feed(model_dir: Path, texts: list[str]) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


def test_interface_and_metadata(tiny_onnx: Path, tiny_bert_dir: Path) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx, intra_op_threads=1)
    assert isinstance(runner, Runner)
    with pytest.raises(RuntimeError, match="not active"):
        runner.inputs()
    with runner:
        assert runner.providers == ["CPUExecutionProvider"]
        names = [m.name for m in runner.inputs()]
        assert names == ["input_ids", "attention_mask", "token_type_ids"]
        for meta in runner.inputs():
            assert meta.dtype == np.int64
            assert len(meta.shape) == 2 and all(not isinstance(d, int) for d in meta.shape)  # dynamic axes
        (out,) = runner.outputs()
        assert out.name == "logits" and out.dtype == np.float32 and out.shape[1] == 3
        result = runner.infer(_feed(tiny_bert_dir, DEMO_TEXTS[:2]))
        assert result["logits"].shape == (2, 3)
        assert runner.last_inference_ms is not None and runner.last_inference_ms > 0
    assert not runner.is_active


def test_bad_feed_is_reported_at_once(tiny_onnx: Path, tiny_bert_dir: Path) -> None:
    feed = _feed(tiny_bert_dir, DEMO_TEXTS[:2])
    feed["input_ids"] = feed["input_ids"].astype(np.int32)
    del feed["token_type_ids"]
    feed["extra"] = np.zeros((2, 3), dtype=np.int64)
    with OnnxRuntimeRunner(tiny_onnx) as runner, pytest.raises(TrtEdgeError) as info:
        runner.infer(feed)
    message = str(info.value)
    assert "unexpected input 'extra'" in message
    assert "missing input 'token_type_ids'" in message
    assert "dtype int32, expected int64" in message


def test_missing_file_and_corrupt_onnx(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="no such ONNX file"):
        OnnxRuntimeRunner(tmp_path / "nope.onnx").activate()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(TrtEdgeError, match="cannot load"):
        OnnxRuntimeRunner(bad).activate()


def test_unavailable_provider_is_refused() -> None:
    assert resolve_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(["cuda"], ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(TrtEdgeError, match="TensorrtExecutionProvider"):
        resolve_providers(["tensorrt"], ["CPUExecutionProvider"])


def test_profiling_writes_a_profile(tiny_onnx: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    import shutil

    onnx_copy = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx, onnx_copy)
    runner = OnnxRuntimeRunner(onnx_copy, enable_profiling=True)
    with runner:
        runner.infer(_feed(tiny_bert_dir, DEMO_TEXTS[:1]))
    assert runner.profile_file is not None and runner.profile_file.is_file()
    events = json.loads(runner.profile_file.read_text())
    assert any(e.get("cat") == "Node" for e in events)


def test_student_matches_pytorch(student_onnx_file: Path, minilm_student_dir: Path) -> None:
    """The real student: ONNX Runtime gives the same argmax as PyTorch on the demo texts."""
    import torch
    from transformers import AutoModelForSequenceClassification

    feed = _feed(minilm_student_dir, DEMO_TEXTS)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_student_dir).eval()
    with torch.inference_mode():
        ref = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    with OnnxRuntimeRunner(student_onnx_file) as runner:
        names = {m.name for m in runner.inputs()}
        got = runner.infer({k: v for k, v in feed.items() if k in names})["logits"]
    assert got.shape == ref.shape
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))
    assert np.max(np.abs(got - ref)) < 1e-3


def test_disabled_optimizer_hint_in_the_model_is_honoured(tiny_onnx: Path, tmp_path: Path) -> None:
    """The CPU artifact can ask for a fusion to be off (metadata); our sessions obey, checked on the graph
    ONNX Runtime actually optimized, not on our own bookkeeping."""
    import onnx
    import onnxruntime as ort

    from trt_edge.runtime.ort import DISABLED_OPTIMIZERS_KEY, create_session

    model = onnx.load(str(tiny_onnx))
    onnx.helper.set_model_props(model, {DISABLED_OPTIMIZERS_KEY: "SkipLayerNormFusion"})
    hinted = tmp_path / "hinted.onnx"
    onnx.save(model, str(hinted))

    def optimized_ops(path: Path, disabled: list[str] | None = None) -> set[str]:
        options = ort.SessionOptions()
        dumped = tmp_path / f"opt-{path.stem}-{disabled}.onnx"
        options.optimized_model_filepath = str(dumped)
        create_session(str(path), options, ["CPUExecutionProvider"], disabled)
        return {n.op_type for n in onnx.load(str(dumped)).graph.node}

    assert "SkipLayerNormalization" in optimized_ops(tiny_onnx)
    assert "SkipLayerNormalization" not in optimized_ops(hinted)
    assert "SkipLayerNormalization" in optimized_ops(hinted, [])  # an explicit list overrides the hint
    with OnnxRuntimeRunner(hinted) as runner:
        assert runner.disabled_optimizers == ["SkipLayerNormFusion"]
    with OnnxRuntimeRunner(tiny_onnx) as runner:
        assert runner.disabled_optimizers == []

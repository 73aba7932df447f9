"""The CPU attention fusion (issue 10): every block of a real export becomes one ONNX Runtime contrib op,
with the same logits on padded batches; dynamic INT8 turns the packed op into QAttention; a model without
attention is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.quantize.ort_attention import MS_DOMAIN, fuse_attention_ort

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TEXTS = ["I love this so much!", "worst day ever, the bus never came and it rained", "ok",
         "not sure how I feel about the new update, some parts are fine"]


def _feeds(model_dir: Path, onnx_path: Path) -> list[dict[str, np.ndarray]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    kinds = {i.name: i.type for i in ort.InferenceSession(str(onnx_path)).get_inputs()}
    feeds = []
    for batch in (TEXTS, TEXTS[1:3]):
        enc = tokenizer(batch, padding=True, return_tensors="np")
        feeds.append({n: np.asarray(enc[n]).astype(np.int32 if "int32" in k else np.int64) for n, k in kinds.items()})
    assert any((f["attention_mask"] == 0).any() for f in feeds)  # real padding in the checks
    return feeds


def _logits(model: object, feed: dict[str, np.ndarray]) -> np.ndarray:
    payload = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return np.asarray(ort.InferenceSession(payload, providers=["CPUExecutionProvider"]).run(None, feed)[0])


@pytest.mark.parametrize(("pack", "op"), [(True, "Attention"), (False, "MultiHeadAttention")])
def test_real_student_attention_fused_with_parity(student_onnx: Path, minilm_student_dir: Path, pack: bool,
                                                  op: str) -> None:
    model = onnx.load(str(student_onnx))
    feeds = _feeds(minilm_student_dir, student_onnx)
    fused, report = fuse_attention_ort(model, feeds, pack_qkv=pack)
    onnx.checker.check_model(fused)
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count(op) == 3 and "Softmax" not in ops, report
    assert all(n.domain == MS_DOMAIN for n in fused.graph.node if n.op_type == op)
    assert all(layer["num_heads"] == 12 and layer["head_size"] == 32 for layer in report.layers)
    assert report.unfused == [] and report.argmax_agreement == 1.0 and report.max_abs_diff < 1e-4
    # Independent of the report: a batch with different padding than the check feeds.
    feed = {k: v[:, :5].copy() for k, v in feeds[0].items()}
    feed["attention_mask"][0, 3:] = 0
    np.testing.assert_allclose(_logits(fused, feed), _logits(student_onnx, feed), atol=1e-4)
    if pack:  # the packed weights replaced the three projections: fewer MatMuls than before
        assert ops.count("MatMul") < [n.op_type for n in model.graph.node].count("MatMul")


def test_small_heads_of_a_torchscript_export_fuse_and_quantize(tiny_bert_onnx: Path, tiny_bert_dir: Path,
                                                               tmp_path: Path) -> None:
    """Head size 8 is below our CUDA kernel's minimum; the CPU ops take it. Dynamic INT8 makes QAttention."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    feeds = _feeds(tiny_bert_dir, tiny_bert_onnx)
    fused, report = fuse_attention_ort(onnx.load(str(tiny_bert_onnx)), feeds)
    assert report.summary() == "Attention×2" and all(layer["head_size"] == 8 for layer in report.layers)
    src, dst = tmp_path / "fused.onnx", tmp_path / "fused.int8.onnx"
    onnx.save(fused, str(src))
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Attention"])
    assert [n.op_type for n in onnx.load(str(dst)).graph.node].count("QAttention") == 2
    ref = _logits(tiny_bert_onnx, feeds[0])
    assert (_logits(dst, feeds[0]).argmax(-1) == ref.argmax(-1)).mean() >= 0.75


def test_model_without_attention_is_refused() -> None:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["input_ids", "w"], ["logits"])], "g",
                                                [x], [y], [w]))
    with pytest.raises(TrtEdgeError, match="no attention block recognised"):
        fuse_attention_ort(model, [{"input_ids": np.ones((1, 4), np.float32)}])
    with pytest.raises(TrtEdgeError, match="at least one input batch"):
        fuse_attention_ort(model, [])

"""export_onnx: the ONNX contract (names, axes, dtypes, opset), parity at many shapes in ONNX Runtime,
both exporters, int32 inputs, stable node names, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.export.helpers import LABELS, ort_logits, random_feeds, torch_logits
from trt_edge.errors import TrtEdgeError
from trt_edge.export.exporter import check_onnx_file, export_onnx, folder_label_names

SHAPES = [(1, 1), (1, 9), (3, 17), (8, 64), (2, 128)]


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _check_contract(path: Path, dtype: int, names: list[str]) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    assert [i.name for i in inputs] == names
    for value in inputs:
        assert value.type.tensor_type.elem_type == dtype
        assert _dims(value) == ["batch", "sequence"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert _dims(model.graph.output[0]) == ["batch", 3]
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert not list(path.parent.glob(path.name + ".data")), "no external data below 2 GB"
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["trt_edge.label_names"]) == LABELS
    return model


def _load(model_dir: Path):  # type: ignore[no-untyped-def]
    from trt_edge.tasks.models import load_classifier

    return load_classifier(model_dir, folder_label_names(model_dir)).model


def test_tiny_bert_round_trip_at_many_shapes(tiny_bert_onnx: Path, tiny_bert_dir: Path) -> None:
    names = ["input_ids", "attention_mask", "token_type_ids"]
    _check_contract(tiny_bert_onnx, onnx.TensorProto.INT64, names)
    model = _load(tiny_bert_dir)
    for batch, seq in SHAPES:
        feeds = random_feeds(batch, seq, names)
        got, want = ort_logits(tiny_bert_onnx, feeds), torch_logits(model, feeds)
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_int32_inputs(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """int32 token inputs (TensorRT's preference); the cast to int64 for the embeddings is in the graph.
    (TorchScript exporter here for speed: the wrapper that casts is the same for both exporters, and the
    dynamo path is covered by the student export.)"""
    path = tmp_path / "model.onnx"
    info = export_onnx(tiny_bert_dir, path, int32_inputs=True, dynamo=False)
    assert (info.exporter, info.input_dtype, info.opset, info.external_data) == ("torchscript", "int32", 17, False)
    assert info.onnx_bytes == path.stat().st_size
    names = info.input_names
    _check_contract(path, onnx.TensorProto.INT32, names)
    model = _load(tiny_bert_dir)
    for batch, seq in SHAPES[1:4]:
        feeds = random_feeds(batch, seq, names, dtype=np.int32)
        np.testing.assert_allclose(ort_logits(path, feeds), torch_logits(model, feeds), atol=1e-5, rtol=0)
    with pytest.raises(Exception, match=r"(?i)type|int64"):  # int64 feeds are refused: the contract is int32
        ort_logits(path, random_feeds(1, 4, names))


def test_student_round_trip_dynamic_shapes(student_onnx: Path, minilm_student_dir: Path) -> None:
    """The real 3-layer MiniLM student (exported by the shared fixture with the default exporter)."""
    from trt_edge.tasks.models import load_classifier

    loaded = load_classifier(minilm_student_dir, folder_label_names(minilm_student_dir))
    model = _check_contract(student_onnx, onnx.TensorProto.INT64,
                            ["input_ids", "attention_mask", "token_type_ids"])
    assert model.producer_name == "trt-edge"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["trt_edge.exporter"] == "dynamo"  # the preferred exporter worked on the real model
    session = ort.InferenceSession(str(student_onnx), providers=["CPUExecutionProvider"])
    texts = ["I love this!", "worst day ever, nothing works", "the meeting is at 3pm",
             "not bad at all, honestly quite good " * 6, "meh", "@user thanks so much :)", "ugh", "ok"]
    for batch, pad_to in [(1, None), (3, None), (8, 64), (5, 128)]:
        enc = loaded.tokenizer(texts[:batch], padding="max_length" if pad_to else True, truncation=True,
                               max_length=pad_to or 128, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        got = session.run(["logits"], feeds)[0]
        want = torch_logits(loaded.model, feeds)
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        assert (got.argmax(1) == want.argmax(1)).all()


def test_node_names_are_stable_unique_and_scoped(tiny_bert_dir: Path, tiny_bert_onnx: Path,
                                                 tmp_path: Path) -> None:
    a = export_onnx(tiny_bert_dir, tmp_path / "a.onnx", dynamo=False)
    names_a = [n.name for n in onnx.load(str(a.onnx_path)).graph.node]
    names_b = [n.name for n in onnx.load(str(tiny_bert_onnx)).graph.node]
    assert names_a == names_b
    assert len(set(names_a)) == len(names_a)
    assert "/bert/encoder/layer/0/attention/self/query/MatMul_0" in names_a
    assert a.cleanup["nodes_after"] < a.cleanup["nodes_before"]  # onnxslim folded something


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="not a Hugging Face model folder") as err:
        export_onnx(tmp_path, tmp_path / "m.onnx")
    assert "\n" not in str(err.value)
    with pytest.raises(TrtEdgeError, match="not found"):
        export_onnx(tmp_path / "missing", tmp_path / "m.onnx")


def test_an_encoder_without_a_trained_head_is_refused(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig.from_pretrained(tiny_bert_dir)
    BertModel(config).save_pretrained(tmp_path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path)
    with pytest.raises(TrtEdgeError, match="trained classifier"):
        export_onnx(tmp_path, tmp_path / "m.onnx")


def test_bad_onnx_files_are_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not protobuf at all \x00\x01")
    with pytest.raises(TrtEdgeError, match=r"garbage\.onnx"):
        check_onnx_file(garbage)
    node = onnx.helper.make_node("Relu", ["undefined_tensor"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [], [onnx.helper.make_tensor_value_info("y", 1, [1])])
    broken = tmp_path / "broken.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(broken))
    with pytest.raises(TrtEdgeError, match=r"fails onnx\.checker") as err:
        check_onnx_file(broken)
    assert "\n" not in str(err.value)
    with pytest.raises(TrtEdgeError, match="not found"):
        check_onnx_file(tmp_path / "nope.onnx")

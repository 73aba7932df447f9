"""The TensorRT lint: tables load and are consistent; the clean export passes; planted unsupported ops,
restrictions, data-dependent shapes and custom ops are found; the MHA pattern and DLA reports hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trt_edge.errors import TrtEdgeError
from trt_edge.export.lint import available_versions, lint_file, lint_model, load_table, resolve_version

VERSIONS = ["8.5", "8.6", "10.3", "10.13", "11"]


def _codes(result, severity: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in result.findings if f.severity == severity}


def test_one_table_per_version_and_consistent() -> None:
    assert available_versions() == VERSIONS
    for version in VERSIONS:
        table = load_table(version)
        assert table["tensorrt"] == version and table["sources"]
        assert not set(table["supported"]) & set(table["unsupported"]), version
        assert table["int64"] in ("cast", "native")
        assert {"MatMul", "Softmax", "Gather", "Add"} <= set(table["supported"])
    assert "LayerNormalization" in load_table("8.5")["unsupported"]
    assert "LayerNormalization" in load_table("8.6")["supported"]
    assert "Attention" in load_table("10.13")["unsupported"] and "Attention" in load_table("11")["supported"]


@pytest.mark.parametrize(("asked", "table"), [("8.5.2", "8.5"), ("10.3.0", "10.3"), ("10.13", "10.13"),
                                              ("10.16", "10.13"), ("11.1", "11"), ("11.x", "11")])
def test_version_resolution(asked: str, table: str) -> None:
    assert resolve_version(asked) == table


def test_unknown_version_is_one_line() -> None:
    with pytest.raises(TrtEdgeError, match=r"tables exist for 8\.5, 8\.6, 10\.3, 10\.13, 11"):
        resolve_version("9.0")


def test_clean_export_passes_and_attention_matches(tiny_bert_onnx: Path) -> None:
    for version in ("8.6", "10.3", "10.13", "11"):
        result = lint_file(tiny_bert_onnx, version)
        assert result.ok, result.to_text()
        assert len(result.attention) == 2 and all(a["matches"] for a in result.attention)
        assert all(a["q_prescaled"] and a["layout_bnsh"] for a in result.attention)
    # TensorRT 8.5 has no LayerNormalization importer: an opset-17 export is refused there, and said so.
    old = lint_file(tiny_bert_onnx, "8.5")
    assert not old.ok
    assert any("LayerNormalization" in f.message for f in old.errors)
    assert "int64" in _codes(old, "warning")  # 8.x casts INT64 to INT32


def _with_extra_node(path: Path, node: onnx.NodeProto, out_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    model = onnx.load(str(path))
    model.graph.node.append(node)
    model.graph.output.append(helper.make_tensor_value_info(node.output[0], out_type, None))
    return model


def test_planted_unsupported_op_is_an_error(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    model = _with_extra_node(tiny_bert_onnx, helper.make_node("Unique", ["logits"], ["uniq"], name="planted_unique"))
    result = lint_model(model, "10.3")
    errors = [f for f in result.errors if f.code == "unsupported-op"]
    assert errors and errors[0].nodes == ["planted_unique"]
    # NonZero imports (since 8.5) but its output shape depends on values.
    model = _with_extra_node(tiny_bert_onnx, helper.make_node("NonZero", ["logits"], ["nz"], name="planted_nz"),
                             TensorProto.INT64)
    result = lint_model(model, "10.3")
    assert result.ok
    assert any(f.code == "data-dependent-shape" and f.nodes == ["planted_nz"] for f in result.warnings)


def test_custom_and_contrib_ops(tiny_bert_onnx: Path) -> None:
    plugin = helper.make_node("FusedThing", ["logits"], ["p"], name="plugin_node", domain="trt_edge")
    result = lint_model(_with_extra_node(tiny_bert_onnx, plugin), "10.3")
    assert result.ok and "custom-op" in _codes(result, "warning")
    contrib = helper.make_node("FastGelu", ["logits"], ["g"], name="ort_node", domain="com.microsoft")
    assert not lint_model(_with_extra_node(tiny_bert_onnx, contrib), "10.3").ok


def _tiny_graph(nodes: list, inits: list, opset: int = 17) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_attribute_and_input_restrictions() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    cubic = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", name="resize_cubic")
    result = lint_model(_tiny_graph([cubic], [scales]), "10.3")
    assert [f.nodes for f in result.errors if f.code == "restriction"] == [["resize_cubic"]]
    nearest = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", name="resize_nearest")
    assert lint_model(_tiny_graph([nearest], [scales]), "10.3").ok
    # Asymmetric Q/DQ (non-zero zero point) is refused by every version.
    s = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    zp = numpy_helper.from_array(np.array(3, dtype=np.int8), "zp")
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")
    result = lint_model(_tiny_graph([q, dq], [s, zp]), "10.13")
    assert {n for f in result.errors for n in f.nodes} == {"q", "dq"}


def test_opset_newer_than_the_table_warns() -> None:
    relu = helper.make_node("Relu", ["x"], ["y"], name="r")
    result = lint_model(_tiny_graph([relu], [], opset=21), "8.6")
    assert result.ok and "opset" in _codes(result, "warning")
    assert "opset" not in _codes(lint_model(_tiny_graph([relu], [], opset=21), "11"), "warning")


def test_scale_after_bmm1_misses_the_mha_pattern(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Eager attention scales the scores (Q·Kᵀ)·s, which TensorRT's fused MHA does not match."""
    from trt_edge.export.exporter import export_onnx, load_for_export

    loaded = load_for_export(tiny_bert_dir)
    loaded.model.config._attn_implementation = "eager"
    path = tmp_path / "eager.onnx"
    export_onnx(tiny_bert_dir, path, dynamo=False, loaded=loaded)
    result = lint_file(path, "10.3")
    assert len(result.attention) == 2
    assert all(a["scale_after_bmm1"] and not a["matches"] for a in result.attention)
    assert "mha-fusion" in _codes(result, "warning")


def test_dla_report(tiny_bert_onnx: Path) -> None:
    result = lint_file(tiny_bert_onnx, "10.3", dla=True)
    assert result.ok
    fallback = result.dla_fallback
    assert fallback["LayerNormalization (not DLA-native)"] == 5
    assert any(k.startswith("MatMul") for k in fallback)  # the attention BMMs (activation x activation)
    assert not any(k.startswith("Shape") for k in fallback)  # shape arithmetic is not a device layer
    thor = lint_file(tiny_bert_onnx, "10.13", dla=True)
    assert any(f.code == "dla" and "no DLA" in f.message for f in thor.warnings)


def test_json_round_trip(tiny_bert_onnx: Path) -> None:
    data = json.loads(json.dumps(lint_file(tiny_bert_onnx, "10.3", dla=True).to_dict()))
    assert data["errors"] == 0 and data["attention_fusable"] == 2 and data["op_counts"]["MatMul"] > 0


def test_decomposed_layernorm_passes_tensorrt_85(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """`decompose_layernorm` writes LayerNormalization as primitives: TensorRT 8.5 imports them, and the
    logits do not change."""
    from tests.export.helpers import ort_logits, random_feeds, torch_logits
    from trt_edge.export.exporter import export_onnx, load_for_export

    path = tmp_path / "m85.onnx"
    info = export_onnx(tiny_bert_dir, path, dynamo=False, decompose_layernorm=True)
    assert info.cleanup["layernorm_decomposed"] == 5
    assert "LayerNormalization" not in info.cleanup["op_counts"]
    result = lint_file(path, "8.5")
    assert result.ok, result.to_text()
    names = info.input_names
    model = load_for_export(tiny_bert_dir).model
    for batch, seq in [(1, 5), (4, 48)]:
        feeds = random_feeds(batch, seq, names)
        np.testing.assert_allclose(ort_logits(path, feeds), torch_logits(model, feeds), atol=1e-5, rtol=0)


@pytest.mark.parametrize("opset", [17, 18])
def test_recompose_layernorm_undoes_the_decomposition(opset: int) -> None:
    """The CPU target's fused candidate puts a decomposed LayerNorm back together (issue 33): both ReduceMean
    spellings (axes attribute up to opset 17, input from 18), with and without a bias, same outputs, and a
    residual Add after a bias-less LayerNorm is left alone."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from trt_edge.export.cleanup import decompose_layernorm, recompose_layernorm

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=8).astype(np.float32), n) for n in ("g1", "b1", "g2")]
    nodes = [helper.make_node("LayerNormalization", ["x", "g1", "b1"], ["y1"], axis=-1, epsilon=1e-6),
             helper.make_node("LayerNormalization", ["y1", "g2"], ["y2"], axis=-1, epsilon=1e-5),
             helper.make_node("Add", ["y2", "x"], ["y"])]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "ln", [value("x", TensorProto.FLOAT, [2, 3, 8])],
                              [value("y", TensorProto.FLOAT, [2, 3, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)

    def run(m: onnx.ModelProto) -> np.ndarray:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run(None, {"x": x})[0])

    want = run(model)
    assert decompose_layernorm(model) == 2
    assert recompose_layernorm(model) == 2
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization", "LayerNormalization", "Add"]
    assert [list(n.input) for n in model.graph.node[:2]] == [["x", "g1", "b1"], ["y1", "g2"]]
    assert {i.name for i in model.graph.initializer} == {"g1", "b1", "g2"}  # epsilon/axes constants gone
    np.testing.assert_allclose(run(model), want, atol=1e-5, rtol=0)

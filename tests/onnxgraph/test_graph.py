"""The ONNX graph library: one index and one attribute reader, attention fusion as match, verify, splice."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from trt_edge.onnxgraph.attention_match import find_attention_candidates  # noqa: E402
from trt_edge.onnxgraph.attention_verify import KernelLimits, verify_candidates  # noqa: E402
from trt_edge.onnxgraph.graph import GraphIndex, attr  # noqa: E402
from trt_edge.onnxgraph.splice import graph_padding_mask  # noqa: E402
from trt_edge.tasks.spec import padding_mask_input  # noqa: E402

from ..plugins.test_onnx_rewrite import _attention_model, _feeds  # noqa: E402


def _small_graph() -> object:
    """x -> Mul(w) -> Add(Constant value_float) -> Transpose -> y; plus a shape-only ConstantOfShape."""
    w = numpy_helper.from_array(np.full((2, 3), 2.0, np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=0.5, name="c"),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([2, 3], np.int64)),
                         name="shape"),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="zeros"),
        helper.make_node("Mul", ["x", "w"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "c"], ["a"], name="add"),
        helper.make_node("Add", ["a", "zeros"], ["b"], name="add0"),
        helper.make_node("Transpose", ["b"], ["y"], name="t", perm=[1, 0]),
        helper.make_node("Cast", ["y"], ["unused"], name="cast", to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])], [w])
    return graph


def test_index_maps_producers_consumers_and_constants() -> None:
    g = GraphIndex(_small_graph())
    assert g.producer["m"].name == "mul" and g.op("a") == "Add" and g.op("x") is None
    assert [n.name for n in g.consumers["m"]] == ["add"]
    assert [i.name for i in g.graph_inputs] == ["x"] and g.graph_outputs == {"y"}
    # Initializers and Constant outputs have values (as numpy); computed tensors do not.
    assert g.constant("w") is not None and g.constant("w").shape == (2, 3)
    assert g.is_scalar_constant("c") and float(g.constant("c")) == 0.5
    assert g.constant("m") is None and g.constant("") is None
    # Known before run time (what TensorRT folds) is wider than "has a stored value".
    assert g.is_constant("zeros") and g.constant("zeros") is None
    assert not g.is_constant("m")
    assert g.rank("x") == 2 and g.rank("w") == 2 and g.rank("m") is None
    assert g.is_used("m") and g.is_used("y") and not g.is_used("unused")


def test_attr_reads_values_with_defaults_and_decodes_strings() -> None:
    node = helper.make_node("X", [], ["o"], perm=[1, 0], mode="constant", alpha=0.25)
    assert list(attr(node, "perm")) == [1, 0]
    assert attr(node, "mode") == "constant"  # str, not bytes
    assert attr(node, "alpha") == pytest.approx(0.25)
    assert attr(node, "missing", 7) == 7


def test_verification_takes_the_kernel_limits_and_the_mask_from_the_caller() -> None:
    """The library knows neither our kernel nor the tasks: both come in as parameters."""
    model = _attention_model(2, 8, "padding")
    feeds = _feeds(16)
    candidates, rejected = find_attention_candidates(model)
    assert len(candidates) == 1 and rejected == []
    fused, unfused = verify_candidates(model, candidates, feeds, padding_mask_input)
    assert unfused == [] and fused[0].head_size == 8 and fused[0].has_mask
    fused, unfused = verify_candidates(model, candidates, feeds, padding_mask_input,
                                       KernelLimits(head_sizes=(32, 64), max_seq_len=512))
    assert fused == [] and "head size 8 is not supported" in unfused[0]["reason"]
    fused, unfused = verify_candidates(model, candidates, feeds, padding_mask_input,
                                       KernelLimits(head_sizes=(8,), max_seq_len=4))
    assert fused == [] and "exceeds the kernel limit 4" in unfused[0]["reason"]
    # A caller whose task has no padding mask: the mask term cannot be explained, nothing is fused.
    fused, unfused = verify_candidates(model, candidates, feeds, lambda names: None)
    assert fused == [] and unfused
    assert graph_padding_mask(model, padding_mask_input) == "attention_mask"

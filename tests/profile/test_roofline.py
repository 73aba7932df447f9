"""Roofline: GEMM FLOPs counted on the ONNX graph equal the analytic count of a BERT encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_edge.devices import device
from trt_edge.errors import TrtEdgeError
from trt_edge.profile.roofline import model_costs, roofline


def _bert_gemm_flops(b: int, s: int, hidden: int, inter: int, layers: int, labels: int) -> int:
    per_layer = 4 * 2 * b * s * hidden * hidden + 2 * 2 * b * s * s * hidden + 2 * 2 * b * s * hidden * inter
    return layers * per_layer + 2 * b * hidden * hidden + 2 * b * hidden * labels  # + pooler + classifier


@pytest.mark.parametrize(("batch", "seq"), [(1, 16), (2, 33), (8, 128)])
def test_tiny_bert_flops_match_the_analytic_count(tiny_bert_onnx: Path, batch: int, seq: int) -> None:
    c = model_costs(tiny_bert_onnx, batch, seq)
    assert c["gemms_without_shape"] == 0
    assert c["gemm_flops"] == _bert_gemm_flops(batch, seq, 32, 64, 2, 3)
    assert c["gemm_weight_params"] == 2 * (4 * 32 * 32 + 2 * 32 * 64) + 32 * 32 + 32 * 3


def test_roofline_rows(tiny_bert_onnx: Path) -> None:
    costs = {"batch": 1, "seq": 128, "gemm_flops": 10**10, "gemm_weight_params": 10**7}
    r = roofline(costs, precisions=("fp16", "int8"), sparse=True, device_keys=["agx-orin-64gb", "agx-xavier"])
    rows = {(x["device"], x["precision"]): x for x in r["rows"]}
    orin = rows[("agx-orin-64gb", "int8")]
    assert orin["peak_tops"] == device("agx-orin-64gb").figure("gpu_int8_tops_dense")
    assert orin["compute_ms"] == pytest.approx(1e10 / (orin["peak_tops"] * 1e12) * 1e3, rel=1e-3)
    assert orin["memory_ms"] == pytest.approx(1e7 / (204.8e9) * 1e3, rel=1e-3)
    assert orin["floor_ms"] == max(orin["compute_ms"], orin["memory_ms"])
    assert rows[("agx-orin-64gb", "int8+2:4")]["peak_tops"] == 2 * orin["peak_tops"]
    # compressed 2:4 weights: half the int8 values + 2-bit positions = 0.625 of the dense bytes
    assert rows[("agx-orin-64gb", "int8+2:4")]["memory_ms"] == pytest.approx(0.625 * orin["memory_ms"], rel=1e-3)
    assert ("agx-xavier", "int8+2:4") not in rows  # Volta has no sparse tensor cores
    assert "memory_bandwidth_gbs" in orin["unverified"]
    assert "estimate" in r["note"].lower()
    with pytest.raises(TrtEdgeError):
        roofline(costs, precisions=("fp64",))


def test_catalog_has_the_roofline_figures() -> None:
    from trt_edge.devices import devices

    for key, dev in devices().items():
        if dev.figure("gpu_fp16_tflops_dense") is None:
            continue
        int8 = dev.figure("gpu_int8_tops_dense")
        assert int8 is not None, key
        assert int8 >= dev.figure("gpu_fp16_tflops_dense"), key  # INT8 tensor rate is never below FP16's
        assert "gpu_int8_tops_dense" in dev.unverified, key  # datasheet-derived: flagged for checking


def test_qdq_weights_are_counted(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    """Weights behind QuantizeLinear -> DequantizeLinear (the Q/DQ form TensorRT folds) still count."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(tiny_bert_onnx))
    inits = {i.name for i in model.graph.initializer}
    nodes = []
    scale = numpy_helper.from_array(np.array(0.01, dtype=np.float32), "w_scale")
    zero = numpy_helper.from_array(np.array(0, dtype=np.int8), "w_zero")
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            w = node.input[1]
            nodes += [helper.make_node("QuantizeLinear", [w, "w_scale", "w_zero"], [w + "_q"]),
                      helper.make_node("DequantizeLinear", [w + "_q", "w_scale", "w_zero"], [w + "_dq"])]
            node.input[1] = w + "_dq"
        nodes.append(node)
    assert sum(n.op_type == "DequantizeLinear" for n in nodes) >= 12  # every weighted MatMul rewritten
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend([scale, zero])
    path = tmp_path / "qdq.onnx"
    onnx.save(model, str(path))
    assert model_costs(path, 1, 16) == model_costs(tiny_bert_onnx, 1, 16)

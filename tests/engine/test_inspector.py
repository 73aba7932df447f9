"""Engine-inspector JSON (TensorRT 10 `Bindings` and 11 `I/O Tensors` schemas) and the `(Sparsity)`
build-log lines -> per-layer precision and the sparsity report (facts §3.4, §4)."""

from __future__ import annotations

import json

import pytest

from trt_edge.engine.inspector import (
    dtype_of,
    parse_engine_info,
    parse_sparsity_log,
    precision_report,
    sparsity_report,
)
from trt_edge.errors import TrtEdgeError

# The TensorRT 10 layout (trex example `resnet.onnx.engine.graph.json`, v10.3), cut to three layers.
TRT10 = {
    "Layers": [
        {"Name": "conv1 + relu1", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "input.1", "Location": "Device", "Dimensions": [1, 3, 224, 224],
                     "Format/Datatype": "Row major linear FP32"}],
         "Outputs": [{"Name": "x1", "Location": "Device", "Dimensions": [1, 64, 112, 112],
                      "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
         "ParameterType": "Convolution", "Weights": {"Type": "Half", "Count": 9408},
         "HasSparseWeights": 0, "TacticName": "sm80_xmma_fprop_implicit_gemm_f16f16", "TacticValue": "0x1"},
        {"Name": "fc_qdq", "LayerType": "CaskGemmConvolution",
         "Inputs": [{"Name": "x1", "Format/Datatype": "Channel major INT8 format"}],
         "Outputs": [{"Name": "x2", "Format/Datatype": "Row major linear FP16"}],
         "Weights": {"Type": "Int8", "Count": 4096}, "HasSparseWeights": 1,
         "TacticName": "sm87_xmma_gemm_i8i8_sparse_tn", "TacticValue": "0x2"},
        {"Name": "softmax", "LayerType": "CudaSoftMax",
         "Inputs": [{"Name": "x2", "Format/Datatype": "Row major linear FP16"}],
         "Outputs": [{"Name": "191", "Format/Datatype": "Row major linear FP32"}]},
    ],
    "Bindings": ["input.1", "191"],
}

# The TensorRT 11 layout: `I/O Tensors` objects, format and data type split.
TRT11 = {
    "Layers": [
        {"Name": "attn/MatMul", "LayerType": "gemm",
         "Inputs": [{"Name": "h", "Format": "Row major linear", "DataType": "FP8"}],
         "Outputs": [{"Name": "o", "Format": "Row major linear", "DataType": "BF16"}],
         "AllowSparse": 1, "TacticName": "sm110_gemm"},
        {"Name": "ln", "LayerType": "Normalization",
         "Outputs": [{"Name": "logits", "Format": "Row major linear", "DataType": "FP32"}]},
    ],
    "I/O Tensors": [
        {"Name": "input_ids", "IOMode": "Input", "DataType": "Int64", "Dimensions": [-1, -1], "Location": "Device",
         "IsShapeInferenceIO": False,
         "ProfileInfo": [{"MinShape": [1, 1], "OptShape": [8, 64], "MaxShape": [32, 128], "Format": "Row major"}]},
        {"Name": "logits", "IOMode": "Output", "DataType": "FP32", "Dimensions": [-1, 3], "Location": "Device"},
    ],
}

LOG = """[11/23/2026-10:00:00] [V] [TRT] something else
[11/23/2026-10:00:01] [I] [TRT] (Sparsity) Layers eligible for sparse math: fc_qdq, fc2
[11/23/2026-10:00:02] [I] [TRT] (Sparsity) TRT inference plan picked sparse implementation for layers: fc_qdq
""".splitlines()


@pytest.mark.parametrize(("text", "dtype"), [
    ("Row major linear FP32", "fp32"), ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Half", "fp16"), ("Float", "fp32"), ("Int8", "int8"), ("Channel major INT8 format", "int8"),
    ("BF16", "bf16"), ("FP8", "fp8"), ("Int64", "int64"), ("UInt8", "uint8"), ("Row major linear", None),
])
def test_dtype_of(text: str, dtype: str | None) -> None:
    assert dtype_of(text) == dtype


def test_trt10_schema() -> None:
    info = parse_engine_info(json.dumps(TRT10))
    assert info.schema == "trt10" and info.detailed
    assert [t.name for t in info.io_tensors] == ["input.1", "191"]
    conv, fc, soft = info.layers
    assert conv.precision == "fp16" and not conv.sparse_tactic
    assert fc.precision == "int8" and fc.has_sparse_weights and fc.sparse_tactic  # weights type wins
    assert soft.precision == "fp32" and soft.has_sparse_weights is None
    assert info.precisions() == {"fp16": 1, "int8": 1, "fp32": 1}
    assert info.sparse_layers() == ["fc_qdq"]


def test_trt11_schema() -> None:
    info = parse_engine_info(TRT11)
    assert info.schema == "trt11"
    inp, out = info.io_tensors
    assert (inp.name, inp.io_mode, inp.dtype, inp.dimensions) == ("input_ids", "Input", "int64", [-1, -1])
    assert inp.profile is not None and inp.profile[0]["MaxShape"] == [32, 128]
    assert out.dtype == "fp32"
    gemm, ln = info.layers
    assert gemm.precision == "bf16" and gemm.sparse_tactic  # older `AllowSparse` key read too
    assert ln.precision == "fp32"


def test_layer_names_only_and_bad_input() -> None:
    info = parse_engine_info({"Layers": ["a", "b"], "Bindings": ["x"]})
    assert not info.detailed and [layer.name for layer in info.layers] == ["a", "b"]
    assert precision_report(info)["counts"] == {"unknown": 2}
    with pytest.raises(TrtEdgeError, match="not JSON"):
        parse_engine_info("{not json")
    with pytest.raises(TrtEdgeError, match="no `Layers` list"):
        parse_engine_info({"Bindings": []})


def test_sparsity_log_both_phrasings() -> None:
    got = parse_sparsity_log(LOG)
    assert got["eligible"] == ["fc_qdq", "fc2"] and got["picked"] == ["fc_qdq"]
    later = parse_sparsity_log(["[I] [TRT] (Sparsity) Found 2 layer(s) eligible to use sparse tactics: a, b",
                                "[I] [TRT] (Sparsity) Chose 1 layer(s) using sparse tactics: b"])
    assert later["eligible"] == ["a", "b"] and later["picked"] == ["b"]


def test_sparsity_report_applied_and_not_applied() -> None:
    info = parse_engine_info(TRT10)
    ok = sparsity_report(True, info, LOG)
    assert ok["warning"] is None and ok["sparse_layers"] == ["fc_qdq"] and ok["evidence"] == ["inspector", "log"]

    dense = json.loads(json.dumps(TRT10))
    dense["Layers"][1]["HasSparseWeights"] = 0
    dense["Layers"][1]["TacticName"] = "sm87_gemm_i8"
    eligible_only = [LOG[1]]
    bad = sparsity_report(True, parse_engine_info(dense), eligible_only)
    assert bad["sparse_layers"] == []
    assert bad["warning"].startswith("SPARSITY REQUESTED BUT NOT APPLIED: 2 layer(s) were eligible")

    unknown = sparsity_report(True, None, [])
    assert "no evidence" in unknown["warning"]
    assert sparsity_report(False, parse_engine_info(dense), [])["warning"] is None

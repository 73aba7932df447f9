"""The ONNX checker on hand-built graphs (each weight path TensorRT can meet) and on a real export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from trt_edge.errors import TrtEdgeError  # noqa: E402
from trt_edge.sparsity.onnx_check import check_onnx_sparsity  # noqa: E402
from trt_edge.sparsity.report import pattern_stats  # noqa: E402


def _sparse_24(shape: tuple[int, ...], axis: int, seed: int = 0) -> np.ndarray:
    """A random float32 tensor with 2 zeros in every group of 4 along `axis`."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32) + 3.0  # no accidental zeros
    moved = np.moveaxis(w, axis, -1).copy()
    groups = moved.reshape(*moved.shape[:-1], -1, 4)
    for idx in np.ndindex(groups.shape[:-1]):
        groups[idx][rng.permutation(4)[:2]] = 0.0
    return np.moveaxis(groups.reshape(moved.shape), -1, axis)


def _save(tmp_path: Path, nodes: list, inits: list, inputs: list, name: str = "m.onnx") -> Path:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _sparsity_json(folder: Path, names: list[str]) -> Path:
    path = folder / "sparsity.json"
    path.write_text(json.dumps({"format": "trt-edge-sparsity", "version": 1,
                                "tensors": {n: {"pattern": "2:4", "axis": 1} for n in names}}))
    return path


def test_pattern_stats_counts_groups() -> None:
    w = np.array([[1, 0, 0, 2, 0, 3, 4, 0], [1, 2, 0, 3, 0, 0, 0, 0]], dtype=np.float32)
    s = pattern_stats(w, axis=1)
    assert (s.groups, s.groups_ok, s.eligible) == (4, 3, True)
    assert not s.holds
    assert pattern_stats(w[:, :6], axis=1).eligible is False


def test_matmul_reads_axis_0_gemm_follows_transb(tmp_path: Path) -> None:
    k, n = 16, 8
    w_kn = _sparse_24((k, n), axis=0)          # MatMul B: [K, N], pattern along K
    w_nk = np.ascontiguousarray(w_kn.T)        # Gemm transB=1: [N, K], pattern along axis 1
    wrong = np.ascontiguousarray(_sparse_24((k, n), axis=1))  # pattern along N: useless for TensorRT
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k])
    nodes = [
        helper.make_node("MatMul", ["x", "w_kn"], ["a"], name="mm"),
        helper.make_node("Gemm", ["x", "w_nk"], ["b"], name="gemm", transB=1),
        helper.make_node("MatMul", ["x", "wrong"], ["c"], name="mm_wrong"),
        helper.make_node("Sum", ["a", "b", "c"], ["y"]),
    ]
    inits = [numpy_helper.from_array(a, n_) for a, n_ in ((w_kn, "w_kn"), (w_nk, "w_nk"), (wrong, "wrong"))]
    path = _save(tmp_path, nodes, inits, [x])
    _sparsity_json(tmp_path, ["w_kn", "w_nk", "wrong"])
    report = check_onnx_sparsity(path)
    rows = {r.name: r for r in report.rows}
    assert rows["w_kn"].is_2to4 and rows["w_kn"].axis == 0
    assert rows["w_nk"].is_2to4 and rows["w_nk"].axis == 1
    assert not rows["wrong"].is_2to4 and rows["wrong"].zero_fraction == pytest.approx(0.5)
    assert report.violations == ["wrong"]
    assert "VIOLATION wrong" in report.to_table()
    assert report.to_dict()["violations"] == 1


def test_follows_transpose_cast_and_dq_chains(tmp_path: Path) -> None:
    k, n = 16, 8
    w_nk = _sparse_24((n, k), axis=1, seed=1)                  # stored [out, in], read through Transpose
    scale = np.full((n,), 0.05, np.float32)
    q_nk = np.clip(np.rint(w_nk / scale[:, None]), -127, 127).astype(np.int8)  # pre-quantized, int8
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k])
    nodes = [
        # int8 initializer -> DQ (per output channel, axis 0) -> Transpose -> MatMul
        helper.make_node("DequantizeLinear", ["q_nk", "scale", "zp"], ["dq"], axis=0),
        helper.make_node("Transpose", ["dq"], ["dq_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "dq_t"], ["a"], name="mm_int8"),
        # float initializer -> Q -> DQ -> Cast(fp16) -> Cast(fp32) -> Transpose -> MatMul
        helper.make_node("QuantizeLinear", ["w_nk", "scale", "zp"], ["q2"], axis=0),
        helper.make_node("DequantizeLinear", ["q2", "scale", "zp"], ["dq2"], axis=0),
        helper.make_node("Cast", ["dq2"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["h"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["f_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "f_t"], ["b"], name="mm_qdq"),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    inits = [numpy_helper.from_array(q_nk, "q_nk"), numpy_helper.from_array(scale, "scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "zp"), numpy_helper.from_array(w_nk, "w_nk")]
    path = _save(tmp_path, nodes, inits, [x])
    report = check_onnx_sparsity(path, _sparsity_json(tmp_path, ["q_nk", "w_nk"]))
    rows = {r.consumer: r for r in report.rows}
    assert rows["mm_int8"].name == "q_nk" and rows["mm_int8"].is_2to4
    assert rows["mm_int8"].axis == 1  # axis 0 of the MatMul's [K, N] is axis 1 of the stored [N, K]
    assert rows["mm_int8"].path == ["DequantizeLinear", "Transpose"]
    assert rows["mm_qdq"].name == "w_nk" and rows["mm_qdq"].is_2to4 and rows["mm_qdq"].axis == 1
    assert report.ok


def test_conv_reads_input_channels(tmp_path: Path) -> None:
    w = _sparse_24((8, 16, 3, 3), axis=1, seed=2)
    bad = w.copy()
    bad[3, 4:8, 1, 1] = 1.0  # one group of input channels made dense
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv_ok"),
             helper.make_node("Conv", ["x", "bad"], ["b"], name="conv_bad"),
             helper.make_node("Add", ["a", "b"], ["y"])]
    path = _save(tmp_path, nodes, [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bad, "bad")], [x])
    rows = {r.name: r for r in check_onnx_sparsity(path).rows}
    assert rows["w"].is_2to4 and rows["w"].axis == 1
    assert not rows["bad"].is_2to4 and 0.99 < rows["bad"].fraction_ok < 1.0


def test_missing_external_data_is_a_user_error(tmp_path: Path) -> None:
    w = _sparse_24((64, 64), axis=0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    assert check_onnx_sparsity(path).rows[0].is_2to4
    (tmp_path / "ext.data").unlink()
    with pytest.raises(TrtEdgeError, match=r"external weight data missing \(ext\.data"):
        check_onnx_sparsity(path)


def test_bad_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="not found"):
        check_onnx_sparsity(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx at all")
    with pytest.raises(TrtEdgeError, match="not a readable ONNX model"):
        check_onnx_sparsity(junk)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{}")
    with pytest.raises(TrtEdgeError, match=r"not a trt-edge sparsity\.json"):
        check_onnx_sparsity(junk, bad_json)

"""2:4 sparse weights survive export and clean-up: the pattern is still there, along the axis TensorRT
reads (the reduction axis K of each MatMul weight), in the ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_edge.export.exporter import export_onnx


def _make_24(weight: np.ndarray) -> np.ndarray:
    """Keep the 2 largest of every 4 consecutive inputs (PyTorch Linear weight [out, in])."""
    groups = weight.reshape(weight.shape[0], -1, 4).copy()
    drop = np.argsort(np.abs(groups), axis=-1)[..., :2]
    np.put_along_axis(groups, drop, 0.0, axis=-1)
    return groups.reshape(weight.shape)


@pytest.fixture(scope="module")
def sparse_tiny_bert(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    names = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".encoder." in f".{name}.":
                module.weight.copy_(torch.from_numpy(_make_24(module.weight.numpy())))
                names.append(f"{name}.weight")
    out = tmp_path_factory.mktemp("sparse-tiny-bert")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out, names


def _direct_check(path: Path) -> int:
    """Count MatMul weights holding 2:4 along axis 0 (K of [K, N]); fail on an encoder weight that lost it."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    sparse = 0
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if w.ndim != 2 or w.shape[0] % 4:
            continue
        zeros = (w.reshape(-1, 4, w.shape[1]) == 0).sum(axis=1)
        if "/encoder/" in node.name:
            assert (zeros >= 2).all(), f"{node.name}: the 2:4 pattern was lost"
            sparse += 1
    return sparse


@pytest.mark.parametrize("dynamo", [False])
def test_sparse_weights_survive_export(sparse_tiny_bert: tuple[Path, list[str]], tmp_path: Path,
                                       dynamo: bool) -> None:
    folder, names = sparse_tiny_bert
    path = tmp_path / "model.onnx"
    export_onnx(folder, path, dynamo=dynamo)
    # 2 layers x (query, key, value, attention output, intermediate, output) = 12 sparse MatMul weights
    assert _direct_check(path) == 12
    try:
        from trt_edge.sparsity.onnx_check import check_onnx_sparsity
    except ImportError:  # the sparsity area's checker is optional here; the direct check above stands
        return
    report = check_onnx_sparsity(path)
    mapped = {r.model_name for r in report.rows if r.is_2to4}
    assert set(names) <= mapped, f"not found as 2:4: {sorted(set(names) - mapped)}"


def test_stage_gate_on_sparsity_json(sparse_tiny_bert: tuple[Path, list[str]], tmp_path: Path) -> None:
    """With the prune stage's sparsity.json beside the weights, the export stage checks every listed
    tensor in the ONNX file and fails (exit 1) when one lost its pattern."""
    import json

    from trt_edge.errors import GateError
    from trt_edge.export.stage import _sparsity

    pytest.importorskip("trt_edge.sparsity.onnx_check")
    folder, names = sparse_tiny_bert
    (folder / "sparsity.json").write_text(json.dumps({
        "format": "trt-edge-sparsity", "version": 1,
        "tensors": {n: {"pattern": "2:4", "axis": 1} for n in names}}))
    path = tmp_path / "model.onnx"
    export_onnx(folder, path, dynamo=False)
    summary = _sparsity(path, folder)
    assert summary is not None and summary["ok"] and summary["expected"] == len(names) == 12
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.name == "/bert/encoder/layer/0/intermediate/dense/MatMul_0")
    init = next(t for t in model.graph.initializer if t.name == node.input[1])
    dense = np.abs(numpy_helper.to_array(init)) + 1.0
    init.CopyFrom(numpy_helper.from_array(dense.astype(np.float32), init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(GateError, match="lost their 2:4 pattern"):
        _sparsity(broken, folder)

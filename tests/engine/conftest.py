"""Fixtures of the engine tests: a tiny exported ONNX (the random 2-layer BERT) and a Q/DQ copy of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.conftest import export_classifier


@pytest.fixture(scope="session")
def tiny_onnx_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  tiny_bert_dir: Path) -> Path:
    """A folder with `model.onnx` exported from the tiny BERT (the shared `tiny_bert_onnx` fixture when
    present), and its tokenizer next to it."""
    import shutil

    out = tmp_path_factory.mktemp("tiny-engine-onnx")
    try:
        shared = Path(request.getfixturevalue("tiny_bert_onnx"))
    except pytest.FixtureLookupError:
        export_classifier(tiny_bert_dir, out)
    else:
        for f in shared.parent.iterdir():
            if f.is_file():
                shutil.copy(f, out / f.name)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "config.json"):
        if (tiny_bert_dir / name).is_file():
            shutil.copy(tiny_bert_dir / name, out / name)
    return out


@pytest.fixture(scope="session")
def qdq_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_dir: Path) -> Path:
    """The tiny model with one QuantizeLinear/DequantizeLinear pair on the first MatMul's weight input.

    Enough for the build stage to recognise an explicitly quantized model; it is never run.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(tiny_onnx_dir / "model.onnx"))
    graph = model.graph
    matmul = next(n for n in graph.node if n.op_type == "MatMul")
    src = matmul.input[1]
    graph.initializer.extend([numpy_helper.from_array(np.array(0.01, dtype=np.float32), "qdq_scale"),
                              numpy_helper.from_array(np.array(0, dtype=np.int8), "qdq_zero")])
    q = helper.make_node("QuantizeLinear", [src, "qdq_scale", "qdq_zero"], ["qdq_q"], name="qdq_Q")
    dq = helper.make_node("DequantizeLinear", ["qdq_q", "qdq_scale", "qdq_zero"], ["qdq_dq"], name="qdq_DQ")
    matmul.input[1] = "qdq_dq"
    index = list(graph.node).index(matmul)
    graph.node.insert(index, dq)
    graph.node.insert(index, q)
    out = tmp_path_factory.mktemp("tiny-qdq") / "model.int8.onnx"
    onnx.save(model, str(out))
    onnx.checker.check_model(str(out))
    return out
